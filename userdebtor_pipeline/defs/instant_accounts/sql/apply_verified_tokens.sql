-- Applies each followed token once (I3): verify_email / reverify make the user Active and verified, set_password proves the address (A1); a token followed again, too late, or of a Deactivated user changes nothing.
-- Parameters: run_id. The first step alone is what a dry run reports.

-- step: followed_tokens
-- Followed tokens not dealt with yet.
CREATE TEMP TABLE IF NOT EXISTS _followed_token (
    token_hash  text PRIMARY KEY,
    user_id     bigint NOT NULL,
    purpose     text NOT NULL,
    used_at     timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    verdict     text NOT NULL           -- apply | expired | no_user | used_again | deactivated
) ON COMMIT DROP;

-- step: find_followed_tokens
INSERT INTO _followed_token (token_hash, user_id, purpose, used_at, expires_at, verdict)
SELECT t.token_hash, t.user_id, t.purpose, t.used_at, t.expires_at,
       CASE WHEN a.token_hash IS NOT NULL THEN 'used_again'   -- dealt with before, and used_at moved since
            WHEN t.used_at > t.expires_at THEN 'expired'
            WHEN u.user_id IS NULL THEN 'no_user'
            -- I3: only the rule that deactivated a user (I2, U6, M2) makes it Active again, never a link
            WHEN u.status = 'Deactivated' THEN 'deactivated'
            ELSE 'apply' END
  FROM web.verification_token t
  LEFT JOIN userdebtor.verification_applied a ON a.token_hash = t.token_hash
  LEFT JOIN web.app_user u ON u.user_id = t.user_id
 WHERE t.used_at IS NOT NULL
   AND t.purpose IN ('verify_email', 'reverify', 'set_password')
   AND (a.token_hash IS NULL OR a.used_at IS DISTINCT FROM t.used_at);

-- step: users_verified
-- A set_password link proves the address alone; a user waiting for the website's approval (U3) keeps waiting.
UPDATE web.app_user u
   SET status = CASE WHEN f.verifies AND u.status <> 'PendingApproval' THEN 'Active' ELSE u.status END,
       email_verified = true,
       last_verified_at = CASE WHEN f.verifies THEN greatest(u.last_verified_at, f.used_at) ELSE u.last_verified_at END,
       updated_at = now()
  FROM (SELECT user_id, max(used_at) FILTER (WHERE purpose <> 'set_password') AS used_at,
               bool_or(purpose <> 'set_password') AS verifies
          FROM _followed_token WHERE verdict = 'apply' GROUP BY user_id) f
 WHERE u.user_id = f.user_id
   AND (f.verifies OR NOT u.email_verified);

-- step: tokens_remembered
-- Remember the tokens dealt with.
INSERT INTO userdebtor.verification_applied AS a (
    token_hash, user_id, purpose, used_at, outcome, first_run_id, last_run_id)
SELECT token_hash, user_id, purpose, used_at, CASE WHEN verdict = 'apply' THEN 'applied' ELSE verdict END,
       :run_id, :run_id
  FROM _followed_token
ON CONFLICT (token_hash) DO UPDATE
   SET used_at = excluded.used_at, times_seen = a.times_seen + 1, last_run_id = excluded.last_run_id;
