CREATE TEMP TABLE seed_code_change (old_code text PRIMARY KEY, new_code text NOT NULL,
                                    converted_at timestamptz NOT NULL, is_merge boolean NOT NULL)
ON COMMIT DROP;
