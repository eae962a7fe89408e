-- Stamps the mirror of web.customer as staging changes it, so that a changed-since order plan finds the accounts newly integrated or no longer integrated without comparing every account with every account it shows (O1, A3).

ALTER TABLE userdebtor.web_customer ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE userdebtor.web_customer ALTER COLUMN change_seq SET DEFAULT nextval('userdebtor.change_seq');
CREATE INDEX web_customer_change_seq_idx ON userdebtor.web_customer (change_seq);

-- A mirror row deleted, by staging (the web deleted the account) or by a conversion (renamed), is remembered in
-- web_customer_gone, one statement's worth at a time.
CREATE FUNCTION userdebtor.remember_customers_gone() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO userdebtor.web_customer_gone (customer_code)
    SELECT DISTINCT customer_code FROM old_rows
    ON CONFLICT (customer_code) DO UPDATE SET change_seq = nextval('userdebtor.change_seq');
    RETURN NULL;
END
$$;
CREATE TRIGGER web_customer_gone AFTER DELETE ON userdebtor.web_customer
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION userdebtor.remember_customers_gone();
