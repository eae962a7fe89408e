-- A merge when the new code is an account the ERP already has.
INSERT INTO seed_code_change
SELECT old_code, new_code, converted_at,
       EXISTS (SELECT 1 FROM erp.deb_master AS d WHERE d.dr_cust_code = new_code)
FROM unnest(CAST(:olds AS text[]), CAST(:news AS text[]), CAST(:ats AS timestamptz[]))
     AS m (old_code, new_code, converted_at);
