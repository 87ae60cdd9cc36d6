# Sourced by tests/examples/*.sh (not a test itself: CTest takes *.sh only).
#
# The examples are found under $AC_BUILD_DIR/examples (CTest sets it; by
# hand it defaults to build/).  Every process a test starts is recorded and
# stopped by its PID on exit; every port is chosen by the kernel; every wait
# is bounded.  A test fails with `fail MESSAGE` (exit 1), which also shows
# the logs of the programs it started.
set -euo pipefail

AC_SOURCE_DIR=${AC_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
AC_BUILD_DIR=${AC_BUILD_DIR:-$AC_SOURCE_DIR/build}
EX=$AC_BUILD_DIR/examples
TEST_NAME=$(basename "$0" .sh)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ac-$TEST_NAME.XXXXXX")
PIDS=()

command -v python3 >/dev/null || { echo "SKIP: python3 is missing"; exit 77; }

show_logs() {
    local f
    for f in "$TMP"/*.err; do
        [ -s "$f" ] || continue
        echo "---- $(basename "$f")"
        tail -n 40 "$f"
    done
}

fail() {
    echo "FAIL $TEST_NAME: $*" >&2
    show_logs >&2
    exit 1
}

ok() { echo "ok - $*"; }

cleanup() {
    local rc=$? pid
    for pid in "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT

need_example() {
    [ -x "$EX/$1" ] || fail "$EX/$1 was not built"
}

# start LOGNAME PROGRAM ARGS...: run it in the background, stderr to
# $TMP/LOGNAME.err, stdout to $TMP/LOGNAME.out; sets $PID.
start() {
    local name=$1
    shift
    "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PID=$!
    PIDS+=("$PID")
}

# wait_line LOGNAME REGEX [SECONDS]: wait until the log has a line matching
# the (extended) regex; print that line.
wait_line() {
    local file=$TMP/$1.err deadline=$((SECONDS + ${3:-10}))
    # Look before reading the clock: $SECONDS may tick between setting the
    # deadline and the first test, and a line already there must count.
    while :; do
        if grep -Eq -- "$2" "$file" 2>/dev/null; then
            grep -E -m1 -- "$2" "$file"
            return 0
        fi
        [ $SECONDS -lt $deadline ] || break
        sleep 0.05
    done
    fail "no line /$2/ in $1's stderr within ${3:-10} s"
}

# port_of LINE: the port of the first "ADDR:PORT" in a startup line.
port_of() {
    sed -E 's/^[^ ]+ [a-z ]+ (\[[^]]*\]|[^ ;]+):([0-9]+).*/\2/' <<<"$1"
}

# finish PID [SECONDS]: wait for the process to end; sets $STATUS.
finish() {
    local pid=$1 deadline=$((SECONDS + ${2:-10}))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
        sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && fail "process $pid still runs after ${2:-10} s"
    STATUS=0
    wait "$pid" || STATUS=$?
}

# stop PID [SIGNAL]: ask it to stop; it must exit 0 within 10 s.
stop() {
    kill -"${2:-TERM}" "$1"
    finish "$1" 10
    [ "$STATUS" -eq 0 ] || fail "process $1 exited $STATUS after SIG${2:-TERM}, not 0"
}

# expect_status WANT CMD...: run a short command (10 s at most); its exit
# status must be WANT.  Output goes to $TMP/cmd.out and $TMP/cmd.err.
expect_status() {
    local want=$1 got=0
    shift
    timeout 10 "$@" >"$TMP/cmd.out" 2>"$TMP/cmd.err" || got=$?
    [ "$got" -eq "$want" ] || { cat "$TMP/cmd.err" >&2; fail "'$*' exited $got, want $want"; }
}

# A port nobody listens on (bound by the kernel's choice, then released).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The sanitizers print "SUMMARY: ...Sanitizer" and exit non-zero; catch the
# reports of programs that were expected to fail anyway.
no_sanitizer_reports() {
    if grep -l 'Sanitizer' "$TMP"/*.err >/dev/null 2>&1; then
        fail "a sanitizer reported: $(grep -l 'Sanitizer' "$TMP"/*.err | xargs -n1 basename)"
    fi
    return 0
}

# The echo client: N bytes of random data from several threads at once
# through HOST:PORT, each connection sending while it reads the echo, then
# half-closing (or, with --no-shutdown, closing once it has all the bytes);
# checks every byte (sha256) and prints "ok".
echo_clients() {
    timeout 60 python3 - "$@" <<'EOF'
import argparse, hashlib, os, socket, threading, time
p = argparse.ArgumentParser()
p.add_argument("port", type=int)
p.add_argument("--bytes", type=int, default=1 << 20)
p.add_argument("--clients", type=int, default=1)
p.add_argument("--no-shutdown", action="store_true")
p.add_argument("--read-delay", type=float, default=0.0)
a = p.parse_args()
errors = []

def one(i):
    data = os.urandom(a.bytes)
    s = socket.create_connection(("127.0.0.1", a.port), timeout=30)
    def send():
        s.sendall(data)
        if not a.no_shutdown:
            s.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=send)
    t.start()
    time.sleep(a.read_delay)
    got = bytearray()
    while len(got) < a.bytes or not a.no_shutdown:
        b = s.recv(1 << 16)
        if not b:
            break
        got += b
    t.join()
    s.close()
    if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
        errors.append("client %d: sent %d bytes, got back %d%s" % (
            i, len(data), len(got), "" if len(got) != len(data) else " (different)"))

ts = [threading.Thread(target=one, args=(i,)) for i in range(a.clients)]
for t in ts: t.start()
for t in ts: t.join()
if errors:
    raise SystemExit("\n".join(errors))
print("ok")
EOF
}
