#!/usr/bin/env bash
# portfwd, many connections: 2,000 at once, each moving random data both
# ways through an echo server (a first chunk echoed on every connection
# while all 2,000 are open: SIGUSR1's stats then say "active 2000"; then
# more data and a half-close), every byte checked; 2,000 connection lines
# saying done-remote-closed; the exit stats count 2,000 and the bytes.
# shellcheck source=tests/tools/portfwd_common.bash
source "$(dirname "$0")/portfwd_common.bash"

N=2000
ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((2 * N + 100)) ] ||
    { echo "SKIP: ulimit -n is $(ulimit -n), not enough for $N connections"; exit 77; }

start_py echo "$TMP/echo_server.py"
start_pf fwd -v -b 4096 -p 0 -r 127.0.0.1 -P "$PY_PORT"
port=$PF_PORT

timeout 100 python3 - "$port" "$N" "$PF_PID" "$TMP/fwd.err" <<'EOF' || fail "$N connections"
import asyncio, hashlib, os, signal, sys, time
port, n, pid, log = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
FIRST, REST = 1024, 15 * 1024
connected = asyncio.Semaphore(200)   # connects in flight at once
errors = []

async def one(i, barrier, go):
    async with connected:
        for attempt in range(3):
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 20)
                break
            except (OSError, asyncio.TimeoutError) as e:
                if attempt == 2:
                    errors.append("conn %d: connect: %r" % (i, e))
                    barrier.append(i)
                    return
    try:
        first = os.urandom(FIRST)
        w.write(first)
        got = await asyncio.wait_for(r.readexactly(FIRST), 60)
        if got != first:
            errors.append("conn %d: first chunk differs" % i)
        barrier.append(i)
        await go.wait()   # every connection is open and relaying
        rest = os.urandom(REST + i)
        w.write(rest)
        w.write_eof()
        got = await asyncio.wait_for(r.read(), 60)
        if got != rest:
            errors.append("conn %d: sent %d, got back %d%s" % (
                i, len(rest), len(got), "" if len(got) != len(rest) else " (different)"))
    except Exception as e:
        errors.append("conn %d: %r" % (i, e))
        barrier.append(i)
    finally:
        w.close()

async def main():
    barrier, go = [], asyncio.Event()
    tasks = [asyncio.create_task(one(i, barrier, go)) for i in range(n)]
    deadline = time.monotonic() + 60
    while len(barrier) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if len(barrier) < n:
        raise SystemExit("only %d of %d connections echoed a first chunk" % (len(barrier), n))
    if errors:
        raise SystemExit("\n".join(errors[:20]))
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 15
    while "stats (SIGUSR1)" not in open(log).read() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    print("all %d open" % n, flush=True)
    go.set()
    await asyncio.gather(*tasks)
    if errors:
        raise SystemExit("%d errors:\n" % len(errors) + "\n".join(errors[:20]))

asyncio.run(main())
EOF
ok "$N connections at once, random data both ways, every byte checked"
grep -A1 'stats (SIGUSR1)' "$TMP/fwd.err" | grep -q "active $N, total $N, refused 0, errors 0" ||
    fail "SIGUSR1 stats with $N open: $(grep -A1 'stats (SIGUSR1)' "$TMP/fwd.err" | tail -n1)"
ok "SIGUSR1 with all open: active $N, total $N"
for _ in $(seq 200); do
    [ "$(conn_lines fwd ' via .*, done-remote-closed$')" -ge $N ] && break
    sleep 0.05
done
[ "$(conn_lines fwd ' via .*, done-remote-closed$')" -eq $N ] ||
    fail "$(conn_lines fwd ' via .*, done-remote-closed$') done-remote-closed lines, not $N"
stop "$PF_PID"
# Bytes each way: N * (FIRST + REST) + 0 + 1 + ... + (N - 1)
bytes=$((N * 16 * 1024 + N * (N - 1) / 2))
grep -A1 'stats (exit)' "$TMP/fwd.err" |
    grep -q "active 0, total $N, refused 0, errors 0, bytes in $bytes, out $bytes" ||
    fail "exit stats: $(grep -A1 'stats (exit)' "$TMP/fwd.err" | tail -n1), want $bytes bytes each way"
ok "$N lines done-remote-closed; exit stats: total $N, $bytes bytes each way"
no_sanitizer_reports
