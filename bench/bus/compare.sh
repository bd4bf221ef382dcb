#!/usr/bin/env bash
# Our RabbitMQ bus driver against amqplib (npm) on the same private broker, as issue #4 measures it:
#   1. publish throughput with confirms: COUNT persistent events the size of task.created's
#      envelope to the aether.events topic exchange, routed to one durable queue that is emptied
#      before each run (so every event is stored before its confirm); ours through publish_batch,
#      500 at a time, each batch confirmed before the next (as the outbox relay publishes);
#      amqplib on a ConfirmChannel in windows of 100 (waitForConfirms) and with all in flight;
#      ours first, then amqplib, then both once more; the ratio of the means;
#   2. end-to-end latency of our bus: RATE events/s (default 1000) for LATENCY_SECONDS (10),
#      publisher and consumer in one process, receive - send per event.
# Nothing is pinned: the broker needs the cores as much as the clients.
# Usage: bench/bus/compare.sh [count]   (run `make build` first)
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${1:-20000}
rate=${RATE:-1000}
latency_seconds=${LATENCY_SECONDS:-10}
bench=${BUS_BENCH_BIN:-build/release/bench/bus/bus_publish_bench}
node_dir=tests/node
routing_key=bench.task.created
sink=bench.publish.sink

[[ -x $bench ]] || { echo "build first: make build (no $bench)" >&2; exit 2; }
[[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || { echo "rabbitmq-server missing: scripts/bootstrap" >&2; exit 2; }
command -v node >/dev/null || { echo "node missing: scripts/bootstrap" >&2; exit 2; }
[[ -d $node_dir/node_modules/amqplib ]] || { echo "amqplib missing: scripts/bootstrap (npm ci in $node_dir)" >&2; exit 2; }

work=$(mktemp -d)
cleanup() {
  scripts/rabbitmq-test-server stop "$work/rabbit" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

value() {  # key line: the value of key=value in line
  tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2 }'
}

echo "== setup: load average $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews everything) =="
scripts/rabbitmq-test-server start "$work/rabbit" >"$work/rabbit.out" 2>&1 ||
  { echo "the broker did not start:" >&2; cat "$work/rabbit.out" >&2; exit 1; }
url=$(scripts/rabbitmq-test-server url "$work/rabbit")

empty_sink() {
  node "$node_dir/amqp-publish-bench.mjs" "$url" sink "$sink" "$routing_key" >/dev/null
}

# One run; appends "label msgs/s" to $work/results and echoes the tool's line.
ours() {
  local line
  empty_sink
  line=$("$bench" "$url" publish "$count" 500 2>"$work/ours.err") ||
    { echo "bus_publish_bench failed: $line" >&2; cat "$work/ours.err" >&2; return 1; }
  echo "  $line"
  body_bytes=$(value body_bytes "$line")
  echo "ours:batch-500 $(value events_per_s "$line")" >>"$work/results"
}
theirs() {  # mode (window|all)
  local line
  empty_sink
  line=$(node "$node_dir/amqp-publish-bench.mjs" "$url" "$count" "$1" "$body_bytes" "$routing_key") ||
    { echo "amqplib run failed: $line" >&2; return 1; }
  echo "  $line"
  echo "amqplib:$1 $(value msgs_per_s "$line")" >>"$work/results"
}

: >"$work/results"
echo
echo "== 1. publish $count persistent events with confirms, each routed to a durable queue =="
for round in 1 2; do
  echo "round $round"
  ours
  theirs window
  theirs all
done
mean() {  # label
  awk -v l="$1" '$1 == l { s += $2; n++ } END { printf "%.0f", (n ? s / n : 0) }' "$work/results"
}
runs() {  # label
  awk -v l="$1" '$1 == l { printf "%s%s", sep, $2; sep = ", " }' "$work/results"
}
ours_mean=$(mean ours:batch-500)
printf '%-44s %12s   %s\n' client "mean msgs/s" "runs"
printf '%-44s %12s   %s\n' "ours: publish_batch, 500 per confirm round" "$ours_mean" "$(runs ours:batch-500)"
for mode in window all; do
  label="amqplib: windows of 100 + waitForConfirms"
  [[ $mode == all ]] && label="amqplib: all in flight, one waitForConfirms"
  printf '%-44s %12s   %s\n' "$label" "$(mean "amqplib:$mode")" "$(runs "amqplib:$mode")"
done
awk -v o="$ours_mean" -v w="$(mean amqplib:window)" -v a="$(mean amqplib:all)" 'BEGIN {
  printf "ours / amqplib (windows of 100): %.2fx   ours / amqplib (all in flight): %.2fx\n",
    (w > 0 ? o / w : 0), (a > 0 ? o / a : 0) }'
echo "(body ${body_bytes} bytes per event)"

echo
echo "== 2. end-to-end latency of our bus: $rate events/s for ${latency_seconds}s, one process =="
line=$("$bench" "$url" latency "$rate" "$latency_seconds" 2>"$work/latency.err") ||
  { echo "latency run failed: $line" >&2; cat "$work/latency.err" >&2; exit 1; }
echo "  $line"
awk -v p50="$(value p50_us "$line")" -v p99="$(value p99_us "$line")" -v max="$(value max_us "$line")" \
  -v got="$(value received "$line")" -v sent="$(value sent "$line")" -v rps="$(value achieved_per_s "$line")" 'BEGIN {
  printf "%-10s %10s %10s %9s %9s %9s\n", "sent", "received", "sent/s", "p50_ms", "p99_ms", "max_ms"
  printf "%-10d %10d %10d %9.2f %9.2f %9.2f\n", sent, got, rps, p50 / 1000, p99 / 1000, max / 1000 }'

echo
echo "== goals (issue #4) =="
echo "ours >= 1.00x amqplib (windows of 100); p99 <= 50 ms at 1000 events/s"
