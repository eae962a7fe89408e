-- Indexes the emails still waiting in web.email_outbox (queued, held or failed), not the ones sent. Each run
-- counts its backlog, fails the emails already at the attempt limit and reports the outbox by status; without
-- this, each of those read the whole outbox, history included, several seconds a run once a million emails
-- wait for a mail server that is down. Sent emails, the bulk of the outbox, stay out of the index.
CREATE INDEX IF NOT EXISTS email_outbox_waiting_idx ON web.email_outbox (status, attempts, email_id)
    WHERE status <> 'sent';
