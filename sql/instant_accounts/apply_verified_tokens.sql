-- Applies each followed verify_email / reverify token once (I3): the user becomes Active and verified; a token followed again or too late changes nothing.
-- Parameters: run_id. The first step alone is what a dry run reports.

-- step: followed tokens not dealt with yet
CREATE TEMP TABLE IF NOT EXISTS _followed_token (
    token_hash  text PRIMARY KEY,
    user_id     bigint NOT NULL,
    purpose     text NOT NULL,
    used_at     timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    verdict     text NOT NULL           -- apply | expired | no_user | used_again
) ON COMMIT DROP;

-- step: find them
INSERT INTO _followed_token (token_hash, user_id, purpose, used_at, expires_at, verdict)
SELECT t.token_hash, t.user_id, t.purpose, t.used_at, t.expires_at,
       CASE WHEN a.token_hash IS NOT NULL THEN 'used_again'   -- dealt with before, and used_at moved since
            WHEN t.used_at > t.expires_at THEN 'expired'
            WHEN NOT EXISTS (SELECT 1 FROM web.app_user u WHERE u.user_id = t.user_id) THEN 'no_user'
            ELSE 'apply' END
  FROM web.verification_token t
  LEFT JOIN userdebtor.verification_applied a ON a.token_hash = t.token_hash
 WHERE t.used_at IS NOT NULL
   AND t.purpose IN ('verify_email', 'reverify')
   AND (a.token_hash IS NULL OR a.used_at IS DISTINCT FROM t.used_at);

-- step: verify the users
UPDATE web.app_user u
   SET status = 'Active', email_verified = true,
       last_verified_at = greatest(u.last_verified_at, f.used_at), updated_at = now()
  FROM (SELECT user_id, max(used_at) AS used_at FROM _followed_token WHERE verdict = 'apply' GROUP BY user_id) f
 WHERE u.user_id = f.user_id;

-- step: remember the tokens dealt with
INSERT INTO userdebtor.verification_applied AS a (
    token_hash, user_id, purpose, used_at, outcome, first_run_id, last_run_id)
SELECT token_hash, user_id, purpose, used_at, CASE WHEN verdict = 'apply' THEN 'applied' ELSE verdict END,
       :run_id, :run_id
  FROM _followed_token
ON CONFLICT (token_hash) DO UPDATE
   SET used_at = excluded.used_at, times_seen = a.times_seen + 1, last_run_id = excluded.last_run_id;
