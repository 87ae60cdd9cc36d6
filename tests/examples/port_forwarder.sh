#!/usr/bin/env bash
# examples/port_forwarder end to end: options; the echo server behind the
# forwarder, bytes compared (1 MiB, 8 clients at once, and a late reader
# that forces backpressure); a remote that sends and closes first (what it
# sent must still arrive whole); a remote that is down; a client that
# leaves early; the poll and select pollers; a clean exit on SIGTERM.
# shellcheck source=tests/examples/common.bash
source "$(dirname "$0")/common.bash"
need_example port_forwarder
need_example echo_server
PF=$EX/port_forwarder

expect_status 0 "$PF" --help
grep -q -- '--remote-port' "$TMP/cmd.out" || fail "--help does not list --remote-port"
expect_status 0 "$PF" --version
expect_status 2 "$PF"
expect_status 2 "$PF" -p 0
expect_status 2 "$PF" -p 0 -P 0
expect_status 2 "$PF" -p 0 -P 70000
expect_status 2 "$PF" -p 0 -P 80 -r localhost
expect_status 2 "$PF" -p 0 -P 80 extra
ok "options"

start echo "$EX/echo_server" -p 0
eport=$(port_of "$(wait_line echo 'listening on ')")
echo_pid=$PID
start fwd "$PF" --local-port 0 --remote-port "$eport"
line=$(wait_line fwd 'forwarding ')
fport=$(port_of "$line")
[[ $line =~ ^port_forwarder:\ forwarding\ 127\.0\.0\.1:$fport\ to\ 127\.0\.0\.1:$eport$ ]] ||
    fail "startup line: '$line'"
fwd_pid=$PID
ok "startup line: $line"

out=$(echo_clients "$fport" --no-shutdown 2>&1) || fail "1 MiB through the forwarder: $out"
ok "1 MiB of random bytes through forwarder and echo server"
out=$(echo_clients "$fport" --no-shutdown --clients 8 --bytes 262144 2>&1) || fail "8 clients: $out"
ok "8 clients at once"
out=$(echo_clients "$fport" --no-shutdown --bytes $((8 << 20)) --read-delay 1 2>&1) ||
    fail "late reader: $out"
ok "8 MiB to a client that starts reading after 1 s (backpressure)"

# A remote that sends 4 MiB at once and closes: the forwarder must pass on
# all of it before it closes the client's end.
head -c $((4 << 20)) /dev/urandom >"$TMP/blob"
start source python3 -c '
import socket, sys
data = open(sys.argv[1], "rb").read()
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    try:
        c.sendall(data)
    except OSError:
        pass
    c.close()
' "$TMP/blob"
for _ in $(seq 100); do [ -s "$TMP/source.out" ] && break; sleep 0.05; done
sport=$(head -n1 "$TMP/source.out")
[ -n "$sport" ] || fail "the source server did not start"
start fwd2 "$PF" -l 127.0.0.1 -p 0 -r 127.0.0.1 -P "$sport"
f2port=$(port_of "$(wait_line fwd2 'forwarding ')")
fwd2_pid=$PID
timeout 30 python3 - "$f2port" "$TMP/blob" <<'PY' >/dev/null || fail "remote closes first"
import socket, sys, time
port, want = int(sys.argv[1]), open(sys.argv[2], "rb").read()
s = socket.create_connection(("127.0.0.1", port), timeout=20)
time.sleep(0.5)  # let the remote finish and close before we read a byte
got = bytearray()
while True:
    b = s.recv(1 << 16)
    if not b:
        break
    got += b
assert got == want, "got %d of %d bytes" % (len(got), len(want))
# A client that leaves after one read: the forwarder carries on.
s = socket.create_connection(("127.0.0.1", port), timeout=20)
s.recv(1); s.close()
print("ok")
PY
ok "remote sends 4 MiB and closes first: all of it arrives, then EOF"
out=$(timeout 10 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
n = 0
while True:
    b = s.recv(65536)
    if not b: break
    n += len(b)
print(n)' "$f2port") || fail "after a client left early: $out"
[ "$out" -eq $((4 << 20)) ] || fail "after a client left early: got $out bytes"
ok "a client leaving early does not disturb the next"
stop "$fwd2_pid"

# The remote is down: the client's connection is closed, the forwarder lives.
start fwd3 "$PF" -p 0 -P "$(free_port)"
f3port=$(port_of "$(wait_line fwd3 'forwarding ')")
# Bounds generous for a loaded machine (ASan, other jobs): a forwarder that
# never closes still fails, after 20 s.
timeout 30 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
try:
    assert s.recv(10) == b""
except ConnectionResetError:
    pass
print("ok")' "$f3port" >/dev/null || fail "remote down: the client was not closed"
kill -0 "$PID" || fail "remote down: the forwarder died"
ok "remote down: the client is closed, the forwarder carries on"
stop "$PID"

# The same through a forwarder on each of the other pollers.
for poller in poll select; do
    start "fwd_$poller" env AC_POLLER=$poller "$PF" -p 0 -P "$eport"
    p=$(port_of "$(wait_line "fwd_$poller" 'forwarding ')")
    out=$(echo_clients "$p" --no-shutdown --clients 4 2>&1) || fail "$poller: $out"
    stop "$PID"
    ok "$poller: 4 clients, 1 MiB each, through the forwarder"
done

stop "$fwd_pid" TERM
ok "SIGTERM: exit 0"
stop "$echo_pid"
no_sanitizer_reports
