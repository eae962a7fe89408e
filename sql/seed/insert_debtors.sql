-- Three layers, each `OFFSET 0` so that PostgreSQL computes a value once per row instead of inlining
-- it into every expression that uses it.
-- draws:   the hashes of row g (and of its e-mail key ek: the head of a shared-email group)
-- debtor:  type, names, the e-mail in its well-formed spelling
-- final:   the e-mail variant (missing, malformed, mixed case) and the columns
INSERT INTO erp.deb_master (
    dr_cust_code, dr_cust_name, dr_cust_type, dr_email, dr_phone, dr_addr_1, dr_addr_2, dr_addr_3,
    dr_postcode, dr_abn, dr_industry_code, dr_price_code, dr_tax_code, dr_territory, dr_credit_limit,
    dr_account_status, dr_date_created, dr_date_last_changed)
SELECT
    'C' || (:first_number - 1 + g),
    CASE WHEN is_business THEN business_name ELSE first_name || ' ' || surname END,
    cust_type,
    CASE
        WHEN in_shared_group THEN personal_email
        WHEN g % 32 = 5 THEN NULL
        WHEN g % 64 = 3 THEN CASE g / 64 % 4
            WHEN 0 THEN replace(personal_email, '@', '.')
            WHEN 1 THEN email_first || '@' || email_surname
            WHEN 2 THEN replace(personal_email, '@', '@@')
            ELSE email_first || ' ' || email_surname || ek || '@' || email_domain END
        WHEN g % 40 = 7 THEN initcap(own_email)
        ELSE own_email
    END,
    pg_temp.seed_mobile(phone_draw),
    CASE WHEN g % 7 = 0 THEN 'Unit ' || (1 + g % 23) || '/' ELSE '' END || (1 + street_no) || ' ' || street,
    suburb, state, postcode,
    CASE WHEN is_business
         THEN (abn_check / 10 + 1)::text || (abn_check % 10)::text || lpad(abn_digits::text, 9, '0') END,
    CASE cust_type WHEN 'TRADE' THEN 'TRD' WHEN 'GOVT' THEN 'GOV' ELSE 'RET' END,
    CASE cust_type WHEN 'TRADE' THEN 'TR' || (1 + g % 3) WHEN 'GOVT' THEN 'GOV' WHEN 'RETAIL' THEN 'RRP'
         ELSE 'WEB' END,
    'GST',
    CASE WHEN cust_type = CAST(:master_type AS text) THEN 'ONL' ELSE state END,
    CASE cust_type WHEN 'TRADE' THEN 5000 + 500 * (street_no % 90) WHEN 'GOVT' THEN 100000 ELSE 0 END,
    CASE WHEN g % 97 = 13 THEN 'C' WHEN g % 89 = 17 THEN 'S' ELSE 'A' END,
    created_at,
    created_at + date_trunc('second', (CAST(:as_of AS timestamptz) - created_at) * changed_share)
FROM (
    SELECT *,
        CASE WHEN is_business AND NOT in_shared_group
             THEN 'accounts' || g || '@' || business_domain ELSE personal_email END AS own_email,
        pg_temp.seed_abn_weight(abn_digits) AS abn_check
    FROM (
        SELECT *,
            cust_type IN ('TRADE', 'GOVT') AS is_business,
            email_first || '.' || email_surname || ek || '@' || email_domain AS personal_email,
            CASE WHEN cust_type = 'GOVT' THEN suburb || ' ' || public_body
                 ELSE surname || ' ' || trade_word || ' Pty Ltd' END AS business_name,
            CASE WHEN cust_type = 'GOVT' THEN lower(regexp_replace(suburb, '[^a-zA-Z]', '', 'g')) || '.gov.example'
                 ELSE lower(surname_slug || trade_slug) || '.example' END AS business_domain,
            (CAST(:states AS text[]))[suburb_no] AS state,
            (CAST(:postcodes AS text[]))[suburb_no] AS postcode
        FROM (
            SELECT g, ek,
                g % 100 IN (11, 12) OR (g % 100 = 13 AND g / 100 % 2 = 0) AS in_shared_group,
                CASE WHEN type_draw < 0.60 THEN CAST(:master_type AS text) WHEN type_draw < 0.90 THEN 'TRADE'
                     WHEN type_draw < 0.95 THEN 'RETAIL' ELSE 'GOVT' END AS cust_type,
                pg_temp.seed_pick(CAST(:first_names AS text[]), :seed, g, 10) AS first_name,
                pg_temp.seed_pick(CAST(:surnames AS text[]), :seed, g, 11) AS surname,
                pg_temp.seed_pick(CAST(:surname_slugs AS text[]), :seed, g, 11) AS surname_slug,
                pg_temp.seed_pick(CAST(:first_slugs AS text[]), :seed, ek, 10) AS email_first,
                pg_temp.seed_pick(CAST(:surname_slugs AS text[]), :seed, ek, 11) AS email_surname,
                pg_temp.seed_pick(CAST(:domains AS text[]), :seed, ek, 12) AS email_domain,
                pg_temp.seed_pick(CAST(:trade_words AS text[]), :seed, g, 13) AS trade_word,
                pg_temp.seed_pick(CAST(:trade_slugs AS text[]), :seed, g, 13) AS trade_slug,
                pg_temp.seed_pick(CAST(:public_bodies AS text[]), :seed, g, 14) AS public_body,
                pg_temp.seed_pick(CAST(:streets AS text[]), :seed, g, 15) AS street,
                pg_temp.seed_int(:seed, g, 16) % 240 AS street_no,
                suburb_no,
                (CAST(:suburbs AS text[]))[suburb_no] AS suburb,
                pg_temp.seed_int(:seed, g, 18) AS phone_draw,
                pg_temp.seed_int(:seed, g, 19) % 1000000000 AS abn_digits,
                -- created 30 days to 3 years ago, changed some time since
                date_trunc('second', CAST(:as_of AS timestamptz) - interval '30 days'
                    - interval '1065 days' * pg_temp.seed_frac(:seed, g, 20)) AS created_at,
                pg_temp.seed_frac(:seed, g, 21) AS changed_share
            FROM generate_series(1, :debtors) AS g
            CROSS JOIN LATERAL (
                SELECT CASE WHEN g % 100 = 12 THEN g - 1 WHEN g % 100 = 13 AND g / 100 % 2 = 0 THEN g - 2
                            ELSE g END AS ek,
                       pg_temp.seed_frac(:seed, g, 1) AS type_draw,
                       1 + pg_temp.seed_int(:seed, g, 17) % cardinality(CAST(:suburbs AS text[])) AS suburb_no
            ) AS keys
            OFFSET 0
        ) AS draws
        OFFSET 0
    ) AS debtor
    OFFSET 0
) AS final;
