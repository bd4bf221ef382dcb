-- pgbench script for bench/tasks/compare.sh: the tasks row that POST /api/v1/tasks writes
-- (TasksStore::create) for create.lua's body, with an id of the same width (task_ + 26 chars).
-- The service also writes a history row and an outbox row in the same transaction; this does not.
INSERT INTO tasks (id, title, description, status, priority, priority_rank, category, assignee,
                   due_date, tags, estimated_hours, actual_hours, progress, created_by, created_at,
                   updated_at, completed_at, completed_by, completion_hours, version)
VALUES ('task_' || substr(md5(random()::text), 1, 26), 'Benchmark task',
        'Created by bench/tasks/compare.sh to time task creation against a plain INSERT of the same row.',
        'pending', 'medium', 2, NULL, NULL, NULL, '[]', NULL, NULL, 0, 'usr_01JBENCHBENCHBENCHBENCHBEN',
        to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        NULL, NULL, NULL, 1);
