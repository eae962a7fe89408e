-- Plans M1 and M2: the web users and user_customer links the ERP's contacts call for, and the links they no longer need.
-- The whole CRM is compared every run: crm_contact_account has no change stamp, so only a full compare sees a
-- contact move between accounts. Everything here is set-based; the temp table lives for the plan's transaction.

-- step: clear_previous_plan
TRUNCATE userdebtor.plan_contact_user_create, userdebtor.plan_contact_link_add,
         userdebtor.plan_contact_link_remove, userdebtor.plan_contact_set_aside

-- step: contact_accounts_wanted
-- Every (email, account) pair M1 asks for: an active contact with a well-formed email acting for a CSS account.
-- The shared cash account is never linked to a person.
CREATE TEMP TABLE contact_account_wanted ON COMMIT DROP AS
SELECT userdebtor.email_key(c.contact_email) AS email_key,
       ca.dr_cust_code               AS customer_code,
       c.contact_id
  FROM userdebtor.erp_contact c
  JOIN userdebtor.erp_contact_account ca ON ca.contact_id = c.contact_id
  JOIN userdebtor.erp_debtor d ON d.dr_cust_code = ca.dr_cust_code
 WHERE c.contact_active
   AND d.in_css_scope
   AND d.dr_cust_code <> :cash_account_code
   AND userdebtor.email_key(c.contact_email) ~ :email_pattern

-- step: contact_accounts_wanted_indexed
CREATE INDEX ON contact_account_wanted (email_key, customer_code)

-- step: contact_accounts_wanted_analyzed
ANALYZE contact_account_wanted

-- step: malformed_emails
-- A contact that would get a login but whose email is not an address: set aside, recorded as a problem.
INSERT INTO userdebtor.plan_contact_set_aside (kind, rule, subject, detail)
SELECT 'malformed_contact_email', 'M1', 'contact:' || c.contact_id,
       format('CRM contact %s has the email %L, which is not a well-formed address, so it gets no web login '
              'for %s until the email is corrected in the ERP.',
              c.contact_id, c.contact_email, string_agg(ca.dr_cust_code, ', ' ORDER BY ca.dr_cust_code))
  FROM userdebtor.erp_contact c
  JOIN userdebtor.erp_contact_account ca ON ca.contact_id = c.contact_id
  JOIN userdebtor.erp_debtor d ON d.dr_cust_code = ca.dr_cust_code
 WHERE c.contact_active
   AND d.in_css_scope
   AND d.dr_cust_code <> :cash_account_code
   AND btrim(coalesce(c.contact_email, '')) <> ''
   AND userdebtor.email_key(c.contact_email) !~ :email_pattern
 GROUP BY c.contact_id, c.contact_email

-- step: users_to_create
-- One user per email no web user has (compared case-insensitively), however many contacts and accounts carry
-- it. Its details come from the lowest-numbered contact with that email; its default account is the lowest code.
INSERT INTO userdebtor.plan_contact_user_create (
    email_key, email_address, name, phone_number, default_customer_code, account_name, contact_id,
    pending_approval, batch)
SELECT e.email_key,
       btrim(c.contact_email),
       nullif(concat_ws(' ', nullif(btrim(c.contact_first_name), ''), nullif(btrim(c.contact_surname), '')), ''),
       nullif(btrim(c.contact_phone), ''),
       e.default_customer_code,
       d.dr_cust_name,
       c.contact_id,
       e.pending_approval,
       ((row_number() OVER (ORDER BY e.email_key) - 1) / :batch_size)::integer
  FROM (SELECT w.email_key,
               min(w.customer_code) AS default_customer_code,
               min(w.contact_id)    AS contact_id,
               -- the web's "new users on this account must be approved" flag (U3) holds for contacts too
               bool_or(coalesce(wc.auto_part_registration, false)) AS pending_approval
          FROM contact_account_wanted w
          LEFT JOIN web.customer wc ON wc.customer_code = w.customer_code
         WHERE NOT EXISTS (SELECT 1 FROM web.app_user u WHERE userdebtor.email_key(u.email_address) = w.email_key)
         GROUP BY w.email_key) e
  JOIN userdebtor.erp_contact c ON c.contact_id = e.contact_id
  JOIN userdebtor.erp_debtor d ON d.dr_cust_code = e.default_customer_code

