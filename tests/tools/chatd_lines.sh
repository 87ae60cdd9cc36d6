#!/usr/bin/env bash
# chatd: lines.  "\n" and "\r\n" (also split across reads, byte by byte),
# UTF-8 intact (also split inside characters), control characters (C0,
# C1, bidi overrides) and bytes that are not UTF-8 made harmless, no user
# line that looks like the server's (issue 8 item 12), and the --max-line limit: the offender gets an error line and
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
    a.send(b"not UTF-8: \xff\xfe \xc0\x8a \xed\xa0\x80 \x9b2J \xc3")
    for x in (a, b):
        x.expect("<alice> " + text, "<alice> * ☕ and 🥐")
        got = x.line().encode("utf-8", "surrogateescape")
        check(got == b"<alice> not UTF-8: ?? ?? ??? ?2J ?", f"bytes not UTF-8: {got!r}")
    ok("UTF-8 intact, also cut inside characters; each byte that is not UTF-8 is '?'")

    a.send(b"bell\x07 esc\x1b[31m tab\there del\x7f nul\x00 cr\rend")
    for x in (a, b):
        x.expect("<alice> bell? esc?[31m tab\there del? nul? cr?end")
    ok("control characters but tab become '?'")

    # Issue 8 item 12: C1 controls (U+0080-U+009F: U+009B is CSI, so
    # "\xc2\x9b2J" clears a screen) and the bidi embeddings, overrides and
    # isolates (U+202A-U+202E, U+2066-U+2069) are one '?' each as well; their
    # neighbours (U+00A0, U+2029, U+206A) are left alone.
    c1 = "".join(chr(cp) for cp in range(0x80, 0xa0))
    bidi = "".join(chr(cp) for cp in (*range(0x202a, 0x202f), *range(0x2066, 0x206a)))
    a.send(f"c1 {c1} \u009b2J")  # 64 bytes of --max-line 100
    a.send(f"bidi {bidi} abc\u202edcba keep \u00a0\u2029\u206a.")
    for x in (a, b):
        x.expect(f"<alice> c1 {'?' * 32} ?2J",
                 f"<alice> bidi {'?' * 9} abc?dcba keep \u00a0\u2029\u206a.")
    ok("C1 controls and bidi overrides become '?' too")

    # Nothing a user sends can start a line the way the server does ("* "
    # notices, "! " errors): /me is said after "<name>" like the rest.
    a.send("/me was disconnected (too slow)")
    a.send("* bob has left")
    a.send("//me has left")
    for x in (a, b):
        x.expect("<alice> * was disconnected (too slow)", "<alice> * bob has left",
                 "<alice> /me has left")
    ok("no line from a user looks like a server notice")

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
