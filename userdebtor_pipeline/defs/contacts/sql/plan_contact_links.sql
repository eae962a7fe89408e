-- Plans M1 and M2: the web users and user_customer links the ERP's contacts call for, and the links they no longer need.
-- A changed-since run plans only the addresses whose links may have changed since the last good run (see
-- emails_to_plan); a full reconcile plans every address. Everything here is set-based; the temp tables live for
-- the plan's transaction. Parameters: full, since, cap, email_pattern, cash_account_code, batch_size.

-- step: clear_previous_plan
TRUNCATE userdebtor.plan_contact_user_create, userdebtor.plan_contact_link_add,
         userdebtor.plan_contact_link_remove, userdebtor.plan_contact_set_aside

-- step: index_lookups_priced_as_cached
-- A changed-since plan looks the addresses up through indexes whose pages the server holds in memory; priced as
-- on a disk (the default), a few thousand lookups lose to reading every user, which costs seconds at a million.
SELECT set_config('random_page_cost', CASE WHEN CAST(:full AS boolean) THEN current_setting('random_page_cost')
                                           ELSE '1.1' END, true)

-- step: changes_since_last_run_at_least
-- How many users and contacts changed since the last good run, counted no further than the cap: past it, every
-- address is planned and the list of addresses is not made (it alone would cost more than the plan).
SELECT (SELECT count(*) FROM (SELECT 1 FROM userdebtor.web_user WHERE change_seq > :since LIMIT :cap) u)
     + (SELECT count(*) FROM (SELECT 1 FROM userdebtor.erp_contact WHERE change_seq > :since LIMIT :cap) c)

-- step: emails_to_plan
CREATE TEMP TABLE _email_to_plan (email_key text PRIMARY KEY) ON COMMIT DROP

-- step: emails_changed_since_last_run
-- The addresses whose links may have changed (nothing in a full reconcile, which plans them all). A link the
-- website itself removed is put back by the nightly full reconcile: web.user_customer carries no change stamp.
INSERT INTO _email_to_plan (email_key)
SELECT changed.email_key
  FROM (
    -- contacts added or changed (address, name, active), and contacts who gained an account
    SELECT userdebtor.email_key(c.contact_email) AS email_key FROM userdebtor.erp_contact c WHERE c.change_seq > :since
    UNION
    SELECT userdebtor.email_key(c.contact_email)
      FROM userdebtor.erp_contact_account ca JOIN userdebtor.erp_contact c ON c.contact_id = ca.contact_id
     WHERE ca.change_seq > :since
    UNION
    -- debtors added or changed (scope, name): the contacts acting for them and the users linked to them for one
    SELECT userdebtor.email_key(c.contact_email)
      FROM userdebtor.erp_debtor d
      JOIN userdebtor.erp_contact_account ca ON ca.dr_cust_code = d.dr_cust_code
      JOIN userdebtor.erp_contact c ON c.contact_id = ca.contact_id
     WHERE d.change_seq > :since
    UNION
    SELECT userdebtor.email_key(cl.email)
      FROM userdebtor.erp_debtor d JOIN userdebtor.contact_link cl ON cl.customer_code = d.dr_cust_code
     WHERE d.change_seq > :since
    UNION
    -- users added or changed (address, proof of it): as staged (the plan first stages what this run's loads
    -- wrote), and as the web wrote them after the newest staged one
    SELECT userdebtor.email_key(u.email_address) FROM userdebtor.web_user u WHERE u.change_seq > :since
    UNION
    SELECT userdebtor.email_key(u.email_address) FROM web.app_user u
     WHERE u.updated_at > (SELECT w.value FROM userdebtor.watermark w WHERE w.name = 'web_user')
    UNION
    -- what an update or delete took away: old addresses; contacts, accounts, debtors and users that went
    SELECT t.email_key FROM userdebtor.contact_email_touched t WHERE t.change_seq > :since
    UNION
    -- contacts and users still set aside: looked at again every run, so that a fixed one is resolved
    SELECT userdebtor.email_key(coalesce(c.contact_email, u.email_address))
      FROM userdebtor.problem p
      LEFT JOIN userdebtor.erp_contact c
             ON c.contact_id = CASE WHEN p.subject ~ '^contact:[0-9]+$' THEN CAST(split_part(p.subject, ':', 2) AS bigint) END
      LEFT JOIN web.app_user u
             ON u.user_id = CASE WHEN p.subject ~ '^user:[0-9]+$' THEN CAST(split_part(p.subject, ':', 2) AS bigint) END
     WHERE p.kind IN ('malformed_contact_email', 'contact_email_unproven') AND p.resolved_at IS NULL
  ) changed
 WHERE changed.email_key IS NOT NULL
   AND NOT CAST(:full AS boolean)

