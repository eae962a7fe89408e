-- Resolves the M1 problems whose contact is fixed: no longer set aside by this run's plan (defs/problems.py records
-- the ones still set aside).
UPDATE userdebtor.problem p
   SET resolved_at = now()
 WHERE p.kind = ANY(:kinds)
   AND p.resolved_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM userdebtor.plan_contact_set_aside s WHERE s.kind = p.kind AND s.subject = p.subject)
