-- 0 to 4 saved products per B2B user; a step of 37 through a pool of 300 never repeats a product.
INSERT INTO web.favourite (user_id, customer_code, product_code)
SELECT a.user_id, a.default_customer_code,
       (CAST(:products AS text[]))[1 + (pg_temp.seed_int(:seed, a.user_id, 70) + k * 37)
                                       % cardinality(CAST(:products AS text[]))]
FROM web.app_user AS a
CROSS JOIN LATERAL generate_series(1, pg_temp.seed_int(:seed, a.user_id, 71) % 5) AS k
WHERE a.role = 'B2B' AND a.default_customer_code IS NOT NULL;
