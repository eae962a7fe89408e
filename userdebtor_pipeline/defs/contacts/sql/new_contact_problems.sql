-- Lists the set-aside contacts of this plan that are not yet open problems, for record_problems (cost follows what is new).
SELECT s.kind, s.rule, s.subject, s.detail
  FROM userdebtor.plan_contact_set_aside s
 WHERE NOT EXISTS (SELECT 1 FROM userdebtor.problem p
                    WHERE p.kind = s.kind AND p.subject = s.subject AND p.resolved_at IS NULL)
 ORDER BY s.subject
