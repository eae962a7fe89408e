-- Plans web.order_history (O1, O2): the orders to add, update or take away, and the accounts whose orders change hands, looking only at what changed (all of it in a full reconcile).
-- Parameters: run_id, full_reconcile, since (change_seq), cash_account_code, hidden_statuses (text[]), cutoff, previous_cutoff.

-- step: forget_previous_plan
-- Emptied, not deleted from: after a first load the last plan holds every account and order, whose dead rows the
-- next run deleted one by one, then scanned past (the orders of accounts changing hands: 0.5 s at 100,000 debtors).
TRUNCATE userdebtor.plan_order_account, userdebtor.plan_order_history;

-- step: codes_converted_away
-- An order staged before its account was converted (C1) still carries the old code; it belongs to the new one.
-- Only codes the ERP no longer has are followed, to the end of their chain of conversions.
CREATE TEMP TABLE _converted_code (old_code text PRIMARY KEY, new_code text NOT NULL) ON COMMIT DROP;

-- step: follow_conversions
INSERT INTO _converted_code (old_code, new_code)
WITH RECURSIVE conversion AS (
    SELECT conversion_seq, old_code, new_code
      FROM web.customer_conversion
     WHERE processed_at IS NOT NULL AND outcome IN ('converted', 'merged', 'skipped') AND old_code <> new_code
),
chain AS (
    SELECT old_code AS start_code, new_code AS code, conversion_seq AS seq, 1 AS depth FROM conversion
    UNION ALL
    SELECT c.start_code, n.new_code, n.conversion_seq, c.depth + 1
      FROM chain c JOIN conversion n ON n.old_code = c.code AND n.conversion_seq > c.seq
     WHERE c.depth < 100
),
final AS (
    SELECT DISTINCT ON (start_code) start_code, code
      FROM chain
     ORDER BY start_code, depth DESC, seq DESC
)
SELECT f.start_code, f.code
  FROM final f
 WHERE f.code <> f.start_code
   AND NOT EXISTS (SELECT 1 FROM userdebtor.erp_debtor d WHERE d.dr_cust_code = f.start_code);

-- step: accounts_to_look_at
-- The accounts a changed-since run looks at. A full reconcile looks at every account, straight from the tables
-- (state_of_accounts_looked_at).
CREATE TEMP TABLE _account_candidate (customer_code text PRIMARY KEY) ON COMMIT DROP;

-- step: accounts_changed_since_last_run
-- Accounts that may have changed since the last run.
INSERT INTO _account_candidate (customer_code)
-- newly integrated accounts (web rows staged since)
SELECT c.customer_code FROM userdebtor.web_customer c
 WHERE NOT CAST(:full_reconcile AS boolean) AND c.change_seq > :since
   AND c.is_debtor_customer AND c.customer_code <> :cash_account_code
   AND NOT EXISTS (SELECT 1 FROM userdebtor.order_account a WHERE a.customer_code = c.customer_code)
UNION
-- accounts no longer integrated, converted away or gone: of the web rows staged or gone since, and the links changed
SELECT a.customer_code
  FROM (SELECT c.customer_code FROM userdebtor.web_customer c WHERE c.change_seq > :since
        UNION
        SELECT g.customer_code FROM userdebtor.web_customer_gone g WHERE g.change_seq > :since
        UNION
        SELECT l.dr_cust_code FROM userdebtor.user_debtor_link l WHERE l.change_seq > :since) changed
  JOIN userdebtor.order_account a ON a.customer_code = changed.customer_code
 WHERE NOT CAST(:full_reconcile AS boolean)
   AND NOT EXISTS (SELECT 1 FROM userdebtor.web_customer c WHERE c.customer_code = a.customer_code AND c.is_debtor_customer)
   AND NOT EXISTS (SELECT 1 FROM userdebtor.user_debtor_link l WHERE l.dr_cust_code = a.customer_code AND l.state = 'active')
UNION
-- links made, suspended or converted
SELECT l.dr_cust_code FROM userdebtor.user_debtor_link l
 WHERE NOT CAST(:full_reconcile AS boolean) AND l.change_seq > :since
