-- Upserts web.customer rows mirroring the staged ERP debtors named by :codes, or listed by the M3 plan (U1/U2/I1, M3).
-- The website's own flags (auto_part_registration) are kept; a closed account shows as Inactive.
WITH target AS (
    -- the codes a caller names (U1, U2, I1: a few accounts at a time) ...
    SELECT unnest(CAST(:codes AS text[])) AS customer_code
     UNION
    -- ... or, with :from_m3_plan, every account the M3 plan creates or refreshes, however many
    SELECT p.customer_code FROM userdebtor.plan_customer_mirror p
     WHERE CAST(:from_m3_plan AS boolean) AND p.action IN ('create', 'refresh')
), mirrored AS (
    -- each target's web.customer row as the ERP has it, under the web's column names
    SELECT d.dr_cust_code AS customer_code, d.dr_cust_name AS name, d.dr_email AS order_email_address,
           d.dr_addr_1 AS address1, d.dr_addr_2 AS address2, d.dr_addr_3 AS address3, d.dr_addr_4 AS address4,
           d.dr_addr_5 AS address5, d.dr_addr_6 AS address6, d.dr_postcode AS postcode, d.dr_phone AS phone_number,
           d.dr_abn AS abn, d.dr_industry_code AS industry_code,
           CASE WHEN d.dr_account_status = 'C' THEN 'Inactive' ELSE 'Active' END AS status,
           true AS is_debtor_customer, d.dr_cust_code = :cash_account_code AS is_cash_account
      FROM userdebtor.erp_debtor d
      JOIN target t ON t.customer_code = d.dr_cust_code
)
INSERT INTO web.customer AS c (
    customer_code, name, order_email_address, address1, address2, address3, address4, address5, address6,
    postcode, phone_number, abn, industry_code, status, is_debtor_customer, is_cash_account, updated_at)
SELECT m.customer_code, m.name, m.order_email_address, m.address1, m.address2, m.address3, m.address4,
       m.address5, m.address6, m.postcode, m.phone_number, m.abn, m.industry_code, m.status,
       m.is_debtor_customer, m.is_cash_account, now()
  FROM mirrored m
 -- A row already as the ERP has it is left out before the upsert, which would otherwise lock and WAL-log each one
 -- (a full reconcile lists every kept account: 1.4 million at a million debtors).
 WHERE NOT EXISTS (
       SELECT 1 FROM web.customer w
        WHERE w.customer_code = m.customer_code
          AND (w.name, w.order_email_address, w.address1, w.address2, w.address3, w.address4, w.address5,
               w.address6, w.postcode, w.phone_number, w.abn, w.industry_code, w.status, w.is_debtor_customer,
               w.is_cash_account)
              IS NOT DISTINCT FROM
              (m.name, m.order_email_address, m.address1, m.address2, m.address3, m.address4, m.address5,
               m.address6, m.postcode, m.phone_number, m.abn, m.industry_code, m.status, m.is_debtor_customer,
               m.is_cash_account))
ON CONFLICT (customer_code) DO UPDATE SET
    name = excluded.name, order_email_address = excluded.order_email_address,
    address1 = excluded.address1, address2 = excluded.address2, address3 = excluded.address3,
    address4 = excluded.address4, address5 = excluded.address5, address6 = excluded.address6,
    postcode = excluded.postcode, phone_number = excluded.phone_number, abn = excluded.abn,
    industry_code = excluded.industry_code, status = excluded.status, is_debtor_customer = true,
    is_cash_account = excluded.is_cash_account, updated_at = now()
 WHERE (c.name, c.order_email_address, c.address1, c.address2, c.address3, c.address4, c.address5, c.address6,
        c.postcode, c.phone_number, c.abn, c.industry_code, c.status, c.is_debtor_customer, c.is_cash_account)
       IS DISTINCT FROM
       (excluded.name, excluded.order_email_address, excluded.address1, excluded.address2, excluded.address3,
        excluded.address4, excluded.address5, excluded.address6, excluded.postcode, excluded.phone_number,
        excluded.abn, excluded.industry_code, excluded.status, excluded.is_debtor_customer, excluded.is_cash_account)
