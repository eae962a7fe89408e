-- Rewrites one debtor code, :old to :new, everywhere the web and the pipeline hold it (C2); merges keep both sides (C3).

-- step: customer_merged
-- On a merge the surviving account's row stays and the old one goes; otherwise the row is renamed.
DELETE FROM web.customer WHERE customer_code = :old AND :merge

-- step: customer_renamed
UPDATE web.customer SET customer_code = :new, updated_at = now() WHERE customer_code = :old AND NOT :merge

-- step: user_default_account
-- Stamped as every web write is (U4), so that the website and the next staging see the change.
UPDATE web.app_user SET default_customer_code = :new, updated_at = now() WHERE default_customer_code = :old

-- step: user_accounts_added
INSERT INTO web.user_customer (user_id, customer_code, initial_role, hide_in_account_select)
SELECT user_id, :new, initial_role, hide_in_account_select FROM web.user_customer WHERE customer_code = :old
ON CONFLICT (user_id, customer_code) DO NOTHING

-- step: user_accounts_removed
DELETE FROM web.user_customer WHERE customer_code = :old

-- step: favourites_added
INSERT INTO web.favourite (user_id, customer_code, product_code)
SELECT user_id, :new, product_code FROM web.favourite WHERE customer_code = :old
ON CONFLICT (user_id, customer_code, product_code) DO NOTHING

-- step: favourites_removed
DELETE FROM web.favourite WHERE customer_code = :old

-- step: order_history
UPDATE web.order_history SET customer_code = :new, updated_at = now() WHERE customer_code = :old

-- step: registration_requests
UPDATE web.registration_request SET account_code = :new WHERE account_code = :old AND status = 'pending'

-- step: link_merged_away
-- A debtor holds one link: when both codes had one, the surviving account keeps its own.
DELETE FROM userdebtor.user_debtor_link
 WHERE dr_cust_code = :old AND EXISTS (SELECT 1 FROM userdebtor.user_debtor_link WHERE dr_cust_code = :new)

-- step: link_renamed
UPDATE userdebtor.user_debtor_link
   SET dr_cust_code = :new, updated_at = now(), change_seq = nextval('userdebtor.change_seq')
 WHERE dr_cust_code = :old

-- step: contact_links_added
INSERT INTO userdebtor.contact_link (user_id, customer_code, email, created_at)
SELECT user_id, :new, email, created_at FROM userdebtor.contact_link WHERE customer_code = :old
ON CONFLICT (user_id, customer_code) DO NOTHING

-- step: contact_links_removed
DELETE FROM userdebtor.contact_link WHERE customer_code = :old

-- step: reservations
UPDATE userdebtor.debtor_reservation SET dr_cust_code = :new
 WHERE dr_cust_code = :old AND NOT EXISTS (SELECT 1 FROM userdebtor.debtor_reservation WHERE dr_cust_code = :new)

-- step: conflicts
UPDATE userdebtor.conflict SET dr_cust_code = :new WHERE dr_cust_code = :old

-- step: staged_users
-- The staged web users were read before this run's conversions only if a previous run staged them.
UPDATE userdebtor.web_user SET default_customer_code = :new, change_seq = nextval('userdebtor.change_seq')
 WHERE default_customer_code = :old

-- step: staged_customers
DELETE FROM userdebtor.web_customer WHERE customer_code = :old
