-- Tasks, their tags, comments and change history. Times are UTC RFC 3339 with milliseconds
-- (fixed width, so text order is time order). Every list filter has an index that leads with the
-- filtered column and continues with the default sort (created_at, id), so a filtered page is an
-- index range read in order; `version` is the optimistic-concurrency counter behind the ETag.
CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    priority TEXT NOT NULL,
    priority_rank INTEGER NOT NULL,
    category TEXT,
    assignee TEXT,
    due_date TEXT,
    tags TEXT NOT NULL,
    estimated_hours DOUBLE PRECISION,
    actual_hours DOUBLE PRECISION,
    progress INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    completed_at TEXT,
    completed_by TEXT,
    completion_hours DOUBLE PRECISION,
    version BIGINT NOT NULL
);
CREATE INDEX tasks_created ON tasks (created_at, id);
CREATE INDEX tasks_status ON tasks (status, created_at, id);
CREATE INDEX tasks_priority ON tasks (priority, created_at, id);
CREATE INDEX tasks_category ON tasks (category, created_at, id);
CREATE INDEX tasks_assignee ON tasks (assignee, created_at, id);
CREATE INDEX tasks_created_by ON tasks (created_by, created_at, id);
CREATE INDEX tasks_due ON tasks (due_date);

-- The filterable copy of tasks.tags (which keeps the client's order for display).
CREATE TABLE task_tags (
    task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    PRIMARY KEY (task_id, tag)
);
CREATE INDEX task_tags_tag ON task_tags (tag, task_id);

CREATE TABLE task_comments (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX task_comments_task ON task_comments (task_id, created_at, id);

-- from_value and to_value hold JSON, so a number stays a number and a list a list.
CREATE TABLE task_history (
    id TEXT PRIMARY KEY,
    task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    action TEXT NOT NULL,
    field TEXT,
    from_value TEXT NOT NULL,
    to_value TEXT NOT NULL,
    user_id TEXT NOT NULL,
    occurred_at TEXT NOT NULL
);
CREATE INDEX task_history_task ON task_history (task_id, id);
