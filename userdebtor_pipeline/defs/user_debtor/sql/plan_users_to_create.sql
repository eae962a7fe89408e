-- Plans U2/U3: in-scope ERP debtors with no linked user get a web user, or are linked to the user with their email.

-- step: reset
DELETE FROM userdebtor.plan_set_aside WHERE rule = 'U2';

-- step: reset_proofs
DELETE FROM userdebtor.plan_link_proof WHERE rule = 'U2';

-- step: reset_plan
TRUNCATE userdebtor.plan_user_create;

-- step: candidates
-- The template and the cash account are never given a user; codes U1 reserved or links are U1's. A debtor
-- that did not change is a candidate again when a web user with its email did (A1: the address was proven).
-- Debtors set aside because their email was taken are looked at again every run (A3), changed or not: what
-- blocked them (another debtor's or user's email, a link) may have changed instead. They are few, found by the
-- problem record.
CREATE TEMP TABLE _u2_candidate ON COMMIT DROP AS
SELECT d.dr_cust_code, d.dr_email,
       rank() OVER (PARTITION BY userdebtor.email_key(d.dr_email) ORDER BY d.dr_cust_code) AS email_rank,
       first_value(d.dr_cust_code) OVER (PARTITION BY userdebtor.email_key(d.dr_email) ORDER BY d.dr_cust_code) AS first_code
  FROM userdebtor.erp_debtor d
 WHERE d.in_master_scope
   AND d.dr_cust_code IN (SELECT c.dr_cust_code FROM userdebtor.erp_debtor c WHERE c.change_seq > :since
                           UNION
                          SELECT e.dr_cust_code
                            FROM userdebtor.web_user u
                            JOIN userdebtor.erp_debtor e
                              ON userdebtor.email_key(e.dr_email) = userdebtor.email_key(u.email_address)
                           -- a full run (since 0) takes every debtor by the branch above: not matched again here
                           WHERE u.change_seq > :since AND CAST(:since AS bigint) > 0
                           UNION
                          SELECT substr(p.subject, length('debtor:') + 1) FROM userdebtor.problem p
                           WHERE p.rule = 'U2' AND p.kind = 'email_taken' AND p.resolved_at IS NULL)
   AND d.dr_cust_code NOT IN (:template_code, :cash_code)
   AND NOT EXISTS (SELECT 1 FROM userdebtor.user_debtor_link l WHERE l.dr_cust_code = d.dr_cust_code)
   AND NOT EXISTS (SELECT 1 FROM userdebtor.debtor_reservation r WHERE r.dr_cust_code = d.dr_cust_code)
   AND NOT EXISTS (SELECT 1 FROM userdebtor.plan_debtor_create p WHERE p.dr_cust_code = d.dr_cust_code);

-- step: candidate_statistics
-- A temporary table gets no statistics unless asked: the planner would take it for a few dozen rows and scan it
-- once per web user (80 s at 20,000 debtors in a first load, days at a million).
ANALYZE _u2_candidate;

-- step: set_aside_without_email
INSERT INTO userdebtor.plan_set_aside (kind, rule, subject, detail, warn)
SELECT 'debtor_without_email', 'U2', 'debtor:' || c.dr_cust_code,
       'debtor ' || c.dr_cust_code || ' has no email address, so no web user was made for it', false
  FROM _u2_candidate c
 WHERE c.dr_email IS NULL OR btrim(c.dr_email) = ''
ON CONFLICT DO NOTHING;

-- step: set_aside_malformed_email
INSERT INTO userdebtor.plan_set_aside (kind, rule, subject, detail, warn)
SELECT 'malformed_email', 'U2', 'debtor:' || c.dr_cust_code,
       'debtor ' || c.dr_cust_code || ' has a malformed email address, so no web user was made for it', false
  FROM _u2_candidate c
 WHERE btrim(c.dr_email) <> '' AND userdebtor.email_key(c.dr_email) !~ :email_pattern
ON CONFLICT DO NOTHING;

-- step: drop_unusable
DELETE FROM _u2_candidate WHERE dr_email IS NULL OR userdebtor.email_key(dr_email) !~ :email_pattern;

