-- Adds the state of contacts (M1, M2) and of the CSS customer mirror (M3): their plans and the accounts M3 keeps.

-- The web.customer rows M3 keeps: accounts in CSS scope or with an active user_debtor_link. Only these are
-- retired (set Inactive) when their debtor leaves that scope; accounts that other rules put on the web (I1)
-- are not M3's to retire.
CREATE TABLE userdebtor.css_customer (
    customer_code  text PRIMARY KEY,
    kept_since     timestamptz NOT NULL DEFAULT now()
);

---------------------------------------------------------------- plans (rebuilt by each run; one run at a time)
-- M1: one web user per contact email that no user has yet.
CREATE TABLE userdebtor.plan_contact_user_create (
    email_key              text PRIMARY KEY,     -- lower(btrim(email)): one email, one user
    email_address          text NOT NULL,        -- as the contact with the lowest contact_id spells it
    name                   text,
    phone_number           text,
    default_customer_code  text NOT NULL,        -- the lowest code among its accounts
    account_name           text,
    contact_id             bigint NOT NULL,      -- the contact the user's details come from
    pending_approval       boolean NOT NULL,     -- one of its accounts asks for approval of new users
    batch                  integer NOT NULL      -- users are created batch by batch, one transaction each
);
CREATE INDEX plan_contact_user_create_batch_idx ON userdebtor.plan_contact_user_create (batch);

-- M1: user_customer links that an active contact calls for and the web does not have.
CREATE TABLE userdebtor.plan_contact_link_add (
    email_key      text NOT NULL,
    customer_code  text NOT NULL,
    user_id        bigint,                       -- null: the user is created by this run
    batch          integer,                      -- that user's creation batch; null for an existing user
    PRIMARY KEY (email_key, customer_code)
);
CREATE INDEX plan_contact_link_add_batch_idx ON userdebtor.plan_contact_link_add (batch);

-- M2: links the integration made (userdebtor.contact_link) that no active contact needs any more.
CREATE TABLE userdebtor.plan_contact_link_remove (
    user_id             bigint NOT NULL,
    customer_code       text NOT NULL,
    email               text NOT NULL,           -- the contact email the link was made for
    reason              text NOT NULL,           -- user_gone | account_gone | account_out_of_scope | cash_account | no_active_contact
    keep_user_customer  boolean NOT NULL DEFAULT false,  -- another rule needs the user_customer row: only forget it
    PRIMARY KEY (user_id, customer_code)
);

-- M1: contacts set aside (a malformed email), recorded as problems by the load.
CREATE TABLE userdebtor.plan_contact_set_aside (
    kind     text NOT NULL,
    rule     text NOT NULL,
    subject  text NOT NULL,
    detail   text NOT NULL,
    PRIMARY KEY (kind, subject)
);

-- M3: web.customer rows to create or refresh from the staged debtor, and rows to set Inactive.
CREATE TABLE userdebtor.plan_customer_mirror (
    customer_code  text PRIMARY KEY,
    action         text NOT NULL,                -- create | refresh | inactivate
    reason         text NOT NULL
);
