-- Opens one approved instant account (I1), step by step in the caller's transaction: user, default account, links, request status.
-- The Python caller runs each step by name, once per approved request, between them the web.customer mirror and the email.

-- step: lock_request
SELECT status FROM web.registration_request WHERE request_id = :request_id FOR UPDATE;

-- step: find_user
SELECT user_id FROM web.app_user WHERE userdebtor.email_key(email_address) = userdebtor.email_key(:email_address) ORDER BY user_id LIMIT 1;

-- step: address_proven
-- A1: a reused user's accounts are linked at once only when its address is proven; otherwise after its link.
SELECT email_verified FROM web.app_user WHERE user_id = :user_id;

-- step: create_user
INSERT INTO web.app_user (email_address, name, role, default_customer_code, status, email_verified, created_at, updated_at)
VALUES (btrim(:email_address), :name, :role, :default_code, 'Active', false, now(), now())
RETURNING user_id;

-- step: give_default_account
-- Give a reused user a default account.
UPDATE web.app_user
   SET default_customer_code = :default_code, updated_at = now()
 WHERE user_id = :user_id AND default_customer_code IS NULL;

-- step: accounts_without_web_customer
SELECT code FROM unnest(CAST(:codes AS text[])) AS code
 WHERE NOT EXISTS (SELECT 1 FROM web.customer c WHERE c.customer_code = code)
 ORDER BY code;

-- step: link_accounts
INSERT INTO web.user_customer (user_id, customer_code, initial_role)
SELECT :user_id, code, :role FROM unnest(CAST(:codes AS text[])) AS code
ON CONFLICT (user_id, customer_code) DO NOTHING;

-- step: remember_instant_account_user
INSERT INTO userdebtor.instant_account_user (user_id, request_id, linked_at)
VALUES (:user_id, :request_id, CASE WHEN CAST(:linked AS boolean) THEN now() END)
ON CONFLICT (user_id) DO UPDATE
   SET linked_at = coalesce(userdebtor.instant_account_user.linked_at, excluded.linked_at);

-- step: remember_accounts_linked
UPDATE userdebtor.instant_account_user SET linked_at = now() WHERE user_id = :user_id AND linked_at IS NULL;

-- step: approve_request
UPDATE web.registration_request
   SET status = 'approved', reason = :reason, user_id = :user_id, decided_at = now()
 WHERE request_id = :request_id AND status = 'pending';
