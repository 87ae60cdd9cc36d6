#!/usr/bin/env bash
# bench/run_chat.sh — the chat line benchmark of issue 4 (method:
# docs/BENCHMARKS.md).
#
# Lines per second through a line-echo server: bench/load/lineload keeps K
# lines of LINE bytes ("\n" included) in flight on each of N connections
# and counts the lines echoed back.  The servers are the same protocol on
# libasyncore's chat channel (bench/chat_ac.c), on libevent's bufferevent +
# evbuffer_readln (bench/peers/chat_libevent.c) and on Python's asynchat
# (bench/peers/chat_asynchat.py).  Builds nothing: `make bench` builds
# build/ first.  Interleaved like bench/run.sh (round -> row -> servers, the
# server order rotated each round), each measurement against a freshly
# started server; prints the markdown table of medians with the ratio to
# the libevent version (issue 4's target).  Raw lines and table go to $OUT.
#
# Environment (defaults in brackets):
#   BUILD    build tree holding bench/ programs             [build]
#   QUICK=1  one round, 1 s windows after 0.2 s, no reruns (lib.sh;
#            `make bench-quick`)
#   ROUNDS   rounds                                         [3]
#   SECS     measuring window per run, seconds              [3]
#   WARMUP   warm-up per run, seconds                       [0.5]
#   LINE     bytes per line, "\n" included                  [64]
#   SERVERS  subset of: ac acb libevent asynchat            [all]
#            (acb = chat_ac -b: coalesced sending, ac_chat_set_coalesce)
#   ROWS     CONNSxINFLIGHT pairs                           [1x1 1x16 100x1 100x16]
#   CAP      seconds a run may take before it is "n/a"      [60]
#   OUT      where raw results and the table go             [$BUILD/bench-results]
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
#   NOPIN=1  do not pin (server on CPU 0, lineload on CPU 1 otherwise)
set -u

NAME=run_chat.sh
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
B=$BUILD/bench
LINE=${LINE:-64}
SERVERS=${SERVERS:-"ac acb libevent asynchat"}
ROWS=${ROWS:-"1x1 1x16 100x1 100x16"}
. "$ROOT/bench/lib.sh"

[ -x "$B/lineload" ] || die "$B/lineload missing: build first (make bench)"
bench_files chat-

server_cmd() {  # server -> sets CMD or returns 1
    case $1 in
    ac) CMD=("$B/chat_ac") ;;
    acb) CMD=("$B/chat_ac" -b) ;;
    libevent) CMD=("$B/chat_libevent") ;;
    asynchat)
        [ -n "$PY_ASYNC" ] || return 1
        CMD=("$PY" "$ROOT/bench/peers/chat_asynchat.py")
        ;;
    *) return 1 ;;
    esac
    [ "$1" = asynchat ] || [ -x "${CMD[0]}" ]
}

trap 'stop_server; exit 130' INT TERM

run_one() {  # round row server
    local round=$1 row=$2 s=$3 conns inflight tag
    conns=${row%x*} inflight=${row#*x}
    tag="server=$s row=$row round=$round"
    server_cmd "$s" || return 0
    measure "$tag" "$CAP"
}

load_cmd() {  # for measure(); conns and inflight are run_one's
    LOAD=("$B/lineload" -p "$PORT" -P "$SRV_PID" -d "$SECS" -w "$WARMUP" -c "$conns"
        -k "$inflight" -s "$LINE")
}

machine() {
    machine_head
    echo "- libevent $(pkg-config --modversion libevent 2>/dev/null || echo -)," \
        "$("$PY" --version 2>&1)"
    machine_build lineload
    echo "- lines of $LINE bytes (\"\\n\" included)"
    machine_mode
    machine_reruns
}

read -r -a servers <<<"$SERVERS"
read -r -a rows <<<"$ROWS"
for row in "${rows[@]}"; do
    [[ $row =~ ^[0-9]+x[0-9]+$ ]] || die "row $row is not CONNSxINFLIGHT"
done
echo "run_chat.sh: ${#servers[@]} servers x ${#rows[@]} rows x $ROUNDS rounds; raw lines in $RAW" >&2
run_rounds "${servers[@]}"
report report_chat.py "${servers[@]}"
