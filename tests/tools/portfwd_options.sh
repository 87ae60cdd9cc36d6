#!/usr/bin/env bash
# portfwd's options: --help and --version exit 0 (the version as
# "portfwd (libasyncore) X.Y.Z"); bad values, unknown options, extra
# arguments, missing -p/-r/-P and -c with -p exit 2 with one line saying
# what is wrong and the "Try 'portfwd --help'" hint (issue 8 item 19);
# -l/-p/-r/-P values are taken whole, never as config text (item 10); a
# port in use and a bad AC_POLLER exit 1 with one error and no stats.  IPv6 on both sides and mixed ([::1]
# form too, skipped without ::1).  --threads 2: 2 threads, 300 connections
# at once all served, the stats add up.  --source: the remote sees that
# address.  --idle-timeout closes an idle connection.  --keepalive: both
# sides have SO_KEEPALIVE (seen by ss).  -q: no info lines.
# shellcheck source=tests/tools/portfwd_common.bash
source "$(dirname "$0")/portfwd_common.bash"

expect_status 0 "$PF" --help
grep -q -- '--connect-timeout' "$TMP/cmd.out" || fail "--help does not list --connect-timeout"
[ ! -s "$TMP/cmd.err" ] || fail "--help wrote to stderr: $(cat "$TMP/cmd.err")"
expect_status 0 "$PF" -h
for v in --version -V; do
    expect_status 0 "$PF" $v
    [ "$(wc -l <"$TMP/cmd.out")" -eq 1 ] && grep -Eq '^portfwd \(libasyncore\) [0-9]+\.[0-9]+\.[0-9]+$' "$TMP/cmd.out" ||
        fail "$v: '$(cat "$TMP/cmd.out")', want 'portfwd (libasyncore) X.Y.Z'"
    [ ! -s "$TMP/cmd.err" ] || fail "$v wrote to stderr: $(cat "$TMP/cmd.err")"
done
ok "--help, -h, --version, -V: exit 0; the version is 'portfwd (libasyncore) X.Y.Z'"

# A wrong option: exit 2, exactly two lines on stderr (what is wrong, then
# the hint), nothing on stdout.
bad_value() { # MESSAGE-REGEX ARGS...
    local msg=$1
    shift
    expect_status 2 "$PF" "$@"
    [ "$(wc -l <"$TMP/cmd.err")" -eq 2 ] || fail "'$*': $(wc -l <"$TMP/cmd.err") lines on stderr, want 2: $(cat "$TMP/cmd.err")"
    head -n1 "$TMP/cmd.err" | grep -Eq -- "^portfwd: .*$msg" || fail "'$*': message '$(cat "$TMP/cmd.err")', want /$msg/"
    [ "$(tail -n1 "$TMP/cmd.err")" = "Try 'portfwd --help' for more information." ] ||
        fail "'$*': no hint: $(cat "$TMP/cmd.err")"
    [ ! -s "$TMP/cmd.out" ] || fail "'$*' wrote to stdout: $(head -c 200 "$TMP/cmd.out")"
}
R=(-p 0 -r 127.0.0.1 -P 9)
bad_value 'invalid value for --splice' --splice sometimes "${R[@]}"
bad_value 'invalid value for --threads' --threads 0 "${R[@]}"
bad_value 'invalid value for --threads' --threads 65 "${R[@]}"
bad_value 'invalid value for --threads' --threads two "${R[@]}"
bad_value 'invalid value for --buffer' --buffer 10 "${R[@]}"
bad_value 'invalid value for --connect-timeout' --connect-timeout -1 "${R[@]}"
bad_value 'invalid value for --connect-timeout' --connect-timeout abc "${R[@]}"
bad_value 'invalid value for --idle-timeout' --idle-timeout 1s "${R[@]}"
bad_value 'invalid value for --drain-timeout' --drain-timeout nan "${R[@]}"
bad_value 'invalid value for --max-conns' --max-conns 0 "${R[@]}"
bad_value 'invalid value for --backlog' -b 0 "${R[@]}"
bad_value "unrecognized option '--bogus'" --bogus "${R[@]}"
bad_value "invalid option -- 'Z'" -Z "${R[@]}"
bad_value "option '--threads' requires an argument" "${R[@]}" --threads
bad_value "unexpected argument 'extra'" "${R[@]}" extra
bad_value 'do not go together' -c /dev/null -p 1
bad_value 'do not go together' -c /dev/null -r 127.0.0.1 -P 9
ok "bad values, unknown options, extra words, -c with -p/-r/-P: exit 2, one line and the hint"

