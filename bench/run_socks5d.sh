#!/usr/bin/env bash
# bench/run_socks5d.sh — the SOCKS5 server benchmark of issue 11
# (method: docs/BENCHMARKS.md, results: docs/BENCHMARKS-socks5d.md).
#
# Builds nothing: build/ must hold bench/socks_hs and bench/echo_epoll;
# tools/socks5d/socks5d is measured when it is there (else its column is
# skipped, with a line saying so).  Measures, in one run, on loopback:
#   direct      no proxy at all (the limit)
#   socks5d     tools/socks5d/socks5d -q -i 127.0.0.1 -p PORT (this project)
#   microsocks  microsocks -i 127.0.0.1 -p PORT            (Debian)
#   dante       danted -f FILE (Debian's dante-server; its default process
#               model: a mother process and pools of children)
# driven by curl against a local nginx (started here, its own config in a
# temporary directory, serving a tmpfs folder) on the rows
#   bulk     one BIG_MB MiB file with curl --socks5 (the proxy gets an IPv4
#            address), MB/s (10^6 bytes), + the proxy's CPU s per 512 MiB
#   bulkh    the same with --socks5-hostname (the proxy resolves localhost)
#   small    SMALL_N files of SMALL_KB KiB, PAR in flight (curl --parallel,
#            one invocation), keep-alive: seconds
#   smallc   the same with "Connection: close": a new tunnel per file
#   hs       SOCKS handshakes/s: bench/socks_hs, HS_J clients in flight, each
#            greeting + CONNECT to a local sink (echo_epoll) + reply, close;
#            direct: TCP connects/s to the sink; + the proxy's CPU per one
#   idle     bench/socks_hs -m idle: IDLE tunnels held (each relayed one
#            64-byte echo first), growth of the proxy's process tree memory
#            per tunnel (Rss; Pss summed over the processes), its processes
#            and threads
# interleaved: round -> row -> proxies (order rotated each round), a fresh
# proxy for every measurement (one nginx for the whole run); medians over
# the rounds; ratios to direct.  Every body is checked: each timed transfer
# by its HTTP code and size, and in round 1 the big file once more per
# proxy and row, outside the timed window, by sha256.
#
# Placement (house method, as run_portfwd.sh): the client (curl, socks_hs)
# alone on CPU 1; the server side (nginx, the echo sink) on CPU 0 and the
# proxy beside it on CPU 0.  NOPIN=1: no pinning.
#
# Environment (defaults in brackets):
#   BUILD     build tree                                      [build]
#   SOCKS5D   the socks5d binary           [$BUILD/tools/socks5d/socks5d]
#   QUICK=1   one round, 1 s windows after 0.2 s, no reruns, BIG_MB 128,
#             SMALL_N 500, IDLE 500 (lib.sh; `make bench-quick`)
#   ROUNDS    rounds                                          [3]
#   SECS      hs window, seconds                              [3]
#   WARMUP    hs warm-up, seconds                             [0.5]
#   BIG_MB    the bulk file, MiB                              [512]
#   SMALL_N   small files per run                             [2000]
#   SMALL_KB  size of a small file, KiB                       [4]
#   PAR       transfers in flight of the small rows           [64]
#   HS_J      clients in flight of the hs row                 [64]
#   IDLE      tunnels held by the idle row                    [2000]
#   PROXIES   subset of: direct socks5d microsocks dante
#   ROWS      subset of: bulk bulkh small smallc hs idle
#   CAP       seconds a run may take before it is "n/a"       [60]
#   OUT       raw results and the table                       [$BUILD/bench-results]
#   BUSY_MAX, STEAL_MAX, RETRIES [2], BUSY_PAUSE, NOPIN: as run_portfwd.sh
set -u

NAME=run_socks5d.sh
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
B=$BUILD/bench
SOCKS5D=${SOCKS5D:-$BUILD/tools/socks5d/socks5d}
. "$ROOT/bench/lib.sh"
default BIG_MB 512 128
default SMALL_N 2000 500
default IDLE 2000 500
default RETRIES 2 0
SMALL_KB=${SMALL_KB:-4}
PAR=${PAR:-64}
HS_J=${HS_J:-64}
PROXIES=${PROXIES:-"direct socks5d microsocks dante"}
ROWS=${ROWS:-"bulk bulkh small smallc hs idle"}

for f in "$B/socks_hs" "$B/echo_epoll"; do
    [ -x "$f" ] || die "$f missing: build first (cmake --build build)"
