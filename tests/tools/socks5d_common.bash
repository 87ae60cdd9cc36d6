# Sourced by tests/tools/socks5d_*.sh (not a test itself: CTest takes *.sh
# only).  On top of tests/examples/common.bash (start, wait_line, finish,
# stop, fail, ok, free_port, expect_status, no_sanitizer_reports; every
# process stopped by its PID, every wait bounded, every port from the
# kernel):
#
#   S5                      the socks5d binary ($SOCKS5D overrides it)
#   need_cmd CMD...         exit 77 (skip) unless every CMD is installed
#   start_s5 NAME ARGS...   run socks5d, wait for its "listening on HOST port
#                           PORT" line (60 s); sets S5_PID and S5_PORT
#   start_http NAME [HOST]  the HTTP server below, serving $TMP/www on HOST
#                           (default 127.0.0.1); sets HTTP_PID, HTTP_PORT
#   start_echo NAME [HOST]  an echo server; sets ECHO_PID and ECHO_PORT
#   start_py NAME SCRIPT ARGS...  a python helper that prints its port on
#                           stdout's first line; sets PY_PID and PY_PORT
#   make_file NAME BYTES    random bytes into $TMP/www/NAME; prints sha256
#   curl_sha ARGS...        curl -sS ARGS (60 s at most); prints the body's
#                           sha256, fails the test if curl fails
#   s5c HOST:PORT ARGS...   socks5_client.py's CLI; its lines joined by " "
#                           (a traceback too: s5c itself never fails)
#   want_s5c WANT HOST:PORT ARGS...  the same, which must print WANT
#   request_lines NAME [REGEX]  NAME's "request ..." lines (matching REGEX)
#   wait_request NAME REGEX [S]  wait for a request line matching REGEX
#   fd_count PID            open descriptors of PID
#   fd_kinds PID            "SOCKETS PIPES OTHERS": PID's descriptors by kind
#   wait_fds PID KINDS [S] [THREADS]  wait until PID's descriptors are back
#                           to KINDS (an fd_kinds of before): the same
#                           sockets and others, and pipes only as the relay
#                           keeps them for reuse (src/relay.c: up to 32
#                           pairs a thread)
#   usr1 NAME PID           SIGUSR1, then print the new "stats:" line
#   wait_out NAME REGEX [S] like wait_line, on NAME's stdout
#   have_ipv6               whether ::1 can be bound
#
# Python helpers find socks5_client.py through $S5_TOOLS (on sys.path).
# shellcheck source=tests/examples/common.bash
source "$(dirname "${BASH_SOURCE[0]}")/../examples/common.bash"

S5=${SOCKS5D:-$AC_BUILD_DIR/tools/socks5d/socks5d}
[ -x "$S5" ] || fail "$S5 was not built"
export S5_TOOLS=$AC_SOURCE_DIR/tests/tools
export PYTHONDONTWRITEBYTECODE=1
# python3 by its real path: a pyenv shim costs half a second a start, and
# these tests start dozens.
mkdir -p "$TMP/bin"
ln -sf "$(python3 -c 'import sys; print(sys.executable)')" "$TMP/bin/python3"
PATH=$TMP/bin:$PATH
# curl must go where each test says, not where the environment points.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
CLIENT=$S5_TOOLS/socks5_client.py
mkdir -p "$TMP/www"

# The regex of a request line (the contract's form), for grep -E.
REQ_RE='request client=[^ ]+ user=[^ ]+ cmd=(connect|bind|udp-associate|socks4-connect|socks4-bind|unknown) dest=[^ ]+ reply=[a-z-]+\([0-9]+\) up=[0-9]+ down=[0-9]+ secs=[0-9]+\.[0-9]{3}$'

need_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null || { echo "SKIP: $c is missing"; exit 77; }
    done
}

start_s5() {
    local name=$1 line deadline=$((SECONDS + 60))
    shift
    start "$name" "$S5" "$@"
    S5_PID=$PID
    while ! grep -Eq 'listening on [^ ]+ port [0-9]+' "$TMP/$name.err" 2>/dev/null &&
        kill -0 "$S5_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
        sleep 0.05
    done
    line=$(wait_line "$name" 'listening on [^ ]+ port [0-9]+' 1)
    S5_PORT=$(sed -E 's/.*listening on [^ ]+ port ([0-9]+).*/\1/' <<<"$line")
}

