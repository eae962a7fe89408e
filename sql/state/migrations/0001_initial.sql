-- Creates the pipeline's own state: staged extracts, links with their last-synced values, plans, problems and runs.

-- Every staged row that is new or different gets the next number, so a plan can ask "what changed since".
CREATE SEQUENCE userdebtor.change_seq;

-- Extract and plan watermarks.
CREATE TABLE userdebtor.watermark (
    name        text PRIMARY KEY,
    value       timestamptz,
    seq         bigint,
    note        text,                      -- e.g. a digest of the filters the scope flags were computed with
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per run of the sync job.
CREATE TABLE userdebtor.sync_run (
    run_id       text PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    mode         text NOT NULL,            -- full | changed_since
    dry_run      boolean NOT NULL DEFAULT false,
    plan_seq     bigint,                   -- change_seq high-water mark the plan saw
    outcome      text,                     -- succeeded | held | failed
    summary      jsonb NOT NULL DEFAULT '{}'::jsonb
);

---------------------------------------------------------------- staged extracts
CREATE TABLE userdebtor.erp_debtor (
    dr_cust_code          text PRIMARY KEY,
    dr_cust_name          text NOT NULL,
    dr_cust_type          text NOT NULL,
    dr_email              text,
    dr_phone              text,
    dr_addr_1             text,
    dr_addr_2             text,
    dr_addr_3             text,
    dr_addr_4             text,
    dr_addr_5             text,
    dr_addr_6             text,
    dr_postcode           text,
    dr_abn                text,
    dr_industry_code      text,
    dr_price_code         text,
    dr_tax_code           text,
    dr_territory          text,
    dr_credit_limit       numeric(14,2),
    dr_account_status     text NOT NULL,
    dr_date_created       timestamptz NOT NULL,
    dr_date_last_changed  timestamptz NOT NULL,
    in_master_scope       boolean NOT NULL DEFAULT false,   -- matches customer_master_filter
    in_css_scope          boolean NOT NULL DEFAULT false,   -- matches css_customer_filter
    change_seq            bigint NOT NULL
);
CREATE INDEX erp_debtor_change_seq_idx ON userdebtor.erp_debtor (change_seq);
CREATE INDEX erp_debtor_email_idx ON userdebtor.erp_debtor (lower(dr_email));

CREATE TABLE userdebtor.erp_contact (
    contact_id                 bigint PRIMARY KEY,
    contact_email              text,
    contact_first_name         text,
    contact_surname            text,
    contact_phone              text,
    contact_active             boolean NOT NULL,
    contact_date_last_changed  timestamptz NOT NULL,
    change_seq                 bigint NOT NULL
);
CREATE INDEX erp_contact_email_idx ON userdebtor.erp_contact (lower(contact_email));

CREATE TABLE userdebtor.erp_contact_account (
    contact_id    bigint NOT NULL,
    dr_cust_code  text NOT NULL,
    PRIMARY KEY (contact_id, dr_cust_code)
);
CREATE INDEX erp_contact_account_code_idx ON userdebtor.erp_contact_account (dr_cust_code);

CREATE TABLE userdebtor.erp_conversion (
    conversion_seq   bigint PRIMARY KEY,
    old_cust_code    text NOT NULL,
    new_cust_code    text NOT NULL,
    conversion_date  timestamptz NOT NULL
);

CREATE TABLE userdebtor.erp_sales_order (
    so_order_no      text PRIMARY KEY,
    so_cust_code     text NOT NULL,
    so_order_date    timestamptz NOT NULL,
    so_order_status  text NOT NULL,
    so_source        text NOT NULL,
    so_email         text,
    so_order_total   numeric(14,2) NOT NULL,
    so_date_stamp    timestamptz NOT NULL,
    change_seq       bigint NOT NULL
);
CREATE INDEX erp_sales_order_change_seq_idx ON userdebtor.erp_sales_order (change_seq);
CREATE INDEX erp_sales_order_code_idx ON userdebtor.erp_sales_order (so_cust_code);

CREATE TABLE userdebtor.web_user (
    user_id                bigint PRIMARY KEY,
    email_address          text NOT NULL,
    name                   text,
    phone_number           text,
    address1               text,
    address2               text,
    address3               text,
    address4               text,
    address5               text,
    address6               text,
    postcode               text,
    abn                    text,
    industry_code          text,
    role                   text NOT NULL,
    default_customer_code  text,
    status                 text NOT NULL,
    updated_at             timestamptz NOT NULL,
    change_seq             bigint NOT NULL
);
CREATE INDEX web_user_change_seq_idx ON userdebtor.web_user (change_seq);
CREATE INDEX web_user_email_idx ON userdebtor.web_user (lower(email_address));

CREATE TABLE userdebtor.web_customer (
    customer_code           text PRIMARY KEY,
    status                  text NOT NULL,
    is_debtor_customer      boolean NOT NULL,
    is_cash_account         boolean NOT NULL,
    auto_part_registration  boolean NOT NULL
);

---------------------------------------------------------------- links and their last-synced values
-- A user and a debtor the integration created one from the other, or matched. base_* hold the values
-- last synced (the base of the three-way compare of U4); the link survives code conversions (C2).
CREATE TABLE userdebtor.user_debtor_link (
    link_id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id             bigint NOT NULL UNIQUE,
    dr_cust_code        text NOT NULL UNIQUE,
    origin              text NOT NULL,      -- debtor_created | user_created | matched
    state               text NOT NULL DEFAULT 'active',   -- active | suspended | deactivated
    state_reason        text,
    base_email          text,
    base_name           text,
    base_address1       text,
    base_address2       text,
    base_address3       text,
    base_address4       text,
    base_address5       text,
    base_address6       text,
    base_phone_number   text,
    base_postcode       text,
    base_abn            text,
    base_industry_code  text,
    linked_at           timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    change_seq          bigint NOT NULL DEFAULT nextval('userdebtor.change_seq')
);
CREATE INDEX user_debtor_link_change_seq_idx ON userdebtor.user_debtor_link (change_seq);

-- Debtor codes handed out for U1, kept before the ERP insert so that a killed run reuses the same code.
CREATE TABLE userdebtor.debtor_reservation (
    user_id        bigint PRIMARY KEY,
    dr_cust_code   text NOT NULL UNIQUE,
    reserved_at    timestamptz NOT NULL DEFAULT now(),
    run_id         text,
    erp_written_at timestamptz,
    completed_at   timestamptz
);

-- The last number used per prefix; never goes back, so a code is never reused.
CREATE TABLE userdebtor.code_counter (
    prefix       text PRIMARY KEY,
    last_number  bigint NOT NULL
);

-- user_customer links the integration made for CRM contacts (M1); only these may be removed (M2).
CREATE TABLE userdebtor.contact_link (
    user_id        bigint NOT NULL,
    customer_code  text NOT NULL,
    email          text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, customer_code)
);

