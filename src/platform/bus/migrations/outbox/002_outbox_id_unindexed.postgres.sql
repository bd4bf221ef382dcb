-- The relay reads and marks rows by seq (unique, indexed by outbox_seq_key), so the event id
-- loses its index: ids are ULIDs, unique by construction, and every append writes one index
-- entry fewer. Nothing is rebuilt.
ALTER TABLE outbox DROP CONSTRAINT outbox_pkey;
