-- M1 after M2: a user that M1 made and M2 deactivated, given an account again by a contact, is Active again with a default account.
WITH back AS (
    UPDATE web.app_user u
       SET status = 'Active',
           default_customer_code = coalesce(u.default_customer_code,
                                            (SELECT min(uc.customer_code) FROM web.user_customer uc
                                              WHERE uc.user_id = u.user_id)),
           updated_at = now()
      FROM userdebtor.made_user m
     WHERE m.user_id = u.user_id
       AND m.deactivated_at IS NOT NULL
       AND u.status = 'Deactivated'
       AND EXISTS (SELECT 1 FROM web.user_customer uc WHERE uc.user_id = u.user_id)
    RETURNING u.user_id
)
UPDATE userdebtor.made_user m SET deactivated_at = NULL FROM back WHERE back.user_id = m.user_id
