-- Plans U1: in-scope web users with no linked debtor get a new ERP debtor (with a reserved code) or a matching one.

-- step: reset
DELETE FROM userdebtor.plan_set_aside WHERE rule = 'U1';

-- step: reset_plan
TRUNCATE userdebtor.plan_debtor_create;

-- step: candidates
-- Users of the configured roles, not linked, with no account yet; a user left half-done by a killed run
-- (a reservation not completed) is always a candidate again.
CREATE TEMP TABLE _u1_candidate ON COMMIT DROP AS
SELECT u.user_id, u.email_address, r.dr_cust_code AS reserved_code
  FROM userdebtor.web_user u
  LEFT JOIN userdebtor.debtor_reservation r ON r.user_id = u.user_id AND r.completed_at IS NULL
 WHERE u.role = ANY(:roles)
   AND u.default_customer_code IS NULL
   AND u.status <> 'Deactivated'
   AND (u.change_seq > :since OR r.user_id IS NOT NULL)
   AND NOT EXISTS (SELECT 1 FROM userdebtor.user_debtor_link l WHERE l.user_id = u.user_id);

-- step: candidate_statistics
-- A temporary table gets no statistics unless asked; without them the joins below are planned for a few dozen rows.
ANALYZE _u1_candidate;

-- step: set_aside_malformed_email
INSERT INTO userdebtor.plan_set_aside (kind, rule, subject, detail, warn)
SELECT 'malformed_email', 'U1', 'user:' || c.user_id,
       'web user ' || c.user_id || ' has a missing or malformed email address, so no ERP debtor was made for it',
       false
  FROM _u1_candidate c
 WHERE c.reserved_code IS NULL AND (c.email_address IS NULL OR c.email_address !~ :email_pattern)
ON CONFLICT DO NOTHING;

-- step: resume_reserved
-- A reservation is never given up: the same user gets the same code, so a rerun cannot make a second debtor.
INSERT INTO userdebtor.plan_debtor_create (user_id, action, dr_cust_code, email_address)
SELECT c.user_id, 'create', c.reserved_code, c.email_address
  FROM _u1_candidate c
 WHERE c.reserved_code IS NOT NULL;

-- step: link_matching_debtor
-- U1/U2: an in-scope debtor without a user, with the same email, is linked instead of a new one made.
INSERT INTO userdebtor.plan_debtor_create (user_id, action, dr_cust_code, email_address)
SELECT c.user_id, 'link', m.dr_cust_code, c.email_address
  FROM _u1_candidate c
 CROSS JOIN LATERAL (
       SELECT min(d.dr_cust_code) AS dr_cust_code
         FROM userdebtor.erp_debtor d
        WHERE lower(d.dr_email) = lower(c.email_address)
          AND d.in_master_scope
          AND d.dr_cust_code NOT IN (:template_code, :cash_code)
          AND NOT EXISTS (SELECT 1 FROM userdebtor.user_debtor_link l WHERE l.dr_cust_code = d.dr_cust_code)
          AND NOT EXISTS (SELECT 1 FROM userdebtor.debtor_reservation r WHERE r.dr_cust_code = d.dr_cust_code)
       ) m
 WHERE c.reserved_code IS NULL AND c.email_address ~ :email_pattern AND m.dr_cust_code IS NOT NULL;

-- step: allocate_new_codes
-- Next numbers above everything ever used: our counter and every code the ERP holds with the prefix.
INSERT INTO userdebtor.plan_debtor_create (user_id, action, dr_cust_code, email_address)
SELECT c.user_id, 'create',
       :prefix || lpad((base.n + row_number() OVER (ORDER BY c.user_id))::text, :width, '0'),
       c.email_address
  FROM _u1_candidate c
 CROSS JOIN (
       SELECT greatest(
                coalesce((SELECT last_number FROM userdebtor.code_counter WHERE prefix = :prefix), 0),
                coalesce((SELECT max(substr(d.dr_cust_code, length(:prefix) + 1)::numeric)
                            FROM userdebtor.erp_debtor d
                           WHERE left(d.dr_cust_code, length(:prefix)) = :prefix
                             AND substr(d.dr_cust_code, length(:prefix) + 1) ~ '^[0-9]{1,18}$'), 0),
                coalesce((SELECT max(substr(r.dr_cust_code, length(:prefix) + 1)::numeric)
                            FROM userdebtor.debtor_reservation r
                           WHERE left(r.dr_cust_code, length(:prefix)) = :prefix
                             AND substr(r.dr_cust_code, length(:prefix) + 1) ~ '^[0-9]{1,18}$'), 0)
              )::bigint AS n
       ) base
 WHERE c.reserved_code IS NULL
   AND c.email_address ~ :email_pattern
   AND NOT EXISTS (SELECT 1 FROM userdebtor.plan_debtor_create p WHERE p.user_id = c.user_id);

-- step: set_aside_code_space_exhausted
-- lpad would cut a number wider than the setting: such a code is never used.
INSERT INTO userdebtor.plan_set_aside (kind, rule, subject, detail, warn)
SELECT 'code_space_exhausted', 'U1', 'user:' || p.user_id,
       'no debtor code is left for prefix ' || :prefix || ' at width ' || :width
       || '; widen user_debtor.account_number_width', true
  FROM userdebtor.plan_debtor_create p
  JOIN _u1_candidate c ON c.user_id = p.user_id AND c.reserved_code IS NULL
 WHERE p.action = 'create'
   AND length(p.dr_cust_code) > length(:prefix) + :width
ON CONFLICT DO NOTHING;

-- step: drop_exhausted
DELETE FROM userdebtor.plan_debtor_create p
 WHERE p.action = 'create' AND length(p.dr_cust_code) > length(:prefix) + :width;

-- step: reserve_codes
-- Kept before any ERP write (not in a dry run), so a killed run resumes with the same codes.
INSERT INTO userdebtor.debtor_reservation (user_id, dr_cust_code, run_id)
SELECT p.user_id, p.dr_cust_code, :run_id
  FROM userdebtor.plan_debtor_create p
 WHERE p.action = 'create' AND NOT :dry_run
ON CONFLICT (user_id) DO NOTHING;

-- step: advance_counter
INSERT INTO userdebtor.code_counter AS k (prefix, last_number)
SELECT :prefix, max(substr(p.dr_cust_code, length(:prefix) + 1)::bigint)
  FROM userdebtor.plan_debtor_create p
 WHERE p.action = 'create'
   AND left(p.dr_cust_code, length(:prefix)) = :prefix
   AND substr(p.dr_cust_code, length(:prefix) + 1) ~ '^[0-9]{1,18}$'
   AND NOT :dry_run
HAVING count(*) > 0
ON CONFLICT (prefix) DO UPDATE SET last_number = greatest(k.last_number, excluded.last_number);