# -l, -p, -r, -P are values on their own (issue 8 item 10): a '#', a blank
# or a '[' in one is an error, not a comment, a second word or an option.
bad_value "bad connect address '127.0.0.1 80 #'" -p 0 -r '127.0.0.1 80 #' -P 9
bad_value "bad connect port '9 #'" -p 0 -r 127.0.0.1 -P '9 #'
bad_value "bad connect port '9\[timeout=1\]'" -p 0 -r 127.0.0.1 -P '9[timeout=1]'
bad_value "bad bind port '0 127.0.0.1 9'" -p '0 127.0.0.1 9' -r 127.0.0.1 -P 9
bad_value "bad bind address '127.0.0.1 #'" -l '127.0.0.1 #' -p 0 -r 127.0.0.1 -P 9
bad_value "bad connect address ''" -p 0 -r '' -P 9
ok "-l/-p/-r/-P values with '#', blanks or '[': exit 2, named whole"

# A bad AC_POLLER names the variable; a startup failure prints one error
# and no stats block (item 19).
startup_fails() { # WHAT REGEX [VAR=VALUE...] COMMAND...: exit 1, one line /^portfwd: REGEX/
    local what=$1 re=$2
    shift 2
    expect_status 1 env "$@"
    [ "$(wc -l <"$TMP/cmd.err")" -eq 1 ] && grep -Eq -- "^portfwd: $re" "$TMP/cmd.err" ||
        fail "$what: stderr '$(cat "$TMP/cmd.err")', want one line /$re/"
}
# (portfwd names it, or the library does through the log hook.)
startup_fails "AC_POLLER=bogus" '(error|warning): AC_POLLER=bogus(: | is )not .*epoll, poll or select' \
    AC_POLLER=bogus "$PF" -p 0 -r 127.0.0.1 -P 9
startup_fails "an unreadable file" "error: $TMP/none.conf: No such file or directory$" "$PF" -c "$TMP/none.conf"
ok "AC_POLLER=bogus, a missing file: exit 1, one error line, no stats"

# A used port: exit 1.
start_py echo "$TMP/echo_server.py"
E=$PY_PORT
startup_fails "port in use" "error: cannot listen on 127.0.0.1 port $E: Address already in use$" \
    "$PF" -p "$E" -r 127.0.0.1 -P 9
ok "a port in use: exit 1, one line 'cannot listen', no stats"

# ---- IPv6
# echo6 HOST PORT BYTES: an echo round trip from the given family.
echo6() {
    timeout 20 python3 - "$@" <<'EOF'
import os, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port), timeout=10)
data = os.urandom(n)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = bytearray()
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
assert got == data, "%d bytes of %d" % (len(got), n)
EOF
}
if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
    start_py echo6 "$TMP/echo_server.py" ::1
    E6=$PY_PORT
    start_pf v6 -v -l ::1 -p 0 -r ::1 -P "$E6"
    echo6 ::1 "$PF_PORT" 300000 || fail "IPv6 to IPv6"
    line=$(wait_line v6 ' via .*done-remote-closed' 10)
    [[ $line =~ debug:\ ::1\ via ]] || fail "IPv6 client address: $line"
    stop "$PF_PID"
    start_pf v46 -v -l 127.0.0.1 -p 0 -r ::1 -P "$E6"
    echo6 127.0.0.1 "$PF_PORT" 300000 || fail "IPv4 to IPv6"
    stop "$PF_PID"
    start_pf v64 -v -l ::1 -p 0 -r 127.0.0.1 -P "$E"
    echo6 ::1 "$PF_PORT" 300000 || fail "IPv6 to IPv4"
    stop "$PF_PID"
    P6=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::1", 0)); print(s.getsockname()[1])')
    printf '[::1] %s [::1] %s\n::1 %s 127.0.0.1 %s\n' "$P6" "$E6" "$(free_port)" "$E" >"$TMP/v6.conf"
    start_pf v6conf -v -c "$TMP/v6.conf"
    echo6 ::1 "$P6" 300000 || fail "[::1] rule"
    p2=$(pf_ports v6conf | sed -n 2p)
    echo6 ::1 "$p2" 1000 || fail "::1 rule"
    stop "$PF_PID"
    ok "IPv6: ::1 to ::1, 127.0.0.1 to ::1, ::1 to 127.0.0.1, '[::1]' and '::1' in a config file"
