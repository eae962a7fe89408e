-- Each B2B user acts for their account; one in twenty also for a second one.
INSERT INTO web.user_customer (user_id, customer_code, initial_role, hide_in_account_select)
SELECT user_id, default_customer_code, 'B2B', false
FROM web.app_user WHERE role = 'B2B' AND default_customer_code IS NOT NULL
UNION ALL
SELECT a.user_id, t.code, 'B2B', a.user_id % 3 = 0
FROM web.app_user AS a
JOIN seed_trade_account AS t ON t.n = 1 + pg_temp.seed_int(:seed, a.user_id, 69) % NULLIF(:trade_accounts, 0)
WHERE a.role = 'B2B' AND a.default_customer_code IS NOT NULL AND a.user_id % 20 = 0
ON CONFLICT DO NOTHING;
