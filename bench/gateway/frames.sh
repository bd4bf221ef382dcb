#!/usr/bin/env bash
# The blocks Asio allocates per proxied request (coroutine frames, operation state), by size,
# counted by an aligned_alloc shim (frame_sizes.c) while wrk loads the gateway. glibc's
# per-thread cache takes blocks up to 1 032 bytes: a frame past that costs a slow malloc and
# free on every request, about 400 instructions, which instructions.sh only shows in its total.
# A struct grown by a few dozen bytes can push a frame past it.
# Usage: bench/gateway/frames.sh [gateway|plugins] [seconds]   (make build first)
# Prints each size allocated at least once per 20 requests, per request, marking the ones the
# cache cannot take.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${1:-gateway}
secs=${2:-5}
aether=${AETHER_BIN:-build/release/aether}
here=bench/gateway
nginx=/usr/sbin/nginx
python=/usr/bin/python3
readonly kTcacheLargest=1032

for tool in cc wrk taskset curl; do
  command -v "$tool" >/dev/null || { echo "$tool missing: scripts/bootstrap" >&2; exit 2; }
done
[[ -x $aether ]] || { echo "build first: make build (no $aether)" >&2; exit 2; }
case $target in gateway | plugins) ;; *) echo "unknown target $target" >&2; exit 2 ;; esac

source "$here/common.sh"
cc -O2 -shared -fPIC -o "$work/frame_sizes.so" "$here/frame_sizes.c" -ldl
start_upstream
proxy_port=$(free_port)
select_variant "$target"
launch_gateway "$variant" "$proxy_port" "$work/proxy.err" \
  env LD_PRELOAD="$work/frame_sizes.so" FRAME_SIZES_OUT="$work/sizes.txt"
proxy_pid=$launched_pid
wait_ok "$proxy_pid" "$work/proxy.err" "http://127.0.0.1:$proxy_port/" "${auth[@]}"
requests=$(taskset -c 0 wrk -t1 -c50 -d"${secs}s" "${auth[@]}" "http://127.0.0.1:$proxy_port/" |
  awk '/requests in/{print $1}')
# A graceful stop runs the shim's destructor, which writes the counts.
kill -TERM "$proxy_pid"
wait "$proxy_pid" 2>/dev/null || true
echo "target=$target requests=$requests (sizes in bytes, allocations per request)"
awk -v n="$requests" -v largest="$kTcacheLargest" '$2 * 20 >= n {
  printf "%6d  %5.2f%s\n", $1, $2 / n, ($1 > largest ? "  past the per-thread cache" : "")
}' "$work/sizes.txt"