done
command -v curl >/dev/null || die "curl missing (apt-get install curl)"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || die "nginx missing (apt-get install nginx-light)"
DANTED=$(command -v danted || echo /usr/sbin/danted)
bench_files socks5d-
# The served files live in tmpfs, so that the disk is not measured.
SHM=/dev/shm
[ -d "$SHM" ] && [ -w "$SHM" ] || SHM=/tmp
WORK=$(mktemp -d "$SHM/run_socks5d.XXXXXX")
chmod 755 "$WORK" # nginx's worker runs as nobody when we are root

ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((IDLE * 3 + 100)) ] ||
    echo "$NAME: warning: ulimit -n is $(ulimit -n), the idle row needs $((IDLE * 3 + 100))" >&2

PRX_PIN=("${SRV_PIN[@]}") CLI_PIN=("${LG_PIN[@]}")
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)

have() {  # proxy -> is it there?
    case $1 in
    direct) return 0 ;;
    socks5d) [ -x "$SOCKS5D" ] ;;
    microsocks) command -v microsocks >/dev/null ;;
    dante) [ -x "$DANTED" ] ;;
    *) return 1 ;;
    esac
}

# A free port below the ephemeral range, for the servers that cannot take
# port 0 from the kernel (nginx, dante): see run_portfwd.sh's free_port.
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

# The port a process listens on (it was given port 0): from ss, which names
# the owner of each listening socket.
port_of_pid() {  # pid -> port, waiting up to 5 s
    local p
    for _ in $(seq 200); do
        p=$(ss -Hltnp 2>/dev/null | awk -v pat="pid=$1," 'index($0, pat) {
            n = split($4, a, ":"); print a[n]; exit }')
        [ -n "$p" ] && { echo "$p"; return 0; }
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.025
    done
    return 1
}

# Every proxy and server runs in its own session (setsid): its helper
# processes (dante's children, nginx's worker) are found by session id.
tree_pids() {  # sid
    [ -n "$1" ] && pgrep -s "$1" 2>/dev/null
}

# SIGTERM to the leader, up to 5 s for the whole session to go, then
# SIGKILL to each process left, by PID.
stop_tree() {  # sid
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null
    local left
    for _ in $(seq 100); do
        left=$(tree_pids "$1")
        [ -z "$left" ] && break
        sleep 0.05
    done
    # shellcheck disable=SC2086
    [ -n "$left" ] && kill -KILL $left 2>/dev/null
    wait "$1" 2>/dev/null
}

# CPU of a session: "user_ticks cpu_ns".  socks_hs -C reads each of its
# processes' CPU clock (which keeps the time of threads that have exited:
# microsocks runs a thread per client) plus the children they reaped.
tree_cpu() {  # sid
    local l
    if [ -z "$1" ] || ! l=$("$B/socks_hs" -C "$1"); then
        echo "0 0"
        return
    fi
    echo "${l#* } ${l%% *}"
}

# Machine: user+nice ticks and steal ticks, all CPUs.
machine_ticks() {
    awk '$1 == "cpu" { print $2 + $3, $9; exit }' /proc/stat
}

now() { date +%s.%N; }

# ------------------------------------------------------------- the servers

NGX_PID='' NGX_PORT='' SINK_PID='' SINK_PORT='' PRX_PID='' PRX_PORT=''
BIG_SHA=

stop_all() {
    stop_tree "$PRX_PID"
    PRX_PID=
    [ -n "$SINK_PID" ] && stop_pid "$SINK_PID"
    SINK_PID=
}
cleanup() {
    stop_all
    stop_tree "$NGX_PID"
    NGX_PID=
    rm -rf "$WORK"
}
trap 'cleanup; exit 130' INT TERM

# The files nginx serves: big.bin (BIG_MB MiB) and s/0000.. (SMALL_N files
# of SMALL_KB KiB), random bytes; the curl config of the small rows.
make_files() {
    mkdir -p "$WORK/www/s" "$WORK/nginx/tmp"
    head -c "$((BIG_MB * 1048576))" /dev/urandom >"$WORK/www/big.bin"
    BIG_SHA=$(sha256sum "$WORK/www/big.bin" | awk '{ print $1 }')
    "$PY" - "$WORK/www/s" "$SMALL_N" "$((SMALL_KB * 1024))" <<'EOF'
import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    with open(os.path.join(d, "%04d" % i), "wb") as f:
        f.write(os.urandom(size))
EOF
    chmod -R a+rX "$WORK/www"
    local i
    for ((i = 0; i < SMALL_N; i++)); do
        printf 'url = "http://127.0.0.1:%s/s/%04d"\noutput = "/dev/null"\n' "$NGX_PORT" "$i"
    done >"$WORK/small.cfg"
}