-- step: emails_to_plan_analyzed
ANALYZE _email_to_plan

-- step: users_to_plan
-- The web users, live, whose address is one to plan (all of them in a full reconcile): found by the mirror's
-- email_key index and the web's case-insensitive unique index, never by reading every user.
CREATE TEMP TABLE _user_to_plan ON COMMIT DROP AS
SELECT u.user_id, userdebtor.email_key(u.email_address) AS email_key, u.email_address,
       userdebtor.address_proven(u.user_id, u.email_verified) AS proven
  FROM web.app_user u
 WHERE CAST(:full AS boolean)
UNION ALL
SELECT u.user_id, userdebtor.email_key(u.email_address), u.email_address,
       userdebtor.address_proven(u.user_id, u.email_verified)
  FROM web.app_user u
 WHERE NOT CAST(:full AS boolean)
   AND u.user_id IN (SELECT w.user_id
                       FROM _email_to_plan s JOIN userdebtor.web_user w ON userdebtor.email_key(w.email_address) = s.email_key
                     UNION
                     SELECT l.user_id FROM _email_to_plan s JOIN web.app_user l ON lower(l.email_address) = s.email_key)
   -- the address the web has now: a user whose address changed since staging is planned when it is staged
   AND userdebtor.email_key(u.email_address) IN (SELECT email_key FROM _email_to_plan)

-- step: users_to_plan_indexed
-- For the lookups of a changed-since plan. A plan of every address joins whole tables by hash and skips it, and
-- contact_accounts_wanted_indexed (4.4 s of a full reconcile at a million).
CREATE INDEX ON _user_to_plan (email_key)

-- step: users_to_plan_analyzed
ANALYZE _user_to_plan

-- step: contact_accounts_to_plan
-- The accounts each active contact of the addresses to plan acts for, of the CSS accounts: the contacts through
-- the mirror's email_key index in a changed-since run. The shared cash account is never linked to a person.
-- Whether the email is an address is decided here, once a row: the pattern costs a second at a million.
CREATE TEMP TABLE _contact_account ON COMMIT DROP AS
SELECT c.contact_id, c.contact_email, c.email_key, c.email_key ~ :email_pattern AS well_formed, ca.dr_cust_code
  FROM (SELECT c.contact_id, c.contact_email, userdebtor.email_key(c.contact_email) AS email_key
          FROM userdebtor.erp_contact c
         WHERE c.contact_active AND CAST(:full AS boolean)
        UNION ALL
        SELECT c.contact_id, c.contact_email, s.email_key
          FROM _email_to_plan s JOIN userdebtor.erp_contact c ON userdebtor.email_key(c.contact_email) = s.email_key
         WHERE c.contact_active AND NOT CAST(:full AS boolean)) c
  JOIN userdebtor.erp_contact_account ca ON ca.contact_id = c.contact_id
  JOIN userdebtor.erp_debtor d ON d.dr_cust_code = ca.dr_cust_code
 WHERE d.in_css_scope
   AND d.dr_cust_code <> :cash_account_code

