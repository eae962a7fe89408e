-- Adds proof of email (A1) and one definition of "the same address" (A2): email_key(), its indexes, the users the integration made, and the links waiting for proof.

-- A2: two addresses are the same when they are equal trimmed and case-folded. One SQL expression for every
-- rule; PostgreSQL inlines it, so an index on it serves lower(btrim(x)) and email_key(x) alike. The Python
-- twin is userdebtor_pipeline.emails.email_key.
CREATE FUNCTION userdebtor.email_key(address text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT lower(btrim(address)) $$;

DROP INDEX IF EXISTS userdebtor.web_user_email_idx;
CREATE INDEX web_user_email_key_idx ON userdebtor.web_user (userdebtor.email_key(email_address));
DROP INDEX IF EXISTS userdebtor.erp_debtor_email_idx;
CREATE INDEX erp_debtor_email_key_idx ON userdebtor.erp_debtor (userdebtor.email_key(dr_email));
DROP INDEX IF EXISTS userdebtor.erp_contact_email_idx;
CREATE INDEX erp_contact_email_key_idx ON userdebtor.erp_contact (userdebtor.email_key(contact_email));

CREATE OR REPLACE VIEW userdebtor.email_account AS
SELECT userdebtor.email_key(c.contact_email) AS email_key, ca.dr_cust_code, 'contact'::text AS listed_by,
       c.contact_id
  FROM userdebtor.erp_contact c
  JOIN userdebtor.erp_contact_account ca ON ca.contact_id = c.contact_id
 WHERE c.contact_active AND c.contact_email IS NOT NULL
UNION ALL
SELECT userdebtor.email_key(d.dr_email), d.dr_cust_code, 'debtor'::text, NULL::bigint
  FROM userdebtor.erp_debtor d
 WHERE d.dr_email IS NOT NULL;

-- A1: the plans ask whether a user's address is proven. The mirror stages the web's flag; restaging every user
-- once (the watermark forgotten) brings the flags of users that did not change since.
ALTER TABLE userdebtor.web_user ADD COLUMN email_verified boolean NOT NULL DEFAULT false;
DELETE FROM userdebtor.watermark WHERE name = 'web_user';

-- A1: users the integration made itself (U2, M1). Nobody logs in to them but through the one-time link sent to
-- their address, so they are linked at once. M2 deactivates an M1-made user left with no account.
CREATE TABLE userdebtor.made_user (
    user_id   bigint PRIMARY KEY,
    rule            text NOT NULL,            -- U2 | M1
    made_at         timestamptz NOT NULL DEFAULT now(),
    deactivated_at  timestamptz               -- M2 deactivated it (no account left); M1 makes it Active again
);
INSERT INTO userdebtor.made_user (user_id, rule)
SELECT DISTINCT user_id, 'U2' FROM userdebtor.user_debtor_link WHERE origin = 'user_created'
ON CONFLICT DO NOTHING;

-- A1: whether a web user's address is proven: the web's flag, or a user the integration made.
CREATE FUNCTION userdebtor.address_proven(user_id bigint, email_verified boolean) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT email_verified OR EXISTS (SELECT 1 FROM userdebtor.made_user m WHERE m.user_id = $1) $$;

-- A1: links an email match asks for that wait until the user's address is proven, by rule (rebuilt by each
-- rule's plan). One account_link_verify email per user and account set is queued from them.
CREATE TABLE userdebtor.plan_link_proof (
    rule           text NOT NULL,             -- U1 | U2 | M1 | O2
    user_id        bigint NOT NULL,
    customer_code  text NOT NULL,
    email_address  text NOT NULL,
    PRIMARY KEY (rule, user_id, customer_code)
);

-- A1/I1: an approved instant account is linked once its user's address is proven; until then linked_at is null.
-- Accounts approved before this migration were linked at once.
ALTER TABLE userdebtor.instant_account_user ADD COLUMN linked_at timestamptz;
UPDATE userdebtor.instant_account_user SET linked_at = approved_at;
