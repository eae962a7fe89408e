-- Queries the UI and the dry run show: counts and samples of the contact-link and customer-mirror plans.

-- step: contact_plan_counts
SELECT (SELECT count(*) FROM userdebtor.plan_contact_user_create) AS users_to_create,
       (SELECT count(*) FROM userdebtor.plan_contact_user_create WHERE pending_approval) AS users_pending_approval,
       (SELECT count(*) FROM userdebtor.plan_contact_link_add) AS links_to_add,
       (SELECT count(*) FROM userdebtor.plan_contact_link_remove) AS links_to_remove,
       (SELECT count(*) FROM userdebtor.plan_contact_link_remove WHERE keep_user_customer) AS links_kept_for_other_rules,
       (SELECT count(*) FROM userdebtor.plan_contact_set_aside) AS contacts_set_aside

-- step: users_to_create
SELECT email_address, name, default_customer_code, pending_approval, contact_id, batch
  FROM userdebtor.plan_contact_user_create
 ORDER BY email_key

-- step: links_to_add
SELECT email_key, customer_code, user_id
  FROM userdebtor.plan_contact_link_add
 ORDER BY email_key, customer_code

-- step: links_to_remove
SELECT user_id, customer_code, email, reason, keep_user_customer
  FROM userdebtor.plan_contact_link_remove
 ORDER BY user_id, customer_code

-- step: contacts_set_aside
SELECT kind, subject, detail
  FROM userdebtor.plan_contact_set_aside
 ORDER BY subject
