#!/usr/bin/env bash
# chatd: --max-clients (one more is refused with a line, then closed; a
# free place is taken again) and --idle-timeout (only a client that neither
# sends nor receives is dropped, with a line to it and a notice to others).
here=$(cd "$(dirname "$0")" && pwd)
exec timeout -k 5 60 env PYTHONPATH="$here" python3 - <<'EOF'
import time

from chatd_harness import WELCOME, Chatd, Client, check, ok, run


def test():
    s = Chatd("--max-clients", "3")
    a, b, c = Client(s, "a"), Client(s, "b"), Client(s)
    c.expect(WELCOME)
    for _ in range(2):
        extra = Client(s)
        check(extra.expect_closed() == ["! server full, try again later"],
              "the 4th client was not refused politely")
    s.wait_log(r"refused: 3 clients already")
    a.expect("* b has joined")
    a.expect_silence()
    c.close()
    time.sleep(0.2)
    d = Client(s, "d")
    for x in (a, b):
        x.expect("* d has joined")
    extra = Client(s)
    check(extra.expect_closed() == ["! server full, try again later"], "not refused again")
    ok("--max-clients 3: the 4th is refused with a line; a free place is taken again")
    check(s.stop() == 0, "SIGTERM: exit status not 0")
    s.check_clean()

    s = Chatd("--idle-timeout", "0.5")
    a = Client(s, "a")
    b = Client(s, "b")
    a.expect("* b has joined")
    for i in range(8):  # b talks, a listens: neither is idle
        time.sleep(0.2)
        b.send(f"line {i}")
        a.expect(f"<b> line {i}")
        b.expect(f"<b> line {i}")
    ok("talking and listening both count as activity")
    bye = "! idle for 0.5 seconds, bye"
    for x, other in ((a, "b"), (b, "a")):
        # The first to go is a notice to the other: activity, which then
        # has its 0.5 s from there.
        got = x.expect_closed(timeout=5)
        check(got[-1:] == [bye], f"{x.name}: no idle line: {got}")
        check(got[:-1] in ([], [f"* {other} was disconnected (idle)"]), f"{x.name}: {got}")
    c = Client(s)
    c.expect(WELCOME)
    start = time.monotonic()
    check(c.expect_closed(timeout=5) == [bye], "an unnamed client is not dropped")
    secs = time.monotonic() - start
    check(0.4 < secs < 1.5, f"dropped after {secs:.2f} s of silence, not about 0.5")
    ok(f"silent clients are dropped after the idle timeout ({secs:.2f} s)")
    check(s.stop() == 0, "SIGTERM: exit status not 0")
    s.check_clean()


run(test)
EOF
