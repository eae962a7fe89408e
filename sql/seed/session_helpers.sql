-- Plain SQL functions so that the planner inlines them; with the seed and salt constant the inner hash
-- folds away and each call costs one hashint8extended per row.
CREATE OR REPLACE FUNCTION pg_temp.seed_int(seed bigint, n bigint, salt integer) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT abs(hashint8extended(n, hashint8extended(seed, salt)) % 1000000007) $$;

CREATE OR REPLACE FUNCTION pg_temp.seed_frac(seed bigint, n bigint, salt integer)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT pg_temp.seed_int(seed, n, salt) / 1000000007.0::double precision $$;

CREATE OR REPLACE FUNCTION pg_temp.seed_pick(pool text[], seed bigint, n bigint, salt integer)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT pool[1 + pg_temp.seed_int(seed, n, salt) % cardinality(pool)] $$;

-- An Australian mobile number, 04xx xxx xxx, from a number below 10^9.
CREATE OR REPLACE FUNCTION pg_temp.seed_mobile(x bigint) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '04' || lpad((x % 100)::text, 2, '0') || ' ' || lpad((x / 100 % 1000)::text, 3, '0')
             || ' ' || lpad((x / 100000 % 1000)::text, 3, '0') $$;

-- The ABN check sum: the 9 last digits weighted 3, 5, ..., 19; the 2 first digits make it 0 mod 89.
CREATE OR REPLACE FUNCTION pg_temp.seed_abn_weight(n bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (89 - (3 * (n / 100000000 % 10) + 5 * (n / 10000000 % 10) + 7 * (n / 1000000 % 10)
             + 9 * (n / 100000 % 10) + 11 * (n / 10000 % 10) + 13 * (n / 1000 % 10)
             + 15 * (n / 100 % 10) + 17 * (n / 10 % 10) + 19 * (n % 10)) % 89) % 89 $$;
