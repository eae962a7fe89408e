-- Adds the index a code conversion needs to find contact links by account code (found by `userdebtor bench`).

-- C2 rewrites a converted code in userdebtor.contact_link, and C4 asks whether the old code is held there,
-- three statements per conversion that each read the whole table without it (its key leads with user_id):
-- at a million contacts, about 60 ms apiece, or half an hour for a batch of 10,000 conversions.
CREATE INDEX IF NOT EXISTS contact_link_customer_code_idx ON userdebtor.contact_link (customer_code);