# nginx, one worker, its own prefix and config: sendfile on, no access
# log, keep-alive connections that last the whole run.
start_nginx() {
    local d=$WORK/nginx
    NGX_PORT=$(free_port)
    cat >"$d/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 16384; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path $d/tmp;
    proxy_temp_path $d/tmp;
    fastcgi_temp_path $d/tmp;
    uwsgi_temp_path $d/tmp;
    scgi_temp_path $d/tmp;
    server {
        listen 127.0.0.1:$NGX_PORT;
        root $WORK/www;
    }
}
EOF
    setsid "${SRV_PIN[@]}" "$NGINX" -p "$d" -c "$d/nginx.conf" >>"$SLOG" 2>&1 &
    NGX_PID=$!
    wait_listen "$NGX_PORT" "$NGX_PID"
}

start_sink() {  # echo_epoll: the destination of the hs and idle rows
    local tmp=$WORK/sink.out
    : >"$tmp"
    setsid "${SRV_PIN[@]}" "$B/echo_epoll" 0 >"$tmp" 2>>"$SLOG" &
    SINK_PID=$!
    for _ in $(seq 200); do
        SINK_PORT=$(awk '$1 == "PORT" { print $2; exit }' "$tmp")
        [ -n "$SINK_PORT" ] && return 0
        kill -0 "$SINK_PID" 2>/dev/null || return 1
        sleep 0.025
    done
    return 1
}

# dante's minimal configuration (Debian 12's 1.4.2): the internal address
# needs a port number (0 is refused), no method on either level, clients
# and requests from loopback only.  It runs as the current user (as root
# it warns that the unprivileged uid is 0); logs go to stderr.
dante_conf() {  # port file
    cat >"$2" <<EOF
logoutput: stderr
internal: 127.0.0.1 port = $1
external: 127.0.0.1
clientmethod: none
socksmethod: none
client pass {
    from: 127.0.0.0/8 to: 0.0.0.0/0
}
socks pass {
    from: 127.0.0.0/8 to: 0.0.0.0/0
}
EOF
}

# A proxy that takes -p 0 (socks5d, microsocks): the kernel's port, read
# back with ss; one that refuses it gets a free_port instead.
start_port0() {  # cmd... (with PORT where the port goes)
    local try port
    for try in 0 "$(free_port)"; do
        setsid "${PRX_PIN[@]}" "${@/PORT/$try}" >>"$SLOG" 2>&1 &
        PRX_PID=$!
        if [ "$try" = 0 ]; then
            port=$(port_of_pid "$PRX_PID") && { PRX_PORT=$port; return 0; }
        elif wait_listen "$try" "$PRX_PID"; then
            PRX_PORT=$try
            return 0
        fi
        stop_tree "$PRX_PID"
        PRX_PID=
    done
    return 1
}

start_proxy() {  # proxy ; sets PRX_PID PRX_PORT (direct: none)
    PRX_PID='' PRX_PORT=''
    case $1 in
    direct) return 0 ;;
    socks5d) start_port0 "$SOCKS5D" -q -i 127.0.0.1 -p PORT ;;
    microsocks) start_port0 microsocks -i 127.0.0.1 -p PORT ;;
    dante)
        PRX_PORT=$(free_port)
        dante_conf "$PRX_PORT" "$WORK/danted.conf"
        setsid "${PRX_PIN[@]}" "$DANTED" -f "$WORK/danted.conf" >>"$SLOG" 2>&1 &
        PRX_PID=$!
        wait_listen "$PRX_PORT" "$PRX_PID"
        ;;
    *) return 1 ;;
    esac
}

# ------------------------------------------------------------ measuring

# Noise bookkeeping around a client run: machine ticks, the proxy's and
# the server side's CPU (user ticks, ns), the wall time.
snap() {  # server-sid -> "mu ms pu pns su sns t"
    echo "$(machine_ticks) $(tree_cpu "${PRX_PID:-}") $(tree_cpu "$1") $(now)"
}

