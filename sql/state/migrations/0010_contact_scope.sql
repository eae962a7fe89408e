-- Lets a changed-since run plan M1/M2 for the addresses that changed alone, not the whole CRM: the CRM master's rows get a change stamp, and what an update or delete takes away (a contact's old address, a contact, an account, a user) is remembered with one.

-- Rows of the CRM master are stamped as staging adds them; the rows already here count as old.
ALTER TABLE userdebtor.erp_contact_account ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE userdebtor.erp_contact_account ALTER COLUMN change_seq SET DEFAULT nextval('userdebtor.change_seq');
CREATE INDEX erp_contact_account_change_seq_idx ON userdebtor.erp_contact_account (change_seq);
CREATE INDEX erp_contact_change_seq_idx ON userdebtor.erp_contact (change_seq);
CREATE INDEX contact_link_email_key_idx ON userdebtor.contact_link (userdebtor.email_key(email));
-- The planner knows the new expression's values at once, not after autovacuum's next analyze.
ANALYZE userdebtor.contact_link;

-- Addresses whose contact links may have changed though no staged row carries them now: the old address of a
-- contact or user whose address changed or who went, the address of a contact whose account went, the addresses
-- acting for or linked to a debtor that went.
CREATE TABLE userdebtor.contact_email_touched (
    email_key   text PRIMARY KEY,
    change_seq  bigint NOT NULL DEFAULT nextval('userdebtor.change_seq')
);
CREATE INDEX contact_email_touched_change_seq_idx ON userdebtor.contact_email_touched (change_seq);

-- One statement's worth at a time (transition tables), so staging a million rows costs one insert, not a million.
CREATE FUNCTION userdebtor.remember_emails_touched() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_TABLE_NAME = 'erp_contact' AND TG_OP = 'UPDATE' THEN
        INSERT INTO userdebtor.contact_email_touched (email_key)
        SELECT DISTINCT userdebtor.email_key(o.contact_email)
          FROM old_rows o JOIN new_rows n ON n.contact_id = o.contact_id
         WHERE o.contact_email IS NOT NULL
           AND userdebtor.email_key(o.contact_email) IS DISTINCT FROM userdebtor.email_key(n.contact_email)
        ON CONFLICT (email_key) DO UPDATE SET change_seq = nextval('userdebtor.change_seq');
    ELSIF TG_TABLE_NAME = 'erp_contact' THEN
        INSERT INTO userdebtor.contact_email_touched (email_key)
        SELECT DISTINCT userdebtor.email_key(o.contact_email) FROM old_rows o WHERE o.contact_email IS NOT NULL
        ON CONFLICT (email_key) DO UPDATE SET change_seq = nextval('userdebtor.change_seq');
    ELSIF TG_TABLE_NAME = 'erp_contact_account' THEN
        INSERT INTO userdebtor.contact_email_touched (email_key)
        SELECT DISTINCT userdebtor.email_key(c.contact_email)
          FROM old_rows o JOIN userdebtor.erp_contact c ON c.contact_id = o.contact_id
         WHERE c.contact_email IS NOT NULL
        ON CONFLICT (email_key) DO UPDATE SET change_seq = nextval('userdebtor.change_seq');
    ELSIF TG_TABLE_NAME = 'erp_debtor' THEN
        INSERT INTO userdebtor.contact_email_touched (email_key)
        SELECT userdebtor.email_key(c.contact_email)
          FROM old_rows o
          JOIN userdebtor.erp_contact_account ca ON ca.dr_cust_code = o.dr_cust_code
          JOIN userdebtor.erp_contact c ON c.contact_id = ca.contact_id
         WHERE c.contact_email IS NOT NULL
        UNION
        SELECT userdebtor.email_key(cl.email)
          FROM old_rows o JOIN userdebtor.contact_link cl ON cl.customer_code = o.dr_cust_code
        ON CONFLICT (email_key) DO UPDATE SET change_seq = nextval('userdebtor.change_seq');
    ELSIF TG_TABLE_NAME = 'web_user' AND TG_OP = 'UPDATE' THEN
        INSERT INTO userdebtor.contact_email_touched (email_key)
        SELECT DISTINCT userdebtor.email_key(o.email_address)
          FROM old_rows o JOIN new_rows n ON n.user_id = o.user_id
         WHERE o.email_address IS NOT NULL
           AND userdebtor.email_key(o.email_address) IS DISTINCT FROM userdebtor.email_key(n.email_address)
        ON CONFLICT (email_key) DO UPDATE SET change_seq = nextval('userdebtor.change_seq');
    ELSIF TG_TABLE_NAME = 'web_user' THEN
        INSERT INTO userdebtor.contact_email_touched (email_key)
        SELECT DISTINCT userdebtor.email_key(o.email_address) FROM old_rows o WHERE o.email_address IS NOT NULL
        ON CONFLICT (email_key) DO UPDATE SET change_seq = nextval('userdebtor.change_seq');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER contact_address_changed AFTER UPDATE ON userdebtor.erp_contact
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION userdebtor.remember_emails_touched();
CREATE TRIGGER contact_gone AFTER DELETE ON userdebtor.erp_contact
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION userdebtor.remember_emails_touched();
CREATE TRIGGER contact_account_gone AFTER DELETE ON userdebtor.erp_contact_account
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION userdebtor.remember_emails_touched();
CREATE TRIGGER debtor_gone AFTER DELETE ON userdebtor.erp_debtor
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION userdebtor.remember_emails_touched();
CREATE TRIGGER user_address_changed AFTER UPDATE ON userdebtor.web_user
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION userdebtor.remember_emails_touched();
CREATE TRIGGER user_gone AFTER DELETE ON userdebtor.web_user
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION userdebtor.remember_emails_touched();
