-- Plans U6: linked debtors gone from the ERP (not converted: C2 renamed their links) or out of the filter's scope.

-- step: reset
DELETE FROM userdebtor.plan_set_aside WHERE rule = 'U6';

-- step: reset_plan
TRUNCATE userdebtor.plan_link_exit;

-- step: deleted
-- Links whose debtor is gone: of the debtors staging found deleted since the last run (erp_debtor_gone) and the
-- links changed since; of every link in a full run (since 0).
INSERT INTO userdebtor.plan_link_exit (link_id, user_id, dr_cust_code, action, deactivate_user)
SELECT l.link_id, l.user_id, l.dr_cust_code, 'deleted', :on_erp_delete = 'deactivate'
  FROM (SELECT l.link_id FROM userdebtor.user_debtor_link l WHERE CAST(:since AS bigint) = 0
        UNION ALL
        (SELECT l.link_id
           FROM userdebtor.erp_debtor_gone g JOIN userdebtor.user_debtor_link l ON l.dr_cust_code = g.dr_cust_code
          WHERE CAST(:since AS bigint) > 0 AND g.change_seq > :since
         UNION
         SELECT l.link_id FROM userdebtor.user_debtor_link l
          WHERE CAST(:since AS bigint) > 0 AND l.change_seq > :since)) changed
  JOIN userdebtor.user_debtor_link l ON l.link_id = changed.link_id
 WHERE l.state IN ('active', 'suspended')
   AND NOT EXISTS (SELECT 1 FROM userdebtor.erp_debtor d WHERE d.dr_cust_code = l.dr_cust_code);

-- step: out_of_scope
INSERT INTO userdebtor.plan_link_exit (link_id, user_id, dr_cust_code, action, deactivate_user)
-- The debtor or the link changed since the last run: two branches, each through its change_seq index (one OR across
-- the two tables would join every pair, 0.8 s a run at a million links). A full run (since 0) needs the first only.
SELECT l.link_id, l.user_id, l.dr_cust_code, 'out_of_scope', false
  FROM userdebtor.erp_debtor d
  JOIN userdebtor.user_debtor_link l ON l.dr_cust_code = d.dr_cust_code
 WHERE d.change_seq > :since AND l.state = 'active' AND NOT d.in_master_scope
UNION
SELECT l.link_id, l.user_id, l.dr_cust_code, 'out_of_scope', false
  FROM userdebtor.user_debtor_link l
  JOIN userdebtor.erp_debtor d ON d.dr_cust_code = l.dr_cust_code
 WHERE l.change_seq > :since AND CAST(:since AS bigint) > 0 AND l.state = 'active' AND NOT d.in_master_scope;

-- step: back_in_scope
INSERT INTO userdebtor.plan_link_exit (link_id, user_id, dr_cust_code, action, deactivate_user)
SELECT l.link_id, l.user_id, l.dr_cust_code, 'back_in_scope', false
  FROM userdebtor.user_debtor_link l
  JOIN userdebtor.erp_debtor d ON d.dr_cust_code = l.dr_cust_code
 WHERE l.state = 'suspended' AND d.in_master_scope;

-- step: warn
INSERT INTO userdebtor.plan_set_aside (kind, rule, subject, detail, warn)
SELECT CASE x.action WHEN 'deleted' THEN 'debtor_deleted' ELSE 'debtor_out_of_scope' END,
       'U6', 'debtor:' || x.dr_cust_code,
       CASE x.action
         WHEN 'deleted' THEN 'linked debtor ' || x.dr_cust_code || ' was deleted in the ERP; web user ' || x.user_id
              || CASE WHEN x.deactivate_user THEN ' is deactivated' ELSE ' is left as it is (on_erp_delete: warn_only)' END
         ELSE 'linked debtor ' || x.dr_cust_code || ' no longer matches the customer master filter; its link to web user '
              || x.user_id || ' is suspended until it matches again'
       END,
       true
  FROM userdebtor.plan_link_exit x
 WHERE x.action IN ('deleted', 'out_of_scope')
ON CONFLICT DO NOTHING;
