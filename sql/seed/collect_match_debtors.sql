-- In-scope debtors whose e-mail is well formed and theirs alone: a B2C user with that e-mail will be
-- linked by the sync instead of getting a debtor of their own.
INSERT INTO seed_match_debtor
SELECT row_number() OVER (ORDER BY pg_temp.seed_int(:seed, substr(dr_cust_code, 2)::bigint, 50), dr_cust_code),
       dr_email, dr_cust_name
FROM erp.deb_master AS d
WHERE dr_cust_type = CAST(:master_type AS text) AND dr_account_status = 'A' AND dr_cust_code ~ '^C[0-9]+$'
  AND dr_email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'
  AND NOT EXISTS (SELECT 1 FROM erp.deb_master AS o
                  WHERE lower(o.dr_email) = lower(d.dr_email) AND o.dr_cust_code <> d.dr_cust_code)
ORDER BY 1
LIMIT :wanted;
