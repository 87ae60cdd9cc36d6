#!/usr/bin/env bash
# portfwd, failures: a server that resets (SO_LINGER 0) makes the client
# see ECONNRESET, and a client that resets makes the server see it; the log
# says reset.  A remote that refuses: the client is closed promptly,
# portfwd logs local-connect-failed and keeps serving the next clients (and
# the remote once it is up).  A remote that does not answer (its accept
# queue full, so the kernel drops the SYNs): --connect-timeout 0.5 fires,
# the client is closed, the log says connect-timeout.
# shellcheck source=tests/tools/portfwd_common.bash
source "$(dirname "$0")/portfwd_common.bash"

# Reads one line, sends "ack\n" and (mode rst) resets the connection, or
# (mode wait) reads on until the client goes and reports how.
cat >"$TMP/rst_server.py" <<'EOF'
import socket, struct, sys, threading
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(16)
print(ls.getsockname()[1], flush=True)

def serve(c):
    f = c.makefile("rb")
    mode = f.readline().strip()
    if mode == b"rst":
        c.sendall(b"ack\n")
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        return
    c.sendall(b"ack\n")
    try:
        while c.recv(65536):
            pass
        print("server saw EOF", flush=True)
    except ConnectionResetError:
        print("server saw ECONNRESET", flush=True)
    c.close()

while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF

start_py srv "$TMP/rst_server.py"
srv_port=$PY_PORT
start_pf fwd -v -p 0 -r 127.0.0.1 -P "$srv_port"
port=$PF_PORT

timeout 20 python3 - "$port" <<'EOF' || fail "server reset: not propagated"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"rst\n")
assert s.recv(4) == b"ack\n"
time.sleep(0.3)
try:
    b = s.recv(100)
    raise SystemExit("the server reset, the client got %r, not ECONNRESET" % b)
except ConnectionResetError:
    pass
EOF
ok "the server resets: the client sees ECONNRESET"
line=$(wait_line fwd ' via .*, reset$' 10)
ok "log: ${line#portfwd: info: }"

timeout 20 python3 - "$port" <<'EOF' || fail "client reset"
import socket, struct, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"wait\n")
assert s.recv(4) == b"ack\n"
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
EOF
line=$(wait_out srv '^server saw ' 10)
[ "$line" = "server saw ECONNRESET" ] || fail "the client reset, the server: '$line'"
ok "the client resets: the server sees ECONNRESET"
[ "$(conn_lines fwd ', reset$')" -eq 2 ] || fail "not 2 'reset' lines"

# A clean close for comparison: the server sees EOF.
timeout 20 python3 - "$port" <<'EOF' || fail "clean close"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"wait\n")
assert s.recv(4) == b"ack\n"
s.close()
EOF
[ "$(wait_out srv '^server saw EOF' 10)" = "server saw EOF" ] || fail "clean close"
ok "a clean close stays a clean close (the server sees EOF)"
stop "$PF_PID"

# The remote refuses.  Its port is held by a socket that is bound but not
# listening (connects to it are refused, and no other process can get the
# port meanwhile, as one could with a port closed and opened again); the
# same socket listens once $TMP/go exists.
cat >"$TMP/later.py" <<'EOF'
import os, socket, sys, time
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
print(ls.getsockname()[1], flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
ls.listen(4)
print("up", flush=True)
c, _ = ls.accept()
c.sendall(b"hello from the remote\n")
c.close()
EOF
start_py srv2 "$TMP/later.py" "$TMP/go"
dead=$PY_PORT
start_pf fwd2 -v -p 0 -r 127.0.0.1 -P "$dead"
port=$PF_PORT
timeout 20 python3 - "$port" <<'EOF' || fail "remote refusing: the client was not closed promptly"
import socket, sys, time
for i in range(5):
    t = time.monotonic()
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    try:
        b = s.recv(10)
        assert b == b"", "got %r" % b
    except ConnectionResetError:
        pass
    assert time.monotonic() - t < 4, "closed after %.1f s" % (time.monotonic() - t)
    s.close()
EOF
ok "remote refusing: 5 clients, each closed promptly"
for _ in $(seq 100); do
    [ "$(conn_lines fwd2 ' via .*, local-connect-failed$')" -ge 5 ] && break
    sleep 0.05
done
[ "$(conn_lines fwd2 ' via .*, local-connect-failed$')" -eq 5 ] ||
    fail "want 5 local-connect-failed lines, got $(conn_lines fwd2 'local-connect-failed')"
kill -0 "$PF_PID" || fail "portfwd died"
# Now the remote comes up on that port: the same portfwd serves it.
touch "$TMP/go"
wait_out srv2 '^up$' 10 >/dev/null
got=$(timeout 10 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
print(s.makefile().readline().strip())' "$port") || fail "after the refusals: no answer"
[ "$got" = "hello from the remote" ] || fail "after the refusals: '$got'"
ok "log says local-connect-failed; portfwd goes on serving (the remote, once up)"
stop "$PF_PID"
grep -Eq "total 6, refused 0, errors 5," "$TMP/fwd2.err" ||
    fail "exit stats: $(grep -A1 'stats (exit)' "$TMP/fwd2.err")"
ok "exit stats: total 6, errors 5"

# A remote that does not answer: a listener with backlog 0 that never
# accepts, its queue filled, drops the SYNs (tcp_abort_on_overflow 0).
cat >"$TMP/full.py" <<'EOF'
import socket, sys, time
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(0)
port = ls.getsockname()[1]
fill = []
for i in range(8):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    fill.append(s)
time.sleep(0.3)
# Is it full?  A further connect must hang.
s = socket.socket()
s.settimeout(0.7)
try:
    s.connect(("127.0.0.1", port))
    print("not-full", flush=True)
except socket.timeout:
    print(port, flush=True)
s.close()
time.sleep(120)
EOF
if [ "$(cat /proc/sys/net/ipv4/tcp_abort_on_overflow 2>/dev/null)" != 0 ]; then
    echo "SKIP part: tcp_abort_on_overflow is not 0, a full queue would reset"
else
    start full python3 "$TMP/full.py"
    wait_out full '^([0-9]+|not-full)$' 15 >/dev/null
    full_port=$(head -n1 "$TMP/full.out")
    if [ "$full_port" = not-full ]; then
        echo "SKIP part: a listener with a full backlog still completes connections here"
    else
        start_pf fwd3 -v --connect-timeout 0.5 -p 0 -r 127.0.0.1 -P "$full_port"
        secs=$(timeout 20 python3 - "$PF_PORT" <<'EOF') || fail "connect timeout: the client was not closed"
import socket, sys, time
t = time.monotonic()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
try:
    b = s.recv(10)
    assert b == b"", "got %r" % b
except ConnectionResetError:
    pass
secs = time.monotonic() - t
assert 0.3 < secs < 8, "closed after %.2f s, with --connect-timeout 0.5" % secs
print("%.2f" % secs)
EOF
        line=$(wait_line fwd3 ' via .*, connect-timeout$' 10)
        ok "remote not answering: --connect-timeout 0.5 closes the client after $secs s; log: ${line#portfwd: info: }"
        stop "$PF_PID"
    fi
fi
no_sanitizer_reports
