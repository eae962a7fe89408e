-- Marks the planned M2 removals whose user_customer row another rule still needs: only their contact_link row goes.
-- Run by the plan and again by the load, so a link that a load of this run made needed (U2) is not taken away.
-- The user's default account is no reason to keep it (M2): the default moves to another of its accounts.
UPDATE userdebtor.plan_contact_link_remove p
   SET keep_user_customer =
           EXISTS (SELECT 1 FROM userdebtor.user_debtor_link l
                    WHERE l.user_id = p.user_id AND l.dr_cust_code = p.customer_code AND l.state = 'active')
