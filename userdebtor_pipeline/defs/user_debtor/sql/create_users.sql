-- Creates the web users of U2 for one chunk of planned debtors (_user_chunk), and lists the pairs to link.

-- step: created_users
CREATE TEMP TABLE _created_user (
    user_id bigint, dr_cust_code text, email_address text, name text, status text
) ON COMMIT DROP;

-- step: insert_users
-- U3: the account asks for approval, so the user waits as PendingApproval. The email test keeps a rerun
-- (or a sign-up that won the race) from making a second login.
WITH inserted AS (
    INSERT INTO web.app_user (
        email_address, name, phone_number, address1, address2, address3, address4, address5, address6,
        postcode, abn, industry_code, role, default_customer_code, status, email_verified, created_at, updated_at)
    SELECT d.dr_email, d.dr_cust_name, d.dr_phone, d.dr_addr_1, d.dr_addr_2, d.dr_addr_3, d.dr_addr_4,
           d.dr_addr_5, d.dr_addr_6, d.dr_postcode, d.dr_abn, d.dr_industry_code, :role, d.dr_cust_code,
           CASE WHEN p.pending_approval THEN 'PendingApproval' ELSE 'Active' END, false, now(), now()
      FROM userdebtor.plan_user_create p
      JOIN _user_chunk c ON c.dr_cust_code = p.dr_cust_code
      JOIN userdebtor.erp_debtor d ON d.dr_cust_code = p.dr_cust_code
     WHERE p.action = 'create'
       -- Through indexes only (a chunk must not scan every user): the live users by their case-insensitive
       -- unique index, under the address as written and as its key, and the mirror by the key (A2).
       AND NOT EXISTS (SELECT 1 FROM web.app_user u
                        WHERE lower(u.email_address) IN (lower(d.dr_email), userdebtor.email_key(d.dr_email)))
       AND NOT EXISTS (SELECT 1 FROM userdebtor.web_user w
                        WHERE userdebtor.email_key(w.email_address) = userdebtor.email_key(d.dr_email))
    RETURNING user_id, default_customer_code, email_address, name, status
)
INSERT INTO _created_user SELECT * FROM inserted;

-- step: made_users
-- A1: nobody logs in to a user the integration made but through the one-time link sent to its address.
INSERT INTO userdebtor.made_user (user_id, rule) SELECT user_id, 'U2' FROM _created_user ON CONFLICT DO NOTHING;

-- step: new_links
CREATE TEMP TABLE _new_link ON COMMIT DROP AS
SELECT u.user_id, u.dr_cust_code, 'user_created'::text AS origin FROM _created_user u
UNION ALL
SELECT p.user_id, p.dr_cust_code, 'matched'
  FROM userdebtor.plan_user_create p JOIN _user_chunk c ON c.dr_cust_code = p.dr_cust_code
 WHERE p.action = 'link'
