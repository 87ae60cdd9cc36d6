#!/usr/bin/env bash
# portfwd with AC_POLLER=select past FD_SETSIZE (issue 8 items 3 and 7
# together): 600 clients held open need about 1,200 descriptors, so the
# last ones are numbered >= 1024, which a select map refuses (-EMFILE from
# the relay).  Each such client is closed at once; it is not kept waiting
# for a descriptor, which would pause accepting for good (a descriptor's
# number never gets smaller).  Every client is echoed or closed within
# 5 s, portfwd never pauses accepting, and once they are gone a new
# client is served.
# shellcheck source=tests/tools/portfwd_common.bash
source "$(dirname "$0")/portfwd_common.bash"

start_py echo "$TMP/echo_server.py"
export AC_POLLER=select
start_pf fwd -b 2048 -p 0 -r 127.0.0.1 -P "$PY_PORT"
[ "$(ulimit -Hn)" -ge 1400 ] || { echo "SKIP: a hard limit of $(ulimit -Hn) descriptors"; exit 77; }

timeout 120 python3 - "$PF_PORT" <<'PY' || fail "select past FD_SETSIZE"
import socket, sys, time
port = int(sys.argv[1])
held = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(600)]
echoed = closed = 0
for s in held:
    s.settimeout(5)
    try:
        s.sendall(b"x")
        b = s.recv(1)
    except socket.timeout:
        raise SystemExit("a client got neither its echo nor EOF within 5 s")
    except OSError:   # reset
        b = b""
    if b == b"x":
        echoed += 1
    else:
        assert b == b"", b
        closed += 1
print("600 clients: %d echoed, %d closed" % (echoed, closed), flush=True)
assert echoed >= 400 and closed >= 1, "the test did not go past FD_SETSIZE"
for s in held:
    s.close()
time.sleep(1)
s = socket.create_connection(("127.0.0.1", port), timeout=20)
s.settimeout(20)
s.sendall(b"y")
assert s.recv(1) == b"y", "no echo after the 600 left"
PY
! grep -q 'accepting again' "$TMP/fwd.err" || fail "portfwd paused accepting: $(grep -m1 'accepting again' "$TMP/fwd.err")"
ok "AC_POLLER=select, 600 clients: those past FD_SETSIZE closed at once, no pause, a new client served after"
stop "$PF_PID"
no_sanitizer_reports
