-- Applies U6: a deleted debtor's link ends (its user deactivated unless warn_only); a debtor out of scope suspends it.

-- step: users_deactivated
UPDATE web.app_user u SET status = 'Deactivated', updated_at = now()
  FROM userdebtor.plan_link_exit x
 WHERE u.user_id = x.user_id AND x.action = 'deleted' AND x.deactivate_user AND u.status <> 'Deactivated';

-- step: links_ended
UPDATE userdebtor.user_debtor_link l
   SET state = CASE x.action WHEN 'deleted' THEN 'deactivated' WHEN 'out_of_scope' THEN 'suspended' ELSE 'active' END,
       state_reason = CASE x.action WHEN 'deleted' THEN 'debtor deleted in the ERP'
                                    WHEN 'out_of_scope' THEN 'debtor no longer matches the customer master filter'
                                    ELSE NULL END,
       updated_at = now(), change_seq = nextval('userdebtor.change_seq')
  FROM userdebtor.plan_link_exit x
 WHERE l.link_id = x.link_id
