-- The embedded broker of the all-in-one mode: queue bindings, messages waiting in each queue, and
-- the dead letters. available_at is in milliseconds since the epoch; claimed_by names the bus
-- instance handling the message, so a restart (a new instance) redelivers what was in flight.
CREATE TABLE bus_bindings (
    queue TEXT NOT NULL,
    pattern TEXT NOT NULL,
    PRIMARY KEY (queue, pattern)
);
CREATE TABLE bus_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    event_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    available_at BIGINT NOT NULL,
    claimed_by TEXT,
    last_error TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX bus_messages_due ON bus_messages (queue, available_at, id);
CREATE TABLE bus_dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    event_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    dead_at TEXT NOT NULL
);
CREATE INDEX bus_dead_letters_queue ON bus_dead_letters (queue, id);
