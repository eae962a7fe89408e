-- Says whether a debtor code is held anywhere on the web or in the pipeline's links (C3/C4).
SELECT EXISTS (SELECT 1 FROM web.customer WHERE customer_code = :code)
    OR EXISTS (SELECT 1 FROM web.app_user WHERE default_customer_code = :code)
    OR EXISTS (SELECT 1 FROM web.user_customer WHERE customer_code = :code)
    OR EXISTS (SELECT 1 FROM web.favourite WHERE customer_code = :code)
    OR EXISTS (SELECT 1 FROM web.order_history WHERE customer_code = :code)
    OR EXISTS (SELECT 1 FROM userdebtor.user_debtor_link WHERE dr_cust_code = :code)
    OR EXISTS (SELECT 1 FROM userdebtor.contact_link WHERE customer_code = :code)
