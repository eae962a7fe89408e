-- Facts passed between the two databases; the same definition on both sides so that COPY fits.
CREATE TEMP TABLE seed_trade_account (
  n bigint PRIMARY KEY, code text NOT NULL, name text NOT NULL, email text, addr_1 text,
  addr_2 text, addr_3 text, postcode text, phone text, abn text, industry text,
  changed_at timestamptz NOT NULL);

CREATE TEMP TABLE seed_match_debtor (n bigint PRIMARY KEY, email text NOT NULL, name text NOT NULL);

CREATE TEMP TABLE seed_user_email (n bigint PRIMARY KEY, email text NOT NULL);
