-- Applies one wave of pending conversions set-based (C1-C4): rows that name no code an earlier pending row names,
-- so applying them together is the same as applying them one by one in conversion_seq order. Each row is decided,
-- applied and stamped with its own outcome in the caller's transaction; the temp tables go at its commit.

-- step: wave_picked
-- The first pending row to name a code joins this wave; a later row naming it waits for a later wave, so a chain
-- (A to B, B to C) and a swap back (A to B, B to A) apply in order (C4). Locked: each row is processed once (C1);
-- rows a wave being applied beside this one holds are skipped, and rows naming their codes wait (still pending).
CREATE TEMP TABLE conversion_wave ON COMMIT DROP AS
WITH pending AS (
    SELECT conversion_seq, old_code, new_code FROM web.customer_conversion WHERE processed_at IS NULL),
named AS (
    SELECT conversion_seq, old_code AS code FROM pending
    UNION ALL SELECT conversion_seq, new_code FROM pending),
first_to_name AS (  -- a window, not a join back: the planner cannot misjudge it into comparing every pair
    SELECT conversion_seq, min(conversion_seq) OVER (PARTITION BY code) AS first_seq FROM named),
waiting AS (
    SELECT conversion_seq FROM first_to_name WHERE first_seq < conversion_seq)
SELECT c.conversion_seq, c.old_code, c.new_code, NULL::text AS outcome, NULL::text AS detail
  FROM web.customer_conversion c
 WHERE c.processed_at IS NULL AND c.conversion_seq NOT IN (SELECT conversion_seq FROM waiting)
 ORDER BY c.conversion_seq
 LIMIT :wave_size
   FOR UPDATE OF c SKIP LOCKED

-- step: malformed_rows_failed
-- C4: an empty code, spaces around one or anything but a debtor code fails the row alone; the old code speaks first.
UPDATE conversion_wave w
   SET outcome = 'failed', detail = format('the row''s %s code is %s, so nothing was converted', p.side, p.problem)
  FROM (SELECT DISTINCT ON (v.conversion_seq) v.conversion_seq, v.side,
               CASE WHEN v.code ~ '^\s*$' THEN 'an empty code'
                    WHEN v.code ~ '^\s|\s$' THEN format('the code %L, with spaces around it', v.code)
                    ELSE format('the code %L, which is not a debtor code', v.code) END AS problem
          FROM conversion_wave r,
               LATERAL (VALUES (1, r.conversion_seq, 'old', r.old_code), (2, r.conversion_seq, 'new', r.new_code))
                    AS v(ordinal, conversion_seq, side, code)
         WHERE v.code !~ '^[A-Za-z0-9_./-]{1,40}$'
         ORDER BY v.conversion_seq, v.ordinal) p
 WHERE w.conversion_seq = p.conversion_seq

-- step: same_code_rows_failed
UPDATE conversion_wave
   SET outcome = 'failed', detail = format('the row names %s twice: a code cannot be converted into itself', old_code)
 WHERE outcome IS NULL AND old_code = new_code

-- step: codes_held
-- The wave's codes that the web or the pipeline's links hold now: an old code held nowhere is skipped (C4), a
-- new code held already is a merge (C3).
CREATE TEMP TABLE conversion_code_held ON COMMIT DROP AS
SELECT code
  FROM (SELECT old_code FROM conversion_wave WHERE outcome IS NULL
        UNION SELECT new_code FROM conversion_wave WHERE outcome IS NULL) AS named(code)
 WHERE EXISTS (SELECT 1 FROM web.customer WHERE customer_code = named.code)
    OR EXISTS (SELECT 1 FROM web.app_user WHERE default_customer_code = named.code)
    OR EXISTS (SELECT 1 FROM web.user_customer WHERE customer_code = named.code)
    OR EXISTS (SELECT 1 FROM web.favourite WHERE customer_code = named.code)
    OR EXISTS (SELECT 1 FROM web.order_history WHERE customer_code = named.code)
    OR EXISTS (SELECT 1 FROM userdebtor.user_debtor_link WHERE dr_cust_code = named.code)
    OR EXISTS (SELECT 1 FROM userdebtor.contact_link WHERE customer_code = named.code)

-- step: absent_rows_skipped
UPDATE conversion_wave
   SET outcome = 'skipped', detail = format('%s is not on the web, so there is nothing to convert', old_code)
 WHERE outcome IS NULL AND old_code NOT IN (SELECT code FROM conversion_code_held)

