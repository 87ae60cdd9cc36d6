#!/usr/bin/env bash
# chatd: 500 clients at once.  All join, then each says one line at the
# same moment: every client must receive all 500 lines, in one order for
# everyone, and /who must list all 500.
here=$(cd "$(dirname "$0")" && pwd)
# 500 sockets here and 500 in chatd: raise the soft descriptor limit.
ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 1100 ]; then
    echo "SKIP: only $(ulimit -n) descriptors allowed"
    exit 77
fi
exec timeout -k 5 150 env PYTHONPATH="$here" python3 - <<'EOF'
import time

from chatd_harness import WELCOME, Chatd, Client, check, ok, pump, run

N = 500


def test():
    s = Chatd()
    clients = []
    for i in range(N):
        c = Client(s)
        c.name = f"u{i:03d}"
        c.expect(WELCOME)
        clients.append(c)
    start = time.monotonic()
    for c in clients:
        c.send(f"/nick {c.name}")
    # Joined when it heard its own join notice; everybody heard it then.
    pump(clients, lambda: all(f"* {c.name} has joined" in c.lines for c in clients), 60)
    ok(f"{N} clients connected and joined in {time.monotonic() - start:.1f} s")

    for c in clients:
        c.lines = []
    start = time.monotonic()
    for c in clients:
        c.send(f"hello from {c.name}")
    pump(clients, lambda: all(len(c.lines) >= N for c in clients), 60)
    secs = time.monotonic() - start
    want = sorted(f"<{c.name}> hello from {c.name}" for c in clients)
    for c in clients:
        check(len(c.lines) == N, f"{c.name}: {len(c.lines)} lines instead of {N}")
        check(sorted(c.lines) == want, f"{c.name}: not the {N} lines expected")
        check(c.lines == clients[0].lines, f"{c.name}: another order than u000's")
    ok(f"every client got all {N} lines, in one order, in {secs:.1f} s")

    c = clients[0]
    c.send("/who")
    c.expect(f"* users ({N}): " + " ".join(x.name for x in clients))
    ok(f"/who lists all {N}")

    check(s.stop() == 0, "SIGTERM: exit status not 0")
    for c in clients:
        check(c.expect_closed() == ["* server shutting down"], f"{c.name}: no shutdown notice")
    s.check_clean()


run(test)
EOF
