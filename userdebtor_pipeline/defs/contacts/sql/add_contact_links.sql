-- Adds the planned M1 user_customer links of one creation batch (or, with :batch null, of users who existed) and records the ones it made.
-- The users through indexes only (a batch must not scan every user): those that existed by their id, still
-- under the planned address; those of a creation batch by the address they were made with.
WITH planned AS (
    SELECT u.user_id, p.customer_code, u.email_address, u.role
      FROM userdebtor.plan_contact_link_add p
      JOIN web.app_user u ON u.user_id = p.user_id AND userdebtor.email_key(u.email_address) = p.email_key
     WHERE p.batch IS NULL AND CAST(:batch AS integer) IS NULL
    UNION ALL
    SELECT u.user_id, p.customer_code, u.email_address, u.role
      FROM userdebtor.plan_contact_link_add p
      JOIN userdebtor.plan_contact_user_create c ON c.email_key = p.email_key
      JOIN web.app_user u ON lower(u.email_address) IN (lower(c.email_address), c.email_key)
     WHERE p.batch = CAST(:batch AS integer)
), added AS (
    INSERT INTO web.user_customer (user_id, customer_code, initial_role)
    SELECT user_id, customer_code, role FROM planned
    ON CONFLICT (user_id, customer_code) DO NOTHING
    RETURNING user_id, customer_code
)
-- Only links this statement made are the integration's: a row the website made meanwhile stays the website's.
INSERT INTO userdebtor.contact_link (user_id, customer_code, email)
SELECT a.user_id, a.customer_code, userdebtor.email_key(p.email_address)
  FROM added a
  JOIN planned p ON p.user_id = a.user_id AND p.customer_code = a.customer_code
ON CONFLICT (user_id, customer_code) DO NOTHING
