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
#                  measurement (bench/report.py, pick())
#   STEAL_RETRIES  reruns allowed per measurement, for either cause [3]
#   BUSY_PAUSE     seconds to wait before rerunning a busy run       [3]
#   NOPIN=1  do not pin (server on CPU 0, lineload on CPU 1 otherwise)
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
B=$BUILD/bench
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-3}
WARMUP=${WARMUP:-0.5}
LINE=${LINE:-64}
SERVERS=${SERVERS:-"ac acb libevent asynchat"}
ROWS=${ROWS:-"1x1 1x16 100x1 100x16"}
CAP=${CAP:-60}
OUT=${OUT:-$BUILD/bench-results}
STEAL_MAX=${STEAL_MAX:-3}
STEAL_RETRIES=${STEAL_RETRIES:-3}
BUSY_MAX=${BUSY_MAX:-10}
BUSY_PAUSE=${BUSY_PAUSE:-3}

die() { echo "run_chat.sh: $*" >&2; exit 1; }

[ -x "$B/lineload" ] || die "$B/lineload missing: build first (make bench)"
mkdir -p "$OUT"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
RAW=$OUT/chat-raw-$stamp.txt
TABLE=$OUT/chat-table-$stamp.md
SLOG=$OUT/chat-servers-$stamp.log
: >"$RAW"

SRV_PIN=() LG_PIN=()
if [ -z "${NOPIN:-}" ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    SRV_PIN=(taskset -c 0) LG_PIN=(taskset -c 1)
fi

server_cmd() {  # server -> sets CMD or returns 1
    case $1 in
    ac) CMD=("$B/chat_ac") ;;
    acb) CMD=("$B/chat_ac" -b) ;;
    libevent) CMD=("$B/chat_libevent") ;;
    asynchat) CMD=(python3 "$ROOT/bench/peers/chat_asynchat.py") ;;
    *) return 1 ;;
    esac
    [ "$1" = asynchat ] || [ -x "${CMD[0]}" ]
}

. "$ROOT/bench/lib.sh"
trap 'stop_server; exit 130' INT TERM

run_one() {  # round row server
    local round=$1 row=$2 s=$3 conns inflight tag
    conns=${row%x*} inflight=${row#*x}
    tag="server=$s row=$row round=$round"
    server_cmd "$s" || return 0
    local attempt res rc steal
    for attempt in $(seq $((STEAL_RETRIES + 1))); do
        if ! start_server "${CMD[@]}"; then
            echo "$tag status=fail what=server-start" >>"$RAW"
            stop_server
            return 0
        fi
        res=$(timeout -s INT "$CAP" "${LG_PIN[@]}" "$B/lineload" -p "$PORT" -P "$SRV_PID" \
            -d "$SECS" -w "$WARMUP" -c "$conns" -k "$inflight" -s "$LINE" 2>>"$SLOG")
        rc=$?
        stop_server
        [ -n "$res" ] || res="status=fail rc=$rc"
        [ $rc -eq 124 ] && res="$res status=timeout"
        steal=$(sed -n 's/.*steal_pct=\([0-9.]*\).*/\1/p' <<<"$res")
        if [ -n "$steal" ] && [ "$attempt" -le "$STEAL_RETRIES" ] &&
            awk -v a="$steal" -v b="$STEAL_MAX" 'BEGIN { exit !(a > b) }'; then
            echo "$tag ${res/status=ok/status=steal}" | tee -a "$RAW" >&2
            continue
        fi
        # The same for a window shared with the machine's other users (a
        # build, a test suite): wait a moment, then measure again.
        others=$(sed -n 's/.*others_pct=\([-0-9.]*\).*/\1/p' <<<"$res")
        if [ -n "$others" ] && [ "$attempt" -le "$STEAL_RETRIES" ] &&
            awk -v a="$others" -v b="$BUSY_MAX" 'BEGIN { exit !(a > b) }'; then
            echo "$tag ${res/status=ok/status=busy}" | tee -a "$RAW" >&2
            sleep "$BUSY_PAUSE"
            continue
        fi
        echo "$tag $res" | tee -a "$RAW" >&2
        return 0
    done
}

machine() {
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- CPU: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), nproc $(nproc)"
    echo "- kernel: $(uname -r)"
    echo "- libevent $(pkg-config --modversion libevent 2>/dev/null || echo -)," \
        "$(python3 --version 2>&1)"
    local bt
    bt=$(awk -F= '/^CMAKE_BUILD_TYPE:/ { print $2 }' "$BUILD/CMakeCache.txt" 2>/dev/null)
    echo "- build: $BUILD (CMAKE_BUILD_TYPE=${bt:-unset}; bench programs -O2)"
    if [ ${#SRV_PIN[@]} -gt 0 ]; then
        echo "- pinning: server on CPU 0, lineload on CPU 1 (taskset)"
    else
        echo "- pinning: none"
    fi
    echo "- lines of $LINE bytes (\"\\n\" included); rounds $ROUNDS, window ${SECS} s" \
        "after ${WARMUP} s warm-up, medians quoted"
    echo "- runs whose window lost more than ${STEAL_MAX}% of the CPUs to the hypervisor" \
        "(steal) or more than ${BUSY_MAX}% to other processes (busy) rerun, up to" \
        "$STEAL_RETRIES times: $(grep -c 'status=steal' "$RAW") steal and" \
        "$(grep -c 'status=busy' "$RAW") busy reruns; of each measurement's attempts" \
        "the least disturbed one counts (the report's first line)"
}

read -r -a servers <<<"$SERVERS"
read -r -a rows <<<"$ROWS"
for row in "${rows[@]}"; do
    [[ $row =~ ^[0-9]+x[0-9]+$ ]] || die "row $row is not CONNSxINFLIGHT"
done
echo "run_chat.sh: ${#servers[@]} servers x ${#rows[@]} rows x $ROUNDS rounds; raw lines in $RAW" >&2
for round in $(seq "$ROUNDS"); do
    k=$(((round - 1) % ${#servers[@]}))
    order=("${servers[@]:k}" "${servers[@]:0:k}")
    for row in "${rows[@]}"; do
        for s in "${order[@]}"; do
            run_one "$round" "$row" "$s"
        done
    done
done

{
    machine
    echo
    python3 "$ROOT/bench/report_chat.py" "$RAW" "${servers[@]}"
} | tee "$TABLE"
echo "run_chat.sh: table in $TABLE" >&2
