-- Marks the planned M2 removals whose user_customer row another rule still needs: only their contact_link row goes.
-- Run by the plan and again by the load, so a link that a load of this run made needed (U2) is not taken away.
UPDATE userdebtor.plan_contact_link_remove p
   SET keep_user_customer =
           EXISTS (SELECT 1 FROM userdebtor.user_debtor_link l
                    WHERE l.user_id = p.user_id AND l.dr_cust_code = p.customer_code AND l.state = 'active')
        OR EXISTS (SELECT 1 FROM web.app_user u
                    WHERE u.user_id = p.user_id AND u.default_customer_code = p.customer_code)
