#!/usr/bin/env bash
# bench/run_portfwd.sh — the port forwarder benchmark of issue 5
# (method: docs/BENCHMARKS.md, results: docs/BENCHMARKS-portfwd.md).
#
# Builds nothing: build/ must hold tools/portfwd/portfwd, bench/loadgen and
# bench/echo_epoll.  Measures, in one run, TCP forwarding on loopback by:
#   direct    no forwarder at all (the limit)
#   portfwd   tools/portfwd (this project)
#   socat     socat TCP4-LISTEN:...,fork TCP4:...   (Debian)
#   rinetd    rinetd -f -c FILE                      (Debian)
#   redir     redir -n SRC:PORT DST:PORT             (Debian)
#   haproxy   haproxy -db -f FILE, mode tcp          (Debian)
#   asyncore  bench/peers/portfwd_asyncore.py (the seed's recipe, Python 3.11)
# on the rows
#   bulk1     iperf3, 1 stream, client -> server, Gbit/s (+ forwarder CPU s/GB)
#   bulk4     iperf3 -P 4
#   bulk1R    iperf3 -R (server -> client), 1 stream (+ forwarder CPU s/GB)
#   rr1       loadgen -m rr -c 1 -s 64 through the forwarder to echo_epoll
#   rr50      loadgen -m rr -c 50 -s 64
#   connrate  loadgen -m connrate -j 32 (connect, one 64 B echo, close)
#             (these three + the forwarder's CPU per round trip or connection:
#             loadgen -P FWD_PID -S, the schedstat of its whole session)
#   idle      loadgen -m idle -k $IDLE: forwarder memory per idle relayed conn
#   syscalls  system calls per relayed connection: strace -c -f attached to
#             the forwarder over exactly $SYSCALL_CONNS connections of the
#             connrate kind (loadgen -n); a run of its own, never timed
# interleaved: round -> row -> forwarders (order rotated each round), a
# fresh forwarder and a fresh back end (iperf3 -s or echo_epoll) for every
# measurement; medians over the rounds; ratios to direct.
#
# Placement (house method: server side on CPU 0, client on CPU 1): the
# client (loadgen, iperf3 -c) alone on CPU 1; the server (echo_epoll,
# iperf3 -s) on CPU 0, and the forwarder next to it on CPU 0.  Direct and
# forwarded runs then cross between the CPUs the same number of times per
# round trip, and the forwarder's cost shows as CPU taken from the server
# side, as when a forwarder runs on the service's host.  NOPIN=1: no
# pinning at all (the scheduler's placement); the raw file and the report
# say which placement a table is.
#
# Environment (defaults in brackets):
#   BUILD     build tree                                      [build]
#   QUICK=1   one round, 1 s windows after 0.2 s, no reruns, IDLE 500,
#             IDLE_FORK 50, SYSCALL_CONNS 200 (lib.sh; `make bench-quick`)
#   ROUNDS    rounds                                          [3]
#   SECS      measuring window per run, seconds               [3]
#   WARMUP    warm-up per run, seconds (iperf3 -O, loadgen -w) [0.5]
#   IDLE      idle connections of the idle row                [2000]
#   IDLE_SMALL  retried count when a forwarder cannot hold IDLE [400]
#   IDLE_FORK idle connections for the forking socat and redir (a process
#             per connection; redir's listen backlog of 10 makes opening
#             thousands take minutes; 400 times out at CAP)   [100]
#   SYSCALL_CONNS  connections of the syscalls row    [1000; quick 200]
#   FWDS      subset of: direct portfwd portfwd-ns socat rinetd redir haproxy asyncore
#             (portfwd-ns = portfwd --no-splice)
#   ROWS      subset of: bulk1 bulk4 bulk1R rr1 rr50 connrate idle syscalls
#   CAP       seconds a run may take before it is "n/a"       [60]
#   OUT       raw results and the table                       [$BUILD/bench-results]
#   BUSY_MAX  rerun a run in which other processes (machine user time
#             minus that of the forwarder, the back end and the client)
#             took more than this share of the 2 CPUs, percent  [10]
#   STEAL_MAX rerun a run that lost more than this share to the
#             hypervisor, percent                               [3]
#   RETRIES   reruns per measurement for either cause           [2]
#   BUSY_PAUSE seconds to wait before a rerun                   [3]
#   NOPIN=1   no taskset
set -u

