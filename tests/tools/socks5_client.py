#!/usr/bin/env python3
"""A small SOCKS client for the tests (RFC 1928, RFC 1929, SOCKS4, SOCKS4a).

Raw handshakes, so that a test can send exactly the bytes it means, in
pieces, with pauses, or wrong; and strict reply parsing, so that a test can
check every field.  Used as a library (tests put this directory on
sys.path) or from the command line:

  socks5_client.py PROXY_HOST:PORT [options] DEST_HOST DEST_PORT
      --user U --password P   offer method 2 and authenticate (RFC 1929)
      --methods 0,2           the methods offered (default 0, or 2 with --user)
      --cmd N                 1 CONNECT (default), 2 BIND, 3 UDP ASSOCIATE, or any byte
      --atyp N                force the address type (1, 3, 4, or any byte)
      --split N               send every message N bytes at a time ...
      --pause S               ... S seconds apart (default 0.05)
      --socks4 / --socks4a    a SOCKS4 (4a: by name) CONNECT instead
      --send DATA             after a successful reply, send DATA (\\r\\n escapes),
                              then half-close (unless --no-shutdown) and read
                              until EOF
      --expect-close          after the reply, wait for the proxy to close
  It prints one line per step: "method M", "auth S", "reply R ADDR PORT"
  (SOCKS4: "reply4 R ADDR PORT"), then "data N" (bytes read after --send
  until EOF) or "closed" / "open"; exit status 0 whatever the proxy said,
  1 if the proxy broke the protocol (a short or malformed answer), 2 for
  bad arguments.
"""
import ipaddress
import socket
import sys
import time

REPLY_NAMES = {0: "succeeded", 1: "general failure", 2: "not allowed by ruleset",
               3: "network unreachable", 4: "host unreachable", 5: "connection refused",
               6: "TTL expired", 7: "command not supported", 8: "address type not supported"}


class ProtocolError(Exception):
    """The proxy answered something that is not a well-formed answer."""


class Closed(ProtocolError):
    """The proxy closed (EOF or reset) before a whole answer came."""


def connect(proxy, timeout=10.0, family=None, source=None):
    """A TCP connection to proxy, a (host, port) pair."""
    if family is None:
        family = socket.AF_INET6 if ":" in proxy[0] else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect(proxy)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def send(s, data, split=0, pause=0.05):
    """Send data whole, or split bytes at a time with a pause in between."""
    if not split:
        s.sendall(data)
        return
    for i in range(0, len(data), split):
        s.sendall(data[i:i + split])
        if i + split < len(data):
            time.sleep(pause)


def recv_exact(s, n):
    """Exactly n bytes, or Closed."""
    got = bytearray()
    while len(got) < n:
        try:
            b = s.recv(n - len(got))
        except ConnectionResetError:
            b = b""
        if not b:
            raise Closed("closed after %d of %d bytes%s" % (
                len(got), n, (": " + got.hex()) if got else ""))
        got += b
    return bytes(got)


def wait_closed(s, timeout=5.0):
    """True if the proxy closes within timeout (EOF or reset) and sends
    nothing first; False if still open then; ProtocolError if it sent."""
    s.settimeout(timeout)
    try:
        b = s.recv(1 << 16)
    except socket.timeout:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    if b:
        raise ProtocolError("unexpected bytes: %s" % b[:64].hex())
    return True


def read_all(s, timeout=30.0):
    """Everything until EOF (a reset ends it too)."""
    s.settimeout(timeout)
    got = bytearray()
    while True:
        try:
            b = s.recv(1 << 16)
        except ConnectionResetError:
            break
        if not b:
            break
        got += b
    return bytes(got)


# ------------------------------------------------------------ SOCKS5

def greeting(methods=(0,), version=5, nmethods=None):
    """VER NMETHODS METHODS (RFC 1928 section 3)."""
    methods = bytes(methods)
    return bytes([version, len(methods) if nmethods is None else nmethods]) + methods


def read_method(s):
    """The method the proxy chose (0xFF: none), or ProtocolError."""
    b = recv_exact(s, 2)
    if b[0] != 5:
        raise ProtocolError("method answer with version %d" % b[0])
    return b[1]


def auth_request(user, password, version=1):
    """RFC 1929: VER ULEN UNAME PLEN PASSWD."""
    u = user.encode() if isinstance(user, str) else user
    p = password.encode() if isinstance(password, str) else password
    return bytes([version, len(u)]) + u + bytes([len(p)]) + p


def read_auth(s):
    """RFC 1929's STATUS (0 = success), or ProtocolError."""
    b = recv_exact(s, 2)
    if b[0] != 1:
        raise ProtocolError("auth answer with version %d" % b[0])
    return b[1]


def encode_addr(host, atyp=None):
    """ATYP DST.ADDR for host: an IPv4 or IPv6 literal, else a name."""
    if isinstance(host, bytes):
        return bytes([3 if atyp is None else atyp, len(host)]) + host
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and atyp in (None, 1, 4):
        return bytes([1 if ip.version == 4 else 4]) + ip.packed
    name = host.encode("idna") if host else b""
    return bytes([3 if atyp is None else atyp, len(name)]) + name


def request(cmd, host, port, atyp=None, version=5, rsv=0):
    """VER CMD RSV ATYP DST.ADDR DST.PORT (RFC 1928 section 4)."""
    return bytes([version, cmd, rsv]) + encode_addr(host, atyp) + port.to_bytes(2, "big")


