#!/usr/bin/env bash
# examples/socketserver_echo end to end: options, bytes echoed intact, the
# verify_request hook (--max-clients refuses a client beyond the limit and
# takes the next one once a slot is free), and a clean exit on SIGTERM.
# shellcheck source=tests/examples/common.bash
source "$(dirname "$0")/common.bash"
need_example socketserver_echo
SS=$EX/socketserver_echo

expect_status 0 "$SS" --help
grep -q -- '--max-clients' "$TMP/cmd.out" || fail "--help does not list --max-clients"
expect_status 0 "$SS" -V
expect_status 2 "$SS" -m -1
expect_status 2 "$SS" -l not-an-address
expect_status 2 "$SS" extra
ok "options"

start ss "$SS" -p 0
line=$(wait_line ss 'serving on ')
port=$(port_of "$line")
[[ $line =~ ^socketserver_echo:\ serving\ on\ 127\.0\.0\.1:$port\;\ try:\ nc\ 127\.0\.0\.1\ $port$ ]] ||
    fail "startup line: '$line'"
out=$(echo_clients "$port" 2>&1) || fail "1 MiB echo: $out"
out=$(echo_clients "$port" --clients 8 --bytes 131072 2>&1) || fail "8 clients: $out"
ok "echo: 1 MiB, then 8 clients at once"
stop "$PID"
ok "SIGTERM: exit 0"

start limited "$SS" -p 0 -m 2
port=$(port_of "$(wait_line limited 'serving on ')")
timeout 30 python3 - "$port" <<'PY' >/dev/null || fail "--max-clients 2"
import socket, sys, time
port = int(sys.argv[1])
def client():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s
def echoes(s, msg):
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        b = s.recv(100)
        if not b:
            return False
        got += b
    return got == msg
a, b = client(), client()
assert echoes(a, b"first") and echoes(b, b"second"), "the first two clients are served"
c = client()               # the third is accepted by the kernel, then refused
c.settimeout(5)
try:
    refused = c.recv(10) == b""
except ConnectionResetError:
    refused = True
assert refused, "a third client is refused while two are connected"
a.close()
for attempt in range(50):  # the slot frees once a's channel is finalized
    d = client()
    try:
        if echoes(d, b"fourth"):
            break
    except ConnectionResetError:
        pass
    d.close()
    time.sleep(0.1)
else:
    raise SystemExit("no client served after the first one left")
assert echoes(b, b"still there")
print("ok")
PY
grep -q 'refusing 127.0.0.1:[0-9]*: 2 clients already' "$TMP/limited.err" ||
    fail "no 'refusing' line from verify_request"
ok "verify_request: a third client is refused, a later one served"
stop "$PID"
no_sanitizer_reports
