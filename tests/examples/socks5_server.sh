#!/usr/bin/env bash
# examples/socks5_server end to end: options and a startup failure; curl
# through it with --socks5-hostname (a name) and --socks5 (IPv4) fetching
# 4 MiB of random bytes from a local http.server, sha256 checked, also 8 at
# once; BIND gets reply 7 and a close; a refused port reply 5; a name that
# does not resolve reply 4, an IPv6 address reply 8, a greeting without
# method 0 gets 05 FF; a greeting and request sent a byte at a time, and a
# greeting + request + HTTP request in one write (the bytes after the
# request must be forwarded); the poll and select pollers; exit 0 on
# SIGTERM.
# shellcheck source=tests/examples/common.bash
source "$(dirname "$0")/common.bash"
need_example socks5_server
command -v curl >/dev/null || { echo "SKIP: curl is missing"; exit 77; }
S5=$EX/socks5_server
CLIENT=$AC_SOURCE_DIR/tests/tools/socks5_client.py
export PYTHONDONTWRITEBYTECODE=1
# python3 by its real path: a pyenv shim costs half a second a start.
mkdir -p "$TMP/bin"
ln -sf "$(python3 -c 'import sys; print(sys.executable)')" "$TMP/bin/python3"
PATH=$TMP/bin:$PATH

expect_status 0 "$S5" --help
head -n1 "$TMP/cmd.out" | grep -q '^usage: socks5_server ' || fail "--help: $(head -n1 "$TMP/cmd.out")"
grep -q -- '--port' "$TMP/cmd.out" || fail "--help does not list --port"
expect_status 0 "$S5" --version
grep -Eq '^socks5_server \(libasyncore\) [0-9]+\.[0-9]+\.[0-9]+$' "$TMP/cmd.out" ||
    fail "--version: '$(cat "$TMP/cmd.out")'"
expect_status 2 "$S5" --bogus
expect_status 2 "$S5" -p 65536
expect_status 2 "$S5" -p 12x
expect_status 2 "$S5" -l localhost
expect_status 2 "$S5" -p 0 extra
[ "$(head -n1 "$TMP/cmd.err")" = "socks5_server: unexpected argument 'extra'" ] ||
    fail "extra argument: '$(head -n1 "$TMP/cmd.err")'"
ok "options: --help, --version, bad values exit 2"

# The HTTP server and its file.
mkdir "$TMP/www"
head -c $((4 << 20)) /dev/urandom >"$TMP/www/blob"
want=$(sha256sum <"$TMP/www/blob" | cut -d' ' -f1)
# The server resolves "localhost" itself, first address only: serve on
# every loopback address it might pick (:: is dual-stack in http.server).
bind=127.0.0.1
python3 -c 'import socket, sys; sys.exit(socket.getaddrinfo("localhost", 80, 0, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG)[0][0] != socket.AF_INET6)' && bind=::
start http python3 -u -m http.server 0 --bind "$bind" --directory "$TMP/www"
http_pid=$PID
deadline=$((SECONDS + 60))
while ! grep -q 'port [0-9]' "$TMP/http.out" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
hport=$(sed -nE 's/.* port ([0-9]+) .*/\1/p' "$TMP/http.out" | head -n1)
[ -n "$hport" ] || fail "http.server did not start: $(cat "$TMP/http.out" "$TMP/http.err")"

start s5 "$S5" -p 0
s5_pid=$PID
line=$(wait_line s5 'listening on ' 30)
port=$(port_of "$line")
[[ $line =~ ^socks5_server:\ listening\ on\ 127\.0\.0\.1:$port\; ]] || fail "startup line: '$line'"
ok "startup line: $line"

# A startup failure: one line, exit 1 (the port is taken).
expect_status 1 "$S5" -p "$port"
[ "$(cat "$TMP/cmd.err")" = "socks5_server: cannot listen on 127.0.0.1 port $port: Address already in use" ] ||
    fail "port in use: '$(cat "$TMP/cmd.err")'"
ok "startup failure: one line, exit 1"

# fetch PORT CURL-PROXY-OPTION HOST: the blob through the proxy, sha256 checked.
fetch() {
    local got
    got=$(timeout 60 curl -sS --max-time 50 "$2" "127.0.0.1:$1" "http://$3:$hport/blob" |
        sha256sum | cut -d' ' -f1) || fail "curl $2 through port $1 failed"
    [ "$got" = "$want" ] || fail "curl $2 through port $1: the body differs"
}
fetch "$port" --socks5-hostname localhost
ok "curl --socks5-hostname: 4 MiB from http://localhost, sha256 matches"
fetch "$port" --socks5 127.0.0.1
ok "curl --socks5: 4 MiB from http://127.0.0.1, sha256 matches"
pids=()
for _ in $(seq 8); do
    (fetch "$port" --socks5-hostname localhost) &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "one of 8 curls at once failed"; done
