-- Decides every unprocessed web.login_event of an instant-account user (I2), in occurred_at order: allowed, reverify_required or refused.
-- Parameters: run_id, default_role, cash_account_code, excluded_codes (text[]), reverify_after_days.

-- step: forget_previous_plan
DELETE FROM userdebtor.plan_login;

-- step: decide_logins
-- Decide each unprocessed login.
INSERT INTO userdebtor.plan_login (
    event_id, run_id, user_id, email_address, occurred_at, previous_login_at, outcome, reason)
WITH event AS (
    SELECT e.event_id, e.user_id, e.occurred_at,
           u.user_id IS NOT NULL AS user_exists,
           u.email_address, u.status,
           (u.role = CAST(:default_role AS text)
            OR EXISTS (SELECT 1 FROM userdebtor.instant_account_user i WHERE i.user_id = e.user_id)) AS is_instant,
           -- The last time the person was seen: a login, or a confirmed email (a reverify ends with one);
           -- a user who never logged in counts from their creation.
           coalesce(greatest(u.last_login_at, u.last_verified_at), u.created_at) AS stored_previous
      FROM web.login_event e
      LEFT JOIN web.app_user u ON u.user_id = e.user_id
     WHERE e.processed_at IS NULL
),
qualified_user AS (
    -- users whose email is still listed by an account that may carry an instant account;
    -- one index lookup per user (OFFSET 0 keeps it per user), whatever the size of the ERP
    SELECT u.user_id
      FROM (SELECT DISTINCT user_id, userdebtor.email_key(email_address) AS email_key FROM event WHERE is_instant) u
     WHERE EXISTS (
           SELECT 1
             FROM (SELECT e.dr_cust_code FROM userdebtor.email_account e WHERE e.email_key = u.email_key OFFSET 0) ea
             JOIN userdebtor.erp_debtor d ON d.dr_cust_code = ea.dr_cust_code
            WHERE d.dr_cust_code <> CAST(:cash_account_code AS text)
              AND NOT (d.dr_cust_code = ANY(CAST(:excluded_codes AS text[])))
              AND d.dr_account_status <> 'C')
),
sequenced AS (
    SELECT ev.*,
           q.user_id IS NOT NULL AS still_listed,
           -- an earlier login of this run that is allowed moves the previous login forward
           greatest(ev.stored_previous,
                    lag(ev.occurred_at) OVER (PARTITION BY ev.user_id ORDER BY ev.occurred_at, ev.event_id))
               AS previous_login_at
      FROM event ev
      LEFT JOIN qualified_user q ON q.user_id = ev.user_id
     WHERE ev.is_instant OR NOT ev.user_exists
),
judged AS (
    SELECT s.*,
           -- once one login of a user needs a new confirmation, so do the later ones of this run
           bool_or(s.previous_login_at < s.occurred_at - make_interval(days => CAST(:reverify_after_days AS integer)))
               OVER (PARTITION BY s.user_id ORDER BY s.occurred_at, s.event_id ROWS UNBOUNDED PRECEDING) AS stale
      FROM sequenced s
)
SELECT j.event_id, CAST(:run_id AS text), j.user_id, j.email_address, j.occurred_at, j.previous_login_at,
       CASE WHEN NOT j.user_exists THEN 'refused'
            WHEN j.status = 'Deactivated' THEN 'refused'
            WHEN NOT j.still_listed THEN 'refused'
            WHEN j.stale THEN 'reverify_required'
            ELSE 'allowed' END,
       CASE WHEN NOT j.user_exists THEN 'Refused: this login no longer exists on the website.'
            WHEN j.status = 'Deactivated' THEN 'Refused: this login is deactivated.'
            WHEN NOT j.still_listed THEN
                'Refused: no account that can be used for online ordering lists this email address any more, '
                'so the login has been deactivated.'
            WHEN j.stale THEN
                'Please confirm your email address: the previous login was '
                || floor(extract(epoch FROM j.occurred_at - j.previous_login_at) / 86400)::bigint
                || ' days before this one, more than ' || CAST(:reverify_after_days AS integer) || ' days.'
            ELSE 'Allowed: the email address is still on a trade account and the previous login was '
                 || greatest(floor(extract(epoch FROM j.occurred_at - j.previous_login_at) / 86400), 0)::bigint
                 || ' days before this one.' END
  FROM judged j;

-- step: logins_of_other_users
-- Logins of users who are not instant-account users.
-- The website writes login events for instant accounts only; any other is left unprocessed and shown.
INSERT INTO userdebtor.plan_login (
    event_id, run_id, user_id, email_address, occurred_at, previous_login_at, outcome, reason)
SELECT e.event_id, CAST(:run_id AS text), e.user_id, u.email_address, e.occurred_at, NULL, 'skipped',
       'Not an instant-account user (role ' || u.role || '): the login is not checked and is left unprocessed.'
  FROM web.login_event e
  JOIN web.app_user u ON u.user_id = e.user_id
 WHERE e.processed_at IS NULL
   AND u.role <> CAST(:default_role AS text)
   AND NOT EXISTS (SELECT 1 FROM userdebtor.instant_account_user i WHERE i.user_id = e.user_id);