-- Conflicts of U4: both sides changed a field to different values.
CREATE TABLE userdebtor.conflict (
    conflict_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    link_id       bigint NOT NULL,
    user_id       bigint NOT NULL,
    dr_cust_code  text NOT NULL,
    field         text NOT NULL,
    base_value    text,
    web_value     text,
    erp_value     text,
    policy        text NOT NULL,
    status        text NOT NULL,   -- settled (by policy) | open (held) | resolved (by a person) | applied
    winner        text,            -- erp | web | null while open
    detected_at   timestamptz NOT NULL DEFAULT now(),
    run_id        text,
    resolved_by   text,
    resolved_at   timestamptz,
    applied_at    timestamptz
);
CREATE UNIQUE INDEX conflict_open_key ON userdebtor.conflict (link_id, field) WHERE status IN ('open', 'resolved');

-- Records set aside and other problems, one row per distinct problem; what `sync` and `status` report.
CREATE TABLE userdebtor.problem (
    problem_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind           text NOT NULL,       -- e.g. malformed_email, email_collision, template_missing
    rule           text NOT NULL,       -- U1, C4 ...
    subject        text NOT NULL,       -- what it is about, e.g. 'user:42' or 'debtor:C10001'
    detail         text NOT NULL,
    first_run_id   text,
    last_run_id    text,
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at    timestamptz,
    UNIQUE (kind, subject)
);

