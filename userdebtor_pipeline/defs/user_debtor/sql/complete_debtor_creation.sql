-- Completes U1 on the web once the ERP has the debtors: the user's account, its links, and the reservations.

-- step: confirmed
-- Ours: the code is in the ERP (re-staged just now) with the planned debtor's email. A code that the ERP gave
-- to someone else meanwhile is a collision: its reservation goes and the next run allocates a new code.
CREATE TEMP TABLE _debtor_confirmed ON COMMIT DROP AS
SELECT n.user_id, n.dr_cust_code,
       d.dr_cust_code IS NOT NULL AND userdebtor.email_key(d.dr_email) IS NOT DISTINCT FROM userdebtor.email_key(n.dr_email) AS ours,
       d.dr_cust_code IS NOT NULL AS in_erp
  FROM _new_debtor n
  LEFT JOIN userdebtor.erp_debtor d ON d.dr_cust_code = n.dr_cust_code;

-- step: collisions_reported
INSERT INTO userdebtor.plan_set_aside (kind, rule, subject, detail, warn)
SELECT 'code_collision', 'U1', 'user:' || c.user_id,
       'debtor code ' || c.dr_cust_code || ' was taken in the ERP by another account; web user ' || c.user_id
       || ' gets a new code on the next run', true
  FROM _debtor_confirmed c WHERE c.in_erp AND NOT c.ours
ON CONFLICT DO NOTHING;

-- step: collisions_released
DELETE FROM userdebtor.debtor_reservation r USING _debtor_confirmed c
 WHERE r.user_id = c.user_id AND c.in_erp AND NOT c.ours;

-- step: new_links
CREATE TEMP TABLE _new_link ON COMMIT DROP AS
SELECT c.user_id, c.dr_cust_code, 'debtor_created'::text AS origin FROM _debtor_confirmed c WHERE c.ours
UNION ALL
SELECT p.user_id, p.dr_cust_code, 'matched' FROM userdebtor.plan_debtor_create p WHERE p.action = 'link';

-- step: reservations_completed
UPDATE userdebtor.debtor_reservation r
   SET erp_written_at = coalesce(r.erp_written_at, now()), completed_at = now()
  FROM _debtor_confirmed c
 WHERE r.user_id = c.user_id AND c.ours AND r.completed_at IS NULL
