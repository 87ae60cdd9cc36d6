#!/usr/bin/env bash
# examples/http_client end to end against a small HTTP/1.0 server written
# here (it binds port 0 and prints its port): the request line and Host
# header, the whole response on stdout byte for byte, exit 0; both argument
# forms (PATH with or without its slash); and non-zero exits with a clear
# message for a refused connection, a server that closes without
# answering, a reset in the middle of the body, a body shorter than its
# Content-Length (issue 8 item 18), a server that never answers (-t), and
# bad arguments.  The main cases run on every poller.
# shellcheck source=tests/examples/common.bash
source "$(dirname "$0")/common.bash"
need_example http_client
HC=$EX/http_client

expect_status 0 "$HC" --help
expect_status 0 "$HC" --version
expect_status 2 "$HC"
expect_status 2 "$HC" 127.0.0.1 80
expect_status 2 "$HC" 127.0.0.1 0 /
expect_status 2 "$HC" ftp://127.0.0.1/
expect_status 2 "$HC" -t 0 http://127.0.0.1/
ok "options"

head -c 300000 /dev/urandom >"$TMP/body"
cat >"$TMP/server.py" <<'PY'
import socket, socketserver, struct, sys
body = open(sys.argv[1], "rb").read()
log = open(sys.argv[2], "a", buffering=1)

class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        req = b""
        while b"\r\n\r\n" not in req:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            req += chunk
        head = req.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
        log.write(repr(head) + "\n")
        path = head[0].split(" ")[1]
        if path == "/close":
            return                      # close without a word
        if path == "/hang":
            self.request.recv(1)        # until the client gives up
            return
        head = b"HTTP/1.0 200 OK\r\n"
        if path != "/reset-nolength":
            head += b"Content-Length: %d\r\n" % len(body)
        if path == "/short":            # closes after 1000 of 300000 bytes
            self.request.sendall(head + b"\r\n" + body[:1000])
            return
        if path.startswith("/reset"):   # resets after 20000 bytes of the body
            # Less than the client's first receive window, so all of it is in
            # its receive queue (read before the reset) when sendall returns;
            # more could still sit in our send buffer, which the reset drops.
            self.request.sendall(head + b"\r\n" + body[:20000])
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.request.close()        # now, before socketserver's shutdown sends a FIN
            return
        self.request.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body) + body)

socketserver.ThreadingTCPServer.daemon_threads = True
srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
PY
start server python3 "$TMP/server.py" "$TMP/body" "$TMP/requests.log"
for _ in $(seq 100); do [ -s "$TMP/server.out" ] && break; sleep 0.05; done
hport=$(head -n1 "$TMP/server.out")
[ -n "$hport" ] || fail "the test server did not start"

# body_of FILE: what follows the blank line after the headers.
body_of() {
    python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); sys.stdout.buffer.write(d.split(b"\r\n\r\n", 1)[1])' "$1"
}

