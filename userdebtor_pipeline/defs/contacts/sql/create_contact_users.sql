-- Creates the web users of one batch of the M1 plan and returns them; an email some user has meanwhile is skipped.
WITH created AS (
    INSERT INTO web.app_user (email_address, name, phone_number, role, default_customer_code, status,
                              created_at, updated_at)
    SELECT p.email_address, p.name, p.phone_number, :role, p.default_customer_code,
           CASE WHEN p.pending_approval THEN 'PendingApproval' ELSE 'Active' END, now(), now()
      FROM userdebtor.plan_contact_user_create p
     WHERE p.batch = :batch
       -- Through indexes only (a batch must not scan every user): the live users by their case-insensitive
       -- unique index, under the address as written and as its key, and the mirror by the key (A2).
       AND NOT EXISTS (SELECT 1 FROM web.app_user u WHERE lower(u.email_address) IN (lower(p.email_address), p.email_key))
       AND NOT EXISTS (SELECT 1 FROM userdebtor.web_user w WHERE userdebtor.email_key(w.email_address) = p.email_key)
     ORDER BY p.email_key
    ON CONFLICT DO NOTHING
    RETURNING user_id, email_address, name, default_customer_code, status
), made AS (
    -- A1: nobody logs in to a user the integration made but through the one-time link sent to its address.
    INSERT INTO userdebtor.made_user (user_id, rule) SELECT user_id, 'M1' FROM created ON CONFLICT DO NOTHING
)
SELECT c.user_id, c.email_address, c.name, c.default_customer_code, c.status, p.account_name
  FROM created c
  JOIN userdebtor.plan_contact_user_create p ON p.email_key = userdebtor.email_key(c.email_address)
 ORDER BY c.user_id
