-- Applies M2: drops the planned user_customer rows no contact needs (unless another rule does), moves defaults off them, deactivates M1's users left with none, forgets their contact_link.

-- step: user_accounts_removed
DELETE FROM web.user_customer uc
 USING userdebtor.plan_contact_link_remove p
 WHERE uc.user_id = p.user_id
   AND uc.customer_code = p.customer_code
   AND NOT p.keep_user_customer

-- step: defaults_moved
-- M2: a default account the user lost moves to the lowest account it is still linked to, or becomes null.
UPDATE web.app_user u
   SET default_customer_code = (SELECT min(uc.customer_code) FROM web.user_customer uc WHERE uc.user_id = u.user_id),
       updated_at = now()
  FROM userdebtor.plan_contact_link_remove p
 WHERE p.user_id = u.user_id
   AND p.customer_code = u.default_customer_code
   AND NOT p.keep_user_customer

-- step: users_left_without_account
-- M2: a user that M1 made and that no contact gives an account any more is Deactivated (warned about by the load).
CREATE TEMP TABLE _contact_user_deactivated ON COMMIT DROP AS
WITH deactivated AS (
    UPDATE web.app_user u
       SET status = 'Deactivated', updated_at = now()
      FROM userdebtor.made_user m
     WHERE m.user_id = u.user_id
       AND m.rule = 'M1'
       AND u.status <> 'Deactivated'
       AND u.user_id IN (SELECT p.user_id FROM userdebtor.plan_contact_link_remove p WHERE NOT p.keep_user_customer)
       AND NOT EXISTS (SELECT 1 FROM web.user_customer uc WHERE uc.user_id = u.user_id)
    RETURNING u.user_id, u.email_address
)
SELECT * FROM deactivated

-- step: users_deactivated_remembered
UPDATE userdebtor.made_user m SET deactivated_at = now()
  FROM _contact_user_deactivated d WHERE d.user_id = m.user_id

-- step: contact_links_forgotten
DELETE FROM userdebtor.contact_link cl
 USING userdebtor.plan_contact_link_remove p
 WHERE cl.user_id = p.user_id
   AND cl.customer_code = p.customer_code
