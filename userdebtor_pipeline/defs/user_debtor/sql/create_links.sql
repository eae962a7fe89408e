-- Links the pairs in _new_link (user_id, dr_cust_code, origin) and gives each user its account on the web.

-- step: default_account
UPDATE web.app_user u
   SET default_customer_code = n.dr_cust_code, updated_at = now()
  FROM _new_link n
 WHERE u.user_id = n.user_id AND u.default_customer_code IS NULL;

-- step: user_accounts
INSERT INTO web.user_customer (user_id, customer_code, initial_role)
SELECT n.user_id, n.dr_cust_code, u.role
  FROM _new_link n JOIN web.app_user u ON u.user_id = n.user_id
ON CONFLICT (user_id, customer_code) DO NOTHING;

-- step: links
-- The base (value last synced) of a made pair is the ERP's value as made. A matched pair takes the web's value
-- where the ERP has one, so the ERP's differing values flow to the web, and the web fills the ERP's gaps.
INSERT INTO userdebtor.user_debtor_link (
    user_id, dr_cust_code, origin, base_email, base_name, base_address1, base_address2, base_address3,
    base_address4, base_address5, base_address6, base_phone_number, base_postcode, base_abn, base_industry_code)
SELECT n.user_id, n.dr_cust_code, n.origin,
       CASE WHEN n.origin <> 'matched' THEN d.dr_email WHEN d.dr_email IS NOT NULL THEN u.email_address END,
       CASE WHEN n.origin <> 'matched' THEN d.dr_cust_name WHEN d.dr_cust_name IS NOT NULL THEN u.name END,
       CASE WHEN n.origin <> 'matched' THEN d.dr_addr_1 WHEN d.dr_addr_1 IS NOT NULL THEN u.address1 END,
       CASE WHEN n.origin <> 'matched' THEN d.dr_addr_2 WHEN d.dr_addr_2 IS NOT NULL THEN u.address2 END,
       CASE WHEN n.origin <> 'matched' THEN d.dr_addr_3 WHEN d.dr_addr_3 IS NOT NULL THEN u.address3 END,
       CASE WHEN n.origin <> 'matched' THEN d.dr_addr_4 WHEN d.dr_addr_4 IS NOT NULL THEN u.address4 END,
       CASE WHEN n.origin <> 'matched' THEN d.dr_addr_5 WHEN d.dr_addr_5 IS NOT NULL THEN u.address5 END,
       CASE WHEN n.origin <> 'matched' THEN d.dr_addr_6 WHEN d.dr_addr_6 IS NOT NULL THEN u.address6 END,
       CASE WHEN n.origin <> 'matched' THEN d.dr_phone WHEN d.dr_phone IS NOT NULL THEN u.phone_number END,
       CASE WHEN n.origin <> 'matched' THEN d.dr_postcode WHEN d.dr_postcode IS NOT NULL THEN u.postcode END,
       CASE WHEN n.origin <> 'matched' THEN d.dr_abn WHEN d.dr_abn IS NOT NULL THEN u.abn END,
       CASE WHEN n.origin <> 'matched' THEN d.dr_industry_code WHEN d.dr_industry_code IS NOT NULL THEN u.industry_code END
  FROM _new_link n
  JOIN userdebtor.erp_debtor d ON d.dr_cust_code = n.dr_cust_code
  JOIN web.app_user u ON u.user_id = n.user_id
ON CONFLICT DO NOTHING
