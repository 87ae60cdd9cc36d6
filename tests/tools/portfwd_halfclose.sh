#!/usr/bin/env bash
# portfwd, half-close: the client sends its data and shuts down its write
# side; a server that answers only after it sees EOF gets all of it and its
# whole answer reaches the client (python and socat clients); the log says
# done-remote-closed.  The other way round: a server that sends everything,
# half-closes, and only then reads the client's data; the client's bytes
# sent after the server's EOF still arrive; the log says done-local-closed.
# shellcheck source=tests/tools/portfwd_common.bash
source "$(dirname "$0")/portfwd_common.bash"
need_cmd socat

# Reads until EOF, then answers: the sha256 of what it got, its length,
# and ANSWER bytes derived from it (so the client can check them), then
# closes.  With "first": sends the answer to a hello first, half-closes,
# then reads until EOF and reports what it got on stdout.
cat >"$TMP/eof_server.py" <<'EOF'
import hashlib, socket, sys, threading
mode, answer = sys.argv[1], int(sys.argv[2])
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(16)
print(ls.getsockname()[1], flush=True)

def blob(seed, n):
    out, h = bytearray(), seed
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out += h * 64
    return bytes(out[:n])

def serve(c):
    if mode == "after-eof":
        got = bytearray()
        while True:
            b = c.recv(1 << 16)
            if not b:
                break
            got += b
        d = hashlib.sha256(got).digest()
        c.sendall(b"%s %d\n" % (d.hex().encode(), len(got)) + blob(d, answer))
        c.close()
    else:  # first: talk, half-close, then listen
        c.sendall(blob(b"first", answer))
        c.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            b = c.recv(1 << 16)
            if not b:
                break
            got += b
        print("got", len(got), hashlib.sha256(got).hexdigest(), flush=True)
        c.close()

while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,)).start()
EOF

ANSWER=$((3 << 20))
start_py srv "$TMP/eof_server.py" after-eof "$ANSWER"
start_pf fwd -v -p 0 -r 127.0.0.1 -P "$PY_PORT"
port=$PF_PORT

timeout 30 python3 - "$port" "$ANSWER" <<'EOF' || fail "half-close (python client)"
import hashlib, os, socket, sys
port, answer = int(sys.argv[1]), int(sys.argv[2])
def blob(seed, n):
    out, h = bytearray(), seed
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out += h * 64
    return bytes(out[:n])
data = os.urandom(5 << 20)
s = socket.create_connection(("127.0.0.1", port), timeout=20)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = bytearray()
while True:
    b = s.recv(1 << 16)
    if not b:
        break
    got += b
head, _, rest = bytes(got).partition(b"\n")
d = hashlib.sha256(data).digest()
assert head == b"%s %d" % (d.hex().encode(), len(data)), "the server got other bytes: %r" % head
assert rest == blob(d, answer), "answer: %d bytes of %d, %s" % (
    len(rest), answer, "same" if rest == blob(d, answer)[:len(rest)] else "different")
EOF
ok "python client: 5 MiB, SHUT_WR; the server's 3 MiB answer after EOF arrives whole"
line=$(wait_line fwd ' via .*done-' 10)
[[ $line =~ \ 5242880\ bytes\ in,\ $((ANSWER + 73))\ out,\ .*\ done-remote-closed$ ]] ||
    fail "connection line: '$line'"
ok "log: ${line#portfwd: info: }"

# socat as the client: its stdin ends, it shuts down its write side and
# waits (-t) for the answer.
printf 'hello, world\n' >"$TMP/hello"
timeout 30 socat -t 20 - "TCP:127.0.0.1:$port" <"$TMP/hello" >"$TMP/socat.got" ||
    fail "socat client"
want=$(sha256sum <"$TMP/hello" | cut -d' ' -f1)
[ "$(head -n1 "$TMP/socat.got")" = "$want 13" ] || fail "socat: server line: $(head -c 100 "$TMP/socat.got")"
got=$(wc -c <"$TMP/socat.got")
[ "$got" -eq $((ANSWER + 68)) ] || fail "socat: got $got bytes, want $((ANSWER + 68))"
ok "socat client: EOF after 13 bytes, the whole answer arrives ($got bytes)"
[ "$(conn_lines fwd 'done-remote-closed$')" -eq 2 ] || fail "not 2 done-remote-closed lines"

# The remote finishes first: it sends, half-closes, then reads.  The client
# starts sending only after it has seen the server's EOF.
start_py srv2 "$TMP/eof_server.py" first "$ANSWER"
start_pf fwd2 -v -p 0 -r 127.0.0.1 -P "$PY_PORT"
timeout 30 python3 - "$PF_PORT" "$ANSWER" >"$TMP/first.out" <<'EOF' || fail "remote half-closes first"
import hashlib, os, socket, sys
port, answer = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=20)
got = bytearray()
while True:
    b = s.recv(1 << 16)
    if not b:
        break
    got += b
assert len(got) == answer, "got %d of %d bytes before EOF" % (len(got), answer)
data = os.urandom(2 << 20)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
assert s.recv(1) == b""
s.close()
print("got", len(data), hashlib.sha256(data).hexdigest())
EOF
want=$(cat "$TMP/first.out")
wait_out srv2 '^got ' 10 >/dev/null
[ "$(grep '^got ' "$TMP/srv2.out")" = "$want" ] || fail "the server got '$(grep '^got ' "$TMP/srv2.out")', want '$want'"
ok "remote half-closes first: the client's 2 MiB sent after that still arrive"
line=$(wait_line fwd2 ' via .*done-' 10)
[[ $line =~ \ 2097152\ bytes\ in,\ $ANSWER\ out,\ .*\ done-local-closed$ ]] ||
    fail "connection line: '$line'"
ok "log: ${line#portfwd: info: }"
stop "$PF_PID"
no_sanitizer_reports
