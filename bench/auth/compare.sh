#!/usr/bin/env bash
# Security service against the original Python one, as issue #2 measures it:
#   1. ../shared/bench/auth-bench.sh against each, each server pinned to core 1, wrk on core 0;
#   2. login throughput unpinned, against cores / (time of one bcrypt check at the same cost);
#   3. idle RSS and start-to-ready time of `aether serve --target=security`.
# Usage: bench/auth/compare.sh [seconds-per-scenario]   (run `make build` first)
# The access log stays on (its formatting is part of every request); it goes to /dev/null.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-8}
aether=build/release/aether
shared=../shared/bench
[[ -x $aether ]] || { echo "build first: make build" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk missing: scripts/bootstrap" >&2; exit 2; }
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export AETHER_AUTH_JWT_SECRET=bench-secret-bench-secret-bench-secret-0123456789

wait_ready() {  # url
  for _ in $(seq 1 200); do
    curl -sf -o /dev/null "$1/ready" && return 0
    sleep 0.05
  done
  echo "server at $1 did not become ready" >&2
  return 1
}

start_aether() {  # port, cpu list ("" = unpinned), data dir
  local pin=()
  [[ -n $2 ]] && pin=(taskset -c "$2")
  "${pin[@]}" "$aether" serve --target=security --listen "127.0.0.1:$1" --data-dir "$3" \
    >/dev/null 2>"$work/aether-$1.err" &
  pids+=($!)
  wait_ready "http://127.0.0.1:$1"
}

echo "== bcrypt: one check at each cost (Google Benchmark) =="
build/release/src/platform/auth/password_benchmark --benchmark_min_time=2

echo
echo "== aether --target=security, pinned to core 1; wrk on core 0 =="
start_aether 18081 1 "$work/pinned"
taskset -c 0 "$shared/auth-bench.sh" http://127.0.0.1:18081 "$secs"

echo
echo "== original Python service, pinned to core 1; wrk on core 0 =="
taskset -c 1 "$shared/seed-security/run.sh" 18000 >"$work/seed.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do curl -sf -o /dev/null http://127.0.0.1:18000/health && break; sleep 0.1; done
taskset -c 0 "$shared/auth-bench.sh" http://127.0.0.1:18000 "$secs"

echo
rounds=${ROUNDS:-5}
echo "== ratios over $rounds interleaved rounds (aether then Python, each pinned to core 1) =="
# One pair of runs cannot show a ratio on a VM that moves ±15% between runs: alternate the two
# servers, scenario by scenario, and report the median ratio.
token=$(curl -sf -XPOST http://127.0.0.1:18081/api/v1/auth/login -H 'content-type: application/json' \
  -d '{"email":"test@example.com","password":"TestPass123!"}' |
  python3 -c 'import sys,json; print(json.load(sys.stdin)["access_token"])')
printf 'wrk.method="POST"\nwrk.headers["Content-Type"]="application/json"\nwrk.body=%s\n' \
  "'{\"token\":\"$token\"}'" >"$work/validate-aether.lua"
seed_token=$(curl -sf -XPOST http://127.0.0.1:18000/api/v1/auth/login -H 'content-type: application/json' \
  -d '{"email":"test@example.com","password":"TestPass123!"}' |
  python3 -c 'import sys,json; print(json.load(sys.stdin)["access_token"])')
printf 'wrk.method="POST"\nwrk.headers["Content-Type"]="application/json"\nwrk.body=%s\n' \
  "'{\"token\":\"$seed_token\"}'" >"$work/validate-seed.lua"
rps() {  # url [wrk args...]
  local url=$1; shift
  taskset -c 0 wrk -t1 -c32 -d"${secs}s" "$@" "$url" | awk '/Requests\/sec/{print $2}'
}
for scenario in health validate; do
  ratios=()
  for round in $(seq 1 "$rounds"); do
    if [[ $scenario == health ]]; then
      ours=$(rps http://127.0.0.1:18081/health)
      theirs=$(rps http://127.0.0.1:18000/health)
    else
      ours=$(rps http://127.0.0.1:18081/api/v1/auth/validate -s "$work/validate-aether.lua")
      theirs=$(rps http://127.0.0.1:18000/api/v1/auth/validate -s "$work/validate-seed.lua")
    fi
    ratio=$(python3 -c "print(f'{$ours / $theirs:.1f}')")
    ratios+=("$ratio")
    echo "$scenario round $round: aether $ours req/s, Python $theirs req/s, ratio ${ratio}x"
  done
  median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
  echo "$scenario median ratio over $rounds rounds: ${median}x"
done

echo
echo "== login throughput, aether unpinned ($(nproc) cores) =="
start_aether 18082 "" "$work/unpinned"
curl -s -o /dev/null -XPOST http://127.0.0.1:18082/api/v1/auth/register -H 'content-type: application/json' \
  -d '{"email":"test@example.com","password":"TestPass123!","name":"Test User"}'
printf 'wrk.method="POST"\nwrk.headers["Content-Type"]="application/json"\nwrk.body=%s\n' \
  "'{\"email\":\"test@example.com\",\"password\":\"TestPass123!\"}'" >"$work/login.lua"
wrk -t2 -c8 -d"${secs}s" -s "$work/login.lua" http://127.0.0.1:18082/api/v1/auth/login |
  awk '/Requests\/sec/{print "login unpinned rps=" $2}'

echo
echo "== idle RSS and start-to-ready of --target=security =="
python3 - "$aether" "$work/startup" <<'PY'
import http.client, os, subprocess, sys, time
binary, data = sys.argv[1], sys.argv[2]
env = dict(os.environ)
start = time.monotonic()
proc = subprocess.Popen([binary, "serve", "--target=security", "--listen", "127.0.0.1:18083",
                         "--data-dir", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
ready = None
while time.monotonic() - start < 10:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", 18083, timeout=1)
        conn.request("GET", "/ready")
        if conn.getresponse().status == 200:
            ready = time.monotonic() - start
            break
    except OSError:
        time.sleep(0.002)
time.sleep(1)
rss_kb = next(int(line.split()[1]) for line in open(f"/proc/{proc.pid}/status") if line.startswith("VmRSS"))
proc.terminate(); proc.wait(5)
print(f"start to ready: {ready * 1000:.0f} ms (first run: migrations included)" if ready else "never ready")
print(f"idle RSS: {rss_kb / 1024:.1f} MiB")
PY
