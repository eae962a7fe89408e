-- Builds the new ERP debtor rows of U1: fields in creation_fields from the user, every other one from the template.
CREATE TEMP TABLE _new_debtor ON COMMIT DROP AS
SELECT p.user_id, p.dr_cust_code,
       CASE WHEN 'Name' = ANY(:creation_fields) THEN coalesce(nullif(btrim(u.name), ''), u.email_address)
            ELSE CAST(:t_dr_cust_name AS text) END                                             AS dr_cust_name,
       CAST(:t_dr_cust_type AS text)                                                           AS dr_cust_type,
       CASE WHEN 'OrderEmailAddress' = ANY(:creation_fields) THEN u.email_address
            ELSE CAST(:t_dr_email AS text) END                                                 AS dr_email,
       CASE WHEN 'PhoneNumber' = ANY(:creation_fields) THEN u.phone_number ELSE CAST(:t_dr_phone AS text) END AS dr_phone,
       CASE WHEN 'Address1' = ANY(:creation_fields) THEN u.address1 ELSE CAST(:t_dr_addr_1 AS text) END AS dr_addr_1,
       CASE WHEN 'Address2' = ANY(:creation_fields) THEN u.address2 ELSE CAST(:t_dr_addr_2 AS text) END AS dr_addr_2,
       CASE WHEN 'Address3' = ANY(:creation_fields) THEN u.address3 ELSE CAST(:t_dr_addr_3 AS text) END AS dr_addr_3,
       CASE WHEN 'Address4' = ANY(:creation_fields) THEN u.address4 ELSE CAST(:t_dr_addr_4 AS text) END AS dr_addr_4,
       CASE WHEN 'Address5' = ANY(:creation_fields) THEN u.address5 ELSE CAST(:t_dr_addr_5 AS text) END AS dr_addr_5,
       CASE WHEN 'Address6' = ANY(:creation_fields) THEN u.address6 ELSE CAST(:t_dr_addr_6 AS text) END AS dr_addr_6,
       CASE WHEN 'Postcode' = ANY(:creation_fields) THEN u.postcode ELSE CAST(:t_dr_postcode AS text) END AS dr_postcode,
       CASE WHEN 'ABN' = ANY(:creation_fields) THEN u.abn ELSE CAST(:t_dr_abn AS text) END    AS dr_abn,
       CASE WHEN 'industrycode' = ANY(:creation_fields) THEN u.industry_code
            ELSE CAST(:t_dr_industry_code AS text) END                                         AS dr_industry_code,
       CAST(:t_dr_price_code AS text)                                                          AS dr_price_code,
       CAST(:t_dr_tax_code AS text)                                                            AS dr_tax_code,
       CAST(:t_dr_territory AS text)                                                           AS dr_territory,
       CAST(:t_dr_credit_limit AS numeric(14,2))                                               AS dr_credit_limit,
       CAST(:t_dr_account_status AS text)                                                      AS dr_account_status
  FROM userdebtor.plan_debtor_create p
  JOIN userdebtor.web_user u ON u.user_id = p.user_id
 WHERE p.action = 'create'
