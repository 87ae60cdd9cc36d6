# Sourced by tests/tools/portfwd_*.sh (not a test itself: CTest takes *.sh
# only).  On top of tests/examples/common.bash (start, wait_line, finish,
# stop, fail, ok, free_port, no_sanitizer_reports; every process stopped by
# its PID, every wait bounded, every port from the kernel; a program's
# start is waited for up to 60 s, which a python takes on a machine loaded
# ten times over):
#
#   PF                       the portfwd binary
#   start_pf NAME ARGS...    run portfwd, wait for its first "listening on"
#                            line; sets PF_PID and PF_PORT
#   pf_ports NAME            every port NAME said it listens on, in order
#   start_py NAME SCRIPT ARGS...  a python helper (a file in $TMP) that
#                            prints its port on stdout's first line; sets
#                            PY_PID and PY_PORT
#   wait_out NAME REGEX [S]  like wait_line, on NAME's stdout
#   conn_lines NAME REGEX    how many connection lines of NAME match REGEX
#   cpu_ticks PID            utime + stime of PID, in clock ticks
#   rss_kib PID              VmRSS of PID in KiB
#   listens_on PID PORT      whether PID has a listening TCP socket on PORT
#                            (asking PID itself: another program may have
#                            been given a port that free_port let go)
# shellcheck source=tests/examples/common.bash
source "$(dirname "${BASH_SOURCE[0]}")/../examples/common.bash"

PF=$AC_BUILD_DIR/tools/portfwd/portfwd
[ -x "$PF" ] || fail "$PF was not built"

need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null || { echo "SKIP: $c is missing"; exit 77; }
    done
}

start_pf() {
    local name=$1
    shift
    start "$name" "$PF" "$@"
    PF_PID=$PID
    local line deadline=$((SECONDS + 60))
    while ! grep -Eq 'listening on .* port [0-9]+, forwarding to ' "$TMP/$name.err" 2>/dev/null &&
        kill -0 "$PF_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
        sleep 0.05
    done
    line=$(wait_line "$name" 'listening on .* port [0-9]+, forwarding to ' 1)
    PF_PORT=$(sed -E 's/.*listening on [^ ]+ port ([0-9]+),.*/\1/' <<<"$line")
}

pf_ports() {
    grep -E 'listening on .* port [0-9]+, forwarding to ' "$TMP/$1.err" |
        sed -E 's/.*listening on [^ ]+ port ([0-9]+),.*/\1/'
}

wait_out() {
    local file=$TMP/$1.out deadline=$((SECONDS + ${3:-10}))
    while [ $SECONDS -lt $deadline ]; do
        if grep -Eq -- "$2" "$file" 2>/dev/null; then
            grep -E -m1 -- "$2" "$file"
            return 0
        fi
        sleep 0.05
    done
    fail "no line /$2/ in $1's stdout within ${3:-10} s"
}

start_py() {
    local name=$1
    shift
    start "$name" python3 "$@"
    PY_PID=$PID
    PY_PORT=$(wait_out "$name" '^[0-9]+$' 60)
}

conn_lines() {
    grep -Ec -- "$2" "$TMP/$1.err" || true
}

cpu_ticks() {
    # Fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends
    # the command name.
    sed -E 's/^.*\) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

listens_on() {
    python3 - "$1" "$2" <<'EOF'
import os, sys
pid, port = sys.argv[1], int(sys.argv[2])
mine = set()
for fd in os.listdir("/proc/%s/fd" % pid):
    try:
        link = os.readlink("/proc/%s/fd/%s" % (pid, fd))
    except OSError:
        continue
    if link.startswith("socket:["):
        mine.add(link[8:-1])
for table in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        lines = open(table).read().splitlines()[1:]
    except OSError:
        continue
    for line in lines:
        f = line.split()
        if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port and f[9] in mine:
            sys.exit(0)
sys.exit(1)
EOF
}

# The python servers the tests forward to.  Each prints its port first.
cp "$(dirname "${BASH_SOURCE[0]}")/echo_server.py" "$TMP/echo_server.py"
