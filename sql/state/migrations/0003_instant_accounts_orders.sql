-- Adds the state of instant accounts (I1-I3) and of the order history (O1-O2): who was approved, which tokens were applied, which accounts' orders are shown, and the plans.

---------------------------------------------------------------- instant accounts
-- Users that an approved registration request (I1) created or reused: their logins are checked (I2),
-- whatever their role.
CREATE TABLE userdebtor.instant_account_user (
    user_id      bigint PRIMARY KEY,
    request_id   bigint NOT NULL,          -- the first request that approved the user
    approved_at  timestamptz NOT NULL DEFAULT now()
);

-- Every followed verify_email / reverify token the pipeline has dealt with (I3), so a token works once.
-- used_at is the value seen when dealt with: a later, different used_at means the link was followed again.
CREATE TABLE userdebtor.verification_applied (
    token_hash   text PRIMARY KEY,
    user_id      bigint NOT NULL,
    purpose      text NOT NULL,
    used_at      timestamptz,
    outcome      text NOT NULL,            -- applied | expired | no_user (what the first sight of it did)
    times_seen   integer NOT NULL DEFAULT 1,
    first_run_id text,
    last_run_id  text,
    applied_at   timestamptz NOT NULL DEFAULT now()
);

---------------------------------------------------------------- order history
-- The accounts whose ERP orders web.order_history shows (O1), with the user they belong to. Kept so that
-- a run sees which accounts became linked, stopped being linked or changed hands, without reading all orders.
CREATE TABLE userdebtor.order_account (
    customer_code  text PRIMARY KEY,
    user_id        bigint,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_account_user_idx ON userdebtor.order_account (user_id);

-- Lookups the order plan makes on the staged mirrors: in-store orders by email (O2), orders that age past
-- archive_days, the user whose default account an account is.
CREATE INDEX erp_sales_order_email_idx ON userdebtor.erp_sales_order (lower(btrim(so_email))) WHERE so_email IS NOT NULL;
CREATE INDEX erp_sales_order_date_idx ON userdebtor.erp_sales_order (so_order_date);
CREATE INDEX web_user_default_customer_idx ON userdebtor.web_user (default_customer_code);

---------------------------------------------------------------- plans (rebuilt by each run; one run at a time)
-- I1: the decision on each pending registration request.
CREATE TABLE userdebtor.plan_registration (
    request_id          bigint PRIMARY KEY,
    run_id              text NOT NULL,
    email_address       text NOT NULL,
    account_code        text,              -- the account the request names, if any
    decision            text NOT NULL,     -- approve | reject
    reason_kind         text NOT NULL,     -- e.g. approved, malformed_email, no_account, only_cash_account
    reason              text NOT NULL,     -- in words a website can show
    qualifying_codes    text[] NOT NULL DEFAULT '{}',
    default_code        text,              -- lowest qualifying code: a new user's default_customer_code
    existing_user_id    bigint,            -- the web user with this email, when there is one
    contact_name        text               -- a name for a new user, from the ERP contact
);

-- I2: the decision on each unprocessed login event of an instant-account user.
CREATE TABLE userdebtor.plan_login (
    event_id            bigint PRIMARY KEY,
    run_id              text NOT NULL,
    user_id             bigint NOT NULL,
    email_address       text,
    occurred_at         timestamptz NOT NULL,
    previous_login_at   timestamptz,
    outcome             text NOT NULL,     -- allowed | reverify_required | refused | skipped
    reason              text NOT NULL
);

-- O1: the parameters the order plan was made with, so that its load uses the same cut-off.
CREATE TABLE userdebtor.plan_order_history_run (
    run_id            text PRIMARY KEY,
    full_reconcile    boolean NOT NULL,
    cutoff            timestamptz NOT NULL,   -- orders dated before this are archived
    settings_digest   text NOT NULL,
    planned_at        timestamptz NOT NULL DEFAULT now()
);

-- O1: accounts whose orders become shown, change user, or stop being shown.
CREATE TABLE userdebtor.plan_order_account (
    customer_code     text PRIMARY KEY,
    run_id            text NOT NULL,
    action            text NOT NULL,      -- add | change_user | remove
    user_id           bigint,
    previous_user_id  bigint
);

-- O1/O2: the rows of web.order_history to add, update or remove, and in-store orders left alone.
CREATE TABLE userdebtor.plan_order_history (
    order_no       text PRIMARY KEY,
    run_id         text NOT NULL,
    action         text NOT NULL,         -- add | update | remove | ambiguous (reported, not written)
    customer_code  text,
    user_id        bigint,
    order_date     timestamptz,
    source         text,
    status         text,
    total          numeric(14,2),
    why            text NOT NULL
);

---------------------------------------------------------------- who an email is
-- Every staged account that lists an email: through an active CRM contact acting for it, or as the debtor's
-- own email. I1 and I2 ask it for one email at a time; the filter reaches both branches and their indexes.
CREATE VIEW userdebtor.email_account AS
SELECT lower(c.contact_email) AS email_key, ca.dr_cust_code, 'contact'::text AS listed_by, c.contact_id
  FROM userdebtor.erp_contact c
  JOIN userdebtor.erp_contact_account ca ON ca.contact_id = c.contact_id
 WHERE c.contact_active AND c.contact_email IS NOT NULL
UNION ALL
SELECT lower(d.dr_email), d.dr_cust_code, 'debtor'::text, NULL::bigint
  FROM userdebtor.erp_debtor d
 WHERE d.dr_email IS NOT NULL;