def read_reply(s):
    """(REP, BND.ADDR, BND.PORT) of a whole reply (RFC 1928 section 6), or
    ProtocolError for a short or malformed one."""
    b = recv_exact(s, 4)
    if b[0] != 5:
        raise ProtocolError("reply with version %d: %s" % (b[0], b.hex()))
    if b[2] != 0:
        raise ProtocolError("reply with RSV %d" % b[2])
    if b[3] == 1:
        addr = str(ipaddress.IPv4Address(recv_exact(s, 4)))
    elif b[3] == 4:
        addr = str(ipaddress.IPv6Address(recv_exact(s, 16)))
    elif b[3] == 3:
        addr = recv_exact(s, recv_exact(s, 1)[0]).decode("latin-1")
    else:
        raise ProtocolError("reply with address type %d" % b[3])
    port = int.from_bytes(recv_exact(s, 2), "big")
    return b[1], addr, port


def handshake(s, methods=(0,), user=None, password=None, split=0, pause=0.05):
    """Greeting (and RFC 1929 if the proxy picks method 2).  Returns the
    method chosen; raises ProtocolError if authentication fails."""
    send(s, greeting(methods), split, pause)
    m = read_method(s)
    if m == 2:
        send(s, auth_request(user or "", password or ""), split, pause)
        st = read_auth(s)
        if st != 0:
            raise ProtocolError("authentication failed: status %d" % st)
    return m


def open_tunnel(proxy, host, port, user=None, password=None, timeout=10.0, source=None):
    """A connected socket through the proxy to (host, port), or
    ProtocolError (with the reply code in .rep when there was a reply)."""
    s = connect(proxy, timeout, source=source)
    try:
        handshake(s, (0, 2) if user is None else (2,), user, password)
        send(s, request(1, host, port))
        rep, _, _ = read_reply(s)
    except Exception:
        s.close()
        raise
    if rep != 0:
        s.close()
        e = ProtocolError("reply %d (%s)" % (rep, REPLY_NAMES.get(rep, "?")))
        e.rep = rep
        raise e
    return s


# ------------------------------------------------------------ SOCKS4

def socks4_request(cmd, ip, port, userid=b"", host=None, version=4):
    """VN CD DSTPORT DSTIP USERID NUL [HOST NUL] (SOCKS4; 4a when host is
    given: DSTIP 0.0.0.x, x != 0)."""
    if host is not None:
        ip = "0.0.0.1"
    b = bytes([version, cmd]) + port.to_bytes(2, "big") + ipaddress.IPv4Address(ip).packed
    b += (userid.encode() if isinstance(userid, str) else userid) + b"\0"
    if host is not None:
        b += (host.encode() if isinstance(host, str) else host) + b"\0"
    return b


def read_socks4_reply(s):
    """(CD, port, ip): CD 90 granted, 91 rejected (92, 93 identd)."""
    b = recv_exact(s, 8)
    if b[0] != 0:
        raise ProtocolError("SOCKS4 reply with VN %d" % b[0])
    return b[1], int.from_bytes(b[2:4], "big"), str(ipaddress.IPv4Address(b[4:8]))


# --------------------------------------------------------------- CLI

def main(argv):
    import argparse
    p = argparse.ArgumentParser(description="A SOCKS client for tests.")
    p.add_argument("proxy")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--user")
    p.add_argument("--password", default="")
    p.add_argument("--methods")
    p.add_argument("--cmd", type=int, default=1)
    p.add_argument("--atyp", type=int)
    p.add_argument("--split", type=int, default=0)
    p.add_argument("--pause", type=float, default=0.05)
    p.add_argument("--socks4", action="store_true")
    p.add_argument("--socks4a", action="store_true")
    p.add_argument("--send")
    p.add_argument("--no-shutdown", action="store_true")
    p.add_argument("--expect-close", action="store_true")
    p.add_argument("--timeout", type=float, default=10.0)
    try:
        a = p.parse_args(argv)
    except SystemExit:
        return 2
    phost, _, pport = a.proxy.rpartition(":")
    phost = phost.strip("[]")
    s = connect((phost, int(pport)), a.timeout)
    try:
        if a.socks4 or a.socks4a:
            send(s, socks4_request(a.cmd, "0.0.0.0" if a.socks4a else a.host, a.port,
                                   a.user or "", a.host if a.socks4a else None), a.split, a.pause)
            rep, bport, baddr = read_socks4_reply(s)
            print("reply4", rep, baddr, bport, flush=True)
            ok = rep == 90
        else:
            if a.methods is not None:
                methods = [int(m) for m in a.methods.split(",") if m]
            else:
                methods = [2] if a.user is not None else [0]
            send(s, greeting(methods), a.split, a.pause)
            m = read_method(s)
            print("method", m, flush=True)
            if m == 2:
                send(s, auth_request(a.user or "", a.password), a.split, a.pause)
                st = read_auth(s)
                print("auth", st, flush=True)
                if st != 0:
                    print("closed" if wait_closed(s, a.timeout) else "open", flush=True)
                    return 0
            elif m == 0xFF:
                print("closed" if wait_closed(s, a.timeout) else "open", flush=True)
                return 0
            send(s, request(a.cmd, a.host, a.port, a.atyp), a.split, a.pause)
            rep, addr, port = read_reply(s)
            print("reply", rep, addr, port, flush=True)
            ok = rep == 0
        if ok and a.send is not None:
            s.sendall(a.send.encode().decode("unicode_escape").encode("latin-1"))
            if not a.no_shutdown:
                s.shutdown(socket.SHUT_WR)
            print("data", len(read_all(s, a.timeout)), flush=True)
        elif not ok or a.expect_close:
            print("closed" if wait_closed(s, a.timeout) else "open", flush=True)
    except ProtocolError as e:
        print("protocol error:", e, flush=True)
        return 1
    finally:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
