-- User numbers u = 1..n; the share of each kind is set by `u % 100` (see _MATCH_FIRST).
-- The local part of every generated e-mail ends in '.<u>' (or is a debtor's, which never does), so
-- no two users share an e-mail, in any case.
INSERT INTO web.app_user (user_id, email_address, name, phone_number, address1, address2, address3, postcode,
                          role, default_customer_code, status, email_verified, created_at, updated_at,
                          last_login_at, last_verified_at)
SELECT u,
    CASE kind
        WHEN 'match' THEN lower(match_email)
        WHEN 'malformed' THEN CASE u / 100 % 3
            WHEN 0 THEN email_first || ' ' || email_surname || '.' || u || '@' || email_domain
            WHEN 1 THEN email_first || email_surname || '.' || u || '@localhost'
            ELSE email_first || email_surname || '.' || u || '.' || email_domain END
        WHEN 'b2b' THEN email_first || email_surname || '.' || u || '@' || coalesce(work_domain, email_domain)
        ELSE email_first || email_surname || '.' || u || '@' || email_domain
    END,
    coalesce(match_name, first_name || ' ' || surname),
    pg_temp.seed_mobile(pg_temp.seed_int(:seed, u, 64)),
    CASE WHEN kind <> 'b2b' AND u % 9 <> 0 THEN (1 + u % 180) || ' ' || street END,
    CASE WHEN kind <> 'b2b' AND u % 9 <> 0 THEN (CAST(:suburbs AS text[]))[suburb_no] END,
    CASE WHEN kind <> 'b2b' AND u % 9 <> 0 THEN (CAST(:states AS text[]))[suburb_no] END,
    CASE WHEN kind <> 'b2b' AND u % 9 <> 0 THEN (CAST(:postcodes AS text[]))[suburb_no] END,
    CASE kind WHEN 'b2b' THEN 'B2B' ELSE 'B2C' END,
    trade_code,
    CASE WHEN u % 100 = 99 OR trade_n IN (2, 3) THEN 'PendingApproval' ELSE 'Active' END,
    u % 10 <> 1,
    created_at,
    updated_at,
    CASE WHEN u % 6 <> 0 THEN updated_at END,
    CASE WHEN u % 10 <> 1 THEN created_at END
FROM (
    SELECT u, t.n AS trade_n, t.code AS trade_code, m.email AS match_email, m.name AS match_name,
        CASE WHEN bucket BETWEEN 58 AND 97 AND t.code IS NOT NULL THEN 'b2b'
             WHEN bucket BETWEEN 50 AND 57 AND m.email IS NOT NULL THEN 'match'
             WHEN bucket = 98 THEN 'malformed'
             ELSE 'b2c' END AS kind,
        CASE WHEN split_part(t.email, '@', 2) ~ '^[a-z0-9-]+(\.[a-z0-9-]+)+$'
             THEN split_part(t.email, '@', 2) END AS work_domain,
        pg_temp.seed_pick(CAST(:first_names AS text[]), :seed, u, 60) AS first_name,
        pg_temp.seed_pick(CAST(:surnames AS text[]), :seed, u, 61) AS surname,
        pg_temp.seed_pick(CAST(:first_slugs AS text[]), :seed, u, 60) AS email_first,
        pg_temp.seed_pick(CAST(:surname_slugs AS text[]), :seed, u, 61) AS email_surname,
        pg_temp.seed_pick(CAST(:domains AS text[]), :seed, u, 62) AS email_domain,
        pg_temp.seed_pick(CAST(:streets AS text[]), :seed, u, 63) AS street,
        1 + pg_temp.seed_int(:seed, u, 65) % cardinality(CAST(:suburbs AS text[])) AS suburb_no,
        created_at,
        created_at + date_trunc('second', (CAST(:as_of AS timestamptz) - created_at)
            * pg_temp.seed_frac(:seed, u, 66)) AS updated_at
    FROM (
        SELECT u, u % 100 AS bucket,
            date_trunc('second', CAST(:as_of AS timestamptz) - interval '1 day'
                - interval '729 days' * pg_temp.seed_frac(:seed, u, 67)) AS created_at
        FROM generate_series(1, :users) AS u
        OFFSET 0
    ) AS numbered
    LEFT JOIN seed_trade_account AS t
        ON t.n = CASE WHEN bucket BETWEEN 58 AND 97
                      THEN 1 + pg_temp.seed_int(:seed, u, 68) % NULLIF(:trade_accounts, 0) END
    LEFT JOIN seed_match_debtor AS m
        ON m.n = CASE WHEN bucket BETWEEN 50 AND 57 THEN u / 100 * 8 + bucket - 49 END
    OFFSET 0
) AS app_user;
