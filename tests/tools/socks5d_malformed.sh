#!/usr/bin/env bash
# socks5d against malformed and awkward clients.  Every case must get the
# answer RFC 1928/1929 and socks5d's parser (tools/socks5d/proto.h) give
# it, byte for byte, then a clean close (EOF, or a reset only after the
# whole answer); after every case a good client is served, and at the end
# socks5d is alive with the descriptors it started with.
#   - a whole handshake (SOCKS5 with and without RFC 1929, SOCKS4a) cut at
#     every byte: sent in two writes 30 ms apart it succeeds; cut and the
#     client half-closes: the answers due so far, then a close; cut and
#     the client just stops: closed after --handshake-timeout (1 s), all
#     cuts at once;
#   - wrong versions (first byte, request, RFC 1929), zero methods, no
#     acceptable method, RSV != 0, empty, oversized and control-byte names,
#     unknown commands and address types, SOCKS4 strings without their
#     NUL, garbage after a refused request;
#   - bytes sent after the request, before the reply: they reach the
#     destination, also when the client half-closes before the reply.
# shellcheck source=tests/tools/socks5d_common.bash
source "$(dirname "$0")/socks5d_common.bash"

start_echo echo
start_s5 s5 -p 0 --handshake-timeout 1 --connect-timeout 5
open_port=$S5_PORT open_pid=$S5_PID
start_s5 auth -p 0 --handshake-timeout 1 -u user -P password
auth_port=$S5_PORT auth_pid=$S5_PID
sleep 0.2
fds_open=$(fd_kinds "$open_pid") fds_auth=$(fd_kinds "$auth_pid")

timeout 240 python3 - "$open_port" "$auth_port" "$ECHO_PORT" "$(free_port)" <<'EOF' || fail "malformed input"
import os, socket, sys, threading, time
sys.path.insert(0, os.environ["S5_TOOLS"])
import socks5_client as sc

OPEN, AUTH, ECHO, REFUSED = (int(a) for a in sys.argv[1:5])
failures = []
cases = 0

def answer_then_close(s, timeout=10.0):
    """Everything the proxy sends until it closes; None if it does not
    close within timeout."""
    s.settimeout(timeout)
    got = bytearray()
    while True:
        try:
            b = s.recv(65536)
        except socket.timeout:
            return None
        except ConnectionResetError:
            got += b"<RST>"
            return bytes(got)
        if not b:
            return bytes(got)
        got += b

def alive(port, user=None):
    """A good client: CONNECT to the echo server, 1000 bytes echoed."""
    s = sc.open_tunnel(("127.0.0.1", port), "127.0.0.1", ECHO, user, user and "password")
    data = os.urandom(1000)
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        b = s.recv(65536)
        assert b, "EOF from the echo"
        got += b
    s.close()
    assert got == data, "echo differs"

def check(name, port, data, want, pieces=1, pause=0.03, shut=False, user=None):
    """Send data (in `pieces` writes), expect exactly `want` (or one of a
    tuple of answers) back, then a close (a reset counts once all of the
    answer came)."""
    global cases
    cases += 1
    s = sc.connect(("127.0.0.1", port))
    try:
        step = max(1, -(-len(data) // pieces))
        for i in range(0, len(data), step):
            s.sendall(data[i:i + step])
            if i + step < len(data):
                time.sleep(pause)
        if shut:
            s.shutdown(socket.SHUT_WR)
        got = answer_then_close(s)
    except OSError as e:
        got = ("<%r>" % e).encode()
    s.close()
    wants = want if isinstance(want, tuple) else (want,)
    if got is None:
        failures.append("%s: not closed within 10 s" % name)
    elif got.replace(b"<RST>", b"") not in wants:
        failures.append("%s: got %s, want %s" % (name, got.hex(" "), " or ".join(w.hex(" ") for w in wants)))
    try:
        alive(port, "user" if port == AUTH else None)
    except Exception as e:
        failures.append("%s: the next client was not served: %r" % (name, e))

M0, MFF, A_OK, A_BAD = b"\x05\x00", b"\x05\xff", b"\x01\x00", None
def R(code): return bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0])
R4_91 = bytes([0, 91, 0, 0, 0, 0, 0, 0])
G = sc.greeting((0,))
REQ = lambda host, port=ECHO, cmd=1, atyp=None: sc.request(cmd, host, port, atyp)
ip_port = bytes([127, 0, 0, 1]) + ECHO.to_bytes(2, "big")
def AUTHMSG(u, p, v=1):
    return bytes([v, len(u)]) + u + bytes([len(p)]) + p

# ---- the first byte and the greeting
for first in (b"\x00", b"\x01", b"\x03", b"\x06", b"\xff", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
              b"\x16\x03\x01\x00\xa5\x01"):
    check("first bytes %r" % first[:8], OPEN, first, b"")