ok "8 curls at once, each body checked"

# client ARGS...: socks5_client.py through the proxy; its output, one line.
client() {
    timeout 30 python3 "$CLIENT" "127.0.0.1:$port" "$@" | tr '\n' ' ' | sed 's/ $//'
}
want_client() { # WANT ARGS...
    local want=$1 got
    shift
    got=$(client "$@")
    [ "$got" = "$want" ] || fail "socks5_client.py $*: '$got', want '$want'"
}
want_client "method 0 reply 7 0.0.0.0 0 closed" 127.0.0.1 "$hport" --cmd 2
ok "BIND: reply 7, then closed"
want_client "method 0 reply 7 0.0.0.0 0 closed" 127.0.0.1 "$hport" --cmd 3
ok "UDP ASSOCIATE: reply 7, then closed"
want_client "method 0 reply 5 0.0.0.0 0 closed" 127.0.0.1 "$(free_port)"
ok "a refused port: reply 5, then closed"
want_client "method 0 reply 4 0.0.0.0 0 closed" no-such-host.invalid 80
ok "a name that does not resolve: reply 4, then closed"
want_client "method 0 reply 8 0.0.0.0 0 closed" ::1 "$hport"
ok "an IPv6 address: reply 8, then closed"
want_client "method 255 closed" 127.0.0.1 "$hport" --methods 2,1
ok "no method 0 offered: 05 FF, then closed"

# In pieces and all at once, through the library.
timeout 60 python3 - "$AC_SOURCE_DIR/tests/tools" "$port" "$hport" "$want" <<'PY' ||
import hashlib, sys
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[1])
import socks5_client as sc
port, hport, want = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
get = b"GET /blob HTTP/1.0\r\nHost: localhost\r\n\r\n"

def body(s):
    data = sc.read_all(s)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200"), head[:40]
    assert hashlib.sha256(rest).hexdigest() == want, "body differs (%d bytes)" % len(rest)

# A byte at a time, 20 ms apart: greeting, then request.
s = sc.connect(("127.0.0.1", port))
sc.send(s, sc.greeting((0,)), split=1, pause=0.02)
assert sc.read_method(s) == 0
sc.send(s, sc.request(1, "localhost", hport), split=1, pause=0.02)
rep, addr, bport = sc.read_reply(s)
assert rep == 0 and addr in ("127.0.0.1", "::1") and bport > 0, (rep, addr, bport)
s.sendall(get)
body(s)
s.close()
# Greeting, request and the HTTP request in one write: the proxy must keep
# what follows the request and send it on once connected.
s = sc.connect(("127.0.0.1", port))
s.sendall(sc.greeting((0,)) + sc.request(1, "127.0.0.1", hport) + get)
assert sc.read_method(s) == 0
assert sc.read_reply(s)[0] == 0
body(s)
s.close()
# Greeting split after its first byte, the rest with the request.
s = sc.connect(("127.0.0.1", port))
g = sc.greeting((1, 2, 0))
s.sendall(g[:1])
import time; time.sleep(0.1)
s.sendall(g[1:] + sc.request(1, "127.0.0.1", hport)[:3])
time.sleep(0.1)
s.sendall(sc.request(1, "127.0.0.1", hport)[3:])
assert sc.read_method(s) == 0
assert sc.read_reply(s)[0] == 0
s.sendall(get)
body(s)
PY
    fail "handshakes in pieces or pipelined"
ok "greeting and request a byte at a time; all in one write with the HTTP request after them; split across writes"
kill -0 "$s5_pid" || fail "the server died"

# The other pollers: the fetch, and a refused connect (handle_error there too).
for poller in poll select; do
    start "s5_$poller" env AC_POLLER=$poller "$S5" -p 0
    port=$(port_of "$(wait_line "s5_$poller" 'listening on ' 30)")
    fetch "$port" --socks5-hostname localhost
    want_client "method 0 reply 5 0.0.0.0 0 closed" 127.0.0.1 "$(free_port)"
    stop "$PID"
    ok "$poller: a fetch, a refused port"
done

stop "$s5_pid" TERM
ok "SIGTERM: exit 0"
kill "$http_pid"
no_sanitizer_reports
