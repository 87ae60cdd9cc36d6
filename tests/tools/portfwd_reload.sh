#!/usr/bin/env bash
# portfwd, SIGHUP after SIGHUP (issue 8 item 8; logrotate sends one a day):
# a ruleset is freed and its logfile closed once nothing uses it.  With a
# logfile and 2,000 allow patterns, 200 reloads leave exactly the
# descriptors there were after the first 20 (one on the logfile; the
# relay's cached splice pipes not counted), and RSS
# grows by less than 4 MiB (it grew about 100 KiB a reload).  A connection
# that lives across 10 reloads keeps its own ruleset, and so one more
# descriptor on the logfile, until it ends: its line is written, and the
# descriptor closed.  The same with --threads 2 (the reload reaches the
# second worker through ac_call_soon_threadsafe).
# shellcheck source=tests/tools/portfwd_common.bash
source "$(dirname "$0")/portfwd_common.bash"

# Under ASan freed blocks wait in a quarantine (256 MiB): keep it small, so
# that RSS shows what is kept, not what was freed.  (No effect elsewhere.)
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=1"

start_py echo "$TMP/echo_server.py"
E=$PY_PORT

# log_fds PID: descriptors of PID open on the logfile.
log_fds() {
    local n=0 f
    for f in /proc/"$1"/fd/*; do
        [ "$(readlink "$f" 2>/dev/null)" = "$TMP/pf.log" ] && n=$((n + 1))
    done
    echo "$n"
}
# all_fds PID: descriptors of PID but the relay's cached splice pipes
# (each worker keeps some, and which worker gets a client varies).
all_fds() {
    local n=0 f
    for f in /proc/"$1"/fd/*; do
        [[ $(readlink "$f" 2>/dev/null) == pipe:* ]] || n=$((n + 1))
    done
    echo "$n"
}

# hups NAME PID N: N reloads, one at a time (each waits for its log line:
# signals sent closer together would merge into one).
hups() {
    local done
    done=$(grep -c 'SIGHUP: 1 rules loaded' "$TMP/$1.err" || true)
    for _ in $(seq "$3"); do
        done=$((done + 1))
        kill -HUP "$2"
        local deadline=$((SECONDS + 60))
        while [ "$(grep -c 'SIGHUP: 1 rules loaded' "$TMP/$1.err" || true)" -lt "$done" ]; do
            [ $SECONDS -lt $deadline ] || fail "$1: reload $done did not happen"
            sleep 0.01
        done
    done
}

# A client held open on PORT until the file RELEASE exists; prints "ok"
# once an echo has gone through.
cat >"$TMP/hold.py" <<'PY'
import os, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(b"x" * 100)
got = b""
while len(got) < 100:
    got += s.recv(100)
print("ok", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.02)
s.close()
PY

run() { # NAME ARGS...
    local name=$1
    shift
    P=$(free_port)
    {
        for i in $(seq 2000); do echo "allow 127.$((i % 200)).*"; done
        echo "logfile $TMP/pf.log"
        echo "127.0.0.1 $P 127.0.0.1 $E"
    } >"$TMP/pf.conf"
    start_pf "$name" "$@" -c "$TMP/pf.conf"
    local pid=$PF_PID
    out=$(echo_clients "$P" --bytes 1000 2>&1) || fail "$name: $out"
    hups "$name" "$pid" 20
    out=$(echo_clients "$P" --bytes 1000 2>&1) || fail "$name after 20 reloads: $out"
    local fds0 rss0 fds1 rss1
    fds0=$(all_fds "$pid") rss0=$(rss_kib "$pid")
    [ "$(log_fds "$pid")" -eq 1 ] || fail "$name: $(log_fds "$pid") descriptors on the logfile after 20 reloads"
    hups "$name" "$pid" 200
    out=$(echo_clients "$P" --bytes 1000 2>&1) || fail "$name after 220 reloads: $out"
    fds1=$(all_fds "$pid") rss1=$(rss_kib "$pid")
    echo "$name: 200 reloads: descriptors $fds0 -> $fds1, on the logfile $(log_fds "$pid"); RSS $rss0 -> $rss1 KiB"
    [ "$fds1" -eq "$fds0" ] || fail "$name: $fds0 descriptors before 200 reloads, $fds1 after"
    [ "$(log_fds "$pid")" -eq 1 ] || fail "$name: $(log_fds "$pid") descriptors on the logfile"
    [ $((rss1 - rss0)) -lt 4096 ] || fail "$name: RSS grew from $rss0 to $rss1 KiB over 200 reloads"
    ok "$name: 200 reloads, descriptors stay at $fds1 (1 on the logfile), RSS $rss0 -> $rss1 KiB"

    # A live connection keeps its ruleset (and that logfile descriptor).
    python3 "$TMP/hold.py" "$P" "$TMP/$name.release" >"$TMP/$name.hold" 2>&1 &
    local hold=$!
    PIDS+=("$hold")
    for _ in $(seq 200); do grep -q ok "$TMP/$name.hold" && break; sleep 0.05; done
    grep -q ok "$TMP/$name.hold" || fail "$name: the held connection did not echo"
    hups "$name" "$pid" 10
    [ "$(log_fds "$pid")" -eq 2 ] || fail "$name: $(log_fds "$pid") descriptors on the logfile with a connection from 10 reloads ago, want 2"
    local lines
    lines=$(wc -l <"$TMP/pf.log")
    touch "$TMP/$name.release"
    finish "$hold" 10
    for _ in $(seq 200); do [ "$(log_fds "$pid")" -eq 1 ] && break; sleep 0.05; done
    [ "$(log_fds "$pid")" -eq 1 ] || fail "$name: $(log_fds "$pid") descriptors on the logfile after the old connection ended"
    [ "$(wc -l <"$TMP/pf.log")" -eq $((lines + 1)) ] || fail "$name: the old connection's line is missing from the logfile"
    ok "$name: a connection across 10 reloads keeps 1 more logfile descriptor, until its line is written"
    stop "$pid"
    rm -f "$TMP/pf.log"
}

run one
run threads --threads 2
no_sanitizer_reports