NAME=run_portfwd.sh
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
B=$BUILD/bench
PORTFWD=${PORTFWD:-$BUILD/tools/portfwd/portfwd}
. "$ROOT/bench/lib.sh"
default IDLE 2000 500
default IDLE_SMALL 400 200
default IDLE_FORK 100 50
default RETRIES 2 0
default SYSCALL_CONNS 1000 200
FWDS=${FWDS:-"direct portfwd portfwd-ns socat rinetd redir haproxy asyncore"}
ROWS=${ROWS:-"bulk1 bulk4 bulk1R rr1 rr50 connrate idle syscalls"}

for f in "$B/loadgen" "$B/echo_epoll" "$PORTFWD"; do
    [ -x "$f" ] || die "$f missing: build first (cmake --build build)"
done
command -v iperf3 >/dev/null || die "iperf3 missing (apt-get install iperf3)"
bench_files portfwd-
WORK=$(mktemp -d /tmp/run_portfwd.XXXXXX)

ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((IDLE * 3 + 100)) ] ||
    echo "run_portfwd.sh: warning: ulimit -n is $(ulimit -n), the idle row needs $((IDLE * 3 + 100))" >&2

# lib.sh's pinning, with the forwarder beside the server (see above).
FWD_PIN=("${SRV_PIN[@]}") CLI_PIN=("${LG_PIN[@]}")
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)

have() {  # forwarder -> is it installed?
    case $1 in
    direct | portfwd | portfwd-ns) return 0 ;;
    asyncore) [ -n "$PY_ASYNC" ] ;;
    *) command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] ;;
    esac
}

# A free port below the ephemeral range (32768-): a port there may be held
# by a TIME_WAIT socket of an earlier connection, and a forwarder that
# binds without SO_REUSEADDR (redir) then fails.  bind() without
# SO_REUSEADDR succeeds only on a port no socket holds at all.
free_port() {
    "$PY" -c '
import random, socket
for _ in range(1000):
    p = random.randrange(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break'
}

listening() {  # port -> true once something listens on 127.0.0.1:port
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

wait_listen() {  # port pid
    for _ in $(seq 200); do
        listening "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.025
    done
    return 1
}

# A forwarder runs in its own session (setsid), so that its per-connection
# processes can be found even when they are not its children: redir
# double-forks, and its connection processes belong to init.
kids_of() {  # pid -> the other processes of its session
    [ -n "$1" ] || return 0
    pgrep -s "$1" 2>/dev/null | grep -vx "$1"
}

# CPU ticks of a process: utime stime cutime cstime (fields 14-17).
proc_ticks() {  # pid -> "u s cu cs" or "0 0 0 0"
    local l
    l=$(cat "/proc/$1/stat" 2>/dev/null) || { echo "0 0 0 0"; return; }
    l=${l##*) }
    awk '{ print $12, $13, $14, $15 }' <<<"$l"
}

# Machine: user+nice ticks and steal ticks, all CPUs.
machine_ticks() {
    awk '$1 == "cpu" { print $2 + $3, $9; exit }' /proc/stat
}

now() { date +%s.%N; }

# ---------------------------------------------------------------- processes

BE_PID= FWD_PID= BE_PORT= FWD_PORT=

stop_all() {
    if [ -n "$FWD_PID" ]; then
        # socat and redir: also the per-connection processes of the
        # forwarder's own session (setsid), each by its PID.
        local kids
        kids=$(kids_of "$FWD_PID")
        stop_pid "$FWD_PID"
        [ -n "$kids" ] && kill -KILL $kids 2>/dev/null
    fi
    FWD_PID=
    stop_pid "$BE_PID"
    BE_PID=
}
trap 'stop_all; rm -rf "$WORK"; exit 130' INT TERM

start_backend() {  # kind: iperf | echo ; sets BE_PID BE_PORT
    BE_PORT=
    if [ "$1" = iperf ]; then
        BE_PORT=$(free_port)
        "${SRV_PIN[@]}" iperf3 -s -B 127.0.0.1 -p "$BE_PORT" >>"$SLOG" 2>&1 &
        BE_PID=$!
        wait_listen "$BE_PORT" "$BE_PID"
        return
    fi
    local tmp=$WORK/be.out
    : >"$tmp"
    "${SRV_PIN[@]}" "$B/echo_epoll" 0 >"$tmp" 2>>"$SLOG" &
    BE_PID=$!
    for _ in $(seq 200); do
        BE_PORT=$(awk '$1 == "PORT" { print $2; exit }' "$tmp")
        [ -n "$BE_PORT" ] && return 0
        kill -0 "$BE_PID" 2>/dev/null || return 1
        sleep 0.025
    done
    return 1
}

start_fwd() {  # forwarder ; sets FWD_PID FWD_PORT (direct: the back end)
    local f=$1 tmp=$WORK/fwd.out cfg=$WORK/fwd.cfg
    FWD_PID= FWD_PORT=
    if [ "$f" = direct ]; then
        FWD_PORT=$BE_PORT
        return 0
    fi
    : >"$tmp"
    case $f in
    portfwd | portfwd-ns)
        local extra=()
        [ "$f" = portfwd-ns ] && extra=(--no-splice)
        setsid "${FWD_PIN[@]}" "$PORTFWD" -p 0 -r 127.0.0.1 -P "$BE_PORT" --drain-timeout 1 \
            "${extra[@]}" >"$tmp" 2>&1 &
        FWD_PID=$!
        for _ in $(seq 200); do
            FWD_PORT=$(sed -n 's/.*listening on 127\.0\.0\.1 port \([0-9]*\).*/\1/p' "$tmp" | head -1)
            [ -n "$FWD_PORT" ] && break
            kill -0 "$FWD_PID" 2>/dev/null || break
            sleep 0.025
        done
        cat "$tmp" >>"$SLOG"
        [ -n "$FWD_PORT" ]
        return
        ;;
    asyncore)
        setsid "${FWD_PIN[@]}" "$PY" "$ROOT/bench/peers/portfwd_asyncore.py" 0 127.0.0.1 "$BE_PORT" \
            >"$tmp" 2>>"$SLOG" &
        FWD_PID=$!
        for _ in $(seq 200); do
            FWD_PORT=$(awk '$1 == "PORT" { print $2; exit }' "$tmp")
            [ -n "$FWD_PORT" ] && break
            kill -0 "$FWD_PID" 2>/dev/null || break
            sleep 0.025
        done
        [ -n "$FWD_PORT" ]
        return
        ;;
    esac
    FWD_PORT=$(free_port)
    case $f in
    socat)
        # backlog=128 as portfwd's default (socat's own is 5).
        setsid "${FWD_PIN[@]}" socat "TCP4-LISTEN:$FWD_PORT,bind=127.0.0.1,reuseaddr,fork,backlog=128" \
            "TCP4:127.0.0.1:$BE_PORT" >>"$SLOG" 2>&1 &
        ;;
    rinetd)
        printf '127.0.0.1 %s 127.0.0.1 %s\n' "$FWD_PORT" "$BE_PORT" >"$cfg"
        setsid "${FWD_PIN[@]}" rinetd -f -c "$cfg" >>"$SLOG" 2>&1 &
        ;;
    redir)
        setsid "${FWD_PIN[@]}" redir -n "127.0.0.1:$FWD_PORT" "127.0.0.1:$BE_PORT" >>"$SLOG" 2>&1 &
        ;;
    haproxy)
        cat >"$cfg" <<EOF
