#!/usr/bin/env python3
"""A small SOCKS5 client for socks5d's UDP ASSOCIATE and BIND (RFC 1928),
driven by tests/tools/socks5d_bind_udp.sh.

Usage: socks5d_udp_client.py PROXY_HOST PROXY_PORT CHECK [--pid PID]

Checks (each prints "ok - ..." lines and exits 0, or exits 1 saying what
went wrong; every wait is bounded):
  udp4       round trips to a UDP echo server at 127.0.0.1, sizes 1 B to
             60 KB, from a client that named its port and from one that did
             not; a datagram from anywhere reaches the client too
  udp-name   the same to "localhost" (an address type 3 header)
  udp6       the same to ::1 (address type 4), and to "localhost"
  udp-drop   FRAG != 0, another socket of the client's IP, a malformed
             header: none reaches the echo server, the association goes on
  udp-deny   (socks5d runs with --deny-dest 127.0.0.2/32) a datagram to
             127.0.0.2, by address and by name, is not relayed; one from
             127.0.0.2 does not reach the client
  udp-close  closing the TCP connection ends the association: the UDP port
             stops relaying, and (--pid) socks5d's descriptors are back to
             what they were before
  udp-cancel associations closed while their names are looked up; the
             next association still relays
  udp-source=ADDR  (socks5d runs with -b ADDR, an IPv4 address) datagrams
             leave from ADDR; one to ::1 is dropped
  bind       BIND: two replies, the second naming the peer that connected,
             then bytes both ways
  bind-timeout  (socks5d runs with --connect-timeout 1) BIND with nobody
             connecting gets a failure reply
"""
import ipaddress
import os
import select
import socket
import struct
import sys
import threading
import time

TIMEOUT = 10.0  # any single wait for something that must come
QUIET = 0.3  # how long "nothing more came" is watched after the proof


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def ok(msg):
    print("ok - " + msg, flush=True)


def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            fail("the proxy closed after %d of %d bytes" % (len(b), n))
        b += c
    return b


