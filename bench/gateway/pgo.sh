#!/usr/bin/env bash
# A profile-guided build of `aether` in build/pgo, trained on the gateway's bench load: GCC lays
# out the hot path together and inlines along it, which is what the gateway's remaining gap to
# nginx is made of (instruction-cache misses; bench/gateway/README.md, fifth round).
#   1. build/pgo with -fprofile-generate (release flags otherwise);
#   2. the instrumented gateway, plain and with jwt + rate-limiting, under wrk -t1 -c50 for
#      SECS each against the nginx upstream of compare.sh, then a clean exit (the profile is
#      written at exit);
#   3. build/pgo again with -fprofile-use.
# Usage: bench/gateway/pgo.sh [seconds]   then AETHER_BIN=build/pgo/aether bench/gateway/...
# Not part of `make build`: both builds are cold ones (a new profile changes every object),
# which `make test` cannot afford on two cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-15}
here=bench/gateway
nginx=/usr/sbin/nginx
python=/usr/bin/python3
build=build/pgo
aether=$build/aether

for tool in wrk taskset curl cmake ninja; do
  command -v "$tool" >/dev/null || { echo "$tool missing: scripts/bootstrap" >&2; exit 2; }
done
[[ -x $nginx ]] || { echo "nginx missing: scripts/bootstrap (package nginx-light)" >&2; exit 2; }
$python -c 'import jwt' 2>/dev/null || { echo "python3-jwt missing: scripts/bootstrap" >&2; exit 2; }

configure() {  # compiler flags, linker flags
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS=$1" \
    "-DCMAKE_EXE_LINKER_FLAGS=$2" -DAETHER_WERROR=OFF -DAETHER_BUILD_TESTS=OFF \
    -DAETHER_BUILD_BENCH=OFF >/dev/null
}

echo "== 1. instrumented build ($build) =="
find "$build" -name '*.gcda' -delete 2>/dev/null || true
# Atomic counters: the gateway's IO threads update them at once.
configure "-fprofile-generate -fprofile-update=atomic" "-fprofile-generate"
cmake --build "$build" --target aether -j "$(nproc)"

echo "== 2. training: ${secs}s of wrk -t1 -c50 per variant =="
source "$here/common.sh"
start_upstream
for target in gateway plugins; do
  select_variant "$target"
  port=$(free_port)
  launch_gateway "$variant" "$port" "$work/$variant.err"
  pid=$launched_pid
  wait_ok "$pid" "$work/$variant.err" "http://127.0.0.1:$port/" "${auth[@]}"
  rate=$(taskset -c 0 wrk -t1 -c50 -d"${secs}s" "${auth[@]}" "http://127.0.0.1:$port/" |
    awk '/Requests\/sec/{print $2}')
  kill -TERM "$pid"
  wait "$pid" || true
  echo "$target: $rate req/s instrumented"
done
profiles=$(find "$build" -name '*.gcda' | wc -l)
((profiles > 0)) || { echo "no profile written (did the gateway exit cleanly?)" >&2; exit 1; }

echo "== 3. optimised build from $profiles profiles =="
# Partial training: code the load never ran (other services, error paths) stays optimised as
# usual rather than as never executed.
configure "-fprofile-use -fprofile-partial-training -Wno-missing-profile" ""
cmake --build "$build" --target aether -j "$(nproc)"
echo "built $aether; compare with: AETHER_BIN=$aether bench/gateway/instructions.sh gateway"
