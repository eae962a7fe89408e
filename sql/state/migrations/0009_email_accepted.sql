-- Remembers each email an SMTP server accepted until its outbox row is marked sent, so that a delivery killed in the middle of a batch never offers an accepted email again (E1).

CREATE TABLE IF NOT EXISTS userdebtor.email_accepted (
    email_id    bigint PRIMARY KEY,
    accepted_at timestamptz NOT NULL DEFAULT now(),
    note        text
);