def encode_addr(host, port):
    """ATYP, address and port of a request or a UDP header."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode()
        return b"\x03" + bytes([len(name)]) + name + struct.pack("!H", port)
    atyp = b"\x01" if ip.version == 4 else b"\x04"
    return atyp + ip.packed + struct.pack("!H", port)


def decode_addr(b):
    """(host, port, length) of the ATYP-address-port at the start of b."""
    atyp = b[0]
    if atyp == 1:
        return str(ipaddress.IPv4Address(b[1:5])), struct.unpack("!H", b[5:7])[0], 7
    if atyp == 4:
        return str(ipaddress.IPv6Address(b[1:17])), struct.unpack("!H", b[17:19])[0], 19
    if atyp == 3:
        n = b[1]
        return b[2:2 + n].decode(), struct.unpack("!H", b[2 + n:4 + n])[0], 4 + n
    fail("address type %d in %r" % (atyp, b[:8]))


def read_reply(s):
    head = recvn(s, 4)
    if head[0] != 5 or head[2] != 0:
        fail("a reply that is not SOCKS5: %r" % head)
    atyp = head[3]
    if atyp == 1:
        rest = recvn(s, 6)
    elif atyp == 4:
        rest = recvn(s, 18)
    elif atyp == 3:
        n = recvn(s, 1)
        rest = n + recvn(s, n[0] + 2)
    else:
        fail("reply with address type %d" % atyp)
    host, port, _ = decode_addr(bytes([atyp]) + rest)
    return head[1], host, port


def connect_proxy(proxy):
    s = socket.create_connection(proxy, timeout=TIMEOUT)
    s.sendall(b"\x05\x01\x00")
    if recvn(s, 2) != b"\x05\x00":
        fail("the proxy did not take 'no authentication'")
    return s


def request(proxy, cmd, host, port):
    """Greeting and request; returns the socket and the first reply."""
    s = connect_proxy(proxy)
    s.sendall(b"\x05" + bytes([cmd]) + b"\x00" + encode_addr(host, port))
    return (s,) + read_reply(s)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


# ------------------------------------------------------------ echo servers


class Echo:
    """A UDP echo server on one port of 127.0.0.1 and (when there is IPv6)
    of ::1, in a thread.  It remembers every payload it got, and the
    address each came from."""

    def __init__(self, v4="127.0.0.1", v6=True):
        self.seen = []
        self.lock = threading.Lock()
        for _ in range(50):
            self.socks = []
            s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s4.bind((v4, 0))
            self.port = s4.getsockname()[1]
            self.socks.append(s4)
            if not v6 or not has_ipv6():
                break
            s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                s6.bind(("::1", self.port))
            except OSError:  # that port of ::1 is taken: try another one
                s4.close()
                s6.close()
                continue
            self.socks.append(s6)
            break
        else:
            fail("no port free on both 127.0.0.1 and ::1")
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            r, _, _ = select.select(self.socks, [], [], 0.1)
            for s in r:
                data, addr = s.recvfrom(70000)
                with self.lock:
                    self.seen.append((data, addr))
                s.sendto(data, addr)

    def got(self, data):
        with self.lock:
            return [a for d, a in self.seen if d == data]

    def close(self):
        self.stop = True
        self.thread.join()
        for s in self.socks:
            s.close()


_ipv6 = None


def has_ipv6():
    global _ipv6
    if _ipv6 is None:
        try:
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s.bind(("::1", 0))
            s.close()
            _ipv6 = True
        except OSError:
            _ipv6 = False
    return _ipv6


# ------------------------------------------------------------ associations


class Assoc:
    """A UDP ASSOCIATE: the TCP connection, the relay's address, and the
    client's UDP socket (bound first, so that the request can name its
    port, when name_port)."""

    def __init__(self, proxy, name_port=False):
        fam = family_of(proxy[0])
        self.udp = socket.socket(fam, socket.SOCK_DGRAM)
        self.udp.bind((proxy[0], 0))
        self.udp.settimeout(TIMEOUT)
        mine = self.udp.getsockname()
        # §7: the address and port the client will send from (0s: unknown).
        host = mine[0] if name_port else ("0.0.0.0" if fam == socket.AF_INET else "::")
        self.tcp, rep, bhost, bport = request(proxy, 3, host, mine[1] if name_port else 0)
        if rep != 0:
            fail("UDP ASSOCIATE got reply %d" % rep)
        if bport == 0:
            fail("UDP ASSOCIATE's reply names port 0")
        # A relay bound to 0.0.0.0 / :: would be reached at the proxy's address.
        if ipaddress.ip_address(bhost).is_unspecified:
            bhost = proxy[0]
        self.relay = (bhost, bport)

    def send(self, host, port, payload, frag=0, sock=None):
        (sock or self.udp).sendto(b"\x00\x00" + bytes([frag]) + encode_addr(host, port) + payload,
                                  self.relay)

    def recv(self, timeout=TIMEOUT):
        """(source host, port, payload) of the next datagram from the relay."""
        self.udp.settimeout(timeout)
        data, addr = self.udp.recvfrom(70000)
        if not same_ip(addr[0], self.relay[0]) or addr[1] != self.relay[1]:
            fail("a datagram from %r, not from the relay %r" % (addr, self.relay))
        if data[:3] != b"\x00\x00\x00":
            fail("a datagram from the relay with RSV/FRAG %r" % data[:3])
        host, port, n = decode_addr(data[3:])
        return host, port, data[3 + n:]

    def nothing(self, timeout=QUIET):
        """Whether no datagram comes within timeout."""
        self.udp.settimeout(timeout)
        try:
            self.udp.recvfrom(70000)
            return False
        except socket.timeout:
            return True

    def close(self):
        self.tcp.close()
        self.udp.close()


def same_ip(a, b):
    return ipaddress.ip_address(a) == ipaddress.ip_address(b)


def round_trip(a, echo, dest, want_src, payload):
    a.send(dest, echo.port, payload)
    host, port, data = a.recv()
    if data != payload:
        fail("to %s: sent %d bytes, got back %d%s" % (
            dest, len(payload), len(data), "" if len(data) != len(payload) else " (different)"))
    if not same_ip(host, want_src) or port != echo.port:
        fail("the header of the echo from %s names %s port %d, not %s port %d" % (
            dest, host, port, want_src, echo.port))


SIZES = (1, 512, 1400, 9000, 60000)


def check_round_trips(proxy, dest, want_src, what):
    echo = Echo()
    for name_port in (True, False):
        a = Assoc(proxy, name_port)
        for i, n in enumerate(SIZES):
            round_trip(a, echo, dest, want_src, os.urandom(n))
        a.close()
        ok("%s: %d round trips through the relay (%s port named in the request), "
           "bytes compared" % (what, len(SIZES), "client's" if name_port else "no"))
    echo.close()


def check_anywhere(proxy):
    """A datagram from anywhere to the relay's outgoing socket reaches the
    client, its header naming where it came from (§7)."""
    echo = Echo(v6=False)
    a = Assoc(proxy)
    round_trip(a, echo, "127.0.0.1", "127.0.0.1", b"hello")
    out = echo.got(b"hello")[0]  # the relay's outgoing socket, as the echo saw it
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    other.sendto(b"from elsewhere", out)
    host, port, data = a.recv()
    if data != b"from elsewhere" or (host, port) != other.getsockname():
        fail("unsolicited datagram: got %r from %s:%d" % (data, host, port))
    ok("a datagram from another host:port to the relay reaches the client, header naming it")
    other.close()
    a.close()
    echo.close()


def check_udp4(proxy):
    check_round_trips(proxy, "127.0.0.1", "127.0.0.1", "IPv4")
    check_anywhere(proxy)


def check_udp_name(proxy):
    # localhost is 127.0.0.1, ::1 or both (/etc/hosts): the echo server
    # listens on both, and the header names whichever the relay chose.
    echo = Echo()
    a = Assoc(proxy)
    payload = os.urandom(1000)
    a.send("localhost", echo.port, payload)
    host, port, data = a.recv()
    if data != payload or port != echo.port or not ipaddress.ip_address(host).is_loopback:
        fail("localhost: got %d bytes from %s port %d" % (len(data), host, port))
    for n in SIZES:  # the name is known now: no lookup (the cache)
        round_trip(a, echo, "localhost", host, os.urandom(n))
    # Several at once to a name not looked up before (a numeric one, as
    # address type 3): those that come while its lookup runs wait for it,
    # the others find it known; all come back, in order.
    burst = [os.urandom(100) + bytes([i]) for i in range(8)]
    name = b"\x03\x09127.0.0.1" + struct.pack("!H", echo.port)
    for p in burst:
        a.udp.sendto(b"\x00\x00\x00" + name + p, a.relay)
    got = [a.recv()[2] for _ in burst]
    if got != burst:
        fail("8 datagrams to the name 127.0.0.1: %d came back in order" %
             sum(1 for x, y in zip(got, burst) if x == y))
    a.close()
    echo.close()
    ok("domain name: localhost (%s) round trips, bytes compared; 8 at once to a new name, "
       "in order" % host)


def check_udp6(proxy):
    if not has_ipv6():
        print("SKIP: no IPv6 on loopback")
        sys.exit(77)
    check_round_trips(proxy, "::1", "::1", "IPv6")


def check_udp_drop(proxy):
    echo = Echo(v6=False)
    a = Assoc(proxy)  # the first datagram fixes the client's port
    round_trip(a, echo, "127.0.0.1", "127.0.0.1", b"first")
    # FRAG != 0: "an implementation that does not support fragmentation
    # MUST drop any datagram whose FRAG field is other than X'00'" (§7).
    a.send("127.0.0.1", echo.port, b"fragment 1", frag=1)
    a.send("127.0.0.1", echo.port, b"fragment 0x81", frag=0x81)
    # Another socket of the client's IP: not the associated client.
    other = socket.socket(a.udp.family, socket.SOCK_DGRAM)
    other.bind((a.udp.getsockname()[0], 0))
    a.send("127.0.0.1", echo.port, b"from another port", sock=other)
    # Malformed headers: RSV not 0, an unknown address type, cut short.
    a.udp.sendto(b"\x01\x00\x00" + encode_addr("127.0.0.1", echo.port) + b"rsv", a.relay)
    a.udp.sendto(b"\x00\x00\x00\x07\x7f\x00\x00\x01" + b"atyp", a.relay)
    a.udp.sendto(b"\x00\x00\x00\x01\x7f\x00", a.relay)
    a.udp.sendto(b"\x00\x00\x00\x03\x00" + struct.pack("!H", echo.port) + b"empty name", a.relay)
    # Sent after them through the same relay socket: once its echo is
    # back, they were all handled.
    time.sleep(0.05)
    round_trip(a, echo, "127.0.0.1", "127.0.0.1", b"last")
    time.sleep(QUIET)
    for bad in (b"fragment 1", b"fragment 0x81", b"from another port", b"rsv", b"atyp",
                b"empty name"):
        if echo.got(bad) or any(d.endswith(bad) for d, _ in echo.seen):
            fail("%r reached the echo server" % bad)
    if not a.nothing() or not other_nothing(other):
        fail("something came back for a dropped datagram")
    ok("FRAG 1 and 0x81, another port of the client's IP, 4 malformed headers: "
       "none relayed, the association goes on")
    other.close()
    a.close()
    echo.close()


def other_nothing(s):
    s.settimeout(QUIET)
    try:
        s.recvfrom(70000)
        return False
    except socket.timeout:
        return True


def check_udp_deny(proxy):
    echo = Echo(v6=False)
    denied = Echo(v4="127.0.0.2", v6=False)
    a = Assoc(proxy)
    round_trip(a, echo, "127.0.0.1", "127.0.0.1", b"allowed")
    a.send("127.0.0.2", denied.port, b"to a denied address")
    a.send("127.0.0.2", echo.port, b"to a denied address, other port")
    # A name (here a numeric one, address type 3): checked once resolved.
    a.udp.sendto(b"\x00\x00\x00\x03\x09127.0.0.2" + struct.pack("!H", denied.port) +
                 b"to a denied name", a.relay)
    time.sleep(0.05)
    round_trip(a, echo, "127.0.0.1", "127.0.0.1", b"allowed again")
    time.sleep(QUIET)
    if denied.seen:
        fail("the server at 127.0.0.2 got %r" % [d for d, _ in denied.seen])
    ok("--deny-dest 127.0.0.2/32: datagrams to it, by address and by name, not relayed")
    # From a denied source to the relay's outgoing socket: not to the client.
    out = echo.got(b"allowed")[0]
    bad = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bad.bind(("127.0.0.2", 0))
    bad.sendto(b"from a denied source", out)
    time.sleep(0.05)
    a.send("127.0.0.1", echo.port, b"after the denied source")
    host, port, data = a.recv()
    if data != b"after the denied source":
        fail("the client got %r first" % data)
    if not a.nothing():
        fail("something more came to the client")
    ok("a datagram from a denied source does not reach the client")
    bad.close()
    a.close()
    denied.close()
    echo.close()


def check_udp_close(proxy, pid):
    echo = Echo(v6=False)
    before = fd_count(pid) if pid else None
    a = Assoc(proxy)
    round_trip(a, echo, "127.0.0.1", "127.0.0.1", b"before the close")
    during = fd_count(pid) if pid else None
    if pid and during < before + 3:
        fail("socks5d has %d descriptors during an association, %d before: not 3 more "
             "(TCP, the client's UDP socket, the outgoing one)" % (during, before))
    relay, udp = a.relay, a.udp
    a.tcp.close()
    if pid:
        deadline = time.monotonic() + TIMEOUT
        while fd_count(pid) > before and time.monotonic() < deadline:
            time.sleep(0.02)
        if fd_count(pid) > before:
            fail("socks5d still has %d descriptors %.0f s after the close, %d before" % (
                fd_count(pid), TIMEOUT, before))
    else:
        time.sleep(1)
    # Nothing relays at that port any more.
    udp.sendto(b"\x00\x00\x00" + encode_addr("127.0.0.1", echo.port) + b"after the close", relay)
    if not a.nothing(0.5) or echo.got(b"after the close"):
        fail("the relay still relays after its TCP connection closed")
    udp.close()
    echo.close()
    ok("closing the TCP connection ends the association: nothing relayed afterwards%s" % (
        ", descriptors %d -> %d -> %d" % (before, during, fd_count(pid)) if pid else ""))


def check_udp_cancel(proxy):
    """Associations closed while their names are being looked up: the
    lookups are cancelled (socks5d runs under ASan in CI: a callback into a
    freed association would be reported), and socks5d goes on."""
    echo = Echo(v6=False)
    for i in range(20):
        a = Assoc(proxy)
        a.send("cancelled-%d.invalid" % i, echo.port, b"never")
        a.send("localhost", echo.port, b"maybe")
        if i % 2:
            time.sleep(0.01)
        a.close()
    a = Assoc(proxy)
    round_trip(a, echo, "127.0.0.1", "127.0.0.1", b"still there")
    a.close()
    echo.close()
    ok("20 associations closed with lookups pending; the next one relays")


def check_udp_source(proxy, source):
    """socks5d -b SOURCE: datagrams leave from SOURCE; a destination of the
    other family is dropped (a socket bound there cannot reach it)."""
    echo = Echo()
    a = Assoc(proxy)
    round_trip(a, echo, "127.0.0.1", "127.0.0.1", b"from -b")
    seen = echo.got(b"from -b")
    if not seen or not same_ip(seen[0][0], source):
        fail("the echo server saw the datagram come from %r, not from %s" % (seen, source))
    if has_ipv6():
        a.send("::1", echo.port, b"to IPv6")
        time.sleep(0.05)
        round_trip(a, echo, "127.0.0.1", "127.0.0.1", b"again")
        time.sleep(QUIET)
        if echo.got(b"to IPv6"):
            fail("a datagram to ::1 left although -b is an IPv4 address")
    a.close()
    echo.close()
    ok("-b %s: datagrams leave from it%s" % (
        source, "; to ::1 dropped (no IPv6 source)" if has_ipv6() else ""))


def check_bind(proxy):
    # DST.ADDR of a BIND: the address of the peer the client expects.
    s, rep, host, port = request(proxy, 2, "127.0.0.1" if family_of(proxy[0]) ==
                                 socket.AF_INET else "::1", 0)
    if rep != 0:
        fail("BIND's first reply is %d" % rep)
    if port == 0:
        fail("BIND's first reply names port 0")
    if ipaddress.ip_address(host).is_unspecified:
        host = proxy[0]
    peer = socket.create_connection((host, port), timeout=TIMEOUT)
    rep2, phost, pport = read_reply(s)
    if rep2 != 0:
        fail("BIND's second reply is %d" % rep2)
    mine = peer.getsockname()
    if not same_ip(phost, mine[0]) or pport != mine[1]:
        fail("BIND's second reply names %s port %d, the peer is %s port %d" % (
            phost, pport, mine[0], mine[1]))
    ok("BIND: first reply %s port %d, second reply names the peer %s port %d" % (
        host, port, phost, pport))
    up, down = os.urandom(200000), os.urandom(300000)
    t = threading.Thread(target=lambda: (s.sendall(up), s.shutdown(socket.SHUT_WR)))
    t2 = threading.Thread(target=lambda: (peer.sendall(down), peer.shutdown(socket.SHUT_WR)))
    t.start()
    t2.start()
    got_peer, got_client = readall(peer), readall(s)
    t.join()
    t2.join()
    if got_peer != up or got_client != down:
        fail("BIND: client -> peer %d of %d bytes, peer -> client %d of %d" % (
            len(got_peer), len(up), len(got_client), len(down)))
    ok("BIND: %d bytes client -> peer and %d peer -> client, compared" % (len(up), len(down)))
    s.close()
    peer.close()


def readall(s):
    b = bytearray()
    while True:
        c = s.recv(1 << 16)
        if not c:
            return bytes(b)
        b += c


def check_bind_timeout(proxy):
    start = time.monotonic()
    s, rep, host, port = request(proxy, 2, "127.0.0.1", 0)
    if rep != 0:
        fail("BIND's first reply is %d" % rep)
    s.settimeout(TIMEOUT)
    rep2, _, _ = read_reply(s)
    took = time.monotonic() - start
    if rep2 == 0:
        fail("BIND with nobody connecting got 'succeeded'")
    # The connection ends after a failure reply (§6).
    if s.recv(1) != b"":
        fail("more bytes after BIND's failure reply")
    s.close()
    ok("BIND with nobody connecting: reply %d after %.1f s, then the close" % (rep2, took))


def main():
    if len(sys.argv) < 4:
        fail(__doc__)
    proxy = (sys.argv[1], int(sys.argv[2]))
    check = sys.argv[3]
    pid = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--pid" else None
    if check.startswith("udp-source="):
        return check_udp_source(proxy, check.split("=", 1)[1])
    checks = {
        "udp4": lambda: check_udp4(proxy),
        "udp-name": lambda: check_udp_name(proxy),
        "udp6": lambda: check_udp6(proxy),
        "udp-drop": lambda: check_udp_drop(proxy),
        "udp-deny": lambda: check_udp_deny(proxy),
        "udp-close": lambda: check_udp_close(proxy, pid),
        "udp-cancel": lambda: check_udp_cancel(proxy),
        "bind": lambda: check_bind(proxy),
        "bind-timeout": lambda: check_bind_timeout(proxy),
    }
    if check not in checks:
        fail("no check %r: %s" % (check, ", ".join(checks)))
    try:
        checks[check]()
    except (OSError, socket.timeout) as e:
        fail("%s: %s: %s" % (check, type(e).__name__, e))


if __name__ == "__main__":
    main()
