-- Lists, per web user waiting for proof of its address (A1), the accounts its email matched and the account_link_verify email not yet queued for that set.
-- A user's set is every rule's wait together, so one email covers them; a new account makes a new set (and email).
SELECT w.user_id, w.email_address, w.name, w.accounts, w.dedupe_key
  FROM (SELECT p.user_id, u.email_address, u.name,
               array_agg(DISTINCT p.customer_code ORDER BY p.customer_code) AS accounts,
               'account_link_verify:' || p.user_id || ':'
               || md5(string_agg(DISTINCT p.customer_code, ',' ORDER BY p.customer_code)) AS dedupe_key
          FROM userdebtor.plan_link_proof p
          JOIN web.app_user u ON u.user_id = p.user_id
         WHERE NOT u.email_verified
           AND u.status <> 'Deactivated'   -- its link would change nothing (I3)
         GROUP BY p.user_id, u.email_address, u.name) w
 WHERE NOT EXISTS (SELECT 1 FROM web.email_outbox o WHERE o.dedupe_key = w.dedupe_key)
 ORDER BY w.user_id