-- step: rows_merged
UPDATE conversion_wave SET outcome = 'merged'
 WHERE outcome IS NULL AND new_code IN (SELECT code FROM conversion_code_held)

-- step: rows_converted
UPDATE conversion_wave SET outcome = 'converted' WHERE outcome IS NULL

-- step: touches_kept
-- What each row changed, step by step, for its own detail.
CREATE TEMP TABLE conversion_touch (conversion_seq bigint, ordinal int, step text) ON COMMIT DROP

-- step: customer_merged
-- C2/C3: on a merge the surviving account's row stays and the old one goes; otherwise the row is renamed.
WITH done AS (
    DELETE FROM web.customer c USING conversion_wave w
     WHERE c.customer_code = w.old_code AND w.outcome = 'merged' RETURNING w.conversion_seq)
INSERT INTO conversion_touch SELECT conversion_seq, 1, 'customer merged' FROM done

-- step: customer_renamed
WITH done AS (
    UPDATE web.customer c SET customer_code = w.new_code, updated_at = now() FROM conversion_wave w
     WHERE c.customer_code = w.old_code AND w.outcome = 'converted' RETURNING w.conversion_seq)
INSERT INTO conversion_touch SELECT conversion_seq, 2, 'customer renamed' FROM done

-- step: user_default_account
-- Stamped as every web write is (U4), so that the website and the next staging see the change.
WITH done AS (
    UPDATE web.app_user u SET default_customer_code = w.new_code, updated_at = now() FROM conversion_wave w
     WHERE u.default_customer_code = w.old_code AND w.outcome IN ('converted', 'merged') RETURNING w.conversion_seq)
INSERT INTO conversion_touch SELECT conversion_seq, 3, 'user default account' FROM done

-- step: user_accounts_added
WITH done AS (
    INSERT INTO web.user_customer (user_id, customer_code, initial_role, hide_in_account_select)
    SELECT a.user_id, w.new_code, a.initial_role, a.hide_in_account_select
      FROM web.user_customer a JOIN conversion_wave w ON a.customer_code = w.old_code
     WHERE w.outcome IN ('converted', 'merged')
    ON CONFLICT (user_id, customer_code) DO NOTHING RETURNING customer_code)
INSERT INTO conversion_touch
SELECT w.conversion_seq, 4, 'user accounts added' FROM done JOIN conversion_wave w ON w.new_code = done.customer_code

-- step: user_accounts_removed
WITH done AS (
    DELETE FROM web.user_customer a USING conversion_wave w
     WHERE a.customer_code = w.old_code AND w.outcome IN ('converted', 'merged') RETURNING w.conversion_seq)
INSERT INTO conversion_touch SELECT conversion_seq, 5, 'user accounts removed' FROM done

-- step: favourites_added
WITH done AS (
    INSERT INTO web.favourite (user_id, customer_code, product_code)
    SELECT f.user_id, w.new_code, f.product_code
      FROM web.favourite f JOIN conversion_wave w ON f.customer_code = w.old_code
     WHERE w.outcome IN ('converted', 'merged')
    ON CONFLICT (user_id, customer_code, product_code) DO NOTHING RETURNING customer_code)
INSERT INTO conversion_touch
SELECT w.conversion_seq, 6, 'favourites added' FROM done JOIN conversion_wave w ON w.new_code = done.customer_code

-- step: favourites_removed
WITH done AS (
    DELETE FROM web.favourite f USING conversion_wave w
     WHERE f.customer_code = w.old_code AND w.outcome IN ('converted', 'merged') RETURNING w.conversion_seq)
INSERT INTO conversion_touch SELECT conversion_seq, 7, 'favourites removed' FROM done

-- step: order_history
WITH done AS (
    UPDATE web.order_history o SET customer_code = w.new_code, updated_at = now() FROM conversion_wave w
     WHERE o.customer_code = w.old_code AND w.outcome IN ('converted', 'merged') RETURNING w.conversion_seq)
INSERT INTO conversion_touch SELECT conversion_seq, 8, 'order history' FROM done

-- step: registration_requests
WITH done AS (
    UPDATE web.registration_request r SET account_code = w.new_code FROM conversion_wave w
     WHERE r.account_code = w.old_code AND r.status = 'pending' AND w.outcome IN ('converted', 'merged')
    RETURNING w.conversion_seq)
INSERT INTO conversion_touch SELECT conversion_seq, 9, 'registration requests' FROM done

