-- Applies the rest of the M3 plan: sets retired accounts Inactive (never deleted) and updates which accounts M3 keeps.

-- step: customers_inactivated
UPDATE web.customer wc
   SET status = 'Inactive', updated_at = now()
  FROM userdebtor.plan_customer_mirror p
 WHERE p.action = 'inactivate'
   AND wc.customer_code = p.customer_code
   AND wc.status <> 'Inactive'

-- step: accounts_no_longer_kept
DELETE FROM userdebtor.css_customer k
 USING userdebtor.plan_customer_mirror p
 WHERE p.action = 'inactivate' AND k.customer_code = p.customer_code

-- step: accounts_kept
-- Those kept already are left out by one anti-join, not offered one by one to ON CONFLICT (a full reconcile lists
-- every kept account: 1.4 million at a million debtors, 2.4 s).
INSERT INTO userdebtor.css_customer (customer_code)
SELECT p.customer_code FROM userdebtor.plan_customer_mirror p
 WHERE p.action IN ('create', 'refresh')
   AND NOT EXISTS (SELECT 1 FROM userdebtor.css_customer k WHERE k.customer_code = p.customer_code)
ON CONFLICT (customer_code) DO NOTHING

-- step: accounts_gone_from_web
-- A kept code whose web row is gone (renamed by a conversion, C2, or deleted by the website) is no longer M3's to
-- keep. A changed-since run looks at the codes whose mirror row went since the run's window (staging records them
-- in web_customer_gone), not at every kept code; the full reconcile looks at them all.
DELETE FROM userdebtor.css_customer k
 WHERE (CAST(:full AS boolean)
        OR k.customer_code IN (SELECT g.customer_code FROM userdebtor.web_customer_gone g WHERE g.change_seq > :since))
   AND NOT EXISTS (SELECT 1 FROM web.customer wc WHERE wc.customer_code = k.customer_code)