wait_out() {
    local file=$TMP/$1.out deadline=$((SECONDS + ${3:-10}))
    while :; do
        if grep -Eq -- "$2" "$file" 2>/dev/null; then
            grep -E -m1 -- "$2" "$file"
            return 0
        fi
        [ $SECONDS -lt $deadline ] || break
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

start_http() {
    start_py "$1" "$TMP/http_server.py" "$TMP/www" "${2:-127.0.0.1}"
    HTTP_PID=$PY_PID HTTP_PORT=$PY_PORT
}

start_echo() {
    start_py "$1" "$TMP/echo_server.py" "${2:-127.0.0.1}"
    ECHO_PID=$PY_PID ECHO_PORT=$PY_PORT
}

make_file() {
    head -c "$2" /dev/urandom >"$TMP/www/$1"
    sha256sum <"$TMP/www/$1" | cut -d' ' -f1
}

curl_sha() {
    local rc=0
    timeout 90 curl -sS --max-time 80 "$@" >"$TMP/curl.body" 2>"$TMP/curl.err" || rc=$?
    [ $rc -eq 0 ] || fail "curl $* exited $rc: $(cat "$TMP/curl.err")"
    sha256sum <"$TMP/curl.body" | cut -d' ' -f1
    rm -f "$TMP/curl.body"
}

s5c() {
    local proxy=$1
    shift
    { timeout 60 python3 "$CLIENT" "$proxy" "$@" 2>&1 || true; } | tr '\n' ' ' | sed 's/ $//'
}

want_s5c() {
    local want=$1 got
    shift
    got=$(s5c "$@")
    [ "$got" = "$want" ] || fail "socks5_client.py $*: '$got', want '$want'"
}

request_lines() {
    grep -E -- "${2:-request }" "$TMP/$1.err" | grep -E 'request client=' || true
}

wait_request() {
    local deadline=$((SECONDS + ${3:-10}))
    while :; do
        if grep 'request client=' "$TMP/$1.err" 2>/dev/null | grep -Eq -- "$2"; then
            grep 'request client=' "$TMP/$1.err" | grep -E -m1 -- "$2"
            return 0
        fi
        [ $SECONDS -lt $deadline ] || break
        sleep 0.05
    done
    fail "no request line /$2/ from $1 within ${3:-10} s; it has:
$(grep 'request client=' "$TMP/$1.err" | tail -n 5)"
}

fd_count() {
    ls "/proc/$1/fd" | wc -l
}

fd_kinds() {
    local f link s=0 p=0 o=0
    for f in /proc/"$1"/fd/*; do
        link=$(readlink "$f" 2>/dev/null) || continue
        case $link in
        socket:*) s=$((s + 1)) ;;
        pipe:*) p=$((p + 1)) ;;
        *) o=$((o + 1)) ;;
        esac
    done
    echo "$s $p $o"
}

wait_fds() {
    local pid=$1 deadline=$((SECONDS + ${3:-10})) threads=${4:-1} bs bp bo s p o
    read -r bs bp bo <<<"$2"
    while :; do
        read -r s p o <<<"$(fd_kinds "$pid")"
        [ "$s" -eq "$bs" ] && [ "$o" -eq "$bo" ] && [ "$p" -ge "$bp" ] &&
            [ "$p" -le $((bp + 64 * threads)) ] && [ $(((p - bp) % 2)) -eq 0 ] && return 0
        [ $SECONDS -lt $deadline ] || break
        sleep 0.1
    done
    fail "process $pid has $s sockets, $p pipe ends, $o others; it had $2: $(ls -l "/proc/$pid/fd" | tail -n +2 | awk '{ print $NF }' | sed -E 's/\[[0-9]+\]//' | sort | uniq -c | tr '\n' ';')"
}

usr1() {
    local before after=0
    before=$(grep -c 'stats:' "$TMP/$1.err" || true)
    kill -USR1 "$2"
    for _ in $(seq 200); do
        after=$(grep -c 'stats:' "$TMP/$1.err" || true)
        [ "$after" -gt "$before" ] && break
        sleep 0.05
    done
    [ "$after" -gt "$before" ] || fail "$1: no stats: line after SIGUSR1"
    grep 'stats:' "$TMP/$1.err" | tail -n1
}

have_ipv6() {
    python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null
}

# ---- The servers the tests reach through socks5d.  Each prints its port
# first.

cat >"$TMP/http_server.py" <<'EOF'
# An HTTP/1.1 file server (asyncio, sendfile): GET /NAME sends DIR/NAME
# with its Content-Length; keep-alive unless the client says close or
# speaks HTTP/1.0.  argv: DIR [HOST] ("::" is dual-stack).
import asyncio, os, socket, sys
root = sys.argv[1]
host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"

async def serve(r, w):
    try:
        while True:
            head = await r.readuntil(b"\r\n\r\n")
            words = head.split(b"\r\n", 1)[0].split()
            keep = words[2:] == [b"HTTP/1.1"] and b"connection: close" not in head.lower()
            path = os.path.join(root, os.path.basename(words[1].decode("latin-1")))
            try:
                f = open(path, "rb")
            except OSError:
                w.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                await w.drain()
                if not keep:
                    break
                continue
            with f:
                size = os.fstat(f.fileno()).st_size
                w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                        b"Content-Length: %d\r\n%s\r\n" % (size, b"" if keep else b"Connection: close\r\n"))
                await w.drain()
                await asyncio.get_running_loop().sendfile(w.transport, f)
            if not keep:
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, IndexError):
        pass
    finally:
        w.close()

async def main():
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if host == "::":
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind((host, 0))
    srv = await asyncio.start_server(serve, sock=sock, backlog=4096)
    print(sock.getsockname()[1], flush=True)
    await srv.serve_forever()

asyncio.run(main())
EOF

cp "$(dirname "${BASH_SOURCE[0]}")/echo_server.py" "$TMP/echo_server.py"
