#!/usr/bin/env bash
# The gateway against nginx as a plain reverse proxy, as issue #3 measures it:
#   1. peak: wrk -t1 -c50 alone on core 0 against the upstream directly, nginx (proxy_pass,
#      keep-alive upstream) on core 1, and `aether serve --target=gateway` on core 1, without and
#      with jwt + rate-limiting (local); the upstream is nginx returning a fixed JSON, beside the
#      proxy on core 1 (UPSTREAM_CORE=0: beside wrk on core 0).
#      ROUNDS (default 3) rounds of the proxies in turn, in reverse order in even rounds; ratios
#      are taken within a round. nginx+headers is nginx adding the headers the gateway must add
#      (X-Forwarded-*, X-Request-ID, traceparent): the same work, for reference, not a goal;
#      With each run, the CPU time core 1 spent per request, in user space and in the kernel;
#      with UPSTREAM_CORE=0, when wrk and the upstream saturate core 0, req/s shows parity
#      whatever the proxy costs, and these show what it costs;
#   2. added latency at about half of peak: wrk -t1 -cN, N calibrated so the gateway (nginx while
#      there is no gateway) runs near half its peak, against the upstream directly and through
#      each proxy; added = p99(proxy) - p99(direct);
#   3. RSS of the gateway (and of nginx's worker) idle and with 1 000 open keep-alive connections.
# CAPPED=1 adds 1b: the peak runs again with each proxy held to half of core 1 by a cgroup CPU
# quota, so that the proxy is the bottleneck (root only).
# Usage: bench/gateway/compare.sh [seconds-per-scenario]   (run `make build` first)
# ACCESS_LOG=1 makes both proxies write one access line per request (to /dev/null); the default
# compares both without one. BUSY_POLL_US=N runs the gateway with http.busy_poll_us=N (off by
# default): a setting nginx has no counterpart of, so the goals are read without it.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-8}
aether=${AETHER_BIN:-build/release/aether}  # as tests/integration: AETHER_BIN overrides
here=bench/gateway
nginx=/usr/sbin/nginx
python=/usr/bin/python3  # Debian's, with python3-jwt
held=1000

[[ -x $aether ]] || { echo "build first: make build (no $aether)" >&2; exit 2; }
[[ -x $nginx ]] || { echo "nginx missing: scripts/bootstrap (package nginx-light)" >&2; exit 2; }
for tool in wrk taskset curl; do
  command -v "$tool" >/dev/null || { echo "$tool missing: scripts/bootstrap" >&2; exit 2; }
done
$python -c 'import jwt' 2>/dev/null || { echo "python3-jwt missing: scripts/bootstrap" >&2; exit 2; }
(( $(nproc) >= 2 )) || { echo "needs 2 cores (wrk on core 0, the proxy on core 1)" >&2; exit 2; }

# Where the upstream runs: beside the proxy on core 1 (default), so that wrk has core 0 to itself
# and the proxy's core is the one that saturates; or beside wrk on core 0 (UPSTREAM_CORE=0, the
# layout of the rounds before the ninth), where wrk and the upstream saturate core 0 first.
upstream_core=${UPSTREAM_CORE:-1}
[[ $upstream_core == [01] ]] ||
  { echo "UPSTREAM_CORE is 0 or 1, not '$upstream_core'" >&2; exit 2; }
listed() {  # word list...: whether the word is one of the list's
  local word=$1
  shift
  [[ " $* " == *" $word "* ]]
}
# The targets of the peak rounds (and of 1b), in the order a round runs them. The plain gateway
# runs next to nginx in either order: its goal is the tightest, and runs seconds apart see the
# closest machine.
all_peak_targets=(nginx gateway nginx+headers gateway+jwt+ratelimit)
# PEAK_TARGETS="nginx gateway" runs only those two: more rounds in the same time, each pair
# closer together. nginx is every ratio's reference, and the gateway section 2's.
read -r -a requested_targets <<<"${PEAK_TARGETS:-${all_peak_targets[*]}}"
for target in "${requested_targets[@]}"; do
  listed "$target" "${all_peak_targets[@]}" ||
    { echo "PEAK_TARGETS: no peak target '$target'" >&2; exit 2; }
done
for required in nginx gateway; do
  listed "$required" "${requested_targets[@]}" ||
    { echo "PEAK_TARGETS must include $required" >&2; exit 2; }
