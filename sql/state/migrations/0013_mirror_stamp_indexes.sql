-- Indexes the change stamps the mirrors copy from their sources. A changed-since staging compares the rows stamped
-- in the five minutes before its watermark on both sides (rows that committed late); without these, the mirror's
-- side read the whole mirror, a quarter of a second at a million rows, and staging runs several times a run (the
-- run's extracts, then each plan that first stages what the loads wrote). The order mirror is left without one:
-- it is staged once a run, and five million order stamps cost more to keep indexed than that read.
CREATE INDEX web_user_updated_at_idx ON userdebtor.web_user (updated_at);
CREATE INDEX erp_debtor_last_changed_idx ON userdebtor.erp_debtor (dr_date_last_changed);
CREATE INDEX erp_contact_last_changed_idx ON userdebtor.erp_contact (contact_date_last_changed);
