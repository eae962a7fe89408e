-- Every other open trade account is on the web already (with B2B users); numbered 1..n for picking.
INSERT INTO seed_trade_account
SELECT row_number() OVER (ORDER BY dr_cust_code), dr_cust_code, dr_cust_name, dr_email, dr_addr_1, dr_addr_2,
       dr_addr_3, dr_postcode, dr_phone, dr_abn, dr_industry_code, dr_date_last_changed
FROM (
    SELECT *, row_number() OVER (ORDER BY dr_cust_code) AS rank
    FROM erp.deb_master
    WHERE dr_cust_type = 'TRADE' AND dr_account_status <> 'C' AND dr_cust_code ~ '^C[0-9]+$'
) AS trade
WHERE rank % 2 = 1;
