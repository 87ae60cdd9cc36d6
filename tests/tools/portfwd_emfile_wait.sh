#!/usr/bin/env bash
# portfwd out of descriptors, the issue's scenario (issue 8 item 7): under
# a limit of 64 (soft and hard), 200 clients connect at once, each sends
# 1000 bytes and waits for their echo.  Every one of the 200 is served:
# a client accepted when no descriptor is left for its remote waits,
# accepted, until one is free, and the clients behind it wait in the
# backlog; none is closed unserved (before: 88 of 200 were).  portfwd says
# it ran out, logs 200 connections that ended clean and no failed one.
# shellcheck source=tests/tools/portfwd_common.bash
source "$(dirname "$0")/portfwd_common.bash"
need_cmd prlimit

start_py echo "$TMP/echo_server.py"
cat >"$TMP/clients.py" <<'PY'
import os, socket, sys, threading
port, n = int(sys.argv[1]), 200
ready = threading.Barrier(n + 1)
go = threading.Event()
served, errors = [], []

def client(i):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
    except OSError as e:
        errors.append("%d: connect: %s" % (i, e))
        ready.wait()
        return
    ready.wait()
    go.wait()   # all 200 are connected (in the backlog) before anyone sends
    try:
        data = os.urandom(1000)
        s.sendall(data)
        got = bytearray()
        while len(got) < len(data):
            b = s.recv(4096)
            if not b:
                raise OSError("EOF after %d of 1000 bytes" % len(got))
            got += b
        if bytes(got) != data:
            raise OSError("the echo differs")
        served.append(i)
    except OSError as e:
        errors.append("%d: %s" % (i, e))
    finally:
        s.close()

threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
ready.wait()
go.set()
for t in threads:
    t.join()
print("served %d of %d" % (len(served), n), flush=True)
for e in errors[:5]:
    print("  " + e, flush=True)
sys.exit(0 if len(served) == n else 1)
PY

# run NAME [ARGS...]: the scenario once.  A client is dropped when exactly
# one descriptor is left (accept takes it, the remote's socket() fails);
# every connection frees or takes two, so whether that happens depends on
# the parity of the descriptors in use: run with each parity (FDS extra
# descriptors inherited, 0 or 1).
run() {
    local name=$1 fds=$2
    start "$name" bash -c 'for ((i = 0; i < $1; i++)); do exec {fd}</dev/null; done; shift; exec "$@"' \
        fds "$fds" prlimit --nofile=64:64 "$PF" -v -b 512 -p 0 -r 127.0.0.1 -P "$PY_PORT"
    fwd_pid=$PID
    line=$(wait_line "$name" 'listening on .* port [0-9]+, forwarding to ' 60)
    port=$(sed -E 's/.*listening on [^ ]+ port ([0-9]+),.*/\1/' <<<"$line")
    grep -Eq '^Max open files +64 +64 ' "/proc/$fwd_pid/limits" ||
        fail "$name: the limit is not 64: $(grep 'open files' "/proc/$fwd_pid/limits")"

    timeout 90 python3 "$TMP/clients.py" "$port" || fail "$name: not every client was served"
    for _ in $(seq 200); do [ "$(conn_lines "$name" ' via .*, done-')" -ge 200 ] && break; sleep 0.05; done
    grep -q 'Too many open files (accepting again in' "$TMP/$name.err" ||
        fail "$name: portfwd never ran out of descriptors: the test tests nothing"
    [ "$(conn_lines "$name" ' via .*, done-')" -eq 200 ] || fail "$name: $(conn_lines "$name" ' via .*, done-') connections ended clean, not 200"
    [ "$(conn_lines "$name" 'connect-failed')" -eq 0 ] || fail "$name: clients dropped: $(grep -m3 connect-failed "$TMP/$name.err")"
    ok "$name: ulimit -n 64, 200 clients at once: all 200 served, $(conn_lines "$name" 'Too many open files') pauses, none dropped"
    stop "$fwd_pid"
    grep -Eq "active 0, total 200, refused 0, errors [0-9]+, bytes in 200000, out 200000" "$TMP/$name.err" ||
        fail "$name: exit stats: $(grep -A1 'stats (exit)' "$TMP/$name.err" | tail -n1)"
}
run even 0
run odd 1
no_sanitizer_reports
