#!/usr/bin/env bash
# portfwd, out of descriptors: under a limit of 64 (soft and hard, so it
# cannot raise it), 3 connections are set up, then 150 more flood in.
# portfwd logs EMFILE ("Too many open files"), does not spin (less than
# 0.5 s of CPU over 2 s of flood), the 3 first connections keep working
# during the flood, and once the flood's connections close it recovers:
# 20 new connections in a row all work.
# shellcheck source=tests/tools/portfwd_common.bash
source "$(dirname "$0")/portfwd_common.bash"
need_cmd prlimit

start_py echo "$TMP/echo_server.py"
# prlimit execs portfwd: the PID is portfwd's.
start fwd prlimit --nofile=64:64 "$PF" -b 512 -p 0 -r 127.0.0.1 -P "$PY_PORT"
fwd_pid=$PID
line=$(wait_line fwd 'listening on .* port [0-9]+, forwarding to ' 15)
port=$(sed -E 's/.*listening on [^ ]+ port ([0-9]+),.*/\1/' <<<"$line")
grep -Eq '^Max open files +64 +64 ' "/proc/$fwd_pid/limits" ||
    fail "the limit is not 64: $(grep 'open files' "/proc/$fwd_pid/limits")"

timeout 50 python3 - "$port" "$fwd_pid" "$TMP/fwd.err" <<'EOF' || fail "EMFILE"
import os, socket, sys, time
port, pid, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
tck = os.sysconf("SC_CLK_TCK")

def cpu():
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tck

def echo(s, n=65536):
    data = os.urandom(n)
    s.sendall(data)
    got = bytearray()
    while len(got) < n:
        b = s.recv(n - len(got))
        assert b, "EOF after %d of %d echoed bytes" % (len(got), n)
        got += b
    assert bytes(got) == data, "the echo differs"

def connect():
    return socket.create_connection(("127.0.0.1", port), timeout=10)

keep = [connect() for _ in range(3)]
for s in keep:
    echo(s)
flood = []
for i in range(150):
    flood.append(connect())   # the kernel completes them (backlog 512)
deadline = time.monotonic() + 15
while "Too many open files" not in open(log).read():
    assert time.monotonic() < deadline, "no EMFILE warning in the log"
    time.sleep(0.1)
time.sleep(0.5)
c0, t0 = cpu(), time.monotonic()
time.sleep(2)
used, secs = cpu() - c0, time.monotonic() - t0
print("flooded: %.2f s of CPU in %.2f s" % (used, secs), flush=True)
assert used < 0.5, "portfwd used %.2f s of CPU in %.2f s while out of descriptors" % (used, secs)
for s in keep:
    echo(s)
print("the 3 first connections work during the flood", flush=True)
for s in flood:
    s.close()
# Recovery: new connections work again (the backlog of closed ones drains
# first, so allow some time).
deadline = time.monotonic() + 30
done = 0
while done < 20:
    assert time.monotonic() < deadline, "only %d new connections worked after the flood" % done
    try:
        s = connect()
        echo(s, 4096)
        s.close()
        done += 1
    except (OSError, AssertionError) as e:
        time.sleep(0.2)
for s in keep:
    echo(s)
    s.close()
print("recovered: 20 new connections worked", flush=True)
EOF
ok "EMFILE under ulimit -n 64: no spin, old connections work, it recovers"
kill -0 "$fwd_pid" || fail "portfwd died"
stop "$fwd_pid"
no_sanitizer_reports
