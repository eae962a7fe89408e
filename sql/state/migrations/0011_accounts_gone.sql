-- Remembers the debtors the ERP deleted and the customer rows gone from the web's mirror (0012 fills that one), so that a changed-since M3 plan looks at those accounts alone, not at every account (A3).

CREATE TABLE IF NOT EXISTS userdebtor.erp_debtor_gone (
    dr_cust_code  text PRIMARY KEY,
    change_seq    bigint NOT NULL DEFAULT nextval('userdebtor.change_seq')
);
CREATE INDEX IF NOT EXISTS erp_debtor_gone_change_seq_idx ON userdebtor.erp_debtor_gone (change_seq);

CREATE TABLE IF NOT EXISTS userdebtor.web_customer_gone (
    customer_code  text PRIMARY KEY,
    change_seq     bigint NOT NULL DEFAULT nextval('userdebtor.change_seq')
);
CREATE INDEX IF NOT EXISTS web_customer_gone_change_seq_idx ON userdebtor.web_customer_gone (change_seq);
