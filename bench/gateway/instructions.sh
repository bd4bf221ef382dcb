#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: the gateway (or nginx as
# the same plain reverse proxy) runs under valgrind on core 1 while wrk -t1 -c50 loads it from
# core 0 for SECS; the count covers only that window (after a warm-up). Deterministic to about
# 1%, where req/s on a shared VM moves by 20%: the figure to compare two builds of a hot path.
# Usage: bench/gateway/instructions.sh [gateway|plugins|nginx|nginx+headers] [seconds]
# (make build first; nginx+headers is nginx adding the headers the gateway must add, see
# render_nginx_proxy in common.sh)
# Prints the requests served, the instructions counted and their quotient; with TOP=N also the
# N functions with the most instructions of their own. With KEEP=FILE the callgrind profile is
# copied to FILE, for callgrind_annotate --inclusive=yes or kcachegrind. CACHE_SIM=1 simulates
# the caches too (valgrind's defaults for this CPU) and prints the first-level instruction and
# data misses per request: the code's footprint, which the instruction count does not show.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${1:-gateway}
secs=${2:-10}
aether=${AETHER_BIN:-build/release/aether}
here=bench/gateway
nginx=/usr/sbin/nginx
python=/usr/bin/python3

for tool in valgrind callgrind_control callgrind_annotate wrk taskset curl; do
  command -v "$tool" >/dev/null || { echo "$tool missing: scripts/bootstrap" >&2; exit 2; }
done
[[ -x $nginx ]] || { echo "nginx missing: scripts/bootstrap (package nginx-light)" >&2; exit 2; }
[[ $target == nginx* || -x $aether ]] || { echo "build first: make build (no $aether)" >&2; exit 2; }
case $target in
  gateway | plugins | nginx | nginx+headers) ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac
[[ $target != plugins ]] || $python -c 'import jwt' 2>/dev/null ||
  { echo "python3-jwt missing: scripts/bootstrap" >&2; exit 2; }

source "$here/common.sh"
start_upstream
proxy_port=$(free_port)

callgrind=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/callgrind.out")
[[ ${CACHE_SIM:-0} != 1 ]] || callgrind+=(--cache-sim=yes)
if [[ $target == nginx* ]]; then
  auth=()
  headers=plain
  [[ $target == nginx+headers ]] && headers=gateway
  # One process: the worker is the one measured.
  render_nginx_proxy "$work" "$proxy_port" off "$headers"
  sed -i 's|^daemon off;|daemon off;\nmaster_process off;|' "$work/proxy.conf"
  taskset -c 1 "${callgrind[@]}" "$nginx" -p "$work" -e "$work/proxy-error.log" \
    -c "$work/proxy.conf" >/dev/null 2>"$work/proxy.err" &
  proxy_pid=$!
  pids+=("$proxy_pid")
else
  select_variant "$target"
  launch_gateway "$variant" "$proxy_port" "$work/proxy.err" "${callgrind[@]}"
  proxy_pid=$launched_pid
fi
wait_ok "$proxy_pid" "$work/proxy.err" "http://127.0.0.1:$proxy_port/" "${auth[@]}"
taskset -c 0 wrk -t1 -c50 -d3s "${auth[@]}" "http://127.0.0.1:$proxy_port/" >/dev/null
callgrind_control -i on "$proxy_pid" >/dev/null 2>&1
requests=$(taskset -c 0 wrk -t1 -c50 -d"${secs}s" "${auth[@]}" "http://127.0.0.1:$proxy_port/" |
  awk '/requests in/{print $1}')
callgrind_control -i off "$proxy_pid" >/dev/null 2>&1
callgrind_control -d "$proxy_pid" >/dev/null 2>&1
sleep 1
profile=$(ls -t "$work"/callgrind.out* | head -1)
# Ir, then with CACHE_SIM=1 Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw, each with its percentage.
totals=$(callgrind_annotate "$profile" 2>/dev/null | grep 'PROGRAM TOTALS' | sed 's/([^)]*)//g; s/,//g')
instructions=$(awk '{ print $1 }' <<<"$totals")
[[ -z ${KEEP:-} ]] || cp "$profile" "$KEEP"
echo "target=$target requests=$requests instructions=$instructions per_request=$((instructions / requests))"
if [[ ${CACHE_SIM:-0} == 1 ]]; then
  awk -v n="$requests" '{
    printf "per request: I1 misses %.0f, D1 read misses %.0f, D1 write misses %.0f, last-level misses %.1f\n",
      $4 / n, $5 / n, $6 / n, ($7 + $8 + $9) / n }' <<<"$totals"
fi
if [[ -n ${TOP:-} ]]; then
  callgrind_annotate "$profile" 2>/dev/null | awk -v n="$requests" -v top="$TOP" '
    /file:function/ { listing = 1; next }
    listing && /^ *[0-9,]+ / && shown < top {
      ir = $1; gsub(",", "", ir); sub(/^ *[0-9,]+ +\([^)]*\) +/, "")
      printf "%8d  %s\n", ir / n, substr($0, 1, 140); shown++
    }'
fi