global
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend fe
    bind 127.0.0.1:$FWD_PORT
    default_backend be
backend be
    server s1 127.0.0.1:$BE_PORT
EOF
        setsid "${FWD_PIN[@]}" haproxy -db -f "$cfg" >>"$SLOG" 2>&1 &
        ;;
    *) return 1 ;;
    esac
    FWD_PID=$!
    wait_listen "$FWD_PORT" "$FWD_PID"
}

# ---------------------------------------------------------------- one run

# Noise bookkeeping around a client run: sets M0/M1 (machine ticks), the
# forwarder's and back end's ticks, and the wall time.
snap() {  # -> prints "mu ms fu fs fcu fcs bu bs bcu bcs t"
    echo "$(machine_ticks) $(proc_ticks "${FWD_PID:-0}") $(proc_ticks "$BE_PID") $(now)"
}

# others_pct steal_pct fwd_cpu_s from two snaps and the client's user s.
noise() {  # snap0 snap1 client_user_s
    awk -v a="$1" -v b="$2" -v cu="$3" -v hz="$HZ" -v n="$NCPU" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        wall = y[11] - x[11]
        ours = (y[3] - x[3]) + (y[5] - x[5]) + (y[7] - x[7]) + (y[9] - x[9])
        others = (y[1] - x[1]) - ours - cu * hz
        fwd = (y[3] - x[3]) + (y[4] - x[4]) + (y[5] - x[5]) + (y[6] - x[6])
        printf "others_pct=%.1f steal_pct=%.1f fwd_cpu_s=%.3f wall_s=%.2f",
            100 * others / (hz * n * wall), 100 * (y[2] - x[2]) / (hz * n * wall), fwd / hz, wall
    }'
}

