-- Indexes the web's customer rows by updated_at, the stamp every load of the pipeline sets on the rows it writes.
-- A run stages the customer rows its own loads wrote (A3) up to three times, before each plan that reads them;
-- without this, each of those read all of web.customer (0.14 s a time at 1.4 million accounts, every run, even
-- one that finds nothing new). The website's own edits are found by the key-range checksums, not by this stamp.
CREATE INDEX IF NOT EXISTS customer_updated_at_idx ON web.customer (updated_at);
