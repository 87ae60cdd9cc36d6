#!/usr/bin/env bash
# bench/run.sh — the echo benchmark of issue 3 (method: docs/BENCHMARKS.md).
#
# Builds nothing: `make bench` builds build/ first.  Runs every server on
# every row, interleaved (round -> row -> servers, the server order rotated
# each round), each measurement against a freshly started server, and
# prints the markdown table of medians with the ratio to the hand-written
# epoll loop.  The raw lines and the table are kept in $OUT.
#
# Environment (defaults in brackets):
#   BUILD    build tree holding bench/ programs           [build]
#   ROUNDS   rounds                                       [3]
#   SECS     measuring window per run, seconds            [3]
#   WARMUP   warm-up per run, seconds                     [0.5]
#   QUICK=1  one round, 1 s windows after 0.2 s, no reruns, IDLE 1000
#            (lib.sh; `make bench-quick`)
#   IDLE     idle connections of the idle row             [10000]
#   SERVERS  subset of: epoll ac example libev libevent libuv asyncore
#            (example = build/examples/echo_server, what users copy)
#   ROWS     subset of: rr1 rr100 rr1000 big100 big100nd idle connrate
#   CAP      seconds a run may take before it is "n/a"    [60]
#   PY_IDLE_CAP     the same for Python's idle row        [150; quick 60]
#   PY_IDLE_ROUNDS  rounds in which Python's idle row runs [1]
#   OUT      where raw results and the table go           [$BUILD/bench-results]
#   STEAL_MAX      rerun a run whose window lost more than this share
#                  of CPU time to the hypervisor (steal), percent [3]
#   BUSY_MAX       rerun a run whose window saw the machine's other users
#                  (user time of every process but the server and the
#                  load generator) take more than this share of the CPUs,
#                  percent [10]; such a run is kept as status=busy.  The
#                  report counts the least disturbed attempt of each
#                  measurement (bench/report_lib.py, pick())
#   STEAL_RETRIES  reruns allowed per measurement, for either cause [3]
#   BUSY_PAUSE     seconds to wait before rerunning a busy run       [3]
#   NOPIN=1  do not pin (server on CPU 0, loadgen on CPU 1 otherwise)
set -u

NAME=run.sh
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
B=$BUILD/bench
. "$ROOT/bench/lib.sh"
default IDLE 10000 1000
default PY_IDLE_CAP 150 60
PY_IDLE_ROUNDS=${PY_IDLE_ROUNDS:-1}
SERVERS=${SERVERS:-"epoll ac example libev libevent libuv asyncore"}
ROWS=${ROWS:-"rr1 rr100 rr1000 big100 big100nd idle connrate"}

[ -x "$B/loadgen" ] || die "$B/loadgen missing: build first (make bench)"
bench_files ""

# 10,000 idle connections need more descriptors than the usual 1024, in the
# servers and in the load generator.  Each program also raises its own soft
# limit to the hard one; this covers the shell's children alike.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((IDLE + 100)) ] ||
    echo "run.sh: warning: ulimit -n is $(ulimit -n), the idle row needs $((IDLE + 100))" >&2

server_cmd() {  # server nodelay -> prints nothing, sets CMD or returns 1
    local s=$1 nd=$2
    local n=()
    [ "$nd" = 1 ] && n=(-n)
    case $s in
    epoll) CMD=("$B/echo_epoll") ;;
    ac) CMD=("$B/echo_ac") ;;
    example) CMD=("$BUILD/examples/echo_server" -p 0) ;;
    libev | libevent | libuv) CMD=("$B/echo_$s" "${n[@]}") ;;
    asyncore)
        [ -n "$PY_ASYNC" ] || return 1
        CMD=("$PY" "$ROOT/bench/peers/echo_asyncore.py" "${n[@]}")
        ;;
    *) return 1 ;;
    esac
    [ "$s" = asyncore ] || [ -x "${CMD[0]}" ]
}

row_args() {  # row -> sets ARGS
    case $1 in
    rr1) ARGS=(-m rr -c 1 -s 64) ;;
    rr100) ARGS=(-m rr -c 100 -s 64) ;;
    rr1000) ARGS=(-m rr -c 1000 -s 64) ;;
    big100 | big100nd) ARGS=(-m rr -c 100 -s 16384) ;;
    idle) ARGS=(-m idle -k "$IDLE") ;;
    connrate) ARGS=(-m connrate -j 32) ;;
    *) die "unknown row $1" ;;
    esac
}

trap 'stop_server; exit 130' INT TERM

run_one() {  # round row server
    local round=$1 row=$2 s=$3 nd=0 cap=$CAP tag
    tag="server=$s row=$row round=$round"
    if [ "$row" = big100nd ]; then
        # The supplementary row: the peers that leave Nagle on, given
        # TCP_NODELAY.  epoll and libasyncore always set it; the example
        # is measured as shipped (it has no such option).
        case $s in epoll | ac | example) return 0 ;; esac
        nd=1
    fi
    if [ "$s" = asyncore ] && [ "$row" = idle ]; then
        [ "$round" -le "$PY_IDLE_ROUNDS" ] || return 0
        cap=$PY_IDLE_CAP
    fi
    server_cmd "$s" "$nd" || return 0
    row_args "$row"
    measure "$tag" "$cap"
}

load_cmd() {  # for measure(), whose cap is the run's time cap
    LOAD=("$B/loadgen" -p "$PORT" -P "$SRV_PID" -d "$SECS" -w "$WARMUP" -T "$((cap - 10))"
        "${ARGS[@]}")
}

machine() {
    machine_head
    echo "- libevent $(pkg-config --modversion libevent 2>/dev/null || echo -)," \
        "libuv $(pkg-config --modversion libuv 2>/dev/null || echo -)," \
        "libev $(dpkg-query -W -f '${Version}' libev-dev 2>/dev/null || echo -)," \
        "$("$PY" --version 2>&1)"
    machine_build loadgen
    machine_mode
    machine_reruns
}

read -r -a servers <<<"$SERVERS"
read -r -a rows <<<"$ROWS"
echo "run.sh: ${#servers[@]} servers x ${#rows[@]} rows x $ROUNDS rounds; raw lines in $RAW" >&2
run_rounds "${servers[@]}"
report report.py "${servers[@]}"
