INSERT INTO web.customer (customer_code, name, order_email_address, address1, address2, address3, postcode,
                          phone_number, status, is_debtor_customer, is_cash_account, updated_at)
VALUES (:code, 'Cash Sales - Retail Store', :email, '1 Market Street', 'Sydney', 'NSW', '2000', '02 9000 0000',
        'Active', true, true, :updated);