done
source "$here/common.sh"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

access_log=off
[[ ${ACCESS_LOG:-0} == 1 ]] && access_log=/dev/null

wait_http() {  # port pid log: until anything answers HTTP on the port
  for _ in $(seq 1 200); do
    kill -0 "$2" 2>/dev/null || { echo "process $2 exited; its log:" >&2; cat "$3" >&2; return 1; }
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$1/" || true) != 000 ]] && return 0
    sleep 0.05
  done
  echo "nothing answers on port $1 after 10 s; log:" >&2
  cat "$3" >&2
  return 1
}

expect_ok() {  # url [curl args]: the fixed answer of the upstream, or fail loudly
  local url=$1 body
  shift
  body=$(curl -s --max-time 5 "$@" "$url" || true)
  [[ $body == '{"status":"ok"}' ]] || { echo "$url answered '$body', not the upstream's JSON" >&2; return 1; }
}

rss_kib() {  # pid
  awk '/^VmRSS:/{print $2}' "/proc/$1/status"
}

# run_wrk and field (bench/wrk.sh).
wrk_command="taskset -c 0 wrk"
source bench/wrk.sh

: >"$work/results"
echo "== setup: load average $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews everything) =="

start_upstream
wait_http "$upstream_port" "${pids[-1]}" "$work/upstream.out"
expect_ok "http://127.0.0.1:$upstream_port/"

# nginx as the issue's plain reverse proxy (the reference of every ratio), and nginx adding what
# the gateway adds to each request and answer; each started with `start_nginx_proxy`, which sets
# started_port and started_pid.
start_nginx_proxy() {  # run-dir headers (plain|gateway)
  started_port=$(free_port)
  render_nginx_proxy "$1" "$started_port" "$access_log" "$2"
  taskset -c 1 $nginx -p "$1" -e "$1/proxy-error.log" -c "$1/proxy.conf" >"$1/proxy.out" 2>&1 &
  started_pid=$!
  pids+=("$started_pid")
  wait_http "$started_port" "$started_pid" "$1/proxy.out"
  expect_ok "http://127.0.0.1:$started_port/"
}
start_nginx_proxy "$work" plain
proxy_port=$started_port proxy_pid=$started_pid
start_nginx_proxy "$work/headers" gateway
headers_proxy_port=$started_port headers_proxy_pid=$started_pid
[[ $(curl -s -D - -o /dev/null "http://127.0.0.1:$headers_proxy_port/") == *X-Request-ID:* ]] ||
  { echo "nginx+headers answered without an X-Request-ID" >&2; exit 1; }

# The gateway runs only once `serve --list-targets` lists it as built.
gateway=0
if "$aether" serve --list-targets | grep -P '^gateway\t' | grep -vq 'not built yet'; then
  gateway=1
else
  echo "SKIP gateway: '$aether serve --list-targets' does not list a built gateway target yet;" \
    "measuring the upstream and nginx only"
fi

token=$(mint_token)
auth=(-H "Authorization: Bearer $token")

declare -A gateway_pid gateway_port
start_gateway() {  # variant (plain|plugins)
  local variant=$1 port log log_access=false
  port=$(free_port)
  log="$work/gateway-$variant.err"
  [[ $access_log != off ]] && log_access=true
  LOG_ACCESS=$log_access launch_gateway "$variant" "$port" "$log"
  gateway_pid[$variant]=$launched_pid
  gateway_port[$variant]=$port
  wait_http "$port" "$launched_pid" "$log"
}

if ((gateway)); then
  start_gateway plain
  expect_ok "http://127.0.0.1:${gateway_port[plain]}/"
  start_gateway plugins
  expect_ok "http://127.0.0.1:${gateway_port[plugins]}/" "${auth[@]}"
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${gateway_port[plugins]}/")
  [[ $code == 401 ]] || { echo "the jwt variant answered $code without a token, not 401" >&2; exit 1; }
fi

echo
rounds=${ROUNDS:-3}
echo "== 1. peak: wrk -t1 -c50 ${secs}s on core 0; proxies on core 1;" \
  "upstream (nginx) on core $upstream_core; $rounds rounds, each target in turn within a round," \
  "reversed in even rounds =="