# others_pct steal_pct prx_cpu_s srv_cpu_s wall_s from two snaps and the
# client's user seconds.
noise() {  # snap0 snap1 client_user_s
    awk -v a="$1" -v b="$2" -v cu="$3" -v hz="$HZ" -v n="$NCPU" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        wall = y[7] - x[7]
        others = (y[1] - x[1]) - (y[3] - x[3]) - (y[5] - x[5]) - cu * hz
        printf "others_pct=%.1f steal_pct=%.1f prx_cpu_s=%.3f srv_cpu_s=%.3f wall_s=%.3f",
            100 * others / (hz * n * wall), 100 * (y[2] - x[2]) / (hz * n * wall),
            (y[4] - x[4]) / 1e9, (y[6] - x[6]) / 1e9, wall
    }'
}

# curl's proxy options for a proxy and a row.
proxy_opts() {  # proxy row
    [ "$1" = direct ] && return 0
    if [ "$2" = bulkh ]; then
        echo "--socks5-hostname 127.0.0.1:$PRX_PORT"
    else
        echo "--socks5 127.0.0.1:$PRX_PORT"
    fi
}

# One timed curl run: its wall seconds -> CR (curl's own run, without the
# snapshots around it), NOISE from the snapshots.
timed_curl() {  # stdout-file curl-args...
    local out=$1 s0 s1 rc t
    shift
    s0=$(snap "$NGX_PID")
    TIMEFORMAT='%R %U'
    t=$( { time timeout -s INT "$CAP" "${CLI_PIN[@]}" curl -s --no-progress-meter "$@" \
        >"$out" 2>>"$SLOG"; } 2>&1)
    rc=$?
    s1=$(snap "$NGX_PID")
    CR=${t%% *}
    NOISE=$(noise "$s0" "$s1" "${t##* }")
    return $rc
}

client_bulk() {  # proxy row round -> sets RES
    local url="http://127.0.0.1:$NGX_PORT/big.bin" opts rc want=$((BIG_MB * 1048576))
    [ "$2" = bulkh ] && url="http://localhost:$NGX_PORT/big.bin"
    read -r -a opts <<<"$(proxy_opts "$1" "$2")"
    timed_curl "$WORK/curl.out" "${opts[@]}" -o /dev/null \
        -w '%{http_code} %{size_download} %{time_total}\n' "$url"
    rc=$?
    local code size secs
    read -r code size secs <"$WORK/curl.out"
    if [ $rc -ne 0 ] || [ "${code:-}" != 200 ] || [ "${size:-}" != "$want" ]; then
        RES="status=fail what=curl rc=$rc code=${code:-} size=${size:-} $NOISE"
        [ $rc -eq 124 ] && RES="status=timeout $NOISE"
        return
    fi
    RES="status=ok bytes=$size secs=$secs mbps=$(awk -v b="$size" -v s="$secs" \
        'BEGIN { printf "%.1f", b / s / 1e6 }') $NOISE"
    # Round 1: the body once more, outside the timed window, by sha256.
    if [ "$3" = 1 ]; then
        local sha
        sha=$(timeout "$CAP" curl -s "${opts[@]}" "$url" | sha256sum | awk '{ print $1 }')
        [ "$sha" = "$BIG_SHA" ] && RES="$RES sha256=ok" ||
            RES="status=fail what=sha256 ${RES#status=ok }"
    fi
}

client_small() {  # proxy row -> sets RES
    local opts=() rc
    read -r -a opts <<<"$(proxy_opts "$1" "$2")"
    [ "$2" = smallc ] && opts+=(-H "Connection: close")
    timed_curl "$WORK/curl.out" "${opts[@]}" --parallel --parallel-immediate \
        --parallel-max "$PAR" -w '%{http_code} %{size_download} %{num_connects}\n' \
        -K "$WORK/small.cfg"
    rc=$?
    local good conns
    good=$(awk -v s=$((SMALL_KB * 1024)) '$1 == 200 && $2 == s' "$WORK/curl.out" | wc -l)
    conns=$(awk '{ c += $3 } END { print c + 0 }' "$WORK/curl.out")
    if [ $rc -ne 0 ] || [ "$good" != "$SMALL_N" ]; then
        RES="status=fail what=curl rc=$rc good=$good $NOISE"
        [ $rc -eq 124 ] && RES="status=timeout good=$good $NOISE"
        return
    fi
    RES="status=ok files=$good par=$PAR conns=$conns secs=$CR $NOISE"
}

