#!/usr/bin/env bash
# echo_server and socketserver_echo out of descriptors (issue 8 item 18;
# W15).  asyncore's default closes the listener on EMFILE, so the server
# stopped serving for good, and exited 0 once its last client left.  Now,
# under a limit of 24 descriptors: clients connect one by one until the
# server says it pauses accepting; it must not spin (at most 40 such lines
# a second, with a 0.1 s pause); 3 more clients wait in the backlog; once
# the first ones close, the 3 waiting ones and a new one are echoed; and
# SIGTERM still ends it with 0.  On every poller.
# shellcheck source=tests/examples/common.bash
source "$(dirname "$0")/common.bash"
command -v prlimit >/dev/null || { echo "SKIP: prlimit is missing"; exit 77; }
need_example echo_server
need_example socketserver_echo

emfile_clients() { # PORT LOG
    timeout 60 python3 - "$@" <<'EOF'
import socket, sys, time
port, log = int(sys.argv[1]), sys.argv[2]

def paused():
    return open(log).read().count("accepting again in")

def connect():
    return socket.create_connection(("127.0.0.1", port), timeout=10)

def echoes(s, data):
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        b = s.recv(4096)
        assert b, "EOF after %r" % got
        got += b
    assert got == data, "echoed %r" % got

first = []
while not paused():
    assert len(first) < 100, "no EMFILE after 100 clients"
    s = connect()
    first.append(s)
    # Each one served is echoed; the last may wait in the backlog.  One
    # "x", sent once: a retry would make the echo "xx".
    s.sendall(b"x")
    s.settimeout(0.05)
    deadline = time.monotonic() + 2
    while not paused() and time.monotonic() < deadline:
        try:
            got = s.recv(1)
            assert got == b"x", "echoed %r" % got
            break
        except socket.timeout:
            pass
    s.settimeout(10)
n = paused()
time.sleep(1.0)
rate = paused() - n
assert rate <= 40, "%d pause lines in 1 s: it spins" % rate
waiting = [connect() for _ in range(3)]
for s in first:
    s.close()
for i, s in enumerate(waiting):
    echoes(s, b"waited %d\n" % i)
echoes(connect(), b"new\n")
print("ok: EMFILE after %d clients, %d pause lines in 1 s, the 3 waiting ones and a new one served"
      % (len(first), rate))
EOF
}

for prog in echo_server socketserver_echo; do
    for poller in epoll poll select; do
        name=${prog}_$poller
        # prlimit execs the example: the PID is the example's.
        start "$name" env AC_POLLER=$poller prlimit --nofile=24:24 "$EX/$prog" -p 0
        pid=$PID
        port=$(port_of "$(wait_line "$name" '(listening|serving) on ')")
        out=$(emfile_clients "$port" "$TMP/$name.err" 2>&1) || fail "$name: $out"
        kill -0 "$pid" 2>/dev/null || fail "$name exited"
        grep -q "$prog: accept: Too many open files; accepting again in 0.1 s" "$TMP/$name.err" ||
            fail "$name: no EMFILE line"
        stop "$pid"
        ok "$name: $out"
    done
done
no_sanitizer_reports