else
    echo "SKIP part: no ::1 here"
fi

# ---- --threads 2
start_pf thr -v --threads 2 -b 1024 -p 0 -r 127.0.0.1 -P "$E"
threads=$(ls "/proc/$PF_PID/task" | wc -l)
[ "$threads" -ge 2 ] || fail "--threads 2: $threads threads"
out=$(echo_clients "$PF_PORT" --clients 300 --bytes 20000 2>&1) || fail "--threads 2: $out"
out=$(echo_clients "$PF_PORT" --clients 300 --bytes 20000 2>&1) || fail "--threads 2, again: $out"
for _ in $(seq 100); do [ "$(conn_lines thr 'done-remote-closed$')" -ge 600 ] && break; sleep 0.05; done
[ "$(conn_lines thr 'done-remote-closed$')" -eq 600 ] || fail "--threads 2: $(conn_lines thr 'done-remote-closed$') lines, not 600"
stop "$PF_PID"
grep -q "active 0, total 600, refused 0, errors 0, bytes in 12000000, out 12000000" "$TMP/thr.err" ||
    fail "--threads 2 exit stats: $(grep -A1 'stats (exit)' "$TMP/thr.err" | tail -n1)"
ok "--threads 2: $threads threads, 2 x 300 connections at once all served, stats add up"

# ---- --source, --idle-timeout, --keepalive
cat >"$TMP/peer.py" <<'EOF'
# Tells each client its address as seen here, then echoes.
import socket, sys, threading
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(8)
print(ls.getsockname()[1], flush=True)
def serve(c, a):
    c.sendall(("%s\n" % a[0]).encode())
    while True:
        b = c.recv(65536)
        if not b:
            break
        c.sendall(b)
    c.close()
while True:
    c, a = ls.accept()
    threading.Thread(target=serve, args=(c, a), daemon=True).start()
EOF
start_py peer "$TMP/peer.py"
PEER=$PY_PORT
start_pf opt -v --source 127.0.0.2 --idle-timeout 0.7 --keepalive -p 0 -r 127.0.0.1 -P "$PEER"
port=$PF_PORT
timeout 20 python3 - "$port" "$PEER" >"$TMP/ss.out" <<'EOF' || fail "--source / --idle-timeout / --keepalive"
import socket, subprocess, sys, time
port, peer = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
f = s.makefile("rb")
assert f.readline() == b"127.0.0.2\n", "--source 127.0.0.2: the remote saw another address"
try:
    ss = subprocess.run(["ss", "-tnoH", "state", "established"], capture_output=True,
                        text=True, timeout=5).stdout
    print(ss)
except FileNotFoundError:
    pass
t = time.monotonic()
try:
    assert s.recv(1) == b""
except ConnectionResetError:
    pass
secs = time.monotonic() - t
assert 0.3 < secs < 8, "idle connection closed after %.2f s, --idle-timeout 0.7" % secs
EOF
ok "--source 127.0.0.2: the remote sees 127.0.0.2"
line=$(wait_line opt ' via .*, idle-timeout$' 10)
ok "--idle-timeout 0.7: an idle connection is closed; log: ${line#portfwd: info: }"
if command -v ss >/dev/null; then
    # portfwd's two sockets: the accepted one (local port $port) and the
    # outgoing one (from 127.0.0.2 to $PEER); both with a keepalive timer.
    grep -Eq "127\.0\.0\.1:$port +127\.0\.0\.1:[0-9]+ .*timer:\(keepalive" "$TMP/ss.out" ||
        fail "--keepalive: the client side has no keepalive timer: $(grep ":$port " "$TMP/ss.out")"
    grep -Eq "127\.0\.0\.2:[0-9]+ +127\.0\.0\.1:$PEER .*timer:\(keepalive" "$TMP/ss.out" ||
        fail "--keepalive: the remote side has no keepalive timer: $(grep ":$PEER " "$TMP/ss.out")"
    ok "--keepalive: both of portfwd's sockets have a keepalive timer"
