# Sourced by the compare scripts: one wrk run's figures into $work/results, read back by label.
#   run_wrk LABEL WRK-ARGS...   runs `$wrk_command --latency WRK-ARGS` (wrk_command defaults to
#                               wrk; e.g. "taskset -c 0 wrk" to pin it) and appends
#                               "label rps p50_us p99_us non2xx errors", rps with $rps_decimals
#                               decimals (default 0)
#   field LABEL COLUMN [FILE]   a column (2=rps 3=p50 4=p99 5=non2xx 6=errors); empty when absent.
#                               FILE (default $work/results): another table of "label values..."

run_wrk() {  # label, wrk args...
  local label=$1
  shift
  local -a command
  read -r -a command <<<"${wrk_command:-wrk}"
  "${command[@]}" --latency "$@" >"$work/wrk-$label.out" 2>&1 || true
  awk -v label="$label" -v decimals="${rps_decimals:-0}" '
    function us(v) {
      if (v ~ /us$/) return v + 0
      if (v ~ /ms$/) return v * 1000
      if (v ~ /m$/) return v * 60e6
      if (v ~ /s$/) return v * 1e6
      return -1
    }
    /Requests\/sec/ { rps = $2 }
    /^ +50%/ { p50 = us($2) }
    /^ +99%/ { p99 = us($2) }
    /Non-2xx/ { bad = $NF }
    /Socket errors/ { gsub(/,/, ""); errors = $4 + $6 + $8 + $10 }
    END {
      if (rps == "") { print "wrk produced no figures for " label > "/dev/stderr"; exit 1 }
      printf "%s %." decimals "f %.0f %.0f %d %d\n", label, rps, p50, p99, bad, errors
    }' "$work/wrk-$label.out" >>"$work/results" || { cat "$work/wrk-$label.out" >&2; return 1; }
}

field() {  # label column [file]
  awk -v l="$1" -v c="$2" '$1 == l { v = $c } END { print v }' "${3:-$work/results}"
}