check("zero methods", OPEN, b"\x05\x00", MFF)
check("zero methods, then more", OPEN, b"\x05\x00\x00\x00", MFF)
check("only GSSAPI", OPEN, b"\x05\x01\x01", MFF)
check("255 methods, none acceptable", OPEN, b"\x05\xff" + bytes([0x80]) * 255, MFF)
check("255 methods, the last one 0, in pieces", OPEN, b"\x05\xff" + bytes([0x80]) * 254 + b"\x00" +
      REQ("127.0.0.1", REFUSED), M0 + R(5), pieces=7)
# socks5d(1): without users, a client offering only username/password is
# given it, and any name and password are accepted.
check("only method 2 on the open server", OPEN, b"\x05\x01\x02" + AUTHMSG(b"any", b"thing") +
      REQ("127.0.0.1", REFUSED), b"\x05\x02\x01\x00" + R(5))
check("no method 2 on the auth server", AUTH, b"\x05\x01\x00", MFF)

# ---- the request
check("request version 4", OPEN, G + b"\x04\x01\x00\x01" + ip_port, M0)
check("request version 0", OPEN, G + b"\x00\x01\x00\x01" + ip_port, M0)
check("RSV 1", OPEN, G + b"\x05\x01\x01\x01" + ip_port, M0 + R(1))
check("empty name", OPEN, G + b"\x05\x01\x00\x03\x00" + ECHO.to_bytes(2, "big"), M0 + R(1))
for bad in (b"ab\x00cd", b"a\x01b", b"x\x7fy", b"x\ny", b"\x1f"):
    check("name %r" % bad, OPEN, G + b"\x05\x01\x00\x03" + bytes([len(bad)]) + bad +
          ECHO.to_bytes(2, "big"), M0 + R(1))
long_name = b".".join([b"x" * 62] * 4)[:245] + b".invalid"
assert len(long_name) == 253
check("253-byte name that does not resolve", OPEN, G + REQ(long_name), M0 + R(4))
for cmd in (0, 4, 0x81, 255):
    check("command %d" % cmd, OPEN, G + REQ("127.0.0.1", cmd=cmd), M0 + R(7))
    check("command %d, by name" % cmd, OPEN, G + REQ(b"localhost", cmd=cmd), M0 + R(7))
for atyp in (0, 2, 5, 6, 255):
    check("ATYP %d" % atyp, OPEN, G + b"\x05\x01\x00" + bytes([atyp]) + ip_port, M0 + R(8))
check("ATYP 9, cut after it", OPEN, G + b"\x05\x01\x00\x09", M0 + R(8))
check("garbage after a refused request", OPEN, G + REQ("127.0.0.1", REFUSED) + os.urandom(3000),
      M0 + R(5))
check("garbage after an unknown command", OPEN, G + REQ("127.0.0.1", cmd=9) + b"\x05" * 100,
      M0 + R(7))
# (the second and third read as VER 5, CMD 1, RSV 0, ATYP 5)
check("greetings instead of a request", OPEN, G + G + G, M0 + R(8))
check("a greeting instead of a request, then silence", OPEN, G + G, M0)

# ---- RFC 1929
G2 = sc.greeting((2,))
# A wrong version: a close, or a failure status and a close (socks5d does that).
for v in (0, 2, 5):
    check("auth version %d" % v, AUTH, G2 + AUTHMSG(b"user", b"password", v),
          (b"\x05\x02", b"\x05\x02\x01\x01"))
for u, p in ((b"user", b"wrong"), (b"user", b""), (b"", b"password"), (b"nobody", b"password"),
             (b"user", b"password\x00"), (b"user", b"passwor"), (b"u" * 255, b"p" * 255)):
    check("auth %r:%r" % (u[:8], p[:8]), AUTH, G2 + AUTHMSG(u, p) + REQ("127.0.0.1"),
               b"\x05\x02\x01\x01")
check("auth: ULEN 200, only 10 bytes, then EOF", AUTH, G2 + b"\x01\xc8" + b"u" * 10, b"\x05\x02",
      shut=True)

# ---- SOCKS4 / 4a
S4 = lambda **k: sc.socks4_request(1, "127.0.0.1", ECHO, **k)
check("SOCKS4 command 3", OPEN, sc.socks4_request(3, "127.0.0.1", ECHO), R4_91)
check("SOCKS4 command 0", OPEN, sc.socks4_request(0, "127.0.0.1", ECHO), R4_91)
check("SOCKS4 user id of 300 bytes, no NUL", OPEN, S4(userid=b"u" * 300)[:-1], R4_91)
check("SOCKS4 user id of 300 bytes", OPEN, S4(userid=b"u" * 300), R4_91)
check("SOCKS4a empty host", OPEN, S4(host=b""), R4_91)
check("SOCKS4a host of 300 bytes", OPEN, S4(host=b"h" * 300), R4_91)
check("SOCKS4a host with a control byte", OPEN, S4(host=b"a\x01b"), R4_91)
check("SOCKS4 on the auth server", AUTH, S4(), R4_91)
check("SOCKS4 version 4 then EOF", OPEN, b"\x04", b"", shut=True)