UNION
-- accounts that became a changed user's default account
SELECT u.default_customer_code FROM userdebtor.web_user u
 WHERE NOT CAST(:full_reconcile AS boolean) AND u.change_seq > :since AND u.default_customer_code IS NOT NULL
UNION
-- accounts a changed user no longer has as default: another user may now be the only one whose default it is
SELECT g.customer_code FROM userdebtor.web_user_default_left g
 WHERE NOT CAST(:full_reconcile AS boolean) AND g.change_seq > :since
UNION
-- accounts shown to a user who changed (a user deleted on the web is seen in a full reconcile)
SELECT a.customer_code FROM userdebtor.web_user u
  JOIN userdebtor.order_account a ON a.user_id = u.user_id
 WHERE NOT CAST(:full_reconcile AS boolean) AND u.change_seq > :since
ON CONFLICT DO NOTHING;

-- step: analyze_accounts_looked_at
ANALYZE _account_candidate;

-- step: where_account_orders_belong
-- Where each account's orders belong.
-- Shown: an integrated account (a web customer from the ERP) or one with an active user-debtor link, never the
-- cash account (its orders are shown one by one, by email: O2). The user: the link's, else the only user
-- whose default account it is.
-- One row an account (the steps that fill it look at each once); joined by hash, so without an index to keep up.
CREATE TEMP TABLE _account_state (customer_code text NOT NULL, shown boolean NOT NULL, user_id bigint) ON COMMIT DROP;

-- step: state_of_accounts_looked_at
-- A changed-since run looks each of its few accounts up; a full reconcile joins every account to the links, the
-- web customers and the accounts that are exactly one user's default, by hash (1.4 million accounts at a
-- million: 14 s to about 6 s).
INSERT INTO _account_state (customer_code, shown, user_id)
SELECT a.customer_code,
       a.customer_code <> :cash_account_code AND (a.link_user_id IS NOT NULL OR a.integrated),
       coalesce(a.link_user_id, a.only_user_id)
  FROM (SELECT k.customer_code, l.user_id AS link_user_id,
               EXISTS (SELECT 1 FROM userdebtor.web_customer c
                        WHERE c.customer_code = k.customer_code AND c.is_debtor_customer) AS integrated,
               (SELECT min(u.user_id) FROM userdebtor.web_user u
                 WHERE u.default_customer_code = k.customer_code HAVING count(*) = 1) AS only_user_id
          FROM _account_candidate k
          LEFT JOIN userdebtor.user_debtor_link l ON l.dr_cust_code = k.customer_code AND l.state = 'active'
         WHERE NOT CAST(:full_reconcile AS boolean)
        UNION ALL
        -- every account: integrated, linked or shown now (each table holds a code once), by full joins
        SELECT k.customer_code, k.link_user_id, k.integrated, only_user.user_id
          FROM (SELECT coalesce(c.customer_code, l.dr_cust_code, a.customer_code) AS customer_code,
                       l.user_id AS link_user_id, c.customer_code IS NOT NULL AS integrated
                  FROM (SELECT customer_code FROM userdebtor.web_customer WHERE is_debtor_customer) c
                  FULL JOIN (SELECT dr_cust_code, user_id FROM userdebtor.user_debtor_link WHERE state = 'active') l
                         ON l.dr_cust_code = c.customer_code
                  FULL JOIN userdebtor.order_account a ON a.customer_code = coalesce(c.customer_code, l.dr_cust_code)) k
          LEFT JOIN (SELECT u.default_customer_code, min(u.user_id) AS user_id FROM userdebtor.web_user u
                      WHERE u.default_customer_code IS NOT NULL
                      GROUP BY u.default_customer_code HAVING count(*) = 1) only_user
                 ON only_user.default_customer_code = k.customer_code
         WHERE CAST(:full_reconcile AS boolean)) a;

-- step: analyze_account_states
ANALYZE _account_state;

-- step: accounts_changing_hands
-- Accounts whose orders change hands.
INSERT INTO userdebtor.plan_order_account (customer_code, run_id, action, user_id, previous_user_id)
SELECT s.customer_code, :run_id,
       CASE WHEN NOT s.shown THEN 'remove' WHEN a.customer_code IS NULL THEN 'add' ELSE 'change_user' END,
       s.user_id, a.user_id
  FROM _account_state s
  LEFT JOIN userdebtor.order_account a ON a.customer_code = s.customer_code
 WHERE (s.shown AND (a.customer_code IS NULL OR a.user_id IS DISTINCT FROM s.user_id))
    OR (NOT s.shown AND a.customer_code IS NOT NULL);

