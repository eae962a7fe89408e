-- Plans U4/U5: three-way compare of each sync field of each linked pair (base = value last synced).

-- step: reset
DELETE FROM userdebtor.plan_set_aside WHERE rule IN ('U4', 'U5');

-- step: reset_plan
TRUNCATE userdebtor.plan_field_change;

-- step: link_statistics
-- Links made in bulk by the last run (a first load) have no statistics until autovacuum comes by; planned on none,
-- the compare below joins every pair by index lookups (26 s instead of 9 at a million pairs). Analyze them first
-- when more than a tenth of them (and 10,000) changed since their last analyze.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
                WHERE s.relid = 'userdebtor.user_debtor_link'::regclass
                  AND s.n_mod_since_analyze >= greatest(10000, 0.1 * c.reltuples)) THEN
        ANALYZE userdebtor.user_debtor_link;
    END IF;
END
$$;

-- step: compare
INSERT INTO userdebtor.plan_field_change
       (link_id, user_id, dr_cust_code, field, base_value, web_value, erp_value, direction, new_value, is_conflict)
WITH touched AS (
    -- A changed-since run compares the pairs of the rows that changed, found through the change_seq indexes (one OR
    -- across the three tables would join every pair: 4.7 s a run at a million pairs, against 10 ms).
    -- With :after_loads (A3), the pairs that changed after the plan was made (:since is then the run's own
    -- high-water mark): those U1 and U2 linked, whose users and debtors were staged again just before, so that a
    -- matched pair's ERP values reach the web in the run that links it and the next run need not compare it.
    SELECT cl.link_id FROM userdebtor.user_debtor_link cl WHERE cl.change_seq > :since
    UNION
    SELECT ul.link_id FROM userdebtor.web_user cu JOIN userdebtor.user_debtor_link ul ON ul.user_id = cu.user_id
     WHERE cu.change_seq > :since
    UNION
    SELECT dl.link_id FROM userdebtor.erp_debtor cd JOIN userdebtor.user_debtor_link dl ON dl.dr_cust_code = cd.dr_cust_code
     WHERE cd.change_seq > :since
    UNION
    SELECT k.link_id FROM userdebtor.conflict k WHERE k.status = 'resolved' AND NOT CAST(:after_loads AS boolean)
), candidate AS (
    -- A full run (since 0) compares every link, without the detour; only one branch is ever planned. The pass after
    -- the loads leaves the pairs the plan already holds as they were planned.
    SELECT l.* FROM userdebtor.user_debtor_link l WHERE CAST(:since AS bigint) = 0
    UNION ALL
    SELECT l.* FROM touched t JOIN userdebtor.user_debtor_link l ON l.link_id = t.link_id WHERE CAST(:since AS bigint) > 0
       AND NOT (CAST(:after_loads AS boolean)
                AND EXISTS (SELECT 1 FROM userdebtor.plan_field_change p WHERE p.link_id = t.link_id))
), pair AS (
    SELECT l.*, u.email_address, u.name, u.address1, u.address2, u.address3, u.address4, u.address5, u.address6,
           u.phone_number, u.postcode, u.abn, u.industry_code, u.updated_at AS web_changed_at,
           d.dr_email, d.dr_cust_name, d.dr_addr_1, d.dr_addr_2, d.dr_addr_3, d.dr_addr_4, d.dr_addr_5,
           d.dr_addr_6, d.dr_phone, d.dr_postcode, d.dr_abn, d.dr_industry_code,
           d.dr_date_last_changed AS erp_changed_at
      FROM candidate l
      JOIN userdebtor.web_user u ON u.user_id = l.user_id
      JOIN userdebtor.erp_debtor d ON d.dr_cust_code = l.dr_cust_code
     -- A debtor that left the master filter's scope is U6's (its link is suspended in this run): no writes.
     WHERE l.state = 'active' AND d.in_master_scope
       -- Only a pair with a field off its base on either side is taken apart field by field: a full reconcile
       -- compares a million pairs, nearly all as they were (12 million field rows; the compare took 6.9 s, now
       -- 3.9 s).
       AND ((u.email_address, u.name, u.address1, u.address2, u.address3, u.address4, u.address5, u.address6,
             u.phone_number, u.postcode, u.abn, u.industry_code)
            IS DISTINCT FROM
            (l.base_email, l.base_name, l.base_address1, l.base_address2, l.base_address3, l.base_address4,
             l.base_address5, l.base_address6, l.base_phone_number, l.base_postcode, l.base_abn, l.base_industry_code)
            OR
            (d.dr_email, d.dr_cust_name, d.dr_addr_1, d.dr_addr_2, d.dr_addr_3, d.dr_addr_4, d.dr_addr_5,
             d.dr_addr_6, d.dr_phone, d.dr_postcode, d.dr_abn, d.dr_industry_code)
            IS DISTINCT FROM
            (l.base_email, l.base_name, l.base_address1, l.base_address2, l.base_address3, l.base_address4,
             l.base_address5, l.base_address6, l.base_phone_number, l.base_postcode, l.base_abn, l.base_industry_code))
), field AS (
    SELECT p.link_id, p.user_id, p.dr_cust_code, f.field, f.base, f.web, f.erp, p.web_changed_at, p.erp_changed_at
      FROM pair p
     CROSS JOIN LATERAL (VALUES
           ('OrderEmailAddress', p.base_email,         p.email_address, p.dr_email),
           ('Name',              p.base_name,          p.name,          p.dr_cust_name),
           ('Address1',          p.base_address1,      p.address1,      p.dr_addr_1),
           ('Address2',          p.base_address2,      p.address2,      p.dr_addr_2),
           ('Address3',          p.base_address3,      p.address3,      p.dr_addr_3),
           ('Address4',          p.base_address4,      p.address4,      p.dr_addr_4),
           ('Address5',          p.base_address5,      p.address5,      p.dr_addr_5),
           ('Address6',          p.base_address6,      p.address6,      p.dr_addr_6),
           ('PhoneNumber',       p.base_phone_number,  p.phone_number,  p.dr_phone),
           ('Postcode',          p.base_postcode,      p.postcode,      p.dr_postcode),
           ('ABN',               p.base_abn,           p.abn,           p.dr_abn),
           ('industrycode',      p.base_industry_code, p.industry_code, p.dr_industry_code)
       ) AS f(field, base, web, erp)
     WHERE f.field = ANY(:sync_fields)
       AND (f.web IS DISTINCT FROM f.base OR f.erp IS DISTINCT FROM f.base)
), decided AS (
    SELECT f.*, k.winner AS person_chose,
           CASE
             WHEN f.web IS NOT DISTINCT FROM f.erp THEN 'none'     -- changed alike on both sides
             WHEN f.erp IS NOT DISTINCT FROM f.base THEN 'to_erp'  -- changed on the web only
             WHEN f.web IS NOT DISTINCT FROM f.base THEN 'to_web'  -- changed in the ERP only
             WHEN k.winner = 'erp' THEN 'to_web'                   -- a person settled the conflict
             WHEN k.winner = 'web' THEN 'to_erp'
             WHEN :policy = 'erp_wins' THEN 'to_web'
             WHEN :policy = 'web_wins' THEN 'to_erp'
             WHEN :policy = 'newest_wins' THEN
                  CASE WHEN f.web_changed_at > f.erp_changed_at THEN 'to_erp' ELSE 'to_web' END
             ELSE 'held'
           END AS direction
      FROM field f
      LEFT JOIN userdebtor.conflict k ON k.link_id = f.link_id AND k.field = f.field AND k.status = 'resolved'
)
SELECT link_id, user_id, dr_cust_code, field, base, web, erp, direction,
       CASE direction WHEN 'to_erp' THEN web WHEN 'to_web' THEN erp WHEN 'none' THEN web END,
       web IS DISTINCT FROM base AND erp IS DISTINCT FROM base AND web IS DISTINCT FROM erp
  FROM decided;