# Forking forwarders (socat, redir): the children's memory.  Pss divides
# shared pages among the processes that share them, so the sum is what the
# children really cost; their RSS sum counts libc once per child.
children_mem() {  # pid -> "kids=N kids_pss_kb=P kids_rss_kb=R"
    local kids
    kids=$(kids_of "$1" | tr '\n' ' ')
    if [ -z "$kids" ]; then
        echo "kids=0"
        return
    fi
    local files=() k
    for k in $kids; do files+=("/proc/$k/smaps_rollup"); done
    awk -v n="$(wc -w <<<"$kids")" '
        /^Pss:/ { p += $2 } /^Rss:/ { r += $2 }
        END { printf "kids=%d kids_pss_kb=%d kids_rss_kb=%d", n, p, r }' "${files[@]}" 2>/dev/null
}

# Forking forwarders: redir's connection processes are not its children
# (their CPU time never reaches its cutime), so a sampler records the ticks
# of every other process of the forwarder's session each 0.1 s; a child's last sample counts.  The parent's own
# utime+stime are added; its cutime/cstime are not (no double count).
kid_sampler() {  # pid file
    while kill -0 "$1" 2>/dev/null; do
        for k in $(kids_of "$1"); do
            echo "$k $(proc_ticks "$k")"
        done
        sleep 0.1
    done >"$2"
}

client_bulk() {  # row -> sets RES
    local row=$1 args=(-P 1)
    case $row in
    bulk4) args=(-P 4) ;;
    bulk1R) args=(-P 1 -R) ;;
    esac
    local s0 s1 cu json sp=
    if [ -n "$FORKING" ]; then
        kid_sampler "$FWD_PID" "$WORK/kids" &
        sp=$!
    fi
    s0=$(snap)
    TIMEFORMAT=%U
    cu=$( { time timeout -s INT "$CAP" "${CLI_PIN[@]}" iperf3 -c 127.0.0.1 -p "$FWD_PORT" \
        -t "$SECS" -O "$WARMUP" "${args[@]}" -J >"$WORK/iperf.json" 2>>"$SLOG"; } 2>&1)
    local rc=$?
    sleep 0.3  # let a forking forwarder reap its children (cutime)
    s1=$(snap)
    local kids_cpu=
    if [ -n "$sp" ]; then
        kill "$sp" 2>/dev/null
        wait "$sp" 2>/dev/null
        kids_cpu=$(awk -v hz="$HZ" '{ t[$1] = $2 + $3 + $4 + $5 }
            END { for (k in t) { s += t[k]; n++ } printf "kids_cpu_s=%.3f kids_seen=%d", s / hz, n }' "$WORK/kids")
    fi
    RES=$("$PY" - "$WORK/iperf.json" <<'EOF'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception as e:
    print("status=fail what=iperf-json"); sys.exit()
if "error" in j:
    print("status=fail what=iperf error=%s" % j["error"].replace(" ", "_")); sys.exit()
end = j["end"]
gbps = end["sum_received"]["bits_per_second"] / 1e9
# everything that crossed the forwarder, omitted (warm-up) seconds included:
moved = sum(i["sum"]["bytes"] for i in j["intervals"])
print("status=ok gbps=%.3f moved_bytes=%d retrans=%s" % (gbps, moved, end["sum_sent"].get("retransmits", "-")))
EOF
)
    [ $rc -eq 124 ] && RES="status=timeout"
    RES="$RES $(noise "$s0" "$s1" "${cu:-0}") $kids_cpu"
    if [ -n "$kids_cpu" ]; then
        # fwd_cpu_s := the parent's own time + its children's, sampled.
        local own
        own=$(awk -v a="$s0" -v b="$s1" -v hz="$HZ" 'BEGIN { split(a, x, " "); split(b, y, " ")
            printf "%.3f", ((y[3] - x[3]) + (y[4] - x[4])) / hz }')
        RES=$(awk -v own="$own" '{ for (i = 1; i <= NF; i++) {
                if ($i ~ /^kids_cpu_s=/) { split($i, kv, "="); k = kv[2] } }
              for (i = 1; i <= NF; i++) if ($i ~ /^fwd_cpu_s=/) $i = "fwd_cpu_s=" sprintf("%.3f", own + k) " fwd_cpu_cum_s=" substr($i, 11)
              print }' <<<"$RES")
    fi
}