-- step: orders_to_look_at
CREATE TEMP TABLE _order_candidate (order_no text PRIMARY KEY) ON COMMIT DROP;

-- step: orders_changed_since_last_run
-- Orders changed since the last run. A full reconcile reads every order of the ERP directly instead (below), not
-- through a copy of five million order numbers.
INSERT INTO _order_candidate (order_no)
SELECT so_order_no FROM userdebtor.erp_sales_order
 WHERE NOT CAST(:full_reconcile AS boolean) AND change_seq > :since;

-- step: orders_deleted_since_last_run
-- Orders the ERP deleted since the last run.
INSERT INTO _order_candidate (order_no)
SELECT so_order_no FROM userdebtor.erp_sales_order_gone
 WHERE NOT CAST(:full_reconcile AS boolean) AND change_seq > :since
ON CONFLICT DO NOTHING;

-- step: orders_of_accounts_changing_hands
INSERT INTO _order_candidate (order_no)
SELECT o.so_order_no
  FROM userdebtor.plan_order_account p
  JOIN userdebtor.erp_sales_order o ON o.so_cust_code = p.customer_code
 WHERE NOT CAST(:full_reconcile AS boolean)
UNION
SELECT o.so_order_no
  FROM userdebtor.plan_order_account p
  JOIN _converted_code cc ON cc.new_code = p.customer_code
  JOIN userdebtor.erp_sales_order o ON o.so_cust_code = cc.old_code
 WHERE NOT CAST(:full_reconcile AS boolean)
UNION
SELECT h.order_no
  FROM userdebtor.plan_order_account p
  JOIN web.order_history h ON h.customer_code = p.customer_code
 WHERE p.action = 'remove'
ON CONFLICT DO NOTHING;

-- step: in_store_orders_of_changed_users
-- In-store orders whose email is a new or changed user's.
-- Those of the user's email now, and those shown to the user under the email it had (a login change, A3).
INSERT INTO _order_candidate (order_no)
SELECT o.so_order_no
  FROM userdebtor.web_user u
  JOIN userdebtor.erp_sales_order o
    ON userdebtor.email_key(o.so_email) = userdebtor.email_key(u.email_address) AND o.so_email IS NOT NULL
 WHERE NOT CAST(:full_reconcile AS boolean) AND u.change_seq > :since
   AND o.so_cust_code = :cash_account_code
UNION
SELECT h.order_no
  FROM userdebtor.web_user u
  JOIN web.order_history h ON h.user_id = u.user_id
 WHERE NOT CAST(:full_reconcile AS boolean) AND u.change_seq > :since
   AND h.customer_code = :cash_account_code
ON CONFLICT DO NOTHING;

-- step: orders_passed_archive_days
-- Orders that passed archive_days since the last run.
INSERT INTO _order_candidate (order_no)
SELECT so_order_no FROM userdebtor.erp_sales_order
 WHERE NOT CAST(:full_reconcile AS boolean)
   AND so_order_date < CAST(:cutoff AS timestamptz)
   AND so_order_date >= coalesce(CAST(:previous_cutoff AS timestamptz), '-infinity'::timestamptz)
ON CONFLICT DO NOTHING;

-- step: analyze_orders_looked_at
ANALYZE _order_candidate;

-- step: orders_under_current_code
-- The orders looked at, under their current account code: the candidates, and in a full reconcile every order of
-- the ERP (with the candidates the ERP has not: those of accounts whose history is taken away).
CREATE TEMP TABLE _order_desired ON COMMIT DROP AS
SELECT k.order_no,
       o.so_order_no IS NOT NULL AS in_erp,
       coalesce(cc.new_code, o.so_cust_code) AS customer_code,
       o.so_order_date AS order_date, o.so_source AS source, o.so_order_status AS status,
       o.so_order_total AS total, nullif(btrim(o.so_email), '') AS so_email
  FROM _order_candidate k
  LEFT JOIN userdebtor.erp_sales_order o ON o.so_order_no = k.order_no
  LEFT JOIN _converted_code cc ON cc.old_code = o.so_cust_code
 WHERE NOT CAST(:full_reconcile AS boolean) OR o.so_order_no IS NULL
