-- Plans M3: the web.customer rows of CSS accounts to create or refresh, and the rows to set Inactive.
-- An account is kept when its debtor is in CSS scope or has an active user_debtor_link.

-- step: clear_previous_plan
TRUNCATE userdebtor.plan_customer_mirror

-- step: accounts_to_mirror
-- Kept accounts to create or refresh. In a changed-since run, those whose debtor or link changed since the
-- window (new to scope, renamed, linked) and those whose web row was deleted since; every kept account in a
-- full run, where one the web lacks or M3 does not keep yet is found however it came to be.
INSERT INTO userdebtor.plan_customer_mirror (customer_code, action, reason)
SELECT d.dr_cust_code,
       CASE WHEN wc.customer_code IS NULL THEN 'create' ELSE 'refresh' END,
       CASE WHEN wc.customer_code IS NULL THEN 'not on the web yet'
            WHEN k.customer_code IS NULL THEN 'newly kept'
            WHEN CAST(:full AS boolean) THEN 'full reconcile'
            ELSE 'changed in the ERP' END
  FROM (SELECT d.dr_cust_code, d.in_css_scope FROM userdebtor.erp_debtor d WHERE CAST(:full AS boolean)
        UNION ALL
        (SELECT d.dr_cust_code, d.in_css_scope FROM userdebtor.erp_debtor d
          WHERE NOT CAST(:full AS boolean) AND d.change_seq > :since
         UNION
         SELECT d.dr_cust_code, d.in_css_scope
           FROM userdebtor.user_debtor_link l JOIN userdebtor.erp_debtor d ON d.dr_cust_code = l.dr_cust_code
          WHERE NOT CAST(:full AS boolean) AND l.change_seq > :since
         UNION
         SELECT d.dr_cust_code, d.in_css_scope
           FROM userdebtor.web_customer_gone g JOIN userdebtor.erp_debtor d ON d.dr_cust_code = g.customer_code
          WHERE NOT CAST(:full AS boolean) AND g.change_seq > :since)) d
  LEFT JOIN web.customer wc ON wc.customer_code = d.dr_cust_code
  LEFT JOIN userdebtor.css_customer k ON k.customer_code = d.dr_cust_code
 WHERE (d.in_css_scope
        OR EXISTS (SELECT 1 FROM userdebtor.user_debtor_link l WHERE l.dr_cust_code = d.dr_cust_code AND l.state = 'active'))
-- In key order, so that the plan's index grows at its end (a full reconcile lists 1.4 million accounts: 5.2 s to 4.4 s).
 ORDER BY d.dr_cust_code

-- step: accounts_to_retire
-- Kept accounts whose debtor left CSS scope without an active link, and any ERP account gone from the ERP: in a
-- changed-since run, of the debtors changed or gone since the window and the accounts whose links changed.
INSERT INTO userdebtor.plan_customer_mirror (customer_code, action, reason)
SELECT wc.customer_code, 'inactivate',
       CASE WHEN d.dr_cust_code IS NULL THEN 'gone from the ERP' ELSE 'left CSS scope' END
  FROM (SELECT wc.customer_code FROM web.customer wc WHERE CAST(:full AS boolean)
        UNION ALL
        (SELECT d.dr_cust_code FROM userdebtor.erp_debtor d WHERE NOT CAST(:full AS boolean) AND d.change_seq > :since
         UNION
         SELECT g.dr_cust_code FROM userdebtor.erp_debtor_gone g
          WHERE NOT CAST(:full AS boolean) AND g.change_seq > :since
         UNION
         SELECT l.dr_cust_code FROM userdebtor.user_debtor_link l
          WHERE NOT CAST(:full AS boolean) AND l.change_seq > :since)) candidate
  JOIN web.customer wc ON wc.customer_code = candidate.customer_code
  LEFT JOIN userdebtor.erp_debtor d ON d.dr_cust_code = wc.customer_code
 WHERE wc.is_debtor_customer
   AND wc.status <> 'Inactive'
   AND (d.dr_cust_code IS NULL
        OR (NOT d.in_css_scope
            AND EXISTS (SELECT 1 FROM userdebtor.css_customer k WHERE k.customer_code = wc.customer_code)
            AND NOT EXISTS (SELECT 1 FROM userdebtor.user_debtor_link l
                             WHERE l.dr_cust_code = d.dr_cust_code AND l.state = 'active')))
