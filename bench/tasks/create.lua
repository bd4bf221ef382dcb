-- wrk script for bench/tasks/compare.sh: POST /api/v1/tasks, one new task per request (the
-- service makes the id). The bearer token comes from AETHER_BENCH_TOKEN (tasks:write); the
-- values match bench/tasks/insert.sql, so both sides write rows of the same width.
local token = os.getenv("AETHER_BENCH_TOKEN")
if token == nil or token == "" then
  error("AETHER_BENCH_TOKEN is not set: an access token with tasks:write")
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.body = '{"title":"Benchmark task","description":"Created by bench/tasks/compare.sh to time '
  .. 'task creation against a plain INSERT of the same row.","priority":"medium"}'