UNION ALL
SELECT o.so_order_no, true, coalesce(cc.new_code, o.so_cust_code),
       o.so_order_date, o.so_source, o.so_order_status, o.so_order_total, nullif(btrim(o.so_email), '')
  FROM userdebtor.erp_sales_order o
  LEFT JOIN _converted_code cc ON cc.old_code = o.so_cust_code
 WHERE CAST(:full_reconcile AS boolean);

-- step: analyze_orders_desired
ANALYZE _order_desired;

-- step: state_of_other_order_accounts
-- State of the orders' other accounts.
INSERT INTO _account_state (customer_code, shown, user_id)
SELECT k.customer_code,
       k.customer_code <> :cash_account_code
       AND (l.user_id IS NOT NULL
            OR EXISTS (SELECT 1 FROM userdebtor.web_customer c
                        WHERE c.customer_code = k.customer_code AND c.is_debtor_customer)),
       coalesce(l.user_id,
                (SELECT min(u.user_id) FROM userdebtor.web_user u
                  WHERE u.default_customer_code = k.customer_code HAVING count(*) = 1))
  FROM (SELECT DISTINCT d.customer_code FROM _order_desired d
         WHERE d.customer_code IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM _account_state s WHERE s.customer_code = d.customer_code)) k
  LEFT JOIN userdebtor.user_debtor_link l ON l.dr_cust_code = k.customer_code AND l.state = 'active';

-- step: in_store_order_owners
-- The user each in-store order's email belongs to.
-- A1: only a user who proved the address is shown an in-store order given with it.
CREATE TEMP TABLE _in_store_owner ON COMMIT DROP AS
SELECT d.order_no, count(*) FILTER (WHERE p.proven) AS users, min(u.user_id) FILTER (WHERE p.proven) AS user_id,
       min(u.user_id) FILTER (WHERE NOT p.proven) AS unproven_user_id, min(u.email_address) AS email_address
  FROM _order_desired d
  JOIN userdebtor.web_user u ON userdebtor.email_key(u.email_address) = userdebtor.email_key(d.so_email)
 CROSS JOIN LATERAL (SELECT userdebtor.address_proven(u.user_id, u.email_verified) AS proven) p
 WHERE d.customer_code = :cash_account_code AND d.source = 'POS' AND d.so_email IS NOT NULL
 GROUP BY d.order_no;

-- step: forget_previous_waits_for_proof
DELETE FROM userdebtor.plan_link_proof WHERE rule = 'O2';

-- step: in_store_orders_waiting_for_proof
-- In-store orders waiting for their user to prove the address.
INSERT INTO userdebtor.plan_link_proof (rule, user_id, customer_code, email_address)
SELECT DISTINCT 'O2', w.unproven_user_id, :cash_account_code, w.email_address
  FROM _in_store_owner w
  JOIN _order_desired d ON d.order_no = w.order_no
 WHERE w.users = 0 AND d.in_erp
ON CONFLICT DO NOTHING;

