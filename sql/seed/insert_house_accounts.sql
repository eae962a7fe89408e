-- The template, the cash account, the excluded accounts and the web-prefixed codes the ERP made by hand.
INSERT INTO erp.deb_master (dr_cust_code, dr_cust_name, dr_cust_type, dr_email, dr_phone, dr_addr_1, dr_addr_2,
                            dr_addr_3, dr_postcode, dr_abn, dr_industry_code, dr_price_code, dr_tax_code,
                            dr_territory, dr_credit_limit, dr_account_status, dr_date_created, dr_date_last_changed)
VALUES (:dr_cust_code, :dr_cust_name, :dr_cust_type, :dr_email, :dr_phone, :dr_addr_1, :dr_addr_2, :dr_addr_3,
        :dr_postcode, :dr_abn, :dr_industry_code, :dr_price_code, :dr_tax_code, :dr_territory, :dr_credit_limit,
        :dr_account_status, :dr_date_created, :dr_date_last_changed);
