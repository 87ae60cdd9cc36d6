#!/usr/bin/env bash
# portfwd, backpressure: a remote that does not read while clients push
# (10 connections, one of them 200 MiB), and clients that do not read while
# the remote pushes (10 connections, one of them 200 MiB): the senders stall, portfwd's
# VmRSS grows by less than 64 MiB; then the readers start and every byte
# arrives (counts and sha256), with RSS still bounded while it flows.
# shellcheck source=tests/tools/portfwd_common.bash
source "$(dirname "$0")/portfwd_common.bash"

# Each connection's first byte says what it is: 'R', the server reads
# nothing until $TRIGGER exists, then reads to EOF and reports; 'P', the
# server pushes random bytes, SIZE on connection 0, 8 MiB on the others (or as many as it can before the client
# goes), then closes, and reports.
cat >"$TMP/lazy.py" <<'EOF'
import hashlib, os, socket, sys, threading, time
size, trigger = int(sys.argv[1]), sys.argv[2]
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(64)
print(ls.getsockname()[1], flush=True)
lock = threading.Lock()

def report(*a):
    with lock:
        print(*a, flush=True)

def serve(c):
    kind = c.recv(1)
    tag = c.recv(4).decode()
    h, n = hashlib.sha256(), 0
    if kind == b"R":
        while not os.path.exists(trigger):
            time.sleep(0.05)
        while True:
            b = c.recv(1 << 18)
            if not b:
                break
            h.update(b)
            n += len(b)
        report("R", tag, n, h.hexdigest())
    else:
        want = size if tag == "0000" else 8 << 20
        try:
            while n < want:
                b = os.urandom(min(1 << 20, want - n))
                c.sendall(b)
                h.update(b)
                n += len(b)
        except OSError:
            pass
        report("P", tag, n, h.hexdigest())
    c.close()

while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF

SIZE=$((200 << 20))
start_py lazy "$TMP/lazy.py" "$SIZE" "$TMP/trigger"
start_pf fwd -p 0 -r 127.0.0.1 -P "$PY_PORT"
sleep 0.3

timeout 55 python3 - "$PF_PORT" "$PF_PID" "$SIZE" "$TMP/trigger" "$TMP/lazy.out" <<'EOF' || fail "backpressure"
import hashlib, os, select, socket, sys, threading, time
port, pid, size, trigger, srvout = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
LIMIT = 64 << 10  # KiB of growth allowed

def rss():
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

base = rss()
peak = [base]
stop = threading.Event()
def sampler():
    while not stop.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.05)
threading.Thread(target=sampler, daemon=True).start()

chunk = os.urandom(1 << 18)
def push(s, h, total, upto, stall):
    """Send chunk bytes until `upto` in all, or no progress for `stall` s."""
    s.setblocking(False)
    while total < upto:
        _, w, _ = select.select([], [s], [], stall)
        if not w:
            break
        try:
            k = s.send(chunk[: min(len(chunk), upto - total)])
        except BlockingIOError:
            continue
        h.update(chunk[:k])
        total += k
    return total

def conn(kind, i):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(kind + b"%04d" % i)
    return s

# Clients push, the remote does not read.
writers = [[conn(b"R", i), hashlib.sha256(), 0] for i in range(10)]
def stall(w):
    w[2] = push(w[0], w[1], 0, size, 1.5)
ts = [threading.Thread(target=stall, args=(w,)) for w in writers]
for t in ts: t.start()
for t in ts: t.join()
# The remote pushes, the clients do not read.
readers = [conn(b"P", i) for i in range(10)]
time.sleep(2)
stalled = rss()
for s, h, n in writers:
    assert n < 64 << 20, "a client sent %d bytes to a remote that reads nothing" % n
growth = max(peak[0], stalled) - base
print("stalled: clients sent %d KiB in all; VmRSS %d -> %d KiB (peak %d)" % (
    sum(w[2] for w in writers) >> 10, base, stalled, peak[0]), flush=True)
assert growth < LIMIT, "VmRSS grew by %d KiB with stalled peers" % growth

# Now everybody reads.  Writer 0 goes on to 200 MiB.
open(trigger, "w").close()
errors = []
def finish_writer(w, upto):
    s, h, n = w
    w[2] = push(s, h, n, upto, 20)
    s.setblocking(True)
    s.shutdown(socket.SHUT_WR)
got = {}
def read_all(i, s):
    h, n = hashlib.sha256(), 0
    s.settimeout(30)
    while True:
        b = s.recv(1 << 18)
        if not b:
            break
        h.update(b)
        n += len(b)
    got[i] = (n, h.hexdigest())
ts = [threading.Thread(target=finish_writer, args=(w, size if i == 0 else w[2]))
      for i, w in enumerate(writers)]
ts += [threading.Thread(target=read_all, args=(i, s)) for i, s in enumerate(readers)]
for t in ts: t.start()
for t in ts: t.join()
stop.set()
assert writers[0][2] == size, "writer 0 sent %d of %d" % (writers[0][2], size)
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    lines = [l.split() for l in open(srvout).read().splitlines()[1:]]
    if len(lines) == 20:
        break
    time.sleep(0.1)
rep = {(l[0], int(l[1])): (int(l[2]), l[3]) for l in lines}
for i, (s, h, n) in enumerate(writers):
    want = (n, h.hexdigest())
    assert rep.get(("R", i)) == want, "writer %d: sent %r, the server got %r" % (i, want, rep.get(("R", i)))
for i in range(10):
    assert rep.get(("P", i)) == got[i], "reader %d: the server sent %r, got %r" % (i, rep.get(("P", i)), got[i])
growth = peak[0] - base
print("flowing: VmRSS peak %d KiB (base %d)" % (peak[0], base))
assert growth < LIMIT, "VmRSS grew by %d KiB while the data flowed" % growth
EOF
ok "stalled peers: the senders stall; VmRSS growth < 64 MiB; then every byte arrives"
stop "$PF_PID"
no_sanitizer_reports
