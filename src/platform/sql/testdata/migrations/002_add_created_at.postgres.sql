-- PostgreSQL has a real timestamp type; a literal with ')"' checks the embedding is byte-exact.
ALTER TABLE notes ADD COLUMN created_at TIMESTAMPTZ NOT NULL DEFAULT '1970-01-01T00:00:00Z';
COMMENT ON COLUMN notes.created_at IS 'creation time )" é';
