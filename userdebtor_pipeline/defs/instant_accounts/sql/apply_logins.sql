-- Applies this run's login decisions (I2) in the caller's one transaction: users allowed, expired or deactivated, and each login event stamped as processed.
-- Parameters: run_id. The reverify emails are queued by the caller in the same transaction, one per login.

-- step: users_last_login_moved
-- Allowed logins move the last login forward.
UPDATE web.app_user u
   SET last_login_at = greatest(u.last_login_at, p.occurred_at)
  FROM (SELECT user_id, max(occurred_at) AS occurred_at FROM userdebtor.plan_login
         WHERE run_id = :run_id AND outcome = 'allowed' GROUP BY user_id) p
 WHERE u.user_id = p.user_id
   AND u.last_login_at IS DISTINCT FROM greatest(u.last_login_at, p.occurred_at);

-- step: users_expired
-- Users whose login needs a new confirmation expire.
UPDATE web.app_user u
   SET status = 'Expired', updated_at = now()
 WHERE u.user_id IN (SELECT user_id FROM userdebtor.plan_login WHERE run_id = :run_id AND outcome = 'reverify_required')
   AND u.status = 'Active';

-- step: users_deactivated
-- Users no account lists any more are deactivated.
UPDATE web.app_user u
   SET status = 'Deactivated', updated_at = now()
 WHERE u.user_id IN (SELECT user_id FROM userdebtor.plan_login WHERE run_id = :run_id AND outcome = 'refused')
   AND u.status <> 'Deactivated';

-- step: logins_stamped
-- Stamp the login events.
UPDATE web.login_event e
   SET outcome = p.outcome, reason = p.reason, processed_at = now()
  FROM userdebtor.plan_login p
 WHERE p.event_id = e.event_id
   AND p.run_id = :run_id
   AND p.outcome IN ('allowed', 'reverify_required', 'refused')
   AND e.processed_at IS NULL;
