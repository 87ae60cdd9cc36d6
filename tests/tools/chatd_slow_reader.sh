#!/usr/bin/env bash
# chatd: a client that never reads.  Four others chat 16 MiB each way
# around it: they must get every line, in order, within the deadline, and
# none of them is ever dropped; chatd's peak memory must not grow by more
# than a few MiB; and the one that does not read is disconnected, with a
# notice to the others.
#
# The arithmetic (issue 8 item 14): a talker sends its line i + WINDOW only
# once every talker has read its line i, like people who read what the room
# says.  So at most TALKERS x WINDOW lines (4 x 50 x 1 KB = 200 KB) are
# ever on their way to one talker: under the 256 KiB --max-queue even if
# the kernel's buffers held none of them.  (The old window counted only a
# talker's own lines coming back to it, and a talker that others outran
# could have any number waiting.)
here=$(cd "$(dirname "$0")" && pwd)
exec timeout -k 5 150 env PYTHONPATH="$here" python3 - <<'EOF'
import os
import re
import time

from chatd_harness import Chatd, Client, asan_build, check, ok, pump, run

TALKERS, LINES, WINDOW, PAD = 4, 4000, 50, "x" * 1000
QUEUE = 256 * 1024  # chatd's default --max-queue
GROWTH_KB = 8192    # without the bound it would be about 16 MiB


def test():
    env = dict(os.environ)
    if asan_build():  # ASan keeps freed blocks in quarantine: keep that small
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=1"
    s = Chatd("--max-queue", str(QUEUE), env=env)
    slow = Client(s, "slow", rcvbuf=4096)
    talkers = []
    for i in range(TALKERS):
        talkers.append(Client(s, f"t{i}"))
        for t in talkers[:-1]:
            t.expect(f"* t{i} has joined")
    base = s.status("VmRSS")

    def line(t, i):
        return f"{t.name} {i:05d} {PAD}"

    # seen[t][u]: how many of u's lines t has read; sent[u]: lines u sent.
    seen = {t.name: {u.name: 0 for u in talkers} for t in talkers}
    sent = {t.name: WINDOW for t in talkers}
    by_name = {t.name: t for t in talkers}
    assert TALKERS * WINDOW * len(line(talkers[0], 0)) < QUEUE

    def on_line(t, text):
        t.lines.append(text)
        m = re.match(r"<(t\d)> \1 (\d+) ", text)
        if not m:
            return
        u = m.group(1)
        seen[t.name][u] = int(m.group(2)) + 1
        read_by_all = min(seen[x][u] for x in seen)
        while sent[u] < LINES and sent[u] < read_by_all + WINDOW:
            by_name[u].sock.settimeout(10)
            by_name[u].send(line(by_name[u], sent[u]))
            by_name[u].sock.setblocking(False)
            sent[u] += 1

    for t in talkers:
        t.sock.sendall("".join(line(t, i) + "\n" for i in range(WINDOW)).encode())
    total = TALKERS * LINES
    start = time.monotonic()
    pump(talkers, lambda: all(sum(l.startswith("<") for l in t.lines) >= total
                              for t in talkers), 60, on_line)
    secs = time.monotonic() - start
    for t in talkers:
        said = [l for l in t.lines if l.startswith("<")]
        check(len(said) == total, f"{t.name}: {len(said)} lines instead of {total}")
        for u in talkers:
            mine = [l for l in said if l.startswith(f"<{u.name}> ")]
            check(mine == [f"<{u.name}> {line(u, i)}" for i in range(LINES)],
                  f"{t.name}: {u.name}'s lines are not all there in order")
        notices = [l for l in t.lines if not l.startswith("<")]
        check(notices == ["* slow was disconnected (too slow)"], f"{t.name}: notices {notices}")
    mib = total * len(line(talkers[0], 0)) / (1 << 20)
    ok(f"{TALKERS} talkers got all {total} lines ({mib:.1f} MiB each) in {secs:.1f} s, in order")

    grew = s.status("VmHWM") - base
    check(grew < GROWTH_KB, f"chatd's peak memory grew by {grew} kB (limit {GROWTH_KB})")
    ok(f"chatd's peak memory grew by {grew} kB only")

    # What reached it is what the kernel's buffers held plus at most its
    # queue in chatd (the queue went mid-line).
    got = sum(len(l) + 1 for l in slow.expect_closed(timeout=10, partial=True))
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        kernel = int(f.read().split()[2]) + 65536
    check(got <= kernel + QUEUE, f"slow got {got} bytes: more than it could hold")
    s.wait_log(r"slow left: too slow")
    ok(f"the slow reader was disconnected ({got} bytes were waiting for it)")

    check(s.stop() == 0, "SIGTERM: exit status not 0")
    s.check_clean()


run(test)
EOF
