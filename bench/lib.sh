# shellcheck shell=bash
# Sourced by bench/run.sh, run_chat.sh and run_portfwd.sh: what the three
# benchmarks do alike.  The caller sets ROOT, BUILD and NAME (its own name,
# for messages) first.  Knobs every one of them takes (their documentation
# is in each script's header).

# QUICK=1 (`make bench-quick`): the check a developer runs before and after
# a performance change: one round of short windows, no reruns, fewer idle
# connections; the same rows and tables, in about 3 minutes for all three
# benchmarks.  Not the figures of docs/: too few samples for that.
QUICK=${QUICK:-}

# default VAR FULL QUICK: unless VAR is set, FULL (QUICK under QUICK=1).
default() {
    [ -z "${!1:-}" ] || return 0
    if [ -n "$QUICK" ]; then printf -v "$1" %s "$3"; else printf -v "$1" %s "$2"; fi
}

default ROUNDS 3 1
default SECS 3 1
default WARMUP 0.5 0.2
default CAP 60 30
default STEAL_RETRIES 3 0 # measure() (run_portfwd.sh has RETRIES)
OUT=${OUT:-$BUILD/bench-results}
STEAL_MAX=${STEAL_MAX:-3}
BUSY_MAX=${BUSY_MAX:-10}
BUSY_PAUSE=${BUSY_PAUSE:-3}

die() { echo "$NAME: $*" >&2; exit 1; }

# The Python of the asyncore peers and the reports, by its real path: a
# version manager's python3 shim (pyenv) costs half a second per start.
# PY_ASYNC=1 when it has asyncore and asynchat (Python 3.11 and older).
PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
[ -x "$PY" ] || PY=python3
PY_ASYNC=
"$PY" -W ignore -c 'import asyncore, asynchat' 2>/dev/null && PY_ASYNC=1

# The files of this session in $OUT: RAW (one key=value line per
# measurement), TABLE (the report) and SLOG (the servers' stderr), each
# name starting with PREFIX and ending with the time stamp.
bench_files() {  # prefix
    mkdir -p "$OUT"
    local stamp
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    RAW=$OUT/${1}raw-$stamp.txt
    TABLE=$OUT/${1}table-$stamp.md
    SLOG=$OUT/${1}servers-$stamp.log
    : >"$SLOG"
    # The run's own line (no server=, fwd= or row=: the reports read it
    # for the placement and the mode, and count no measurement from it).
    echo "bench=$NAME placement=$PLACEMENT rounds=$ROUNDS secs=$SECS warmup=$WARMUP" \
        "quick=${QUICK:-0}" >"$RAW"
}

