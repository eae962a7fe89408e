-- Applies this run's order history plan (O1, O2) to web.order_history and moves the order state with it, in the caller's one transaction.
-- Parameters: run_id. Every step is safe to repeat: a rerun finds nothing left to do.

-- step: orders_removed
-- Take away hidden, archived, unlinked and deleted orders.
DELETE FROM web.order_history h
 USING userdebtor.plan_order_history p
 WHERE p.order_no = h.order_no AND p.run_id = :run_id AND p.action = 'remove';

-- step: orders_written
-- Add and update orders.
INSERT INTO web.order_history AS h (order_no, customer_code, user_id, order_date, source, status, total, updated_at)
SELECT p.order_no, p.customer_code, p.user_id, p.order_date, p.source, p.status, p.total, now()
  FROM userdebtor.plan_order_history p
 WHERE p.run_id = :run_id AND p.action IN ('add', 'update')
ON CONFLICT (order_no) DO UPDATE
   SET customer_code = excluded.customer_code, user_id = excluded.user_id, order_date = excluded.order_date,
       source = excluded.source, status = excluded.status, total = excluded.total, updated_at = now()
 WHERE (h.customer_code, h.user_id, h.order_date, h.source, h.status, h.total)
       IS DISTINCT FROM
       (excluded.customer_code, excluded.user_id, excluded.order_date, excluded.source, excluded.status, excluded.total);

-- step: accounts_shown
-- Accounts whose orders are shown, and to whom.
INSERT INTO userdebtor.order_account AS a (customer_code, user_id, updated_at)
SELECT p.customer_code, p.user_id, now()
  FROM userdebtor.plan_order_account p
 WHERE p.run_id = :run_id AND p.action IN ('add', 'change_user')
ON CONFLICT (customer_code) DO UPDATE SET user_id = excluded.user_id, updated_at = now();

-- step: accounts_no_longer_shown
DELETE FROM userdebtor.order_account a
 USING userdebtor.plan_order_account p
 WHERE p.customer_code = a.customer_code AND p.run_id = :run_id AND p.action = 'remove';

-- step: history_watermark
-- Remember the archive cut-off and the settings the history was made with.
INSERT INTO userdebtor.watermark (name, value, note, updated_at)
SELECT 'order_history', r.cutoff, r.settings_digest, now()
  FROM userdebtor.plan_order_history_run r
 WHERE r.run_id = :run_id
ON CONFLICT (name) DO UPDATE SET value = excluded.value, note = excluded.note, updated_at = now();