for poller in epoll poll select; do
    export AC_POLLER=$poller
    expect_status 0 "$HC" 127.0.0.1 "$hport" /file
    head -n1 "$TMP/cmd.out" | grep -q $'^HTTP/1.0 200 OK\r$' || fail "$poller: no status line"
    grep -aq $'^Content-Length: 300000\r$' "$TMP/cmd.out" || fail "$poller: headers missing"
    body_of "$TMP/cmd.out" | cmp -s - "$TMP/body" || fail "$poller: the body differs"
    tail -n1 "$TMP/requests.log" | grep -qF "['GET /file HTTP/1.0', 'Host: 127.0.0.1:$hport']" ||
        fail "$poller: request was $(tail -n1 "$TMP/requests.log")"
    ok "$poller: HOST PORT PATH: 300 KB body intact, exit 0"

    # Item 18: PATH without its leading slash, as the usage writes it.
    expect_status 0 "$HC" 127.0.0.1 "$hport" file
    body_of "$TMP/cmd.out" | cmp -s - "$TMP/body" || fail "$poller: the body differs (no slash)"
    tail -n1 "$TMP/requests.log" | grep -qF "'GET /file HTTP/1.0'" ||
        fail "$poller: no slash: request was $(tail -n1 "$TMP/requests.log")"
    ok "$poller: HOST PORT PATH without the leading slash"

    # Item 18: a body cut short is a failure, whether by a reset (with or
    # without Content-Length) or by a close before Content-Length bytes.
    for what in reset reset-nolength; do
        expect_status 1 "$HC" 127.0.0.1 "$hport" /$what
        # All of it under select; under poll and epoll what one read takes
        # before the loop sees POLLHUP and closes (asyncore's readwrite).
        body_of "$TMP/cmd.out" >"$TMP/got"
        got=$(wc -c <"$TMP/got")
        [ "$got" -gt 0 ] && [ "$got" -le 20000 ] && cmp -s "$TMP/got" <(head -c "$got" "$TMP/body") ||
            fail "$poller: $what: $got bytes, not the start of the body"
        grep -qx "http_client: 127.0.0.1:$hport: connection broken: Connection reset by peer" \
            "$TMP/cmd.err" || fail "$poller: $what: '$(cat "$TMP/cmd.err")'"
        ok "$poller: reset after 20000 body bytes ($what, $got came): exit 1, says so"
    done
    expect_status 1 "$HC" 127.0.0.1 "$hport" /short
    grep -qx "http_client: 127.0.0.1:$hport: connection closed after 1000 of 300000 body bytes" \
        "$TMP/cmd.err" || fail "$poller: short: '$(cat "$TMP/cmd.err")'"
    ok "$poller: body shorter than Content-Length: exit 1, says so"

    expect_status 0 "$HC" "http://127.0.0.1:$hport/file?x=1"
    body_of "$TMP/cmd.out" | cmp -s - "$TMP/body" || fail "$poller: the body differs (URL form)"
    tail -n1 "$TMP/requests.log" | grep -qF "'GET /file?x=1 HTTP/1.0'" || fail "$poller: URL path"
    ok "$poller: URL form"

    closed=$(free_port)
    expect_status 1 "$HC" "http://127.0.0.1:$closed/"
    grep -q "127.0.0.1:$closed: .*Connection refused" "$TMP/cmd.err" ||
        fail "$poller: refused: '$(cat "$TMP/cmd.err")'"
    [ ! -s "$TMP/cmd.out" ] || fail "$poller: output after a refused connection"
    ok "$poller: connection refused: exit 1, '$(cat "$TMP/cmd.err")'"

    expect_status 1 "$HC" 127.0.0.1 "$hport" /close
    grep -q 'closed without a response' "$TMP/cmd.err" || fail "$poller: close: $(cat "$TMP/cmd.err")"
    ok "$poller: closed without a response: exit 1"
done
unset AC_POLLER

start slow "$HC" -t 0.5 127.0.0.1 "$hport" /hang
finish "$PID" 10
[ "$STATUS" -eq 1 ] || fail "-t 0.5 on a silent server: exit $STATUS"
grep -q 'timed out' "$TMP/slow.err" || fail "timeout: $(cat "$TMP/slow.err")"
ok "silent server, -t 0.5: timed out, exit 1"

hangs=$(grep -c /hang "$TMP/requests.log")
start sig "$HC" 127.0.0.1 "$hport" /hang
for _ in $(seq 200); do  # until the server has the request
    [ "$(grep -c /hang "$TMP/requests.log")" -gt "$hangs" ] && break
    sleep 0.05
done
kill -TERM "$PID"
finish "$PID" 10
[ "$STATUS" -eq 143 ] || fail "SIGTERM: exit $STATUS, want 143"
grep -q 'interrupted' "$TMP/sig.err" || fail "SIGTERM: $(cat "$TMP/sig.err")"
ok "SIGTERM while waiting: exit 143, says so"

no_sanitizer_reports
