-- wrk script for bench/tasks/compare.sh: GET /api/v1/tasks filtered by status, priority and
-- assignee, chosen at random among the values the seed wrote (each combination holds about 125
-- of its 100 000 tasks). Paced: each connection waits AETHER_BENCH_DELAY_MS (100) after each
-- response, so c connections ask for about c * 1000 / delay requests per second.
local token = os.getenv("AETHER_BENCH_TOKEN")
if token == nil or token == "" then
  error("AETHER_BENCH_TOKEN is not set: an access token with tasks:read")
end
local pause = tonumber(os.getenv("AETHER_BENCH_DELAY_MS") or "100")

local statuses = { "pending", "in_progress", "completed", "blocked" }
local priorities = { "low", "medium", "high", "urgent" }
local assignees = 50

wrk.headers["Authorization"] = "Bearer " .. token

function init(args)
  math.randomseed(os.time())
end

function request()
  local path = string.format("/api/v1/tasks?status=%s&priority=%s&assignee=user_%d",
    statuses[math.random(#statuses)], priorities[math.random(#priorities)],
    math.random(0, assignees - 1))
  return wrk.format("GET", path)
end

function delay()
  return pause
end
