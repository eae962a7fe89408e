-- Remembers the accounts a web user stopped having as default account, as staging finds them, so that a changed-since order plan looks at them again: another user may now be the only one whose default it is (O1, A3).

CREATE TABLE IF NOT EXISTS userdebtor.web_user_default_left (
    customer_code text PRIMARY KEY,
    change_seq    bigint NOT NULL DEFAULT nextval('userdebtor.change_seq')
);
CREATE INDEX IF NOT EXISTS web_user_default_left_change_seq_idx ON userdebtor.web_user_default_left (change_seq);