# Pinning: the server alone on CPU 0, the load generator alone on CPU 1, so
# that neither steals the other's cycles and every server meets the same
# placement.  NOPIN=1, a machine with one CPU or without taskset: none
# (PLACEMENT says which, in the raw file and the reports).
SRV_PIN=() LG_PIN=() PLACEMENT=unpinned
if [ -z "${NOPIN:-}" ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    SRV_PIN=(taskset -c 0) LG_PIN=(taskset -c 1) PLACEMENT=pinned
fi

# ------------------------------------------------------------- servers

# Stop pid: SIGTERM, up to 5 s to exit, then SIGKILL.
stop_pid() {  # pid
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null
    for _ in $(seq 100); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

# The port a server announced: "PORT <n>" on its stdout (the bench
# programs), or "listening on ADDR:<n>;" on its stderr (examples/
# echo_server), which goes to $SLOG: the part written after byte offset.
announced_port() {  # stdout-file slog-offset
    { cat "$1"; tail -c "+$(($2 + 1))" "$SLOG"; } 2>/dev/null |
        sed -n 's/^PORT \([0-9]\{1,\}\)$/\1/p; s/.* listening on [^ ]*:\([0-9]\{1,\}\);.*/\1/p' |
        head -1
}

# One server at a time, started pinned with SRV_PIN, its stderr appended to
# $SLOG (a file: examples/echo_server writes a line per connection); it
# announces its port first (announced_port).
SRV_PID=
start_server() {  # cmd... ; sets SRV_PID and PORT
    local tmp off
    tmp=$(mktemp)
    off=$(stat -c %s "$SLOG")
    "${SRV_PIN[@]}" "$@" >"$tmp" 2>>"$SLOG" &
    SRV_PID=$!
    PORT=
    for _ in $(seq 100); do
        PORT=$(announced_port "$tmp" "$off")
        [ -n "$PORT" ] && break
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.05
    done
    rm -f "$tmp"
    [ -n "$PORT" ]
}

stop_server() {
    stop_pid "$SRV_PID"
    SRV_PID=
}

# ------------------------------------------------------------ measuring

# Why a run's window measured something else than the server: "steal" when
# the hypervisor took more than STEAL_MAX percent of the CPUs, "busy" when
# the machine's other processes took more than BUSY_MAX; nothing when the
# window was quiet enough (or the line does not say).
disturbed() {  # key=value line
    local steal others
    steal=$(sed -n 's/.* steal_pct=\([-0-9.]*\).*/\1/p' <<<" $1")
    others=$(sed -n 's/.* others_pct=\([-0-9.]*\).*/\1/p' <<<" $1")
    if [ -n "$steal" ] && awk -v a="$steal" -v b="$STEAL_MAX" 'BEGIN { exit !(a > b) }'; then
        echo steal
    elif [ -n "$others" ] && awk -v a="$others" -v b="$BUSY_MAX" 'BEGIN { exit !(a > b) }'; then
        echo busy
    fi
}

# After an attempt whose line is given: when its window was disturbed and
# attempt <= retries, keep the line as status=steal or status=busy (not
# counted), wait BUSY_PAUSE seconds after a busy one, and succeed: the
# caller measures again.
rerun_disturbed() {  # tag line attempt retries
    local why
    why=$(disturbed "$2")
    [ -n "$why" ] && [ "$3" -le "$4" ] || return 1
    echo "$1 ${2/status=ok/status=$why}" | tee -a "$RAW" >&2
    [ "$why" = busy ] && sleep "$BUSY_PAUSE"
    return 0
}

# One measurement of run.sh and run_chat.sh: a fresh server (the array
# CMD), then the load generator (the array LOAD, which load_cmd sets once
# PORT and SRV_PID are known) for at most cap seconds; its key=value line
# goes to $RAW after tag.  A window in which the host stole CPU time from
# this VM measured the host, and one shared with the machine's other users
# (a build, a test suite) measured them: the run is repeated, up to
# STEAL_RETRIES times (rerun_disturbed).
measure() {  # tag cap
    local tag=$1 cap=$2 attempt res rc
    for attempt in $(seq $((STEAL_RETRIES + 1))); do
        if ! start_server "${CMD[@]}"; then
            echo "$tag status=fail what=server-start" >>"$RAW"
            stop_server
            return 0
        fi
        load_cmd
        res=$(timeout -s INT "$cap" "${LG_PIN[@]}" "${LOAD[@]}" 2>>"$SLOG")
        rc=$?
        stop_server
        [ -n "$res" ] || res="status=fail rc=$rc"
        [ $rc -eq 124 ] && res="$res status=timeout"
        rerun_disturbed "$tag" "$res" "$attempt" "$STEAL_RETRIES" && continue
        echo "$tag $res" | tee -a "$RAW" >&2
        return 0
    done
}

# Every (round, row, server), interleaved: round -> row -> servers, the
# server order rotated by one each round, each by run_one ROUND ROW SERVER.
run_rounds() {  # servers... (the rows are the caller's array rows)
    local servers=("$@") round k order row s
    # shellcheck disable=SC2154
    for round in $(seq "$ROUNDS"); do
        k=$(((round - 1) % ${#servers[@]}))
        order=("${servers[@]:k}" "${servers[@]:0:k}")
        for row in "${rows[@]}"; do
            for s in "${order[@]}"; do
                run_one "$round" "$row" "$s"
            done
        done
    done
}

# -------------------------------------------------------------- report

# The first lines of every report: when, and on what.
machine_head() {
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- CPU: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), nproc $(nproc)"
    echo "- kernel: $(uname -r)"
}

# run.sh and run_chat.sh: the build tree and the placement.
machine_build() {  # load generator's name
    local bt
    bt=$(awk -F= '/^CMAKE_BUILD_TYPE:/ { print $2 }' "$BUILD/CMakeCache.txt" 2>/dev/null)
    echo "- build: $BUILD (CMAKE_BUILD_TYPE=${bt:-unset}; bench programs -O2)"
    if [ ${#SRV_PIN[@]} -gt 0 ]; then
        echo "- pinning: server on CPU 0, $1 on CPU 1 (taskset)"
    else
        echo "- pinning: none"
    fi
}

# Every script: the mode line of the report.
machine_mode() {
    echo "- rounds $ROUNDS, window ${SECS} s after ${WARMUP} s warm-up, medians quoted" \
        "${QUICK:+(QUICK=1: a quick check, not figures for docs/)}"
}

# run.sh and run_chat.sh: what measure() did with disturbed windows.
machine_reruns() {
    echo "- runs whose window lost more than ${STEAL_MAX}% of the CPUs to the hypervisor" \
        "(steal) or more than ${BUSY_MAX}% to other processes (busy) rerun, up to" \
        "$STEAL_RETRIES times: $(grep -c 'status=steal' "$RAW") steal and" \
        "$(grep -c 'status=busy' "$RAW") busy reruns; of each measurement's attempts" \
        "the least disturbed one counts (the report's first line)"
}

# The caller's machine() and then the tables of bench/REPORT (given $RAW
# and the servers), on stdout and into $TABLE.
report() {  # report.py servers...
    local py=$1
    shift
    {
        machine
        echo
        "$PY" "$ROOT/bench/$py" "$RAW" "$@"
    } | tee "$TABLE"
    echo "$NAME: table in $TABLE" >&2
}
