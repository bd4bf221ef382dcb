-- SQLite keeps timestamps as RFC 3339 text.
ALTER TABLE notes ADD COLUMN created_at TEXT NOT NULL DEFAULT '1970-01-01T00:00:00.000Z';
