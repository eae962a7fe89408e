-- Contacts c = 1..n; `c % 100` in 21..23 share the e-mail of their group's head (groups of 2 and 3),
-- `c % 20 = 4` have no e-mail, `c % 33 = 8` are inactive.
INSERT INTO erp.crm_contact (contact_id, contact_email, contact_first_name, contact_surname, contact_phone,
                             contact_active, contact_date_last_changed)
SELECT c,
    CASE WHEN c % 20 = 4 AND NOT in_shared_group THEN NULL
         ELSE pg_temp.seed_pick(CAST(:first_slugs AS text[]), :seed, ek, 40) || '.'
              || pg_temp.seed_pick(CAST(:surname_slugs AS text[]), :seed, ek, 41) || ek || '@'
              || pg_temp.seed_pick(CAST(:surname_slugs AS text[]), :seed, ek, 42)
              || pg_temp.seed_pick(CAST(:trade_slugs AS text[]), :seed, ek, 43) || '.example' END,
    pg_temp.seed_pick(CAST(:first_names AS text[]), :seed, c, 40),
    pg_temp.seed_pick(CAST(:surnames AS text[]), :seed, c, 41),
    pg_temp.seed_mobile(pg_temp.seed_int(:seed, c, 44)),
    c % 33 <> 8,
    date_trunc('second', CAST(:as_of AS timestamptz) - interval '1 day'
        - interval '1094 days' * pg_temp.seed_frac(:seed, c, 45))
FROM (
    SELECT c,
        c % 100 IN (21, 22) OR (c % 100 = 23 AND c / 100 % 2 = 0) AS in_shared_group,
        CASE WHEN c % 100 = 22 THEN c - 1 WHEN c % 100 = 23 AND c / 100 % 2 = 0 THEN c - 2 ELSE c END AS ek
    FROM generate_series(1, :contacts) AS c
    OFFSET 0
) AS contact;
