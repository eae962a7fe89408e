-- Lists the instant-account users not linked yet whose address is proven now (I1 after A1), with the accounts that qualify now (as plan_registrations.sql qualifies them).
SELECT i.user_id, array_agg(DISTINCT d.dr_cust_code ORDER BY d.dr_cust_code) AS codes
  FROM userdebtor.instant_account_user i
  JOIN web.app_user u ON u.user_id = i.user_id
  -- one index lookup per user (OFFSET 0 keeps it per user): joined whole, the view was read whole every run
  CROSS JOIN LATERAL (SELECT e.dr_cust_code FROM userdebtor.email_account e
                       WHERE e.email_key = userdebtor.email_key(u.email_address) OFFSET 0) ea
  JOIN userdebtor.erp_debtor d ON d.dr_cust_code = ea.dr_cust_code
 WHERE i.linked_at IS NULL
   AND u.email_verified
   AND u.status <> 'Deactivated'
   AND d.dr_cust_code <> CAST(:cash_account_code AS text)
   AND NOT d.dr_cust_code = ANY(CAST(:excluded_codes AS text[]))
   AND d.dr_account_status <> 'C'
 GROUP BY i.user_id
 ORDER BY i.user_id