client_load() {  # row -> sets RES
    local row=$1 args n=$IDLE
    case $row in
    rr1) args=(-m rr -c 1 -s 64) ;;
    rr50) args=(-m rr -c 50 -s 64) ;;
    connrate) args=(-m connrate -j 32) ;;
    idle) n=${2:-$IDLE}; args=(-m idle -k "$n") ;;
    esac
    # The CPU per operation loadgen reports (srv_ns_per_op): the
    # forwarder's whole session (-S: its threads and its connection
    # processes), or for direct the back end's.
    local pid=${FWD_PID:-$BE_PID} s0 s1 cu out=$WORK/lg.out err=$WORK/lg.err extra=
    [ -n "$FWD_PID" ] && args+=(-S)
    : >"$out"
    : >"$err"
    s0=$(snap)
    TIMEFORMAT=%U
    local rc
    if [ "$row" = idle ] && [ -n "$FORKING" ]; then
        # A forking forwarder: while the idle connections are held (the
        # load generator's busy phase), sum its children's memory.
        { time timeout -s INT "$CAP" "${CLI_PIN[@]}" "$B/loadgen" -p "$FWD_PORT" -P "$pid" \
            -d "$SECS" -w "$WARMUP" -T "$((CAP - 10))" "${args[@]}" >"$out" 2>>"$err"; } 2>"$WORK/time" &
        local lp=$!
        for _ in $(seq $((CAP * 10))); do
            grep -q 'idle connections open' "$err" && break
            kill -0 "$lp" 2>/dev/null || break
            sleep 0.1
        done
        grep -q 'idle connections open' "$err" && extra=$(children_mem "$FWD_PID")
        wait "$lp"
        rc=$?
        cu=$(tail -1 "$WORK/time")
    else
        cu=$( { time timeout -s INT "$CAP" "${CLI_PIN[@]}" "$B/loadgen" -p "$FWD_PORT" -P "$pid" \
            -d "$SECS" -w "$WARMUP" -T "$((CAP - 10))" "${args[@]}" >"$out" 2>>"$err"; } 2>&1)
        rc=$?
    fi
    s1=$(snap)
    cat "$err" >>"$SLOG"
    RES=$(cat "$out")
    [ -n "$RES" ] || RES="status=fail rc=$rc"
    [ $rc -eq 124 ] && RES="$RES status=timeout"
    # loadgen's own others_pct/steal_pct count the back end as "other":
    # ours (noise) subtract it; keep loadgen's under other names.
    RES=$(sed 's/steal_pct=/lg_steal_pct=/; s/others_pct=/lg_others_pct=/' <<<"$RES")
    RES="$RES $extra $(noise "$s0" "$s1" "${cu:-0}")"
}

# The syscalls row: the forwarder's system calls (strace -c -f: its
# threads and every process it forks after the attach) over exactly
# SYSCALL_CONNS connections of the connrate kind (connect, one 64 B echo,
# close; 32 in flight).  strace slows the forwarder down, so this is a run
# of its own and never a timed window.  RES gets calls= and per_conn=; the
# per-call table goes to $RAW as "#" lines for the docs to quote.
client_syscalls() {  # -> sets RES
    local sum=$WORK/strace.txt err=$WORK/strace.err sp lg calls
    : >"$err"
    strace -c -f -p "$FWD_PID" -o "$sum" 2>"$err" &
    sp=$!
    for _ in $(seq 200); do
        grep -q 'attached' "$err" && break
        kill -0 "$sp" 2>/dev/null || break
        sleep 0.025
    done
    lg=$(timeout -s INT "$CAP" "${CLI_PIN[@]}" "$B/loadgen" -p "$FWD_PORT" -m connrate -j 32 \
        -n "$SYSCALL_CONNS" 2>>"$SLOG")
    sleep 0.3 # the forwarder closes the last connections
    kill -INT "$sp" 2>/dev/null
    wait "$sp" 2>/dev/null
    calls=$(awk '$NF == "total" { print $4 }' "$sum" 2>/dev/null)
    if [ -z "$calls" ] || ! grep -q 'status=ok' <<<"$lg"; then
        RES="status=fail what=strace $(tr '\n' ' ' <"$err" | tr -s ' =' '__' | cut -c1-200)"
        return
    fi
    RES="status=ok conns=$SYSCALL_CONNS calls=$calls per_conn=$(awk -v c="$calls" \
        -v n="$SYSCALL_CONNS" 'BEGIN { printf "%.1f", c / n }') errors=$(sed -n \
        's/.* errors=\([0-9]*\).*/\1/p' <<<"$lg")"
    {
        echo "# strace -c -f of $1 over $SYSCALL_CONNS connections (round $2):"
        sed 's/^/#   /' "$sum"
    } >>"$RAW"
}