# A ratio is taken between runs of the same round, seconds apart: the load of the machine's
# neighbours, which moves nginx's own rate by a third over minutes, then enters both sides.
# Core 1's time in user space and in the kernel (system, irq and softirq), in clock ticks.
core1_ticks() {
  awk '/^cpu1 / { print $2 + $3, $4 + $7 + $8 }' /proc/stat
}
# run_wrk, and the CPU time core 1 (the proxy's; by default the upstream's too) spent per
# request, user and kernel, into $work/cpu as "label user_us kernel_us" (0 when wrk completed
# nothing). The kernel's share includes the receive work of the packets the proxy sends, which
# loopback does on the sender's core; the proxies not under load, pinned there too, add their
# idle timers. Requests are req/s times the run's length.
run_peak() {  # label, wrk args...
  local label=$1 before after
  before=$(core1_ticks)
  run_wrk "$@"
  after=$(core1_ticks)
  echo "$label $before $after $(field "$label" 2) $secs $(getconf CLK_TCK)" | awk '{
    requests = $6 * $7
    if (requests <= 0) { printf "%s 0 0\n", $1; exit }
    printf "%s %.1f %.1f\n", $1, ($4 - $2) / $8 * 1e6 / requests, ($5 - $3) / $8 * 1e6 / requests
  }' >>"$work/cpu"
}
# TARGET's figure in COLUMN of FILE against REFERENCE's (default nginx) in the same round, one
# line per round; with PREFIX, of the runs labelled PREFIX+target (PREFIX+reference the
# reference).
round_ratios() {  # target column file [prefix [reference]]
  local round prefix=${4:-} reference=${5:-nginx}
  for round in $(seq 1 "$rounds"); do
    awk -v a="$(field "$prefix$1#$round" "$2" "$3")" -v b="$(field "$prefix$reference#$round" "$2" "$3")" \
      'BEGIN { printf "%.2f\n", (b > 0 ? a / b : 0) }'
  done
}
run_wrk direct -t1 -c50 -d"${secs}s" "http://127.0.0.1:$upstream_port/"
peak_targets=()
for target in "${all_peak_targets[@]}"; do
  [[ $target == nginx* ]] || ((gateway)) || continue
  listed "$target" "${requested_targets[@]}" && peak_targets+=("$target")
done
peak_target() {  # target: whether the peak rounds run it
  listed "$1" "${peak_targets[@]}"
}
# The targets, in the order a round runs them: reversed in even rounds. The machine's speed
# drifts over minutes; in a fixed order the drift within a round would favour the same target in
# every round.
in_round_order() {  # round targets...
  local round=$1
  shift
  if ((round % 2)); then printf '%s\n' "$@"; else printf '%s\n' "$@" | tac; fi
}
# Sets `request`: wrk's arguments for a peak target, its URL and the token the plugins need.
target_request() {  # target
  case $1 in
    nginx) request=("http://127.0.0.1:$proxy_port/") ;;
    nginx+headers) request=("http://127.0.0.1:$headers_proxy_port/") ;;
    gateway) request=("http://127.0.0.1:${gateway_port[plain]}/") ;;
    gateway+jwt+ratelimit) request=("${auth[@]}" "http://127.0.0.1:${gateway_port[plugins]}/") ;;
  esac
}
# A second of load on each target first, not counted: the first round would otherwise pay for
# opening the upstream connections and for cold caches, which the first target pays most.
for target in "${peak_targets[@]}"; do
  target_request "$target"
  run_wrk "warm-up:$target" -t1 -c50 -d1s "${request[@]}"
done
for round in $(seq 1 "$rounds"); do
  for target in $(in_round_order "$round" "${peak_targets[@]}"); do
    target_request "$target"
    run_peak "$target#$round" -t1 -c50 -d"${secs}s" "${request[@]}"
  done
done
printf '%-26s %10s %9s %9s %8s %7s %9s %8s %8s\n' target req/s p50_us p99_us non2xx errors vs-nginx \
  core1_usr core1_sys
awk '$1 == "direct" { printf "%-26s %10d %9d %9d %8d %7d\n", $1, $2, $3, $4, $5, $6 }' "$work/results"
for round in $(seq 1 "$rounds"); do
  for target in "${peak_targets[@]}"; do
    awk -v l="$target#$round" -v n="$(field "nginx#$round" 2)" -v usr="$(field "$target#$round" 2 "$work/cpu")" \
      -v sys="$(field "$target#$round" 3 "$work/cpu")" '$1 == l {
      printf "%-26s %10d %9d %9d %8d %7d %8.2fx %8.1f %8.1f\n", $1, $2, $3, $4, $5, $6,
        (n > 0 ? $2 / n : 0), usr, sys }' "$work/results"
  done