else
    echo "SKIP part: no ss to see --keepalive"
fi
stop "$PF_PID"

# ---- -q: forwards, logs no info line
qport=$(free_port)
start fwdq "$PF" -q -p "$qport" -r 127.0.0.1 -P "$E"
qpid=$PID
for _ in $(seq 100); do
    echo6 127.0.0.1 "$qport" 1000 2>/dev/null && break
    sleep 0.1
done
echo6 127.0.0.1 "$qport" 5000 || fail "-q: no forwarding"
stop "$qpid"
! grep -q 'info:' "$TMP/fwdq.err" || fail "-q: info lines: $(grep info: "$TMP/fwdq.err" | head -3)"
ok "-q: forwards, logs no info line"

# ---- --no-splice: the bytes go through the buffered path, the stats say so
start_pf fwdns -v --no-splice -p 0 -r 127.0.0.1 -P "$E"
out=$(echo_clients "$PF_PORT" --bytes 1000000 2>&1) || fail "--no-splice: $out"
stop "$PF_PID"
grep -Eq "bytes in 1000000, out 1000000, spliced 0$" "$TMP/fwdns.err" ||
    fail "--no-splice stats: $(grep spliced "$TMP/fwdns.err")"
ok "--no-splice: 1 MB each way, no connection spliced"

# ---- the log: a line per connection with -v only; the counters always
start_pf fwdlog -p 0 -r 127.0.0.1 -P "$E"
echo6 127.0.0.1 "$PF_PORT" 3000 || fail "no -v: no forwarding"
echo6 127.0.0.1 "$PF_PORT" 3000 || fail "no -v: no forwarding"
stop "$PF_PID"
grep -q "bytes in 6000, out 6000" "$TMP/fwdlog.err" || fail "no -v: no stats at exit: $(cat "$TMP/fwdlog.err")"
[ "$(conn_lines fwdlog ' via ')" -eq 0 ] || fail "no -v: connection lines: $(grep ' via ' "$TMP/fwdlog.err")"
ok "without -v: no line per connection, the stats at exit count both"

# ---- --splice: auto copies small exchanges and splices bulk; always, never
for mode in auto always never; do
    start_pf "sp$mode" -v --splice "$mode" -p 0 -r 127.0.0.1 -P "$E"
    echo6 127.0.0.1 "$PF_PORT" 1000 || fail "--splice $mode: small"
    out=$(echo_clients "$PF_PORT" --bytes 4000000 2>&1) || fail "--splice $mode: $out"
    stop "$PF_PID"
    case $mode in
    auto) want=1 ;;   # the small exchange was copied, the 4 MB spliced
    always) want=2 ;; # both spliced
    never) want=0 ;;
    esac
    grep -Eq "active 0, total 2, refused 0, errors 0, bytes in 4001000, out 4001000, spliced $want$" "$TMP/sp$mode.err" ||
        fail "--splice $mode: $(grep spliced "$TMP/sp$mode.err")"
done
ok "--splice auto: 1000 B copied, 4 MB spliced; always: both spliced; never: none"

# ---- rinetd's own command line works: -f (foreground) and -c FILE
printf '127.0.0.1 0 127.0.0.1 %s\n' "$E" >"$TMP/rinetd.conf"
start_pf fwdf -v -f -c "$TMP/rinetd.conf"
out=$(echo_clients "$PF_PORT" --bytes 20000 2>&1) || fail "rinetd -f -c FILE: $out"
stop "$PF_PID"
ok "rinetd's command line (-f -c FILE) runs unchanged"

# Wrong -p/-P values and missing ones are wrong options too (exit 2, per
# the man page).  Checked last.
bad_value 'port' -p 70000 -r 127.0.0.1 -P 9
bad_value 'port' -p 0 -r 127.0.0.1 -P 0
bad_value 'port' -p 0 -r 127.0.0.1 -P 99999
bad_value '-p, -r and -P' -p 0 -r 127.0.0.1
bad_value '-p, -r and -P' -P 9
ok "bad or missing -p/-P: exit 2 with a message"
no_sanitizer_reports