# The hs and idle rows: socks_hs; its own others_pct counts the proxy's
# helper processes as others, ours (noise) does not: its are kept as lg_*.
client_hs() {  # proxy row -> sets RES
    local args s0 s1 rc
    if [ "$2" = idle ]; then
        args=(-m idle -p "$PRX_PORT" -k "$IDLE" -P "$PRX_PID" -T "$((CAP - 10))")
    elif [ "$1" = direct ]; then
        args=(-m direct -j "$HS_J" -P "$SINK_PID")
    else
        args=(-m hs -p "$PRX_PORT" -j "$HS_J" -P "$PRX_PID")
    fi
    s0=$(snap "$SINK_PID")
    TIMEFORMAT=%U
    CU=$( { time timeout -s INT "$CAP" "${CLI_PIN[@]}" "$B/socks_hs" -t "$SINK_PORT" \
        -d "$SECS" -w "$WARMUP" "${args[@]}" >"$WORK/hs.out" 2>>"$SLOG"; } 2>&1)
    rc=$?
    s1=$(snap "$SINK_PID")
    RES=$(sed 's/steal_pct=/lg_steal_pct=/; s/others_pct=/lg_others_pct=/' "$WORK/hs.out")
    [ -n "$RES" ] || RES="status=fail rc=$rc"
    [ $rc -eq 124 ] && RES="$RES status=timeout"
    RES="$RES $(noise "$s0" "$s1" "${CU:-0}")"
}

run_one() {  # round row proxy
    local round=$1 row=$2 p=$3 tag attempt
    tag="proxy=$p row=$row round=$round"
    [ "$row" = idle ] && [ "$p" = direct ] && return 0
    for attempt in $(seq $((RETRIES + 1))); do
        if [ "$row" = hs ] || [ "$row" = idle ]; then
            if ! start_sink; then
                echo "$tag status=fail what=sink-start" | tee -a "$RAW" >&2
                stop_all
                return 0
            fi
        fi
        if ! start_proxy "$p"; then
            echo "$tag status=fail what=proxy-start" | tee -a "$RAW" >&2
            stop_all
            return 0
        fi
        case $row in
        bulk | bulkh) client_bulk "$p" "$row" "$round" ;;
        small | smallc) client_small "$p" "$row" ;;
        hs | idle) client_hs "$p" "$row" ;;
        esac
        stop_all
        grep -q 'status=ok' <<<"$RES" && rerun_disturbed "$tag" "$RES" "$attempt" "$RETRIES" &&
            continue
        echo "$tag $RES" | tee -a "$RAW" >&2
        return 0
    done
}

version_of() {  # package
    dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo "?"
}

machine() {
    machine_head
    local s5="not built"
    [ -x "$SOCKS5D" ] && s5=$("$SOCKS5D" --version 2>&1 | head -1)
    echo "- socks5d: $s5; microsocks $(version_of microsocks), dante-server" \
        "$(version_of dante-server), nginx-light $(version_of nginx-light)," \
        "curl $(version_of curl)"
    if [ ${#PRX_PIN[@]} -gt 0 ]; then
        echo "- pinning: client (curl, socks_hs) on CPU 1; server (nginx, echo sink) and proxy on CPU 0"
    else
        echo "- pinning: none"
    fi
    machine_mode
    echo "- sizes: bulk ${BIG_MB} MiB; small ${SMALL_N} x ${SMALL_KB} KiB, ${PAR} in flight;" \
        "handshakes ${HS_J} in flight; idle ${IDLE} tunnels"
    echo "- reruns: $(grep -c 'status=steal' "$RAW") steal, $(grep -c 'status=busy' "$RAW") busy" \
        "(threshold ${BUSY_MAX}% of the CPUs to other processes); median others share in" \
        "the counted runs: $(grep 'status=ok' "$RAW" | sed -n 's/.* others_pct=\([-0-9.]*\).*/\1/p' |
            sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] "%" : "n/a" }')"
}

read -r -a proxies <<<"$PROXIES"
read -r -a rows <<<"$ROWS"
avail=()
for p in "${proxies[@]}"; do
    if have "$p"; then
        avail+=("$p")
    elif [ "$p" = socks5d ]; then
        echo "$NAME: socks5d skipped: $SOCKS5D not built (cmake --build build)" >&2
    else
        echo "$NAME: $p not installed, skipped (bench/deps.sh installs it)" >&2
    fi
done
proxies=("${avail[@]}")
mkdir -p "$WORK/nginx"
start_nginx || { cleanup; die "nginx did not start (see $SLOG)"; }
make_files
echo "$NAME: ${#proxies[@]} proxies x ${#rows[@]} rows x $ROUNDS rounds; raw lines in $RAW" >&2
run_rounds "${proxies[@]}"
cleanup
report report_socks5d.py "${proxies[@]}"