done
echo "(core1_usr, core1_sys: microseconds of core 1 per request, in user space and in the" \
  "kernel; core 1 runs the proxy$( ((upstream_core == 1)) && echo ' and the upstream'))"
median() {  # printf-format: the median of the numbers on stdin, one per line
  sort -n | awk -v format="$1" '{ v[NR] = $1 }
    END { printf format, (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
# "MEDIANx (sorted ratios)" of the ratios on stdin, one per line.
ratio_summary() {
  local ratios
  ratios=$(sort -n)
  printf '%sx (%s)' "$(median '%.2f' <<<"$ratios")" "$(paste -sd' ' <<<"$ratios")"
}
# Per target, the median of its rounds (each column on its own) is what the later sections use.
for target in "${peak_targets[@]}"; do
  line=$target
  for column in 2 3 4 5 6; do
    line+=" $(awk -v t="$target" -v c="$column" 'index($1, t "#") == 1 && $1 ~ /#[0-9]+$/ { print $c }' \
      "$work/results" | median '%.0f')"
  done
  echo "$line" >>"$work/results.medians"
done
cat "$work/results.medians" >>"$work/results"
if ((gateway)); then
  echo "ratios within rounds (median; range):"
  for target in gateway gateway+jwt+ratelimit; do
    peak_target "$target" || continue
    faster=0 p99_worse=0
    for round in $(seq 1 "$rounds"); do
      (( $(field "$target#$round" 2) > $(field "nginx#$round" 2) )) && faster=$((faster + 1))
      (( $(field "$target#$round" 4) > $(field "nginx#$round" 4) )) && p99_worse=$((p99_worse + 1))
    done
    printf '  %-24s %s; req/s above nginx'"'"'s in %d, p99 above in %d of %d rounds\n' "$target" \
      "$(round_ratios "$target" 2 "$work/results" | ratio_summary)" \
      "$faster" "$p99_worse" "$rounds"
  done
  if peak_target nginx+headers; then
    printf '  %-24s %s (nginx doing what the gateway must do, against plain nginx)\n' \
      nginx+headers "$(round_ratios nginx+headers 2 "$work/results" | ratio_summary)"
    printf '  %-24s %s (against nginx+headers)\n' gateway \
      "$(round_ratios gateway 2 "$work/results" "" nginx+headers | ratio_summary)"
  fi
  echo "p99 against nginx's in the same round (median; range):"
  for target in gateway gateway+jwt+ratelimit; do
    peak_target "$target" || continue
    printf '  %-24s %s\n' "$target" "$(round_ratios "$target" 4 "$work/results" | ratio_summary)"
  done
  echo "core 1's time per request against nginx's in the same round (median; range):"
  for target in nginx+headers gateway gateway+jwt+ratelimit; do
    peak_target "$target" || continue
    printf '  %-24s user   %s\n' "$target" \
      "$(round_ratios "$target" 2 "$work/cpu" | ratio_summary)"
    printf '  %-24s kernel %s\n' "$target" \
      "$(round_ratios "$target" 3 "$work/cpu" | ratio_summary)"
  done
fi

# With CAPPED=1, each proxy held to half of core 1 by a CPU quota (cgroup cpu controller, 5 ms in
# every 10 ms; the upstream is not held): the proxy's quota is then the bottleneck, so its req/s
# measures what a request costs it. Needs a writable cgroup cpu controller (root, not in a
# container). Latency under a quota measures the quota's pauses, so only req/s is shown.
cap_dir=""
cap_enabled_cpu=0  # the script turned the v2 cpu controller on, and turns it off again
make_cap() {
  local dir
  trap 'cleanup; remove_cap' EXIT
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then  # cgroup v2
    if ! grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then
      echo +cpu >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || return 1
      cap_enabled_cpu=1
    fi
    dir=/sys/fs/cgroup/aether-bench-$$
    mkdir "$dir" 2>/dev/null || return 1
    cap_dir=$dir
    echo "5000 10000" >"$dir/cpu.max" 2>/dev/null || return 1
  else  # cgroup v1
    dir=/sys/fs/cgroup/cpu/aether-bench-$$
    mkdir "$dir" 2>/dev/null || return 1
    cap_dir=$dir
    echo 10000 >"$dir/cpu.cfs_period_us" 2>/dev/null &&
      echo 5000 >"$dir/cpu.cfs_quota_us" 2>/dev/null || return 1
  fi
}
remove_cap() {
  if [[ -n $cap_dir ]]; then rmdir "$cap_dir" 2>/dev/null || true; fi
  if ((cap_enabled_cpu)); then echo -cpu >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true; fi
}
# The cgroup a process is in now, as a directory: v2's single hierarchy, or v1's cpu controller.
cgroup_dir_of() {  # pid
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    echo "/sys/fs/cgroup$(awk -F: '$1 == "0" { print $3 }' "/proc/$1/cgroup")"
  else
    echo "/sys/fs/cgroup/cpu$(awk -F: '$2 ~ /(^|,)cpu(,|$)/ { print $3 }' "/proc/$1/cgroup")"
  fi
}
capped_peak() {  # label wrk-args...: wrk while the processes in cap_pids run capped
  local label=$1 pid
  local -A home
  shift
  for pid in "${cap_pids[@]}"; do
    home[$pid]=$(cgroup_dir_of "$pid")
    echo "$pid" >"$cap_dir/cgroup.procs"
  done
  run_wrk "$label" -t1 -c50 -d"${secs}s" "$@"
  for pid in "${cap_pids[@]}"; do echo "$pid" >"${home[$pid]}/cgroup.procs"; done
}
if [[ ${CAPPED:-0} == 1 ]] && ((gateway)) && make_cap; then
  echo
  echo "== 1b. each proxy held to half of core 1 (cgroup CPU quota 5 ms per 10 ms):" \
    "wrk -t1 -c50 ${secs}s, $rounds rounds =="
  nginx_and_workers() { echo "$1"; pgrep -P "$1"; }  # master-pid
  mapfile -t nginx_pids < <(nginx_and_workers "$proxy_pid")
  mapfile -t headers_nginx_pids < <(nginx_and_workers "$headers_proxy_pid")
  for round in $(seq 1 "$rounds"); do
    for target in $(in_round_order "$round" "${peak_targets[@]}"); do
      case $target in
        nginx) cap_pids=("${nginx_pids[@]}") ;;
        nginx+headers) cap_pids=("${headers_nginx_pids[@]}") ;;
        gateway) cap_pids=("${gateway_pid[plain]}") ;;
        gateway+jwt+ratelimit) cap_pids=("${gateway_pid[plugins]}") ;;
      esac
      target_request "$target"
      capped_peak "capped:$target#$round" "${request[@]}"
    done
  done
  printf '%-34s %10s %8s %7s %9s\n' target req/s non2xx errors vs-nginx
  for round in $(seq 1 "$rounds"); do
    for target in "${peak_targets[@]}"; do
      awk -v l="capped:$target#$round" -v n="$(field "capped:nginx#$round" 2)" '$1 == l {
        printf "%-34s %10d %8d %7d %8.2fx\n", $1, $2, $5, $6, (n > 0 ? $2 / n : 0) }' "$work/results"
    done
  done
  echo "ratios within rounds (median; range):"
  for target in nginx+headers gateway gateway+jwt+ratelimit; do
    peak_target "$target" || continue
    printf '  %-24s %s\n' "$target" \
      "$(round_ratios "$target" 2 "$work/results" capped: | ratio_summary)"
  done
  if peak_target nginx+headers; then
    printf '  %-24s %s (against nginx+headers)\n' gateway \
      "$(round_ratios gateway 2 "$work/results" capped: nginx+headers | ratio_summary)"
  fi
