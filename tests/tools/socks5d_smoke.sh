#!/usr/bin/env bash
# socks5d's own quick check of what its session does around the edges
# (the other socks5d_*.sh cover the protocol, the clients and the options):
#   - greeting, password, request and the tunnel's first bytes in one
#     write, then a half-close: the replies, the bytes echoed, the EOF;
#   - a client that resets while its CONNECT waits for a destination that
#     never answers (a full backlog): the session ends at once, logged,
#     descriptors back;
#   - BIND: a connection from another IP than DST.ADDR is closed and the
#     wait goes on; SOCKS4's BIND; a peer in --deny-dest gets reply 2;
#   - SIGTERM with a connect pending and a handshake half done: the
#     pending request finishes (its line is logged), the half-done client
#     is cut at --drain-timeout, exit 0.
# shellcheck source=tests/tools/socks5d_common.bash
source "$(dirname "$0")/socks5d_common.bash"

start_echo echo
E=$ECHO_PORT

# A destination that never answers: a listener whose backlog is full, so
# the kernel drops further SYNs (no reset).  Prints its port.
cat >"$TMP/blackhole.py" <<'EOF'
import socket, time
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(0)
port = l.getsockname()[1]
held = []
for _ in range(2):  # fills the accept queue of backlog 0 (Linux keeps one more)
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    held.append(c)
time.sleep(0.5)
print(port, flush=True)
time.sleep(600)
EOF
start_py blackhole "$TMP/blackhole.py"
BH=$PY_PORT

cat >"$TMP/smoke.py" <<'EOF'
import os, select, socket, struct, sys, time
P, E, BH, WHAT = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)

def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            fail("closed after %r, wanted %d bytes" % (b, n))
        b += c
    return b

def until_eof(s):
    b = b""
    while True:
        c = s.recv(65536)
        if not c:
            return b
        b += c

def ipv4(host, port):
    return b"\x01" + socket.inet_aton(host) + struct.pack(">H", port)

def conn(src="127.0.0.1"):
    s = socket.socket()
    s.settimeout(10)
    s.bind((src, 0))
    s.connect(("127.0.0.1", P))
    return s

if WHAT == "oneshot":
    s = conn()
    s.sendall(b"\x05\x01\x02" + b"\x01\x05alice\x06s3cret" + b"\x05\x01\x00" + ipv4("127.0.0.1", E)
              + b"first bytes")
    s.shutdown(socket.SHUT_WR)
    if recvn(s, 2) != b"\x05\x02" or recvn(s, 2) != b"\x01\x00":
        fail("method or auth status")
    r = recvn(s, 10)
    if r[:4] != b"\x05\x00\x00\x01":
        fail("reply %r" % r)
    got = until_eof(s)
    if got != b"first bytes":
        fail("echoed %r" % got)
    print("ok")

elif WHAT == "reset-while-connecting":
    s = conn()
    s.sendall(b"\x05\x01\x02\x01\x05alice\x06s3cret\x05\x01\x00" + ipv4("127.0.0.1", BH))
    recvn(s, 4)
    time.sleep(0.5)  # the connect is pending now
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # a reset
    print("ok")

elif WHAT == "bind":
    # DST.ADDR 127.0.0.2: a peer from 127.0.0.3 is closed, one from 127.0.0.2 taken.
    s = conn()
    s.sendall(b"\x05\x01\x00\x05\x02\x00" + ipv4("127.0.0.2", 0))
    recvn(s, 2)
    r = recvn(s, 10)
    if r[1] != 0:
        fail("first BIND reply %r" % r)
    host, port = socket.inet_ntoa(r[4:8]), struct.unpack(">H", r[8:10])[0]
    wrong = socket.socket()
    wrong.bind(("127.0.0.3", 0))
    wrong.settimeout(10)
    wrong.connect((host, port))
    if wrong.recv(10) != b"":
        fail("the peer from 127.0.0.3 got bytes")
    peer = socket.socket()
    peer.bind(("127.0.0.2", 0))
    peer.settimeout(10)
    peer.connect((host, port))
    r2 = recvn(s, 10)
    if r2[1] != 0 or socket.inet_ntoa(r2[4:8]) != "127.0.0.2" or \
            struct.unpack(">H", r2[8:10])[0] != peer.getsockname()[1]:
        fail("second BIND reply %r" % r2)
    peer.sendall(b"from peer")
    if recvn(s, 9) != b"from peer":
        fail("peer -> client")
    s.sendall(b"to peer")
    if recvn(peer, 7) != b"to peer":
        fail("client -> peer")
    print("ok")

