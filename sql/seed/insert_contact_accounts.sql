-- Every contact acts for one account; `c % 50 = 7` act for 2 to 4 (a bookkeeper, a franchise manager).
INSERT INTO erp.crm_contact_account (contact_id, dr_cust_code)
SELECT c, 'C' || (:first_number + pg_temp.seed_int(:seed, c * 8 + k, 46) % :debtors)
FROM generate_series(1, :contacts) AS c
CROSS JOIN LATERAL generate_series(0, CASE WHEN c % 50 = 7 THEN 1 + c / 50 % 3 ELSE 0 END) AS k
ON CONFLICT DO NOTHING;
