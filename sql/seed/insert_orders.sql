-- 55% web, 20% phone, 25% in store; 60% of in-store sales go to the cash account. Of those, 40% gave
-- no e-mail, 20% a web user's (sometimes typed in another case), 40% one that no user has.
-- Orders older than 30 days are mostly invoiced (70); recent ones are at any stage.
INSERT INTO erp.sales_order (so_order_no, so_cust_code, so_order_date, so_order_status, so_source, so_email,
                             so_order_total, so_date_stamp)
SELECT 'SO' || lpad(o::text, greatest(7, length(o::text)), '0'),
    CASE WHEN on_cash_account THEN CAST(:cash_code AS text)
         ELSE 'C' || (:first_number + pg_temp.seed_int(:seed, o, 81) % :debtors) END,
    order_date,
    CASE WHEN order_date >= CAST(:as_of AS timestamptz) - interval '30 days'
             THEN pg_temp.seed_pick(CAST(:recent_statuses AS text[]), :seed, o, 82)
         WHEN status_draw < 0.85 THEN '70' WHEN status_draw < 0.95 THEN '60' ELSE '61' END,
    source,
    CASE WHEN NOT on_cash_account OR email_draw < 0.4 THEN NULL
         WHEN email_draw < 0.6 THEN (
             SELECT CASE WHEN o % 4 = 0 THEN initcap(e.email) ELSE e.email END
             FROM seed_user_email AS e
             WHERE e.n = 1 + pg_temp.seed_int(:seed, o, 83) % NULLIF(:user_emails, 0))
         ELSE 'walkin' || o || '@instore.example' END,
    round((5 + 1995 * total_draw * total_draw)::numeric, 2),
    least(CAST(:as_of AS timestamptz),
          order_date + date_trunc('second', interval '14 days' * pg_temp.seed_frac(:seed, o, 84)))
FROM (
    SELECT o, source, status_draw, email_draw, total_draw, order_date,
        source = 'POS' AND pg_temp.seed_frac(:seed, o, 85) < 0.6 AS on_cash_account
    FROM (
        SELECT o,
            CASE WHEN source_draw < 0.55 THEN 'WEB' WHEN source_draw < 0.75 THEN 'PHONE' ELSE 'POS' END AS source,
            pg_temp.seed_frac(:seed, o, 86) AS status_draw,
            pg_temp.seed_frac(:seed, o, 87) AS email_draw,
            pg_temp.seed_frac(:seed, o, 88) AS total_draw,
            date_trunc('second', CAST(:as_of AS timestamptz) - interval '1 hour'
                - interval '729 days' * pg_temp.seed_frac(:seed, o, 89)) AS order_date
        FROM generate_series(1, :orders) AS o
        CROSS JOIN LATERAL (SELECT pg_temp.seed_frac(:seed, o, 80) AS source_draw) AS draw
        OFFSET 0
    ) AS drawn
    OFFSET 0
) AS sales_order;
