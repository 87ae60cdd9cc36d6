#!/usr/bin/env bash
# socks5d with 1,000 clients at once: each makes its SOCKS5 handshake (half
# by name, half by address, a tenth of them with the greeting, request and
# HTTP request pipelined in one write), and once all 1,000 tunnels are
# open (SIGUSR1's stats then say connections=1000 active=1000) each
# fetches a 64 KiB file and checks it byte for byte.  1,000 request lines,
# all succeeded; the descriptors go back to what they were; exit 0 on
# SIGTERM.  Then the same with --threads 2.
# shellcheck source=tests/tools/socks5d_common.bash
source "$(dirname "$0")/socks5d_common.bash"

N=1000
ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((2 * N + 200)) ] ||
    { echo "SKIP: ulimit -n is $(ulimit -n), not enough for $N clients"; exit 77; }

make_file f64k 65536 >/dev/null
start_http http
H=$HTTP_PORT

cat >"$TMP/many.py" <<'EOF'
import asyncio, hashlib, os, signal, sys, time
sys.path.insert(0, os.environ["S5_TOOLS"])
import socks5_client as sc
port, hport, n, pid, log, path = sys.argv[1:7]
port, hport, n, pid = int(port), int(hport), int(n), int(pid)
want = hashlib.sha256(open(path, "rb").read()).hexdigest()
get = b"GET /f64k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
errors, opened = [], []
gate = asyncio.Semaphore(250)  # handshakes in flight at once

async def reply(r):
    head = await r.readexactly(4)
    assert head[:3] == b"\x05\x00\x00", head.hex()
    rest = {1: 4, 4: 16}.get(head[3])
    assert rest, "address type %d" % head[3]
    await r.readexactly(rest + 2)

async def one(i, go):
    host = "localhost" if i % 2 else "127.0.0.1"
    pipelined = i % 10 == 0
    try:
        async with gate:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
            hello = sc.greeting((0,)) + sc.request(1, host, hport)
            w.write(hello + get if pipelined else hello)
            assert await asyncio.wait_for(r.readexactly(2), 30) == b"\x05\x00"
            await asyncio.wait_for(reply(r), 30)
        opened.append(i)
        await go.wait()
        if not pipelined:
            w.write(get)
        data = await asyncio.wait_for(r.read(), 60)
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200") or hashlib.sha256(body).hexdigest() != want:
            errors.append("client %d: %r, %d body bytes" % (i, head[:20], len(body)))
        w.close()
    except Exception as e:
        errors.append("client %d: %r" % (i, e))
        opened.append(i)

async def main():
    go = asyncio.Event()
    tasks = [asyncio.create_task(one(i, go)) for i in range(n)]
    deadline = time.monotonic() + 90
    while len(opened) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if len(opened) < n or errors:
        raise SystemExit("%d of %d tunnels open; errors:\n%s" % (len(opened), n, "\n".join(errors[:20])))
    before = open(log).read().count("stats:")
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 15
    while open(log).read().count("stats:") == before and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    t = time.monotonic()
    go.set()
    await asyncio.gather(*tasks)
    if errors:
        raise SystemExit("%d errors:\n" % len(errors) + "\n".join(errors[:20]))
    print("%d fetched in %.1f s" % (n, time.monotonic() - t))

asyncio.run(main())
EOF

for threads in 1 2; do
    name=s5_t$threads
    start_s5 "$name" -p 0 --threads "$threads"
    sleep 0.2
    fds=$(fd_kinds "$S5_PID")
    out=$(timeout 200 python3 "$TMP/many.py" "$S5_PORT" "$H" "$N" "$S5_PID" "$TMP/$name.err" "$TMP/www/f64k" 2>&1) ||
        fail "--threads $threads: $out"
    stats=$(grep 'stats:' "$TMP/$name.err" | tail -n1)
    [ -n "$stats" ] || fail "--threads $threads: no stats line"
    grep -q -- " connections=$N active=$N refused=0 " <<<"$stats" ||
        fail "--threads $threads: the stats with $N tunnels open: $stats"
    for _ in $(seq 200); do [ "$(request_lines "$name" | wc -l)" -ge $N ] && break; sleep 0.05; done
    [ "$(request_lines "$name" 'reply=succeeded\(0\)' | wc -l)" -eq $N ] ||
        fail "--threads $threads: $(request_lines "$name" 'reply=succeeded\(0\)' | wc -l) succeeded lines of $(request_lines "$name" | wc -l), not $N"
    wait_fds "$S5_PID" "$fds" 20 "$threads"
    stop "$S5_PID"
    ok "--threads $threads: $N clients at once, $out, every body checked; $N lines; stats with all open: connections=$N active=$N; descriptors back to (sockets pipes others) $fds"
done
no_sanitizer_reports
