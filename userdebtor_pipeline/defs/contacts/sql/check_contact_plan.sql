-- Reads the M1 plan for its blocking check: the users to create (with whether the email is a user already) and the links to add.

-- step: users_to_create
SELECT p.email_key, p.email_address, userdebtor.email_key(p.email_address) AS email_lower, p.default_customer_code,
       -- Both lookups indexed: the live users by their case-insensitive unique index, the mirror by email_key.
       EXISTS (SELECT 1 FROM web.app_user u WHERE lower(u.email_address) = p.email_key)
       OR EXISTS (SELECT 1 FROM userdebtor.web_user w WHERE userdebtor.email_key(w.email_address) = p.email_key)
       AS already_a_user
  FROM userdebtor.plan_contact_user_create p
 ORDER BY p.email_key

-- step: links_to_add
SELECT p.email_key, p.customer_code, p.user_id, p.batch,
       (p.user_id IS NOT NULL OR p.batch IS NOT NULL) AS has_user
  FROM userdebtor.plan_contact_link_add p
 ORDER BY p.email_key, p.customer_code
