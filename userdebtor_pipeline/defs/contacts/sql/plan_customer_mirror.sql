-- Plans M3: the web.customer rows of CSS accounts to create or refresh, and the rows to set Inactive.
-- An account is kept when its debtor is in CSS scope or has an active user_debtor_link.

-- step: clear_previous_plan
TRUNCATE userdebtor.plan_customer_mirror

-- step: accounts_to_mirror
-- Incremental: debtors (or their links) changed since the window, plus kept accounts the web lacks and
-- accounts M3 does not keep yet (new to scope, or renamed by a conversion). In a full run: all of them.
INSERT INTO userdebtor.plan_customer_mirror (customer_code, action, reason)
SELECT d.dr_cust_code,
       CASE WHEN wc.customer_code IS NULL THEN 'create' ELSE 'refresh' END,
       CASE WHEN wc.customer_code IS NULL THEN 'not on the web yet'
            WHEN k.customer_code IS NULL THEN 'newly kept'
            WHEN CAST(:full AS boolean) THEN 'full reconcile'
            ELSE 'changed in the ERP' END
  FROM userdebtor.erp_debtor d
  LEFT JOIN userdebtor.user_debtor_link l ON l.dr_cust_code = d.dr_cust_code AND l.state = 'active'
  LEFT JOIN web.customer wc ON wc.customer_code = d.dr_cust_code
  LEFT JOIN userdebtor.css_customer k ON k.customer_code = d.dr_cust_code
 WHERE (d.in_css_scope OR l.link_id IS NOT NULL)
   AND (CAST(:full AS boolean)
        OR d.change_seq > :since
        OR l.change_seq > :since
        OR wc.customer_code IS NULL
        OR k.customer_code IS NULL)

-- step: accounts_to_retire
-- Kept accounts whose debtor left CSS scope without an active link, and any ERP account gone from the ERP.
INSERT INTO userdebtor.plan_customer_mirror (customer_code, action, reason)
SELECT wc.customer_code, 'inactivate',
       CASE WHEN d.dr_cust_code IS NULL THEN 'gone from the ERP' ELSE 'left CSS scope' END
  FROM web.customer wc
  LEFT JOIN userdebtor.erp_debtor d ON d.dr_cust_code = wc.customer_code
 WHERE wc.is_debtor_customer
   AND wc.status <> 'Inactive'
   AND (d.dr_cust_code IS NULL
        OR (NOT d.in_css_scope
            AND EXISTS (SELECT 1 FROM userdebtor.css_customer k WHERE k.customer_code = wc.customer_code)
            AND NOT EXISTS (SELECT 1 FROM userdebtor.user_debtor_link l
                             WHERE l.dr_cust_code = d.dr_cust_code AND l.state = 'active')))
