-- Plans U1: in-scope web users with no linked debtor get a new ERP debtor (with a reserved code) or a matching one.

-- step: reset
DELETE FROM userdebtor.plan_set_aside WHERE rule = 'U1';

-- step: reset_proofs
DELETE FROM userdebtor.plan_link_proof WHERE rule = 'U1';

-- step: reset_plan
TRUNCATE userdebtor.plan_debtor_create;

-- step: candidates
-- Users of the configured roles, not linked, with no account yet; a user left half-done by a killed run
-- (a reservation not completed) is always a candidate again, and so is a user waiting for proof of its address
-- (A1), changed or not: the debtor it matched may have been linked or converted meanwhile (A3).
CREATE TEMP TABLE _u1_candidate ON COMMIT DROP AS
SELECT u.user_id, u.email_address, r.dr_cust_code AS reserved_code,
       userdebtor.address_proven(u.user_id, u.email_verified) AS proven
  FROM userdebtor.web_user u
  LEFT JOIN userdebtor.debtor_reservation r ON r.user_id = u.user_id AND r.completed_at IS NULL
 WHERE u.role = ANY(:roles)
   AND u.default_customer_code IS NULL
   AND u.status <> 'Deactivated'
   AND (u.change_seq > :since OR r.user_id IS NOT NULL
        OR u.user_id IN (SELECT substr(p.subject, length('user:') + 1)::bigint FROM userdebtor.problem p
                          WHERE p.rule = 'U1' AND p.kind = 'email_unproven' AND p.resolved_at IS NULL))
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
 WHERE c.reserved_code IS NULL
   AND (c.email_address IS NULL OR userdebtor.email_key(c.email_address) !~ :email_pattern)
ON CONFLICT DO NOTHING;

-- step: resume_reserved
-- A reservation is never given up: the same user gets the same code, so a rerun cannot make a second debtor.
INSERT INTO userdebtor.plan_debtor_create (user_id, action, dr_cust_code, email_address)
SELECT c.user_id, 'create', c.reserved_code, c.email_address
  FROM _u1_candidate c
 WHERE c.reserved_code IS NOT NULL;

-- step: matching_debtor
-- U1/U2: an in-scope debtor without a user, with the same email (A2), is linked instead of a new one made.
CREATE TEMP TABLE _u1_match ON COMMIT DROP AS
SELECT c.user_id, c.email_address, c.proven, m.dr_cust_code
  FROM _u1_candidate c
 CROSS JOIN LATERAL (
       SELECT min(d.dr_cust_code) AS dr_cust_code
         FROM userdebtor.erp_debtor d
        WHERE userdebtor.email_key(d.dr_email) = userdebtor.email_key(c.email_address)
          AND d.in_master_scope
          AND d.dr_cust_code NOT IN (:template_code, :cash_code)
          AND NOT EXISTS (SELECT 1 FROM userdebtor.user_debtor_link l WHERE l.dr_cust_code = d.dr_cust_code)
          AND NOT EXISTS (SELECT 1 FROM userdebtor.debtor_reservation r WHERE r.dr_cust_code = d.dr_cust_code)
       ) m
 WHERE c.reserved_code IS NULL
   AND userdebtor.email_key(c.email_address) ~ :email_pattern
   AND m.dr_cust_code IS NOT NULL;

-- step: link_matching_debtor
INSERT INTO userdebtor.plan_debtor_create (user_id, action, dr_cust_code, email_address)
SELECT m.user_id, 'link', m.dr_cust_code, m.email_address FROM _u1_match m WHERE m.proven;

-- step: wait_for_proof
-- A1: an email match alone gives no access: the user waits (no link, no new debtor) until the address is proven.
INSERT INTO userdebtor.plan_link_proof (rule, user_id, customer_code, email_address)
SELECT 'U1', m.user_id, m.dr_cust_code, m.email_address FROM _u1_match m WHERE NOT m.proven
ON CONFLICT DO NOTHING;

-- step: set_aside_unproven
INSERT INTO userdebtor.plan_set_aside (kind, rule, subject, detail, warn)
SELECT 'email_unproven', 'U1', 'user:' || m.user_id,
       'web user ' || m.user_id || ' has the email of debtor ' || m.dr_cust_code || ' but has not proven the '
       || 'address, so nothing is linked until the account_link_verify link sent to it is followed', false
  FROM _u1_match m
 WHERE NOT m.proven
ON CONFLICT DO NOTHING;

-- step: number_new_codes
-- Next numbers above everything ever used: our counter and every code the ERP holds with the prefix.
CREATE TEMP TABLE _u1_new_number ON COMMIT DROP AS
SELECT c.user_id, c.email_address, base.n + row_number() OVER (ORDER BY c.user_id) AS number
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
              ) AS n
       ) base
 WHERE c.reserved_code IS NULL
   AND userdebtor.email_key(c.email_address) ~ :email_pattern
   AND NOT EXISTS (SELECT 1 FROM _u1_match m WHERE m.user_id = c.user_id);

-- step: allocate_new_codes
-- U1: a number that does not fit account_number_width is never cut to fit (lpad would): it gets no code.
INSERT INTO userdebtor.plan_debtor_create (user_id, action, dr_cust_code, email_address)
SELECT n.user_id, 'create', :prefix || lpad(n.number::text, :width, '0'), n.email_address
  FROM _u1_new_number n
 WHERE length(n.number::text) <= :width;

-- step: set_aside_code_space_exhausted
-- The blocking check code_space_left reads these rows and holds the debtor creation back, naming the prefix.
INSERT INTO userdebtor.plan_set_aside (kind, rule, subject, detail, warn)
SELECT 'code_space_exhausted', 'U1', 'user:' || n.user_id,
       'no debtor code is left for prefix ' || :prefix || ' at width ' || :width || ' (the next number is '
       || n.number || '), so web user ' || n.user_id || ' gets no debtor; widen user_debtor.account_number_width',
       false
  FROM _u1_new_number n
 WHERE length(n.number::text) > :width
ON CONFLICT DO NOTHING;

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
