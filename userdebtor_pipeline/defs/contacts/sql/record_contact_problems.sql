-- Keeps the M1 problems in step with this run's set-aside contacts: seen again, or resolved once the contact is fixed.

-- step: problems_seen_again
UPDATE userdebtor.problem p
   SET detail = s.detail, last_run_id = :run_id, last_seen_at = now(), resolved_at = NULL
  FROM userdebtor.plan_contact_set_aside s
 WHERE p.kind = s.kind AND p.subject = s.subject

-- step: problems_resolved
UPDATE userdebtor.problem p
   SET resolved_at = now()
 WHERE p.kind = ANY(:kinds)
   AND p.resolved_at IS NULL
   AND NOT EXISTS (SELECT 1 FROM userdebtor.plan_contact_set_aside s WHERE s.kind = p.kind AND s.subject = p.subject)
