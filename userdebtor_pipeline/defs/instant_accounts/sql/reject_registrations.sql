-- Rejects, in one statement, every pending registration request that this run's plan rejects (I1), with its reason in words.
UPDATE web.registration_request r
   SET status = 'rejected', reason = p.reason, decided_at = now()
  FROM userdebtor.plan_registration p
 WHERE p.request_id = r.request_id
   AND p.run_id = :run_id
   AND p.decision = 'reject'
   AND r.status = 'pending';