elif [[ ${CAPPED:-0} == 1 ]]; then
  echo
  if ((gateway)); then
    echo "== 1b. skipped: no writable cgroup cpu controller to hold the proxies to half a core =="
  else
    echo "== 1b. skipped: no gateway to compare =="
  fi
fi

echo
# Half of peak, closed loop: wrk keeps c requests in flight; c is the concurrency (1, 2, 4, ...)
# at which the reference target (the gateway; nginx while there is no gateway) comes closest to
# half of its peak rate, found with 2 s runs; every target then runs at that c. (Pacing with
# wrk's delay() does not work at these rates: its millisecond timers fire together and turn the
# load into bursts that queue, so the latency measured is the bursts'.)
reference=gateway
((gateway)) || reference=nginx
half=$(( $(field "$reference" 2) / 2 ))
reference_url="http://127.0.0.1:$proxy_port/"
if ((gateway)); then reference_url="http://127.0.0.1:${gateway_port[plain]}/"; fi
connections=1
best_gap=-1
for c in 1 2 4 8 16 32; do
  run_wrk "calibrate:$c" -t1 -c"$c" -d2s "$reference_url"
  rps=$(field "calibrate:$c" 2)
  gap=$(( rps > half ? rps - half : half - rps ))
  if ((best_gap < 0 || gap < best_gap)); then best_gap=$gap connections=$c; fi
  ((rps < half)) || break
