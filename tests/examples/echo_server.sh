#!/usr/bin/env bash
# examples/echo_server end to end over loopback: options, the startup line,
# 1 MiB of random bytes echoed intact (one client, then 16 at once, then one
# that reads late so the server must pause and resume reading), real
# clients (socat, ncat), a port in use, the poll and select pollers, and
# a clean exit on SIGTERM/SIGINT.
# shellcheck source=tests/examples/common.bash
source "$(dirname "$0")/common.bash"
need_example echo_server
ES=$EX/echo_server

expect_status 0 "$ES" --help
grep -q -- '--port' "$TMP/cmd.out" || fail "--help does not list --port"
expect_status 0 "$ES" --version
grep -Eq '^echo_server .*[0-9]+\.[0-9]+\.[0-9]+' "$TMP/cmd.out" || fail "--version: $(cat "$TMP/cmd.out")"
expect_status 2 "$ES" -p 65536
expect_status 2 "$ES" -p 12x
expect_status 2 "$ES" --no-such-option
expect_status 2 "$ES" extra-argument
expect_status 2 "$ES" -l localhost
ok "options"

start echo "$ES" -p 0
line=$(wait_line echo 'listening on ')
port=$(port_of "$line")
[[ $line =~ ^echo_server:\ listening\ on\ 127\.0\.0\.1:$port\;\ try:\ nc\ 127\.0\.0\.1\ $port$ ]] ||
    fail "startup line: '$line'"
[ "$port" -gt 0 ] || fail "no port in '$line'"
ok "startup line: $line"
echo_pid=$PID

out=$(echo_clients "$port" 2>&1) || fail "1 MiB echo: $out"
ok "1 MiB of random bytes echoed, then closed after the half-close"
out=$(echo_clients "$port" --clients 16 --bytes 262144 2>&1) || fail "16 clients: $out"
ok "16 clients at once, 256 KiB each"
out=$(echo_clients "$port" --bytes $((8 << 20)) --read-delay 1 2>&1) || fail "late reader: $out"
ok "8 MiB to a client that starts reading after 1 s (backpressure)"

if command -v socat >/dev/null; then
    got=$(printf 'hello, asyncore\n' | timeout 10 socat -t 5 - "TCP:127.0.0.1:$port")
    [ "$got" = "hello, asyncore" ] || fail "socat got '$got'"
    ok "socat"
fi
if command -v ncat >/dev/null; then
    got=$(printf 'ping\n' | timeout 10 ncat 127.0.0.1 "$port")
    [ "$got" = "ping" ] || fail "ncat got '$got'"
    ok "ncat"
fi

# The port is taken: a second server must say so and exit 1.
expect_status 1 "$ES" -p "$port"
grep -q 'cannot listen on 127.0.0.1 port' "$TMP/cmd.err" || fail "port in use: $(cat "$TMP/cmd.err")"
ok "port in use is reported"

stop "$echo_pid" TERM
ok "SIGTERM: exit 0"
# The seed prints to stdout; into a file it is block-buffered, flushed at exit.
n=$(grep -c '^echo_server: incoming connection from 127\.0\.0\.1:[0-9]*$' "$TMP/echo.out")
[ "$n" -ge 18 ] || fail "stdout has $n 'incoming connection' lines, want one per client (18+)"
ok "one 'incoming connection' line per client on stdout"

# The same echo on the other pollers.
for poller in poll select; do
    start "echo_$poller" env AC_POLLER=$poller "$ES" -p 0
    p=$(port_of "$(wait_line "echo_$poller" 'listening on ')")
    out=$(echo_clients "$p" --clients 4 2>&1) || fail "$poller: $out"
    stop "$PID"
    ok "$poller: 4 clients, 1 MiB each"
done

# SIGINT: a background job of a script starts with SIGINT ignored, so
# restore its default disposition for this one.
start echo_int env --default-signal=INT "$ES" -p 0
wait_line echo_int 'listening on ' >/dev/null
stop "$PID" INT
ok "SIGINT: exit 0"

no_sanitizer_reports