-- step: link_merged_away
-- A debtor holds one link: when both codes had one, the surviving account keeps its own.
WITH done AS (
    DELETE FROM userdebtor.user_debtor_link l USING conversion_wave w
     WHERE l.dr_cust_code = w.old_code AND w.outcome IN ('converted', 'merged')
       AND EXISTS (SELECT 1 FROM userdebtor.user_debtor_link k WHERE k.dr_cust_code = w.new_code)
    RETURNING w.conversion_seq)
INSERT INTO conversion_touch SELECT conversion_seq, 10, 'link merged away' FROM done

-- step: link_renamed
WITH done AS (
    UPDATE userdebtor.user_debtor_link l
       SET dr_cust_code = w.new_code, updated_at = now(), change_seq = nextval('userdebtor.change_seq')
      FROM conversion_wave w
     WHERE l.dr_cust_code = w.old_code AND w.outcome IN ('converted', 'merged') RETURNING w.conversion_seq)
INSERT INTO conversion_touch SELECT conversion_seq, 11, 'link renamed' FROM done

-- step: contact_links_added
WITH done AS (
    INSERT INTO userdebtor.contact_link (user_id, customer_code, email, created_at)
    SELECT l.user_id, w.new_code, l.email, l.created_at
      FROM userdebtor.contact_link l JOIN conversion_wave w ON l.customer_code = w.old_code
     WHERE w.outcome IN ('converted', 'merged')
    ON CONFLICT (user_id, customer_code) DO NOTHING RETURNING customer_code)
INSERT INTO conversion_touch
SELECT w.conversion_seq, 12, 'contact links added' FROM done JOIN conversion_wave w ON w.new_code = done.customer_code

-- step: contact_links_removed
WITH done AS (
    DELETE FROM userdebtor.contact_link l USING conversion_wave w
     WHERE l.customer_code = w.old_code AND w.outcome IN ('converted', 'merged') RETURNING w.conversion_seq)
INSERT INTO conversion_touch SELECT conversion_seq, 13, 'contact links removed' FROM done

-- step: reservations
WITH done AS (
    UPDATE userdebtor.debtor_reservation r SET dr_cust_code = w.new_code FROM conversion_wave w
     WHERE r.dr_cust_code = w.old_code AND w.outcome IN ('converted', 'merged')
       AND NOT EXISTS (SELECT 1 FROM userdebtor.debtor_reservation k WHERE k.dr_cust_code = w.new_code)
    RETURNING w.conversion_seq)
INSERT INTO conversion_touch SELECT conversion_seq, 14, 'reservations' FROM done

-- step: conflicts
WITH done AS (
    UPDATE userdebtor.conflict c SET dr_cust_code = w.new_code FROM conversion_wave w
     WHERE c.dr_cust_code = w.old_code AND w.outcome IN ('converted', 'merged') RETURNING w.conversion_seq)
INSERT INTO conversion_touch SELECT conversion_seq, 15, 'conflicts' FROM done

-- step: staged_customers
-- The staged web users are left as they are: staged_web_users reads the converted users after the conversions
-- (their updated_at moved) and records the codes they left. Renaming them here too wrote each row, and its five
-- indexes, twice: about a quarter of a wave's time.
WITH done AS (
    DELETE FROM userdebtor.web_customer c USING conversion_wave w
     WHERE c.customer_code = w.old_code AND w.outcome IN ('converted', 'merged') RETURNING w.conversion_seq)
INSERT INTO conversion_touch SELECT conversion_seq, 17, 'staged customers' FROM done

-- step: rows_stamped
-- Each row with its own outcome and, for an applied row, what it changed (C1).
UPDATE web.customer_conversion c
   SET processed_at = now(), outcome = w.outcome,
       detail = coalesce(w.detail, format('%s %s %s: %s', w.old_code,
                CASE w.outcome WHEN 'merged' THEN 'merged into the existing account' ELSE 'renamed' END,
                w.new_code, coalesce(t.touched, 'no rows')))
  FROM conversion_wave w
  LEFT JOIN (SELECT conversion_seq, string_agg(step || ' ' || changed, ', ' ORDER BY ordinal) AS touched
               FROM (SELECT conversion_seq, ordinal, step, count(*) AS changed
                       FROM conversion_touch GROUP BY conversion_seq, ordinal, step) AS per_step
              GROUP BY conversion_seq) AS t USING (conversion_seq)
 WHERE c.conversion_seq = w.conversion_seq
