INSERT INTO web.customer (customer_code, name, order_email_address, address1, address2, address3, postcode,
                          phone_number, abn, industry_code, status, is_debtor_customer, is_cash_account,
                          auto_part_registration, updated_at)
SELECT code, name, email, addr_1, addr_2, addr_3, postcode, phone, abn, industry, 'Active', true, false,
       n IN (2, 3), changed_at
FROM seed_trade_account;
