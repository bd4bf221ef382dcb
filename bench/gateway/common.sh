# Shared by bench/gateway/compare.sh, instructions.sh and frames.sh (sourced, not run): the run
# directory and its cleanup, free ports, template rendering, the nginx upstream, the gateway's
# start and the bench's JWT. Expects $here, $nginx and $python set by the caller, and $aether
# for launch_gateway.

# A temporary run directory; every pid added to `pids` is killed and the directory removed on
# exit (Ctrl-C included).
work=$(mktemp -d)
chmod 755 "$work"  # nginx's workers run as nobody when started by root
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export AETHER_AUTH_JWT_SECRET=bench-gateway-secret-bench-gateway-secret-0123456789

free_port() {
  $python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

render() {  # template output KEY=VALUE...
  local template=$1 output=$2 args=()
  shift 2
  for pair in "$@"; do args+=(-e "s|@${pair%%=*}@|${pair#*=}|g"); done
  sed "${args[@]}" "$template" >"$output"
  if grep -q '@[A-Z_]*@' "$output"; then
    echo "unreplaced placeholder in $output" >&2
    return 1
  fi
}

# nginx's temp paths inside the run dir, for the modules this build has (nginx-light lacks some).
write_temp_paths() {
  {
    echo "client_body_temp_path $work/client_body;"
    for module in proxy fastcgi scgi uwsgi; do
      $nginx -V 2>&1 | grep -q -- "--http-$module-temp-path" && echo "${module}_temp_path $work/$module;"
    done
  } >"$work/temp-paths.conf"
}

# The upstream every target proxies to: nginx answering a fixed JSON, on core $upstream_core
# (0 unless the caller sets it). Sets upstream_port; its output goes to $work/upstream.out.
start_upstream() {
  write_temp_paths
  upstream_port=$(free_port)
  render "$here/nginx-upstream.conf.in" "$work/upstream.conf" PORT="$upstream_port" RUN_DIR="$work"
  taskset -c "${upstream_core:-0}" $nginx -p "$work" -e "$work/upstream-error.log" \
    -c "$work/upstream.conf" >"$work/upstream.out" 2>&1 &
  pids+=($!)
}

# Renders nginx-proxy.conf.in into RUN_DIR/proxy.conf (a directory of its own for each nginx
# proxy: the pid file and error log are there) for a proxy on PORT in front of the upstream, with
# ACCESS_LOG (off or a path). HEADERS `plain` adds nothing to what nginx forwards; `gateway` adds
# what the gateway must add by API.md: X-Forwarded-For, -Proto and -Host and X-Request-ID on the
# upstream request, X-Request-ID on the answer, and a W3C traceparent (its trace id nginx's
# request id, its parent id fixed: nginx has no generator for it, and the bytes are what counts).
render_nginx_proxy() {  # run-dir port access-log headers (plain|gateway)
  local dir=$1 added=""
  mkdir -p "$dir"
  [[ $dir == "$work" ]] || cp "$work/temp-paths.conf" "$dir/"
  if [[ $4 == gateway ]]; then
    added='proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;'
    added+=' proxy_set_header X-Forwarded-Proto $scheme;'
    added+=' proxy_set_header X-Forwarded-Host $http_host;'
    added+=' proxy_set_header X-Request-ID $request_id;'
    added+=' proxy_set_header traceparent 00-$request_id-00f067aa0ba902b7-01;'
    added+=' add_header X-Request-ID $request_id;'
  fi
  render "$here/nginx-proxy.conf.in" "$dir/proxy.conf" PORT="$2" UPSTREAM_PORT="$upstream_port" \
    RUN_DIR="$dir" ACCESS_LOG="$3" ADDED_HEADERS="$added"
}

# An HS256 access token for the jwt plugin, valid for an hour.
mint_token() {
  $python - <<'PY'
import os, time, uuid
import jwt
now = int(time.time())
claims = {"sub": str(uuid.uuid4()), "email": "bench@example.com", "type": "access", "iat": now,
          "exp": now + 3600, "jti": uuid.uuid4().hex, "roles": ["user"], "permissions": []}
print(jwt.encode(claims, os.environ["AETHER_AUTH_JWT_SECRET"], algorithm="HS256"))
PY
}

# Sets `variant` (the gateway configuration: plain or plugins) for a bench target (gateway or
# plugins), and `auth`, the curl and wrk arguments its requests need.
select_variant() {  # target
  variant=plain
  auth=()
  if [[ $1 == plugins ]]; then
    variant=plugins
    auth=(-H "Authorization: Bearer $(mint_token)")
  fi
}

# Starts the gateway on core 1 with gateway-VARIANT.yaml.in in front of the upstream, listening
# on PORT, its stderr in LOG, run through WRAPPER... if given (valgrind, env LD_PRELOAD=...).
# Sets launched_pid. Only the AETHER_* variables meant here reach it (unknown ones are
# configuration errors); LOG_ACCESS=true turns its access log on, BUSY_POLL_US=N its busy
# polling (http.busy_poll_us; off by default, as in the gateway).
launch_gateway() {  # variant port log [wrapper...]
  local variant=$1 port=$2 log=$3
  shift 3
  render "$here/gateway-$variant.yaml.in" "$work/gateway-$variant.yaml" UPSTREAM_PORT="$upstream_port"
  env -i PATH="$PATH" HOME="$HOME" \
    AETHER_GATEWAY_CONFIG="$work/gateway-$variant.yaml" \
    AETHER_AUTH_JWT_SECRET="$AETHER_AUTH_JWT_SECRET" \
    AETHER_LOG_ACCESS="${LOG_ACCESS:-false}" \
    AETHER_HTTP_IO_THREADS=1 \
    AETHER_BLOCKING_THREADS=1 \
    AETHER_HTTP_BUSY_POLL_US="${BUSY_POLL_US:-0}" \
    taskset -c 1 "$@" "$aether" serve --target=gateway --listen "127.0.0.1:$port" \
    --data-dir "$work/data-$variant" >/dev/null 2>"$log" &
  launched_pid=$!
  pids+=("$launched_pid")
}

# Waits until URL answers 200 to curl with ARGS; fails, showing LOG, when PID exits first or a
# minute passes (a proxy under valgrind takes seconds to start).
wait_ok() {  # pid log url [curl args...]
  local pid=$1 log=$2 url=$3
  shift 3
  for _ in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || { echo "process $pid exited:" >&2; cat "$log" >&2; exit 1; }
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$@" "$url" || true) == 200 ]] && return 0
    sleep 0.1
  done
  echo "$url did not answer 200 within a minute" >&2
  exit 1
}