# ---- bytes pipelined after the request reach the destination, also when
# the client half-closes at once, before the reply (the reply and the echo
# must still come).
for host in ("localhost", "127.0.0.1"):
    for early in (False, True):
        s = sc.connect(("127.0.0.1", OPEN))
        tail = os.urandom(100000)
        s.sendall(G + REQ(host) + tail)
        if early:
            s.shutdown(socket.SHUT_WR)
        try:
            assert sc.read_method(s) == 0
            rep = sc.read_reply(s)
            assert rep[0] == 0, rep
            if not early:
                s.shutdown(socket.SHUT_WR)
            got = sc.read_all(s)
        except Exception as e:
            got = repr(e).encode()
        if got != tail:
            failures.append("pipelined to %s%s: %d bytes came back, not the %d sent" % (
                host, ", half-closed before the reply" if early else "", len(got), len(tail)))
        s.close()

# ---- whole handshakes cut at every byte
flows = {
    "socks5": (OPEN, G + REQ("127.0.0.1"), [(len(G), M0)]),
    "socks5 by name": (OPEN, G + REQ("localhost"), [(len(G), M0)]),
    "socks5 + RFC 1929": (AUTH, G2 + AUTHMSG(b"user", b"password") + REQ("localhost"),
                          [(len(G2), b"\x05\x02"), (len(G2) + 15, A_OK)]),
    "socks4a": (OPEN, S4(host=b"localhost", userid=b"me"), []),
}
for name, (port, msg, due) in flows.items():
    for k in range(1, len(msg)):
        cases += 1
        # in two writes: it must succeed
        s = sc.connect(("127.0.0.1", port))
        s.sendall(msg[:k])
        time.sleep(0.03)
        s.sendall(msg[k:])
        try:
            want = b"".join(d for _, d in due)
            head = sc.recv_exact(s, len(want))
            if name == "socks4a":
                ok = sc.read_socks4_reply(s)[0] == 90
            else:
                ok = head == want and sc.read_reply(s)[0] == 0
            s.sendall(b"ping")
            ok = ok and sc.recv_exact(s, 4) == b"ping"
        except Exception as e:
            ok = False
        if not ok:
            failures.append("%s cut at %d of %d, in two writes: failed" % (name, k, len(msg)))
        s.close()
        # cut, then EOF: the answers due so far, then a close
        s = sc.connect(("127.0.0.1", port))
        s.sendall(msg[:k])
        s.shutdown(socket.SHUT_WR)
        got = answer_then_close(s)
        want = b"".join(d for n, d in due if n <= k)
        if got is None or got.replace(b"<RST>", b"") != want:
            failures.append("%s cut at %d, then EOF: got %s, want %s" % (
                name, k, got and got.hex(" "), want.hex(" ")))
        s.close()
    alive(port, "user" if port == AUTH else None)

# cut, then silence: every cut at once; each closed after --handshake-timeout
# (1 s; a session that is not closed by 8 s fails).
def stall(name, port, msg, k, due, out):
    s = sc.connect(("127.0.0.1", port), timeout=10)
    t = time.monotonic()
    s.sendall(msg[:k])
    got = answer_then_close(s, 8.0)
    dt = time.monotonic() - t
    want = b"".join(d for n, d in due if n <= k)
    if got is None:
        out.append("%s cut at %d, then silence: still open after 8 s" % (name, k))
    elif got.replace(b"<RST>", b"") != want or dt < 0.7:
        out.append("%s cut at %d, then silence: got %s after %.2f s" % (name, k, got.hex(" "), dt))
    s.close()
threads = []
for name, (port, msg, due) in flows.items():
    for k in [0] + list(range(1, len(msg))):
        t = threading.Thread(target=stall, args=(name, port, msg, k, due, failures))
        t.start()
        threads.append(t)
        cases += 1
for t in threads:
    t.join()
alive(OPEN)
alive(AUTH, "user")

if failures:
    raise SystemExit("%d of %d cases failed:\n" % (len(failures), cases) + "\n".join(failures[:40]))
print("%d cases" % cases)
EOF
ok "malformed input, cut handshakes, silences: each answered exactly, then closed; the next client served"
kill -0 "$open_pid" && kill -0 "$auth_pid" || fail "socks5d died"
wait_fds "$open_pid" "$fds_open" 10
wait_fds "$auth_pid" "$fds_auth" 10
ok "descriptors back to (sockets pipes others) $fds_open and $fds_auth"
stop "$open_pid"
stop "$auth_pid"
no_sanitizer_reports