-- step: warn_shared_email
-- One email is one login: the lowest code gets it, the others are reported. It is the same event as the one
-- below seen a run earlier, so it has the same kind and subject: the administrator is warned once.
INSERT INTO userdebtor.plan_set_aside (kind, rule, subject, detail, warn)
SELECT 'email_taken', 'U2', 'debtor:' || c.dr_cust_code,
       'debtor ' || c.dr_cust_code || ' shares its email address with debtor ' || c.first_code
       || ', which gets the web login; give each account its own email or link them by hand', true
  FROM _u2_candidate c
 WHERE c.email_rank > 1
ON CONFLICT DO NOTHING;

-- step: warn_email_of_linked_user
-- U2: the email's user already acts for another linked debtor: nothing changes, a person decides.
INSERT INTO userdebtor.plan_set_aside (kind, rule, subject, detail, warn)
SELECT 'email_taken', 'U2', 'debtor:' || c.dr_cust_code,
       'debtor ' || c.dr_cust_code || ' has the email of web user ' || u.user_id
       || ', who is already linked to debtor ' || coalesce(l.dr_cust_code, p.dr_cust_code) || '; nothing was changed',
       true
  FROM _u2_candidate c
  JOIN userdebtor.web_user u ON userdebtor.email_key(u.email_address) = userdebtor.email_key(c.dr_email)
  LEFT JOIN userdebtor.user_debtor_link l ON l.user_id = u.user_id
  LEFT JOIN userdebtor.plan_debtor_create p ON p.user_id = u.user_id
 WHERE c.email_rank = 1 AND (l.user_id IS NOT NULL OR p.user_id IS NOT NULL)
ON CONFLICT DO NOTHING;

-- step: existing_user
-- U2: the email's user exists and has no linked debtor: linked instead of a second login made (A2).
CREATE TEMP TABLE _u2_existing ON COMMIT DROP AS
SELECT c.dr_cust_code, u.user_id, u.email_address, userdebtor.address_proven(u.user_id, u.email_verified) AS proven
  FROM _u2_candidate c
  JOIN userdebtor.web_user u ON userdebtor.email_key(u.email_address) = userdebtor.email_key(c.dr_email)
 WHERE c.email_rank = 1
   AND NOT EXISTS (SELECT 1 FROM userdebtor.user_debtor_link l WHERE l.user_id = u.user_id)
   AND NOT EXISTS (SELECT 1 FROM userdebtor.plan_debtor_create p WHERE p.user_id = u.user_id);

-- step: link_existing_user
INSERT INTO userdebtor.plan_user_create (dr_cust_code, action, user_id, email_address, pending_approval)
SELECT e.dr_cust_code, 'link', e.user_id, e.email_address, false FROM _u2_existing e WHERE e.proven;

-- step: wait_for_proof
-- A1: an email match alone gives no access: the debtor waits until the user proves the address.
INSERT INTO userdebtor.plan_link_proof (rule, user_id, customer_code, email_address)
SELECT 'U2', e.user_id, e.dr_cust_code, e.email_address FROM _u2_existing e WHERE NOT e.proven
ON CONFLICT DO NOTHING;

-- step: set_aside_unproven
INSERT INTO userdebtor.plan_set_aside (kind, rule, subject, detail, warn)
SELECT 'email_unproven', 'U2', 'debtor:' || e.dr_cust_code,
       'debtor ' || e.dr_cust_code || ' has the email of web user ' || e.user_id || ', who has not proven the '
       || 'address, so nothing is linked until the account_link_verify link sent to it is followed', false
  FROM _u2_existing e
 WHERE NOT e.proven
ON CONFLICT DO NOTHING;

-- step: create_user
-- U3: an account whose web row asks for approval gets a user that waits for it.
INSERT INTO userdebtor.plan_user_create (dr_cust_code, action, user_id, email_address, pending_approval)
SELECT c.dr_cust_code, 'create', NULL, c.dr_email, coalesce(wc.auto_part_registration, false)
  FROM _u2_candidate c
  LEFT JOIN userdebtor.web_customer wc ON wc.customer_code = c.dr_cust_code
 WHERE c.email_rank = 1
   AND NOT EXISTS (SELECT 1 FROM userdebtor.web_user u WHERE userdebtor.email_key(u.email_address) = userdebtor.email_key(c.dr_email));