FORKING=

run_one() {  # round row forwarder
    local round=$1 row=$2 f=$3 tag attempt kind=echo n=
    tag="fwd=$f row=$row round=$round"
    case $row in idle | syscalls) [ "$f" = direct ] && return 0 ;; esac
    case $row in bulk*) kind=iperf ;; esac
    case $f in socat | redir) FORKING=1 ;; *) FORKING= ;; esac
    [ -n "$FORKING" ] && [ "$row" = idle ] && n=$IDLE_FORK
    for attempt in $(seq $((RETRIES + 1))); do
        if ! start_backend "$kind"; then
            echo "$tag status=fail what=backend-start" | tee -a "$RAW" >&2
            stop_all
            return 0
        fi
        if ! start_fwd "$f"; then
            echo "$tag status=fail what=forwarder-start" | tee -a "$RAW" >&2
            stop_all
            return 0
        fi
        if [ "$kind" = iperf ]; then
            client_bulk "$row"
        elif [ "$row" = syscalls ]; then
            client_syscalls "$f" "$round"
        else
            client_load "$row" $n
        fi
        # The idle row: a forwarder that cannot hold IDLE connections (a
        # select() loop stops at FD_SETSIZE) gets one try with IDLE_SMALL.
        if [ "$row" = idle ] && ! grep -q 'status=ok' <<<"$RES" && [ "${n:-$IDLE}" != "$IDLE_SMALL" ]; then
            echo "$tag ${RES/status=/status=fail-$IDLE-}" | tee -a "$RAW" >&2
            stop_all
            n=$IDLE_SMALL
            continue
        fi
        stop_all
        grep -q 'status=ok' <<<"$RES" && rerun_disturbed "$tag" "$RES" "$attempt" "$RETRIES" &&
            continue
        echo "$tag $RES" | tee -a "$RAW" >&2
        return 0
    done
}

machine() {
    machine_head
    echo "- portfwd: $("$PORTFWD" --version 2>&1 | head -1); socat $(dpkg-query -W -f '${Version}' socat 2>/dev/null)," \
        "rinetd $(dpkg-query -W -f '${Version}' rinetd 2>/dev/null), redir $(dpkg-query -W -f '${Version}' redir 2>/dev/null)," \
        "haproxy $(dpkg-query -W -f '${Version}' haproxy 2>/dev/null), iperf3 $(dpkg-query -W -f '${Version}' iperf3 2>/dev/null)," \
        "$("$PY" --version 2>&1)"
    if [ ${#FWD_PIN[@]} -gt 0 ]; then
        echo "- pinning: client (loadgen, iperf3 -c) on CPU 1; server (echo_epoll, iperf3 -s) and forwarder on CPU 0"
    else
        echo "- pinning: none"
    fi
    machine_mode
    echo "- reruns: $(grep -c 'status=steal' "$RAW") steal, $(grep -c 'status=busy' "$RAW") busy" \
        "(threshold ${BUSY_MAX}% of the CPUs to other processes); median others share in" \
        "the counted runs: $(grep 'status=ok' "$RAW" | sed -n 's/.* others_pct=\([-0-9.]*\).*/\1/p' | sort -n |
            awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] "%" : "n/a" }')"
}

read -r -a fwds <<<"$FWDS"
read -r -a rows <<<"$ROWS"
avail=()
for f in "${fwds[@]}"; do
    if have "$f"; then avail+=("$f"); else echo "run_portfwd.sh: $f not installed, skipped" >&2; fi
done
fwds=("${avail[@]}")
if [[ " ${rows[*]} " == *" syscalls "* ]] && ! command -v strace >/dev/null; then
    echo "run_portfwd.sh: strace not installed, the syscalls row skipped" >&2
    read -r -a rows <<<"${ROWS/syscalls/}"
fi
echo "run_portfwd.sh: ${#fwds[@]} forwarders x ${#rows[@]} rows x $ROUNDS rounds; raw lines in $RAW" >&2
run_rounds "${fwds[@]}"
rm -rf "$WORK"
report report_portfwd.py "${fwds[@]}"
