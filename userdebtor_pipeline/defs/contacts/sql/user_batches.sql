-- Lists the creation batches of the M1 plan's new users, in order.
SELECT DISTINCT batch FROM userdebtor.plan_contact_user_create ORDER BY batch
