-- The relay reads and marks rows by seq, so seq becomes the key and the event id loses its index:
-- ids are ULIDs, unique by construction, and every append writes one index entry fewer. (The
-- seq index is rebuilt as the key's; the outbox holds at most keep_sent of events.)
ALTER TABLE outbox DROP CONSTRAINT outbox_pkey;
ALTER TABLE outbox DROP CONSTRAINT outbox_seq_key, ADD CONSTRAINT outbox_pkey PRIMARY KEY (seq);