-- step: order_verdicts
-- The verdict on each order, beside the history's row of it. An order hidden that the history does not hold needs
-- nothing and is left out: most of a full reconcile's five million orders (a temporary table of all of them, then
-- two joins of it with the history: 10.8 s at a million; this and the steps below, 9.0 s).
CREATE TEMP TABLE _order_verdict ON COMMIT DROP AS
SELECT v.*, h.order_no IS NOT NULL AS in_history, h.customer_code AS shown_code, h.user_id AS shown_user_id,
       h.order_date AS shown_order_date, h.source AS shown_source, h.status AS shown_status, h.total AS shown_total
  FROM (
       SELECT d.*,
              CASE WHEN NOT d.in_erp THEN 'hide'
                   WHEN d.status = ANY(CAST(:hidden_statuses AS text[])) THEN 'hide'
                   WHEN d.order_date < CAST(:cutoff AS timestamptz) THEN 'hide'
                   WHEN d.customer_code = :cash_account_code THEN
                       CASE WHEN d.source <> 'POS' OR d.so_email IS NULL OR w.order_no IS NULL OR w.users = 0 THEN 'hide'
                            WHEN w.users > 1 THEN 'ambiguous'
                            ELSE 'show' END
                   WHEN s.shown THEN 'show'
                   ELSE 'hide' END AS verdict,
              CASE WHEN d.customer_code = :cash_account_code THEN w.user_id ELSE s.user_id END AS user_id,
              CASE WHEN NOT d.in_erp THEN 'gone from the ERP'
                   WHEN d.status = ANY(CAST(:hidden_statuses AS text[])) THEN 'status ' || d.status || ' is never shown online'
                   WHEN d.order_date < CAST(:cutoff AS timestamptz) THEN 'older than archive_days'
                   WHEN d.customer_code = :cash_account_code THEN
                       CASE WHEN d.source <> 'POS' THEN 'a cash-account order that is not in-store'
                            WHEN d.so_email IS NULL THEN 'an in-store order without an email'
                            WHEN w.order_no IS NULL THEN 'an in-store order whose email is no user''s'
                            WHEN w.users = 0 THEN 'an in-store order whose email''s user has not proven the address'
                            WHEN w.users > 1 THEN 'an in-store order whose email fits ' || w.users || ' users'
                            ELSE 'an in-store order with the email of this user' END
                   WHEN s.shown THEN 'an order of a linked or integrated account'
                   ELSE 'the account is neither linked nor integrated' END AS why
         FROM _order_desired d
         LEFT JOIN _account_state s ON s.customer_code = d.customer_code
         LEFT JOIN _in_store_owner w ON w.order_no = d.order_no
       ) v
  LEFT JOIN web.order_history h ON h.order_no = v.order_no
 WHERE v.verdict <> 'hide' OR h.order_no IS NOT NULL;

-- step: analyze_order_verdicts
ANALYZE _order_verdict;

-- step: orders_to_add_or_update
INSERT INTO userdebtor.plan_order_history (
    order_no, run_id, action, customer_code, user_id, order_date, source, status, total, why)
SELECT v.order_no, :run_id, CASE WHEN v.in_history THEN 'update' ELSE 'add' END,
       v.customer_code, v.user_id, v.order_date, v.source, v.status, v.total, v.why
  FROM _order_verdict v
 WHERE v.verdict = 'show'
   AND (NOT v.in_history
        OR (v.shown_code, v.shown_user_id, v.shown_order_date, v.shown_source, v.shown_status, v.shown_total)
           IS DISTINCT FROM (v.customer_code, v.user_id, v.order_date, v.source, v.status, v.total));

-- step: orders_to_take_away
INSERT INTO userdebtor.plan_order_history (
    order_no, run_id, action, customer_code, user_id, order_date, source, status, total, why)
SELECT v.order_no, :run_id, 'remove', v.shown_code, v.shown_user_id, v.shown_order_date, v.shown_source,
       v.shown_status, v.shown_total, v.why
  FROM _order_verdict v
 WHERE v.verdict = 'hide';

-- step: in_store_orders_ambiguous
-- In-store orders left alone because their email fits several users.
INSERT INTO userdebtor.plan_order_history (
    order_no, run_id, action, customer_code, user_id, order_date, source, status, total, why)
SELECT v.order_no, :run_id, 'ambiguous', v.customer_code, NULL, v.order_date, v.source, v.status, v.total, v.why
  FROM _order_verdict v
 WHERE v.verdict = 'ambiguous';

-- step: orders_deleted_in_full_reconcile
-- Orders the ERP deleted, in a full reconcile: whatever the history holds that the ERP has not.
INSERT INTO userdebtor.plan_order_history (
    order_no, run_id, action, customer_code, user_id, order_date, source, status, total, why)
SELECT h.order_no, :run_id, 'remove', h.customer_code, h.user_id, h.order_date, h.source, h.status, h.total,
       'gone from the ERP'
  FROM web.order_history h
 WHERE CAST(:full_reconcile AS boolean)
   AND NOT EXISTS (SELECT 1 FROM userdebtor.erp_sales_order o WHERE o.so_order_no = h.order_no)
ON CONFLICT (order_no) DO NOTHING;
