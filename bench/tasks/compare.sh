#!/usr/bin/env bash
# The tasks service on PostgreSQL, as issue #4 measures it, on a private PostgreSQL and RabbitMQ:
#   1. creation: wrk POST /api/v1/tasks (CLIENTS connections, default 16) against
#      `aether serve --target=tasks` on database A with the bus on the broker, then pgbench
#      inserting the same tasks row into database B (`aether migrate --target=tasks`) over as many
#      connections; the ratio of the two rates (the service also writes a history row and an
#      outbox row per task in the same transaction, and its relay publishes the event); then the
#      outbox rows still unsent when wrk stops, and the rate at which the relay sent them;
#   2. list latency: 100 000 tasks seeded into A with one INSERT … SELECT, then wrk at about
#      200 req/s (20 connections, 100 ms between a response and the next request) filtering by
#      status, priority and assignee; achieved req/s, p50 and p99.
# Nothing is pinned: the service, PostgreSQL, the broker and wrk share the machine's cores.
# Usage: bench/tasks/compare.sh [seconds-per-scenario]   (run `make build` first)
# CLIENTS=n changes the connections of part 1; POOL=n sets the service's database pool
# (database.max_connections, default 8); ROUNDS=n adds n alternating creation rounds, each
# pgbench run after the relay has drained, and their median ratio. PIN_DATABASE=1 puts PostgreSQL
# on core 0 and everything else (service, broker, wrk, pgbench) on the other cores: the machine's
# other processes then cannot take the database's CPU, so the ratio shows how much database work
# a task costs against pgbench's row (needs 2 cores or more).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
clients=${CLIENTS:-16}
aether=${AETHER_BIN:-build/release/aether}  # as tests/integration: AETHER_BIN overrides
here=bench/tasks
pg_bin=/usr/lib/postgresql/15/bin
python=/usr/bin/python3  # Debian's, with python3-jwt
seeded=100000
list_connections=20
list_delay_ms=100

[[ -x $aether ]] || { echo "build first: make build (no $aether)" >&2; exit 2; }
for tool in "$pg_bin/pgbench" "$pg_bin/psql" "$pg_bin/initdb" /usr/lib/rabbitmq/bin/rabbitmq-server; do
  [[ -x $tool ]] || { echo "$tool missing: scripts/bootstrap" >&2; exit 2; }
done
for tool in wrk curl; do
  command -v "$tool" >/dev/null || { echo "$tool missing: scripts/bootstrap" >&2; exit 2; }
done
$python -c 'import jwt' 2>/dev/null || { echo "python3-jwt missing: scripts/bootstrap" >&2; exit 2; }

work=$(mktemp -d)
chmod 755 "$work"  # the cluster runs as postgres when started by root
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  scripts/pg-test-server stop "$work/pg" >/dev/null 2>&1 || true
  scripts/rabbitmq-test-server stop "$work/rabbit" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export AETHER_AUTH_JWT_SECRET=bench-tasks-secret-bench-tasks-secret-0123456789