done
echo "== 2. added latency at about half of $reference's peak (${half} req/s):" \
  "wrk -t1 -c$connections ${secs}s, closed loop =="
run_wrk half:direct -t1 -c"$connections" -d"${secs}s" "http://127.0.0.1:$upstream_port/"
run_wrk half:nginx -t1 -c"$connections" -d"${secs}s" "http://127.0.0.1:$proxy_port/"
half_labels=(half:direct half:nginx)
if ((gateway)); then
  run_wrk half:gateway -t1 -c"$connections" -d"${secs}s" "http://127.0.0.1:${gateway_port[plain]}/"
  run_wrk half:gateway+plugins -t1 -c"$connections" -d"${secs}s" "${auth[@]}" \
    "http://127.0.0.1:${gateway_port[plugins]}/"
  half_labels+=(half:gateway half:gateway+plugins)
fi
direct_p50=$(field half:direct 3)
direct_p99=$(field half:direct 4)
printf '%-22s %10s %9s %9s %8s %13s %13s\n' target req/s p50_us p99_us non2xx added_p50_us added_p99_us
for label in "${half_labels[@]}"; do
  awk -v l="$label" -v d50="$direct_p50" -v d99="$direct_p99" '$1 == l {
    printf "%-22s %10d %9d %9d %8d %13d %13d\n", $1, $2, $3, $4, $5, $3 - d50, $4 - d99 }' "$work/results"
done

echo
echo "== 3. RSS with $held open keep-alive connections (one request each, then idle) =="
hold() {  # label port pid [curl-style header args...]
  local label=$1 port=$2 pid=$3 before after headers=()
  shift 3
  while (($#)); do headers+=(--header "$2"); shift 2; done
  before=$(rss_kib "$pid")
  mkfifo "$work/hold-$label"
  taskset -c 0 $python "$here/hold_connections.py" "$port" "$held" 600 "${headers[@]}" \
    >"$work/hold-$label" 2>"$work/hold-$label.err" &
  local holder=$!
  pids+=("$holder")
  local line=""
  read -r -t 120 line <"$work/hold-$label" || true
  if [[ $line != held* ]]; then
    echo "$label: could not hold $held connections: $line $(cat "$work/hold-$label.err")" >&2
    kill "$holder" 2>/dev/null || true
    return 1
  fi
  sleep 1  # let the server settle (lazy allocations after the last response)
  after=$(rss_kib "$pid")
  kill "$holder" 2>/dev/null || true
  wait "$holder" 2>/dev/null || true
  printf '%-22s idle %7.1f MiB   with %d connections %7.1f MiB   (%s)\n' \
    "$label" "$(awk -v k="$before" 'BEGIN{print k / 1024}')" "$held" \
    "$(awk -v k="$after" 'BEGIN{print k / 1024}')" "${line#held * }"
}
proxy_worker=$(pgrep -P "$proxy_pid" | head -1)
hold "nginx (worker)" "$proxy_port" "$proxy_worker"
if ((gateway)); then
  hold gateway "${gateway_port[plain]}" "${gateway_pid[plain]}"
  hold gateway+jwt+ratelimit "${gateway_port[plugins]}" "${gateway_pid[plugins]}" "${auth[@]}"
fi

echo
echo "== goals (issue #3) =="
echo "gateway >= 1.00x nginx req/s, p99 no worse; gateway+jwt+ratelimit >= 0.80x nginx;"
echo "added p99 at half of peak <= 1000 us; gateway RSS <= 30 MiB with $held connections"
((gateway)) || echo "(gateway skipped: not built yet)"
