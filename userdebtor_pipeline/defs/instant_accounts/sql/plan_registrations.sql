-- Decides every pending web.registration_request (I1): approve it with its qualifying accounts, or reject it with a reason in words.
-- Parameters: run_id, cash_account_code, excluded_codes (text[]), email_pattern, reason_kinds / reason_texts (text[]).

-- step: forget_previous_plan
DELETE FROM userdebtor.plan_registration;

-- step: decide_requests
-- Decide each pending request.
INSERT INTO userdebtor.plan_registration (
    request_id, run_id, email_address, account_code, decision, reason_kind, reason, qualifying_codes,
    default_code, existing_user_id, contact_name)
WITH pending AS (
    SELECT r.request_id,
           r.email_address,
           userdebtor.email_key(r.email_address) AS email_key,
           nullif(btrim(r.account_code), '') AS named_code,
           btrim(r.email_address) ~ CAST(:email_pattern AS text) AS well_formed
      FROM web.registration_request r
     WHERE r.status = 'pending'
),
-- Each account that lists the email, and whether it may carry an instant account.
listed AS (
    SELECT DISTINCT p.request_id, ea.dr_cust_code,
           CASE WHEN d.dr_cust_code IS NULL THEN 'missing'        -- a contact acting for a debtor the ERP no longer has
                WHEN d.dr_cust_code = CAST(:cash_account_code AS text) THEN 'cash'
                WHEN d.dr_cust_code = ANY(CAST(:excluded_codes AS text[])) THEN 'excluded'
                WHEN d.dr_account_status = 'C' THEN 'closed'
                ELSE 'qualifies' END AS verdict
      FROM pending p
      -- one index lookup per request, whatever the size of the ERP (OFFSET 0 keeps it per request)
      CROSS JOIN LATERAL (SELECT e.dr_cust_code FROM userdebtor.email_account e
                           WHERE e.email_key = p.email_key OFFSET 0) ea
      LEFT JOIN userdebtor.erp_debtor d ON d.dr_cust_code = ea.dr_cust_code
     WHERE p.well_formed
),
per_request AS (
    SELECT request_id,
           array_agg(dr_cust_code ORDER BY dr_cust_code) FILTER (WHERE verdict = 'qualifies') AS qualifying,
           bool_or(verdict <> 'missing') AS any_account,
           bool_or(verdict = 'closed') AS any_closed,
           bool_or(verdict = 'excluded') AS any_excluded
      FROM listed
     GROUP BY request_id
),
decided AS (
    SELECT p.request_id, p.email_address, p.email_key, p.named_code, s.qualifying,
           CASE WHEN NOT p.well_formed THEN 'malformed_email'
                WHEN NOT coalesce(s.any_account, false) THEN 'no_account'
                WHEN s.qualifying IS NULL AND s.any_closed THEN 'account_closed'
                WHEN s.qualifying IS NULL AND s.any_excluded THEN 'account_excluded'
                WHEN s.qualifying IS NULL THEN 'only_cash_account'
                WHEN p.named_code IS NULL THEN 'approved'
                WHEN named.verdict = 'qualifies' THEN 'approved'
                WHEN named.verdict = 'cash' THEN 'named_cash_account'
                WHEN named.verdict = 'excluded' THEN 'named_account_excluded'
                WHEN named.verdict = 'closed' THEN 'named_account_closed'
                ELSE 'named_account_not_yours' END AS reason_kind
      FROM pending p
      LEFT JOIN per_request s ON s.request_id = p.request_id
      LEFT JOIN LATERAL (
            -- the account the request names, written in any letter case
            SELECT l.verdict FROM listed l
             WHERE l.request_id = p.request_id AND upper(l.dr_cust_code) = upper(p.named_code)
             ORDER BY l.verdict = 'qualifies' DESC
             LIMIT 1) named ON true
),
reason_text AS (
    SELECT kind, text FROM unnest(CAST(:reason_kinds AS text[]), CAST(:reason_texts AS text[])) AS t(kind, text)
)
SELECT d.request_id,
       CAST(:run_id AS text),
       d.email_address,
       d.named_code,
       CASE WHEN d.reason_kind = 'approved' THEN 'approve' ELSE 'reject' END,
       d.reason_kind,
       replace(replace(replace(coalesce(t.text, d.reason_kind),
               '{email}', d.email_address),
               '{account}', coalesce(d.named_code, '')),
               '{accounts}', coalesce(array_to_string(d.qualifying, ', '), '')),
       CASE WHEN d.reason_kind = 'approved' THEN d.qualifying ELSE '{}' END,
       CASE WHEN d.reason_kind = 'approved' THEN d.qualifying[1] END,
       -- The user of the address: the live table by its case-insensitive unique index, else the mirror (A2).
       coalesce((SELECT min(u.user_id) FROM web.app_user u WHERE lower(u.email_address) = d.email_key),
                (SELECT min(w.user_id) FROM userdebtor.web_user w WHERE userdebtor.email_key(w.email_address) = d.email_key)),
       (SELECT nullif(btrim(concat_ws(' ', c.contact_first_name, c.contact_surname)), '')
          FROM userdebtor.erp_contact c
         WHERE userdebtor.email_key(c.contact_email) = d.email_key AND c.contact_active
         ORDER BY c.contact_id LIMIT 1)
  FROM decided d
  LEFT JOIN reason_text t ON t.kind = d.reason_kind;
