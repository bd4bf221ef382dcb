-- Portable: the same text runs on SQLite and PostgreSQL.
CREATE TABLE notes (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT,
    done BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX notes_title ON notes (title);