free_port() {
  $python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_ready() {  # port pid log
  for _ in $(seq 1 400); do
    kill -0 "$2" 2>/dev/null || { echo "process $2 exited; its log:" >&2; cat "$3" >&2; return 1; }
    curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$1/ready" && return 0
    sleep 0.05
  done
  echo "nothing ready on port $1 after 20 s; log:" >&2
  cat "$3" >&2
  return 1
}

# run_wrk and field (bench/wrk.sh).
rps_decimals=1
source bench/wrk.sh

: >"$work/results"
echo "== setup: load average $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews everything) =="

# The broker boots in 6-20 s: start it while PostgreSQL starts.
scripts/rabbitmq-test-server start "$work/rabbit" >"$work/rabbit.out" 2>&1 &
rabbit_starter=$!
pg_url=$(scripts/pg-test-server start "$work/pg")
pg_port=$(cat "$work/pg/port")
psql_at() {  # database, psql args...: one statement's bare result
  local database=$1
  shift
  "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -d "$database" -X -q -tA -v ON_ERROR_STOP=1 "$@"
}
psql_at postgres -c 'CREATE DATABASE tasks_a' -c 'CREATE DATABASE tasks_b'
url_a=${pg_url%/*}/tasks_a
url_b=${pg_url%/*}/tasks_b
wait "$rabbit_starter" || { echo "the broker did not start:" >&2; cat "$work/rabbit.out" >&2; exit 1; }
amqp_url=$(scripts/rabbitmq-test-server url "$work/rabbit")
others=()  # the command prefix of everything but the database
if [[ -n ${PIN_DATABASE:-} ]]; then
  cores=$(nproc)
  ((cores >= 2)) || { echo "PIN_DATABASE needs 2 cores or more" >&2; exit 2; }
  # Backends fork from the postmaster and inherit its affinity; its helpers run already.
  postmaster=$(head -1 "$work/pg/data/postmaster.pid")
  for pid in "$postmaster" $(pgrep -P "$postmaster"); do taskset -a -p -c 0 "$pid" >/dev/null; done
  for pid in $(pgrep -f "$work/rabbit" || true); do taskset -a -p -c "1-$((cores - 1))" "$pid" >/dev/null; done
  others=(taskset -c "1-$((cores - 1))")
  wrk_command="${others[*]} wrk"
  echo "PostgreSQL on core 0; the service, the broker, wrk and pgbench on cores 1-$((cores - 1))"
fi

# Only the AETHER_* variables meant here: unknown ones are configuration errors.
aether_env=(env -i PATH="$PATH" HOME="$HOME" AETHER_AUTH_JWT_SECRET="$AETHER_AUTH_JWT_SECRET"
  AETHER_LOG_ACCESS=false)
[[ -n ${POOL:-} ]] && aether_env+=(AETHER_DATABASE_MAX_CONNECTIONS="$POOL")

"${aether_env[@]}" AETHER_SERVICES_TASKS_DATABASE="$url_b" \
  "$aether" migrate --target=tasks --data-dir "$work/data-b" >"$work/migrate-b.out" 2>&1 ||
  { echo "aether migrate on database B failed:" >&2; cat "$work/migrate-b.out" >&2; exit 1; }

port=$(free_port)
"${others[@]}" "${aether_env[@]}" AETHER_SERVICES_TASKS_DATABASE="$url_a" AETHER_BUS_URL="$amqp_url" \
  "$aether" serve --target=tasks --listen "127.0.0.1:$port" --data-dir "$work/data-a" \
  >/dev/null 2>"$work/aether.err" &
pids+=($!)
wait_ready "$port" "$!" "$work/aether.err"
base="http://127.0.0.1:$port/api/v1/tasks"

AETHER_BENCH_TOKEN=$($python - <<'PY'
import os, time, uuid
import jwt
now = int(time.time())
claims = {"sub": "usr_01JBENCHBENCHBENCHBENCHBEN", "email": "bench@example.com", "type": "access",
          "iat": now, "exp": now + 3600, "jti": uuid.uuid4().hex, "roles": ["user"],
          "permissions": ["tasks:read", "tasks:write"]}
print(jwt.encode(claims, os.environ["AETHER_AUTH_JWT_SECRET"], algorithm="HS256"))
PY
)
export AETHER_BENCH_TOKEN
auth=(-H "Authorization: Bearer $AETHER_BENCH_TOKEN")

code=$(curl -s -o "$work/probe.json" -w '%{http_code}' --max-time 5 "${auth[@]}" \
  -H 'Content-Type: application/json' -d '{"title":"probe","priority":"medium"}' "$base")
[[ $code == 201 ]] || { echo "POST $base answered $code: $(cat "$work/probe.json")" >&2; exit 1; }
psql_at tasks_a -c 'DELETE FROM task_history' -c 'DELETE FROM tasks'

echo
echo "== 1. creation: $clients connections, ${secs}s each; service on database A, pgbench on B =="
run_wrk aether:create -t1 -c"$clients" -d"${secs}s" -s "$here/create.lua" "$base"
unsent_at_end=$(psql_at tasks_a -c 'SELECT count(*) FROM outbox WHERE sent_at IS NULL')
created=$(psql_at tasks_a -c 'SELECT count(*) FROM tasks')

"${others[@]}" "$pg_bin/pgbench" -n -c "$clients" -j 2 -T "$secs" -f "$here/insert.sql" \
  -h 127.0.0.1 -p "$pg_port" -U postgres tasks_b >"$work/pgbench.out" 2>&1 ||
  { echo "pgbench failed:" >&2; cat "$work/pgbench.out" >&2; exit 1; }
pgbench_tps=$(awk '/^tps = / { print $3 }' "$work/pgbench.out" | tail -1)
pgbench_latency=$(awk '/^latency average = / { print $4 }' "$work/pgbench.out")
pgbench_failed=$(awk '/^number of failed transactions: / { print $5 }' "$work/pgbench.out")
[[ -n $pgbench_tps ]] || { echo "pgbench printed no tps:" >&2; cat "$work/pgbench.out" >&2; exit 1; }
inserted=$(psql_at tasks_b -c 'SELECT count(*) FROM tasks')

# The relay sends whatever wrk left behind; wait (up to 60 s) so that its rate covers every row.
for _ in $(seq 1 600); do
  [[ $(psql_at tasks_a -c 'SELECT count(*) FROM outbox WHERE sent_at IS NULL') == 0 ]] && break
  sleep 0.1
done
read -r events unsent relay_span failed_events < <(psql_at tasks_a -F ' ' -c "
  SELECT count(*), count(*) FILTER (WHERE sent_at IS NULL),
         coalesce(extract(epoch FROM max(sent_at::timestamptz) - min(created_at::timestamptz)), 0),
         count(*) FILTER (WHERE last_error IS NOT NULL)
  FROM outbox")

printf '%-30s %10s %9s %9s %8s %7s %9s\n' writer rows/s p50_ms p99_ms non2xx errors rows
awk -v n="$created" '$1 == "aether:create" {
  printf "%-30s %10.0f %9.1f %9.1f %8d %7d %9d\n", "aether POST /api/v1/tasks", $2, $3 / 1000, $4 / 1000, $5, $6, n }' \
  "$work/results"
printf '%-30s %10.0f %9s %9s %8s %7s %9d   (latency average %s ms)\n' "pgbench INSERT INTO tasks" \
  "$pgbench_tps" - - - "${pgbench_failed:-0}" "$inserted" "$pgbench_latency"
ratio=$(awk -v a="$(field aether:create 2)" -v b="$pgbench_tps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
echo "aether / pgbench: ${ratio}x"
echo "outbox: $events events, $unsent_at_end unsent when wrk stopped, $unsent unsent now," \
  "$failed_events failed; the relay sent them at" \
  "$(awk -v n="$events" -v s="$relay_span" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }') events/s" \
  "(events / (last sent_at - first created_at))"

rounds=${ROUNDS:-1}
if ((rounds > 1)); then
  echo
  echo "== 1b. creation ratio over $rounds alternating rounds (the relay drained before each pgbench) =="
  # One pair of runs cannot show a ratio on a VM that moves ±20% between runs: alternate the
  # two writers and report the median ratio.
  drain() {
    for _ in $(seq 1 600); do
      [[ $(psql_at tasks_a -c 'SELECT count(*) FROM outbox WHERE sent_at IS NULL') == 0 ]] && return
      sleep 0.1
    done
  }
  ratios=()
  for round in $(seq 1 "$rounds"); do
    run_wrk "aether:round$round" -t1 -c"$clients" -d"${secs}s" -s "$here/create.lua" "$base"
    drain
    tps=$("${others[@]}" "$pg_bin/pgbench" -n -c "$clients" -j 2 -T "$secs" -f "$here/insert.sql" \
      -h 127.0.0.1 -p "$pg_port" -U postgres tasks_b 2>&1 | awk '/^tps = / { print $3 }' | tail -1)
    rate=$(field "aether:round$round" 2)
    ratio=$(awk -v a="$rate" -v b="$tps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
    echo "round $round: aether $rate tasks/s, pgbench $tps rows/s, ratio ${ratio}x"
    ratios+=("$ratio")
  done
  median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  echo "creation median ratio over $rounds rounds: ${median}x"
fi

echo
echo "== 2. list latency: $seeded seeded tasks; wrk -t1 -c$list_connections, ${list_delay_ms} ms between" \
  "a response and the next request (about $((list_connections * 1000 / list_delay_ms)) req/s), ${secs}s =="
psql_at tasks_a <<SQL
INSERT INTO tasks (id, title, description, status, priority, priority_rank, category, assignee,
                   due_date, tags, estimated_hours, actual_hours, progress, created_by, created_at,
                   updated_at, completed_at, completed_by, completion_hours, version)
SELECT 'task_seed' || lpad(g::text, 22, '0'),
       'Seeded task ' || g,
       'Seeded by bench/tasks/compare.sh',
       (ARRAY['pending', 'in_progress', 'completed', 'blocked'])[1 + g % 4],
       (ARRAY['low', 'medium', 'high', 'urgent'])[1 + (g / 4) % 4],
       1 + (g / 4) % 4,
       (ARRAY['work', 'personal', 'ops', 'research', 'admin'])[1 + g % 5],
       -- Each run of 16 consecutive g holds every status x priority once: each combination of the
       -- three filters has $seeded / 16 / 50 tasks.
       'user_' || (g / 16) % 50,
       CASE WHEN g % 3 = 0 THEN to_char(created + interval '7 days', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END,
       '[]', CASE WHEN g % 2 = 0 THEN 1 + g % 40 END, NULL,
       CASE WHEN g % 4 = 2 THEN 100 ELSE (g * 7) % 100 END,
       'usr_seed' || (g % 20),
       to_char(created, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
       to_char(created + interval '1 hour', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
       CASE WHEN g % 4 = 2 THEN to_char(created + interval '1 hour', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END,
       CASE WHEN g % 4 = 2 THEN 'user_' || (g / 16) % 50 END,
       CASE WHEN g % 4 = 2 THEN 1.0 END,
       1
FROM generate_series(1, $seeded) AS g,
     LATERAL (SELECT timestamp '2024-01-01' + ((g * 7919) % 525600) * interval '1 minute' AS created) AS t;
ANALYZE tasks;
SQL
sample="$base?status=pending&priority=high&assignee=user_7"
listed=$(curl -sf --max-time 5 "${auth[@]}" "$sample" |
  $python -c 'import json, sys; body = json.load(sys.stdin); print(len(body["tasks"]), body["pagination"])') ||
  { echo "GET $sample failed" >&2; exit 1; }
[[ ${listed%% *} -gt 0 ]] || { echo "GET $sample listed no task: the seed is not visible" >&2; exit 1; }
echo "seed visible: GET ?status=pending&priority=high&assignee=user_7 -> ${listed%% *} tasks, pagination ${listed#* }"
AETHER_BENCH_DELAY_MS=$list_delay_ms run_wrk aether:list -t1 -c"$list_connections" -d"${secs}s" \
  -s "$here/list.lua" "http://127.0.0.1:$port"
printf '%-30s %10s %9s %9s %8s %7s\n' request req/s p50_ms p99_ms non2xx errors
awk '$1 == "aether:list" {
  printf "%-30s %10.1f %9.1f %9.1f %8d %7d\n", "GET /api/v1/tasks?filters", $2, $3 / 1000, $4 / 1000, $5, $6 }' \
  "$work/results"

echo
echo "== goals (issue #4) =="
echo "creation >= 0.50x pgbench's INSERT rate; list p99 <= 20 ms at about 200 req/s"