-- step: links_to_add
-- The wanted pairs the web lacks: for users that exist and whose address is proven (A1), and for the users
-- planned above (by their batch).
INSERT INTO userdebtor.plan_contact_link_add (email_key, customer_code, user_id, batch)
SELECT w.email_key, w.customer_code, u.user_id, nu.batch
  FROM (SELECT DISTINCT email_key, customer_code FROM contact_account_wanted) w
  LEFT JOIN web.app_user u ON userdebtor.email_key(u.email_address) = w.email_key
  LEFT JOIN userdebtor.plan_contact_user_create nu ON nu.email_key = w.email_key
 WHERE nu.email_key IS NOT NULL
    OR (u.user_id IS NOT NULL
        AND userdebtor.address_proven(u.user_id, u.email_verified)
        AND NOT EXISTS (SELECT 1 FROM web.user_customer uc
                         WHERE uc.user_id = u.user_id AND uc.customer_code = w.customer_code))

-- step: links_waiting_for_proof
-- A1: a login that existed before and never proved its address gets no contact's account by the email alone.
DELETE FROM userdebtor.plan_link_proof WHERE rule = 'M1'

-- step: links_waiting_for_proof_listed
INSERT INTO userdebtor.plan_link_proof (rule, user_id, customer_code, email_address)
SELECT DISTINCT 'M1', u.user_id, w.customer_code, u.email_address
  FROM contact_account_wanted w
  JOIN web.app_user u ON userdebtor.email_key(u.email_address) = w.email_key
 WHERE NOT userdebtor.address_proven(u.user_id, u.email_verified)
   AND NOT EXISTS (SELECT 1 FROM web.user_customer uc
                    WHERE uc.user_id = u.user_id AND uc.customer_code = w.customer_code)

-- step: links_waiting_for_proof_set_aside
INSERT INTO userdebtor.plan_contact_set_aside (kind, rule, subject, detail)
SELECT 'contact_email_unproven', 'M1', 'user:' || p.user_id,
       format('Web user %s has the email of a CRM contact acting for %s but has not proven the address, so it is '
              'not linked until the account_link_verify link sent to it is followed.',
              p.user_id, string_agg(p.customer_code, ', ' ORDER BY p.customer_code))
  FROM userdebtor.plan_link_proof p
 WHERE p.rule = 'M1'
 GROUP BY p.user_id

-- step: links_to_remove
-- Links the integration made whose user's current email no active contact carries for that CSS account any
-- more: contact gone, inactive, email changed (in the ERP or on the web), account dropped or out of scope.
INSERT INTO userdebtor.plan_contact_link_remove (user_id, customer_code, email, reason)
SELECT cl.user_id, cl.customer_code, cl.email,
       CASE WHEN u.user_id IS NULL THEN 'user_gone'
            WHEN d.dr_cust_code IS NULL THEN 'account_gone'
            WHEN NOT d.in_css_scope THEN 'account_out_of_scope'
            WHEN d.dr_cust_code = :cash_account_code THEN 'cash_account'
            ELSE 'no_active_contact' END
  FROM userdebtor.contact_link cl
  LEFT JOIN web.app_user u ON u.user_id = cl.user_id
  LEFT JOIN userdebtor.erp_debtor d ON d.dr_cust_code = cl.customer_code
 WHERE NOT EXISTS (SELECT 1 FROM contact_account_wanted w
                    WHERE w.email_key = userdebtor.email_key(u.email_address) AND w.customer_code = cl.customer_code)
