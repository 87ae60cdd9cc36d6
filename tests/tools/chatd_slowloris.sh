#!/usr/bin/env bash
# chatd: slowloris (issue 8 item 11).  A connection that never takes a
# name, or that sends a line a byte at a time, must not hold one of the
# --max-clients places for ever, whatever --idle-timeout says (any byte is
# activity).  --nick-timeout and --line-timeout bound both, and are on by
# default; a client that finishes its lines in time is left alone.
here=$(cd "$(dirname "$0")" && pwd)
exec timeout -k 5 90 env PYTHONPATH="$here" python3 - <<'EOF'
import re
import subprocess
import threading
import time

from chatd_harness import CHATD, WELCOME, Chatd, Client, check, ok, run

LIMIT = 1.0  # both timeouts, in seconds
FULL = ["! server full, try again later"]


def trickle(client, data, every, stop):
    """Send data a byte at a time, one every `every` seconds, until stop is set
    or the server closes the connection."""
    for b in data:
        if stop.wait(every):
            return
        try:
            client.sock.sendall(bytes([b]))
        except OSError:
            return


def dropped_after(client, want, start, low=LIMIT * 0.9, high=LIMIT * 3):
    """client is closed with exactly the lines want, between low and high
    seconds after start (the margin above is for a loaded machine)."""
    got = client.expect_closed(timeout=high + 5)
    secs = time.monotonic() - start
    check(got == want, f"{client.name}: {got} instead of {want}")
    check(low <= secs <= high, f"{client.name}: closed after {secs:.2f} s, not about {LIMIT}")
    return secs


def test():
    out = subprocess.run([CHATD, "--help"], capture_output=True, text=True, timeout=10).stdout
    for opt, default in (("--nick-timeout", "30"), ("--line-timeout", "60")):
        check(re.search(rf"{opt} SEC .*\n?.*\(default {default}; 0 = never\)", out),
              f"--help: no {opt} with its default {default}")
    ok("--nick-timeout (30 s) and --line-timeout (60 s) are on by default")

    s = Chatd("--max-clients", "3", "--nick-timeout", str(LIMIT), "--line-timeout", str(LIMIT),
              "--idle-timeout", "30")
    a = Client(s, "a")
    start = time.monotonic()
    silent = Client(s)
    silent.name = "silent"
    silent.expect(WELCOME)
    slow = Client(s)  # a byte every 0.2 s: never a whole /nick line
    slow.name = "slow"
    slow.expect(WELCOME)
    stop = threading.Event()
    t = threading.Thread(target=trickle, args=(slow, b"/nick slowpoke\n", 0.2, stop))
    t.start()
    extra = Client(s)
    check(extra.expect_closed() == FULL, "a 4th client was not refused while 3 are in")
    bye = f"! no name within {LIMIT:g} seconds, bye"
    secs = dropped_after(silent, [bye], start)
    dropped_after(slow, [bye], start)
    stop.set()
    t.join()
    s.wait_log(r"\(no name\) left: no name")
    b = Client(s, "b")  # the places are free again
    a.expect("* b has joined")
    a.expect_silence()
    ok(f"nameless clients, silent or a byte at a time, are dropped after {secs:.2f} s; "
       "their places are free again")

    # A named client that sends a byte every 0.2 s and never a newline is
    # dropped once its line has taken LIMIT; the room is told.
    c = Client(s, "c")
    for x in (a, b):
        x.expect("* c has joined")
    stop = threading.Event()
    t = threading.Thread(target=trickle, args=(c, b"x" * 1000, 0.2, stop))
    start = time.monotonic()
    t.start()
    secs = dropped_after(c, [f"! line not finished within {LIMIT:g} seconds, bye"], start)
    stop.set()
    t.join()
    for x in (a, b):
        x.expect("* c was disconnected (line too slow)")
    s.wait_log(r"c left: line too slow")
    ok(f"a line sent a byte at a time is cut after {secs:.2f} s; the room is told")

    # Lines finished in time, in pieces, and silence between them are fine:
    # the line timer runs from a line's first byte to its end only.
    for piece in (b"in ", b"three ", b"pieces\n"):
        a.sock.sendall(piece)
        time.sleep(LIMIT / 4)
    for x in (a, b):
        x.expect("<a> in three pieces")
    time.sleep(LIMIT * 1.5)
    a.send("still here")
    for x in (a, b):
        x.expect("<a> still here")
    ok("lines finished in time and silence between lines are left alone")

    check(s.stop() == 0, "SIGTERM: exit status not 0")
    s.check_clean()


run(test)
EOF