-- Emails held until the user is approved (U3).
CREATE TABLE userdebtor.email_hold (
    email_id  bigint PRIMARY KEY,
    user_id   bigint NOT NULL
);
CREATE INDEX email_hold_user_idx ON userdebtor.email_hold (user_id);

---------------------------------------------------------------- plans (rebuilt by each run; one run at a time)
CREATE TABLE userdebtor.plan_debtor_create (
    user_id        bigint PRIMARY KEY,
    action         text NOT NULL,      -- create | link
    dr_cust_code   text,               -- reserved code (create) or matched debtor (link)
    email_address  text NOT NULL
);

CREATE TABLE userdebtor.plan_user_create (
    dr_cust_code   text PRIMARY KEY,
    action         text NOT NULL,      -- create | link
    user_id        bigint,             -- the existing user to link
    email_address  text NOT NULL,
    pending_approval boolean NOT NULL DEFAULT false
);

CREATE TABLE userdebtor.plan_field_change (
    link_id        bigint NOT NULL,
    user_id        bigint NOT NULL,
    dr_cust_code   text NOT NULL,
    field          text NOT NULL,
    base_value     text,
    web_value      text,
    erp_value      text,
    direction      text NOT NULL,      -- to_erp | to_web | none (agreed, or held)
    new_value      text,
    is_conflict    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (link_id, field)
);

-- The plan's field changes, one row per linked pair: per field the new value and which way it goes
-- (to_erp, to_web, none = agreed, held, blocked). The ERP writes, the web writes and the new bases read it.
CREATE VIEW userdebtor.plan_field_change_by_pair AS
SELECT link_id, user_id, dr_cust_code,
       bool_or(direction = 'to_erp') AS any_to_erp,
       bool_or(direction = 'to_web') AS any_to_web,
       max(new_value) FILTER (WHERE field = 'OrderEmailAddress') AS email, max(direction) FILTER (WHERE field = 'OrderEmailAddress') AS email_way,
       max(new_value) FILTER (WHERE field = 'Name') AS name, max(direction) FILTER (WHERE field = 'Name') AS name_way,
       max(new_value) FILTER (WHERE field = 'Address1') AS address1, max(direction) FILTER (WHERE field = 'Address1') AS address1_way,
       max(new_value) FILTER (WHERE field = 'Address2') AS address2, max(direction) FILTER (WHERE field = 'Address2') AS address2_way,
       max(new_value) FILTER (WHERE field = 'Address3') AS address3, max(direction) FILTER (WHERE field = 'Address3') AS address3_way,
       max(new_value) FILTER (WHERE field = 'Address4') AS address4, max(direction) FILTER (WHERE field = 'Address4') AS address4_way,
       max(new_value) FILTER (WHERE field = 'Address5') AS address5, max(direction) FILTER (WHERE field = 'Address5') AS address5_way,
       max(new_value) FILTER (WHERE field = 'Address6') AS address6, max(direction) FILTER (WHERE field = 'Address6') AS address6_way,
       max(new_value) FILTER (WHERE field = 'PhoneNumber') AS phone_number, max(direction) FILTER (WHERE field = 'PhoneNumber') AS phone_number_way,
       max(new_value) FILTER (WHERE field = 'Postcode') AS postcode, max(direction) FILTER (WHERE field = 'Postcode') AS postcode_way,
       max(new_value) FILTER (WHERE field = 'ABN') AS abn, max(direction) FILTER (WHERE field = 'ABN') AS abn_way,
       max(new_value) FILTER (WHERE field = 'industrycode') AS industry_code, max(direction) FILTER (WHERE field = 'industrycode') AS industry_code_way
  FROM userdebtor.plan_field_change
 GROUP BY link_id, user_id, dr_cust_code;

CREATE TABLE userdebtor.plan_link_exit (
    link_id        bigint PRIMARY KEY,
    user_id        bigint NOT NULL,
    dr_cust_code   text NOT NULL,
    action         text NOT NULL,      -- deleted | out_of_scope | back_in_scope
    deactivate_user boolean NOT NULL
);

CREATE TABLE userdebtor.plan_set_aside (
    kind     text NOT NULL,
    rule     text NOT NULL,
    subject  text NOT NULL,
    detail   text NOT NULL,
    warn     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (kind, subject)
);
