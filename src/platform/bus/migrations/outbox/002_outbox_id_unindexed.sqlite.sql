-- On SQLite seq is the key already (the rowid); the UNIQUE constraint on id stays, since dropping
-- it means rebuilding the table, and the embedded deployment does not need the write it saves.
SELECT 1;
