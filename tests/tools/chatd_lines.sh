#!/usr/bin/env bash
# chatd: lines.  "\n" and "\r\n" (also split across reads, byte by byte),
# UTF-8 intact (also split inside characters), control characters made
# harmless, and the --max-line limit: the offender gets an error line and
# is dropped, the room is told, and a line without end costs no memory.
here=$(cd "$(dirname "$0")" && pwd)
exec timeout -k 5 60 env PYTHONPATH="$here" python3 - <<'EOF'
import socket
import time

from chatd_harness import Chatd, Client, check, ok, run


def trickle(client, data, size, pause=0.005):
    """Send data a few bytes at a time, so that chatd reads it in pieces."""
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(0, len(data), size):
        client.sock.sendall(data[i:i + size])
        time.sleep(pause)


def test():
    s = Chatd("--max-line", "100")
    a = Client(s, "alice")
    b = Client(s, "bob")
    a.expect("* bob has joined")

    a.sock.sendall(b"crlf\r\nlf\nmixed\r\n\r\n\n")
    trickle(a, b"byte by byte\r\nand\n", 1)
    for x in (a, b):
        x.expect("<alice> crlf", "<alice> lf", "<alice> mixed", "<alice> byte by byte",
                 "<alice> and")
    ok('"\\n" and "\\r\\n", in one read and byte by byte')

    text = "héllo wörld — Ελληνικά — 日本語 — 🎉 — ünïcödé"
    trickle(a, text.encode() + b"\n", 3)
    a.send("/me ☕ and 🥐")
    a.send(b"not UTF-8: \xff\xfe\xc3")
    for x in (a, b):
        x.expect("<alice> " + text, "* alice ☕ and 🥐")
        got = x.line().encode("utf-8", "surrogateescape")
        check(got == b"<alice> not UTF-8: \xff\xfe\xc3", f"high bytes changed: {got!r}")
    ok("UTF-8 intact, also cut inside characters; other high bytes untouched")

    a.send(b"bell\x07 esc\x1b[31m tab\there del\x7f nul\x00 cr\rend")
    for x in (a, b):
        x.expect("<alice> bell? esc?[31m tab\there del? nul? cr?end")
    ok("control characters but tab become '?'")

    a.send("x" * 100)
    a.send("y" * 100, end=b"\r\n")
    for x in (a, b):
        x.expect("<alice> " + "x" * 100, "<alice> " + "y" * 100)
    ok("a line of exactly --max-line bytes passes, with \\n and with \\r\\n")

    # 101 bytes: the line is complete when chatd sees it is too long; 102
    # bytes: the library's bound (--max-line + 1) stops it before the end;
    # 1 MiB without a newline: nothing is kept, the sender is dropped.
    for name, data in (("carol", b"z" * 101 + b"\n"), ("dave", b"z" * 102 + b"\n"),
                       ("erin", b"z" * (1 << 20))):
        c = Client(s, name)
        for x in (a, b):
            x.expect(f"* {name} has joined")
        before = s.status("VmRSS")
        try:
            c.sock.sendall(data)
        except OSError:  # chatd stopped reading and closed: fine
            pass
        check(c.expect_closed() == ["! line too long (max 100 bytes)"],
              f"{name}: no error line before the close")
        for x in (a, b):
            x.expect(f"* {name} was disconnected (line too long)")
        grew = s.status("VmRSS") - before
        check(grew < 2048, f"{name}: chatd grew by {grew} kB")
    a.send("/who")
    a.expect("* users (2): alice bob")
    ok("over --max-line: error line, dropped, room told, no memory kept")

    check(s.stop() == 0, "SIGTERM: exit status not 0")
    s.check_clean()


run(test)
EOF