elif WHAT == "bind4":
    s = conn()
    s.sendall(b"\x04\x02\x00\x00" + socket.inet_aton("127.0.0.1") + b"u\x00")
    r = recvn(s, 8)
    if r[1] != 90:
        fail("first SOCKS4 BIND reply %r" % r)
    port, host = struct.unpack(">H", r[2:4])[0], socket.inet_ntoa(r[4:8])
    peer = socket.create_connection((host, port), timeout=10)
    r2 = recvn(s, 8)
    if r2[1] != 90 or struct.unpack(">H", r2[2:4])[0] != peer.getsockname()[1]:
        fail("second SOCKS4 BIND reply %r" % r2)
    peer.sendall(b"hi")
    if recvn(s, 2) != b"hi":
        fail("peer -> client")
    print("ok")

elif WHAT == "bind-denied":
    s = conn()
    s.sendall(b"\x05\x01\x00\x05\x02\x00" + ipv4("0.0.0.0", 0))
    recvn(s, 2)
    r = recvn(s, 10)
    host, port = socket.inet_ntoa(r[4:8]), struct.unpack(">H", r[8:10])[0]
    peer = socket.socket()
    peer.bind(("127.0.0.9", 0))  # in --deny-dest
    peer.connect((host, port))
    r2 = recvn(s, 10)
    if r2[1] != 2:
        fail("BIND from a denied peer: reply %r" % r2)
    if until_eof(s) != b"":
        fail("bytes after the failure reply")
    print("ok")

elif WHAT == "drain":
    # One request whose connect is pending, one client stuck in its greeting.
    a = conn()
    a.sendall(b"\x05\x01\x02\x01\x05alice\x06s3cret\x05\x01\x00" + ipv4("127.0.0.1", BH))
    recvn(a, 4)
    b = conn()
    b.sendall(b"\x05\x02")  # half a greeting
    print("ready", flush=True)
    a.settimeout(20)
    r = a.recv(10)  # the connect times out: reply 6
    if r[:2] != b"\x05\x06":
        fail("pending connect during the drain: %r" % r)
    b.settimeout(20)
    if b.recv(10) != b"":
        fail("half a greeting: bytes")
    print("ok")
EOF

smoke() {
    timeout 60 python3 "$TMP/smoke.py" "$S5_PORT" "$E" "$BH" "$@" >"$TMP/smoke.out" 2>&1 ||
        fail "$*: $(cat "$TMP/smoke.out")"
    grep -q '^ok$' "$TMP/smoke.out" || fail "$*: $(cat "$TMP/smoke.out")"
}

start_s5 s5 -p 0 -u alice -P s3cret -1 --deny-dest 127.0.0.9/32 --connect-timeout 3
fds=$(fd_kinds "$S5_PID")
smoke oneshot
wait_request s5 "user=alice cmd=connect dest=127\.0\.0\.1:$E reply=succeeded\(0\) up=11 down=11 " >/dev/null
ok "greeting, password, request and data in one write, then EOF: replies, echo, EOF"

smoke reset-while-connecting
wait_request s5 "cmd=connect dest=127\.0\.0\.1:$BH reply=general-failure\(1\) up=0 down=0 secs=0\.[0-9]+" >/dev/null
wait_fds "$S5_PID" "$fds"
ok "a reset while the CONNECT is pending ends the session at once; descriptors back to ($fds)"

smoke bind
wait_request s5 "cmd=bind dest=127\.0\.0\.2:0 reply=succeeded\(0\) up=7 down=9 " >/dev/null
smoke bind4
wait_request s5 "cmd=socks4-bind dest=127\.0\.0\.1:0 reply=granted\(90\) up=0 down=2 " >/dev/null
smoke bind-denied
wait_request s5 "cmd=bind dest=0\.0\.0\.0:0 reply=not-allowed\(2\) " >/dev/null
wait_fds "$S5_PID" "$fds"
ok "BIND: another IP's connection closed and the wait goes on; SOCKS4 BIND; a denied peer: reply 2"

stop "$S5_PID"
start_s5 drain -p 0 -u alice -P s3cret -1 --connect-timeout 2 --drain-timeout 4
start drainc python3 "$TMP/smoke.py" "$S5_PORT" "$E" "$BH" drain
client=$PID
wait_out drainc '^ready$' 20 >/dev/null
sleep 0.3
t0=$SECONDS
kill -TERM "$S5_PID"
finish "$client" 30
[ "$STATUS" -eq 0 ] || fail "drain client: $(cat "$TMP/drainc.out")"
finish "$S5_PID" 20
[ "$STATUS" -eq 0 ] || fail "socks5d exited $STATUS after SIGTERM"
[ $((SECONDS - t0)) -le 8 ] || fail "the drain took $((SECONDS - t0)) s"
wait_request drain "cmd=connect dest=127\.0\.0\.1:$BH reply=ttl-expired\(6\) " >/dev/null
grep -q 'stats: connections=2 ' "$TMP/drain.err" || fail "drain: no stats line at exit"
ok "SIGTERM: a pending connect finishes (reply 6, logged), a half greeting is cut at the drain timeout, exit 0"

no_sanitizer_reports
