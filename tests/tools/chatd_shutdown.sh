#!/usr/bin/env bash
# chatd: SIGTERM and SIGINT.  Every client, named or not, gets a notice and
# then EOF, and chatd exits 0 — within its grace period even when a client
# never reads; a second signal ends it at once.
here=$(cd "$(dirname "$0")" && pwd)
exec timeout -k 5 60 env PYTHONPATH="$here" python3 - <<'EOF'
import signal
import time

from chatd_harness import WELCOME, Chatd, Client, check, ok, run

NOTICE = "* server shutting down"


def stuck_reader():
    """chatd with 8 MiB waiting for a client that does not read."""
    s = Chatd("--max-queue", str(64 << 20))
    slow = Client(s, "slow", rcvbuf=4096)
    a = Client(s, "a")
    lines = [f"{i:04d} " + "x" * 1000 for i in range(8192)]
    a.sock.sendall("".join(l + "\n" for l in lines).encode())
    a.expect(*(f"<a> {l}" for l in lines))
    return s, slow, a


def test():
    for sig in (signal.SIGTERM, signal.SIGINT):
        s = Chatd()
        a, b, c = Client(s, "a"), Client(s, "b"), Client(s)
        c.expect(WELCOME)
        a.expect("* b has joined")
        check(s.stop(sig) == 0, f"{sig.name}: exit status not 0")
        for x in (a, b, c):
            check(x.expect_closed() == [NOTICE], f"{sig.name}: {x.name} got no notice")
        s.wait_log(r"shutting down")
        s.check_clean()
        ok(f"{sig.name}: a notice to every client, then exit 0")

    # A client that reads nothing, with more waiting for it than the
    # kernel can hold: the others still get the notice at once, and chatd
    # leaves after its grace period.
    s, slow, a = stuck_reader()
    start = time.monotonic()
    check(s.stop(timeout=10) == 0, "exit status not 0")
    secs = time.monotonic() - start
    check(a.expect_closed() == [NOTICE], "a got no notice")
    check(1.5 < secs < 5, f"exit after {secs:.1f} s, the grace is 2 s")
    ok(f"a client that never reads holds the exit for the grace period only ({secs:.1f} s)")

    s, slow, a = stuck_reader()
    start = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    s.wait_log(r"shutting down")
    check(s.stop(timeout=10) == 0, "exit status not 0 after a second SIGTERM")
    secs = time.monotonic() - start
    check(secs < 1, f"a second SIGTERM took {secs:.1f} s")
    s.check_clean()
    ok("a second signal ends chatd at once, exit 0")


run(test)
EOF
