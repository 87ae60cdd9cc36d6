#!/usr/bin/env bash
# Follow one command block of the README's five-minute tour, as a reader
# would type it, then check that the program it started echoes.
# Usage: tour.sh BUILD_DIR ECHO_C COMMANDS WORKDIR   (run by run.sh)
#
# Each line of COMMANDS runs as written (eval), comments dropped, except:
#   make && sudo make install    cmake --install BUILD_DIR --prefix /usr/local
#   make install PREFIX=P        cmake --install BUILD_DIR --prefix P
# which is the Makefile's install recipe (run.sh checks that) on the tree
# under test, and `CMD &`, whose PID is kept.  The program must then listen,
# and echo what a client sends.  The code's port 7007 was made 0 by run.sh
# (tests use kernel-chosen ports): its port is read from /proc.
set -euo pipefail

build=$1 code=$2 cmds=$3 work=$4
mkdir -p "$work"
cp "$code" "$work/echo.c"
cd "$work"
pid=
trap '[ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }' EXIT

fail() {
    echo "FAIL tour ($(basename "$cmds")): $*" >&2
    [ -s echo.err ] && { echo "---- the program's stderr"; cat echo.err; } >&2
    exit 1
}

while IFS= read -r line; do
    cmd=$(sed -E 's/[[:space:]]+#.*$//' <<<"$line")
    [ -n "$cmd" ] || continue
    echo "\$ $cmd"
    case $cmd in
    "make && sudo make install")
        cmake --install "$build" --prefix /usr/local >install.log || fail "$cmd" ;;
    "make install PREFIX="*)
        eval "prefix=${cmd#make install PREFIX=}"
        # shellcheck disable=SC2154  # set by the eval
        cmake --install "$build" --prefix "$prefix" >install.log || fail "$cmd" ;;
    *" &")
        eval "${cmd% &} 2>echo.err &"
        pid=$! ;;
    *)
        eval "$cmd" || fail "'$cmd' failed" ;;
    esac
done <"$cmds"
[ -n "$pid" ] || fail "the block starts no program"

# The port the program listens on: its sockets' inodes, looked up among
# the listening sockets (state 0A) of /proc/net/tcp.
listen_port() {
    python3 - "$1" <<'EOF'
import os, re, sys
pid = sys.argv[1]
inodes = set()
for fd in os.listdir(f"/proc/{pid}/fd"):
    m = re.match(r"socket:\[(\d+)\]", os.readlink(f"/proc/{pid}/fd/{fd}"))
    if m:
        inodes.add(m.group(1))
for line in open("/proc/net/tcp").read().splitlines()[1:]:
    f = line.split()
    if f[3] == "0A" and f[9] in inodes:
        print(int(f[1].split(":")[1], 16))
        break
EOF
}

port=
for _ in $(seq 200); do # 10 s
    kill -0 "$pid" 2>/dev/null || { wait "$pid" || fail "the program exited $?"; }
    port=$(listen_port "$pid" 2>/dev/null || true)
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || fail "the program did not listen within 10 s"

got=$(timeout 10 python3 - "$port" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"hello, asyncore\n")
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    data += b
sys.stdout.write(data.decode())
EOF
) || fail "the client failed"
[ "$got" = "hello, asyncore" ] || fail "echoed '$got'"
echo "ok tour ($(basename "$cmds")): built, started, echoed"