-- step: block_email_collision
-- U5: an ERP email that another web user has as login is not applied; the login stays as it was.
UPDATE userdebtor.plan_field_change p
   SET direction = 'blocked'
 WHERE p.field = 'OrderEmailAddress' AND p.direction = 'to_web'
   AND (p.new_value IS NULL OR userdebtor.email_key(p.new_value) !~ :email_pattern
        OR EXISTS (SELECT 1 FROM userdebtor.web_user o
                    WHERE userdebtor.email_key(o.email_address) = userdebtor.email_key(p.new_value)
                      AND o.user_id <> p.user_id)
        -- ... or that this run would give to two users: the addresses are counted once, not looked up row by row
        -- (a correlated lookup here read the whole plan once per email change: 70 s at a million pairs).
        OR userdebtor.email_key(p.new_value) IN (
               SELECT userdebtor.email_key(q.new_value) FROM userdebtor.plan_field_change q
                WHERE q.field = 'OrderEmailAddress' AND q.direction = 'to_web'
                GROUP BY userdebtor.email_key(q.new_value) HAVING count(DISTINCT q.user_id) > 1));

-- step: warn_email_collision
INSERT INTO userdebtor.plan_set_aside (kind, rule, subject, detail, warn)
SELECT CASE WHEN p.new_value IS NULL OR userdebtor.email_key(p.new_value) !~ :email_pattern THEN 'erp_email_unusable'
            ELSE 'email_collision' END,
       'U5', 'link:' || p.link_id || '/email/' || md5(coalesce(userdebtor.email_key(p.new_value), '')),
       CASE WHEN p.new_value IS NULL OR userdebtor.email_key(p.new_value) !~ :email_pattern
            THEN 'debtor ' || p.dr_cust_code || ' has an empty or malformed email in the ERP; web user '
                 || p.user_id || ' keeps the login it has'
            ELSE 'the ERP changed the email of debtor ' || p.dr_cust_code
                 || ' to an address another web user already logs in with; web user ' || p.user_id
                 || ' keeps the login it has' END,
       true
  FROM userdebtor.plan_field_change p
 WHERE p.direction = 'blocked'
ON CONFLICT DO NOTHING;

-- step: block_missing_name
-- The ERP requires an account name: an emptied web name does not blank it.
UPDATE userdebtor.plan_field_change p
   SET direction = 'blocked'
 WHERE p.field = 'Name' AND p.direction = 'to_erp' AND (p.new_value IS NULL OR btrim(p.new_value) = '');

-- step: report_missing_name
INSERT INTO userdebtor.plan_set_aside (kind, rule, subject, detail, warn)
SELECT 'web_name_empty', 'U4', 'link:' || p.link_id || '/name',
       'web user ' || p.user_id || ' has an empty name; the ERP keeps the name of debtor ' || p.dr_cust_code, false
  FROM userdebtor.plan_field_change p
 WHERE p.field = 'Name' AND p.direction = 'blocked'
ON CONFLICT DO NOTHING;
