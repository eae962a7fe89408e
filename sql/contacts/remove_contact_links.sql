-- Applies M2: drops the planned user_customer rows no contact needs (unless another rule does) and forgets their contact_link.

-- step: user_accounts_removed
DELETE FROM web.user_customer uc
 USING userdebtor.plan_contact_link_remove p
 WHERE uc.user_id = p.user_id
   AND uc.customer_code = p.customer_code
   AND NOT p.keep_user_customer

-- step: contact_links_forgotten
DELETE FROM userdebtor.contact_link cl
 USING userdebtor.plan_contact_link_remove p
 WHERE cl.user_id = p.user_id
   AND cl.customer_code = p.customer_code