-- step: contact_accounts_wanted
-- Every (email, account) pair M1 asks for: those of contacts with a well-formed email.
CREATE TEMP TABLE contact_account_wanted ON COMMIT DROP AS
SELECT email_key, dr_cust_code AS customer_code, contact_id
  FROM _contact_account
 WHERE well_formed

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
              c.contact_id, c.contact_email, string_agg(c.dr_cust_code, ', ' ORDER BY c.dr_cust_code))
  FROM _contact_account c
 WHERE btrim(coalesce(c.contact_email, '')) <> ''
   AND NOT c.well_formed
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
         WHERE NOT EXISTS (SELECT 1 FROM _user_to_plan u WHERE u.email_key = w.email_key)
         GROUP BY w.email_key) e
  JOIN userdebtor.erp_contact c ON c.contact_id = e.contact_id
  JOIN userdebtor.erp_debtor d ON d.dr_cust_code = e.default_customer_code

-- step: links_to_add
-- The wanted pairs the web lacks: for the users planned above (by their batch), and for users that exist and whose
-- address is proven (A1). Two selects rather than one with an OR: the web's links are then looked up by one
-- anti-join, not probed pair by pair (a whole reconcile at a million: 6.1-6.8 s to 2.1 s).
INSERT INTO userdebtor.plan_contact_link_add (email_key, customer_code, user_id, batch)
SELECT w.email_key, w.customer_code, NULL::bigint, nu.batch
  FROM contact_account_wanted w
  JOIN userdebtor.plan_contact_user_create nu ON nu.email_key = w.email_key
UNION
SELECT w.email_key, w.customer_code, u.user_id, NULL::integer
  FROM contact_account_wanted w
  JOIN _user_to_plan u ON u.email_key = w.email_key
 WHERE u.proven
   AND NOT EXISTS (SELECT 1 FROM web.user_customer uc
                    WHERE uc.user_id = u.user_id AND uc.customer_code = w.customer_code)

-- step: links_waiting_for_proof
-- A1: a login that existed before and never proved its address gets no contact's account by the email alone.
-- The waits of the users planned now are listed again; the others' stand (a user gone is no longer waited for).
DELETE FROM userdebtor.plan_link_proof p
 WHERE p.rule = 'M1'
   AND (CAST(:full AS boolean)
        OR p.user_id IN (SELECT user_id FROM _user_to_plan)
        OR NOT EXISTS (SELECT 1 FROM web.app_user u WHERE u.user_id = p.user_id))

-- step: links_waiting_for_proof_listed
INSERT INTO userdebtor.plan_link_proof (rule, user_id, customer_code, email_address)
SELECT DISTINCT 'M1', u.user_id, w.customer_code, u.email_address
  FROM contact_account_wanted w
  JOIN _user_to_plan u ON u.email_key = w.email_key
 WHERE NOT u.proven
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
  FROM (SELECT cl.user_id, cl.customer_code, cl.email FROM userdebtor.contact_link cl WHERE CAST(:full AS boolean)
        UNION ALL
        (SELECT cl.user_id, cl.customer_code, cl.email
           FROM _user_to_plan p JOIN userdebtor.contact_link cl ON cl.user_id = p.user_id
          WHERE NOT CAST(:full AS boolean)
         UNION
         SELECT cl.user_id, cl.customer_code, cl.email
           FROM _email_to_plan s JOIN userdebtor.contact_link cl ON userdebtor.email_key(cl.email) = s.email_key
          WHERE NOT CAST(:full AS boolean))) cl
  LEFT JOIN web.app_user u ON u.user_id = cl.user_id
  LEFT JOIN userdebtor.erp_debtor d ON d.dr_cust_code = cl.customer_code
 WHERE NOT EXISTS (SELECT 1 FROM contact_account_wanted w
                    WHERE w.email_key = userdebtor.email_key(u.email_address) AND w.customer_code = cl.customer_code)
   -- a user whose address the web changed since staging is planned when it is staged, under its new address
   AND (CAST(:full AS boolean) OR u.user_id IS NULL OR u.user_id IN (SELECT user_id FROM _user_to_plan))
