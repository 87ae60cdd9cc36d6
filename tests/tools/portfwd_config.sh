#!/usr/bin/env bash
# portfwd -c: a rinetd file with several rules, comments (whole-line,
# indented, trailing), blank lines, a global allow and deny and per-rule
# deny / allow, [timeout=1] and logfile + logcommon.  Clients come from
# 127.0.0.1, .2 and .3 (all loopback): allowed ones are forwarded, the
# others closed with no data, logged as not-allowed (global) or denied
# (rule), in rinetd's "common" log form with the right byte counts.  The
# rule's idle timeout closes an idle connection.  The tab-separated log
# form without logcommon.  Malformed files (and unreadable ones, no rule,
# an unknown host): exit 1, a message with FILE:LINE, nothing listening.
# shellcheck source=tests/tools/portfwd_common.bash
source "$(dirname "$0")/portfwd_common.bash"

start_py echo "$TMP/echo_server.py"
E=$PY_PORT
P1=$(free_port) P2=$(free_port) P3=$(free_port)
cat >"$TMP/rinetd.conf" <<EOF
# portfwd test: an ordinary rinetd.conf
   # an indented comment

allow 127.0.0.*         # global: loopback only
deny 127.0.0.3

127.0.0.1 $P1 127.0.0.1 $E      # open to all allowed
127.0.0.1	$P2	127.0.0.1	$E
deny 127.0.0.2          # but not to .2
127.0.0.1 $P3 127.0.0.1 $E [timeout=1]
allow 127.0.0.2         # only .2 here

logfile $TMP/pf.log
logcommon
EOF
start_pf fwd -c "$TMP/rinetd.conf"
[ "$(pf_ports fwd | tr '\n' ' ')" = "$P1 $P2 $P3 " ] ||
    fail "listening on $(pf_ports fwd | tr '\n' ' '), want $P1 $P2 $P3"
ok "3 rules from a rinetd file with comments and blank lines"

# try PORT SOURCE-ADDR BYTES: echo BYTES through it from SOURCE-ADDR; prints
# "echo" or "closed" (no data, EOF or reset).
try() {
    timeout 20 python3 - "$@" <<'EOF'
import os, socket, sys
port, src, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.socket()
s.bind((src, 0))
s.settimeout(10)
s.connect(("127.0.0.1", port))
data = os.urandom(n)
try:
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got = bytearray()
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
except OSError:  # reset, broken pipe, or not connected any more
    got = None
if got == data:
    print("echo")
elif not got:
    print("closed")
else:
    print("wrong: %d bytes of %d" % (len(got), n))
EOF
}
expect_try() {
    local want=$1 got
    shift
    got=$(try "$@") || fail "client $*: failed"
    [ "$got" = "$want" ] || fail "port $1 from $2: '$got', want '$want'"
}
expect_try echo "$P1" 127.0.0.1 1000
expect_try echo "$P1" 127.0.0.2 2000
expect_try closed "$P1" 127.0.0.3 3000
expect_try echo "$P2" 127.0.0.1 4000
expect_try closed "$P2" 127.0.0.2 5000
expect_try closed "$P2" 127.0.0.3 6000
expect_try closed "$P3" 127.0.0.1 7000
expect_try echo "$P3" 127.0.0.2 8000
ok "global allow / deny and per-rule deny / allow: who is forwarded and who is closed"

# The rule's [timeout=1]: an idle connection is closed (and only on P3).
timeout 20 python3 - "$P3" <<'EOF' || fail "[timeout=1] did not close an idle connection"
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.2", 0))
s.settimeout(10)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"x")
assert s.recv(1) == b"x"
t = time.monotonic()
try:
    assert s.recv(1) == b""
except ConnectionResetError:
    pass
secs = time.monotonic() - t
assert 0.5 < secs < 8, "closed after %.2f s" % secs
EOF
ok "[timeout=1]: an idle connection is closed"

# The log: one line per connection, rinetd's common form.
for _ in $(seq 100); do
    [ "$(wc -l <"$TMP/pf.log")" -ge 9 ] && break
    sleep 0.05
done
[ "$(wc -l <"$TMP/pf.log")" -eq 9 ] || { cat "$TMP/pf.log"; fail "$(wc -l <"$TMP/pf.log") log lines, want 9"; }
T='\[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}\]'
check_log() { # CLIENT PORT RESULT BYTES
    local re="^$1 - - $T \"GET /rinetd-services/127\\.0\\.0\\.1/$2/127\\.0\\.0\\.1/$E/$3 HTTP/1\\.0\" 200 $4 - - - $4\$"
    grep -Eq "$re" "$TMP/pf.log" || { cat "$TMP/pf.log"; fail "no log line /$re/"; }
}
check_log 127.0.0.1 "$P1" done-remote-closed 1000
check_log 127.0.0.2 "$P1" done-remote-closed 2000
check_log 127.0.0.3 "$P1" not-allowed 0
check_log 127.0.0.1 "$P2" done-remote-closed 4000
check_log 127.0.0.2 "$P2" denied 0
check_log 127.0.0.3 "$P2" not-allowed 0
check_log 127.0.0.1 "$P3" denied 0
check_log 127.0.0.2 "$P3" done-remote-closed 8000
check_log 127.0.0.2 "$P3" idle-timeout 1
ok "logfile + logcommon: 9 lines in rinetd's common form, results and bytes right"
stop "$PF_PID"
grep -q "127.0.0.1:$P2 -> 127.0.0.1:$E: active 0, total 3, refused 2, errors 0, bytes in 4000, out 4000" \
    "$TMP/fwd.err" || fail "exit stats for rule 2: $(grep ":$P2 ->" "$TMP/fwd.err")"
ok "exit stats: refusals by allow / deny are counted"

# Without logcommon: rinetd's tab-separated lines.
P4=$(free_port)
printf '127.0.0.1 %s 127.0.0.1 %s\nlogfile %s\n' "$P4" "$E" "$TMP/tab.log" >"$TMP/tab.conf"
start_pf fwd2 -c "$TMP/tab.conf"
expect_try echo "$P4" 127.0.0.1 1234
stop "$PF_PID"
tab=$'\t'
re="^[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2}${tab}127\\.0\\.0\\.1${tab}127\\.0\\.0\\.1${tab}$P4${tab}127\\.0\\.0\\.1${tab}$E${tab}1234${tab}1234${tab}done-remote-closed\$"
grep -Eq "$re" "$TMP/tab.log" || { cat -A "$TMP/tab.log"; fail "tab-separated log line"; }
ok "logfile without logcommon: rinetd's tab-separated line"

# Malformed files: exit 1, FILE:LINE in the message, nothing listening.
P5=$(free_port)
n=0
bad() { # LINE-NUMBER REGEX-OF-MESSAGE LINES...
    local line=$1 msg=$2
    shift 2
    n=$((n + 1))
    local f=$TMP/bad$n.conf
    { printf '# bad file %d\n127.0.0.1 %s 127.0.0.1 %s\n' "$n" "$P5" "$E"; printf '%s\n' "$@"; } >"$f"
    expect_status 1 "$PF" -c "$f"
    grep -Eq -- "$f:$line: .*$msg" "$TMP/cmd.err" ||
        fail "$(printf '%s / ' "$@"): message '$(cat "$TMP/cmd.err")', want $f:$line: /$msg/"
    ! grep -q 'listening on' "$TMP/cmd.err" || fail "bad file $n: it listened"
}
bad 3 'UDP' "127.0.0.1 $P1 127.0.0.1 53/udp"
bad 4 "" "" "logfile"
bad 3 '' "127.0.0.1 $P1 127.0.0.1"
bad 3 'range' "127.0.0.1 70000 127.0.0.1 80"
bad 3 'range|port' "127.0.0.1 $P1 127.0.0.1 0x50"
bad 3 'pattern' "allow example.com"
bad 5 '' "allow 127.*" "" "deny"
bad 3 '' "127.0.0.1 $P1 127.0.0.1 80 [frobnicate=1]"
bad 3 '' "127.0.0.1 $P1 127.0.0.1 80 [timeout=abc]"
bad 3 '' "127.0.0.1 $P1 127.0.0.1 80 extra"
bad 3 'quote' 'logfile "unterminated'
bad 3 '' "logcommon please"
ok "$n malformed files: exit 1, FILE:LINE and a reason, nothing listening"
# Other failures before listening.
printf '# nothing here\nallow 127.*\n' >"$TMP/norule.conf"
expect_status 1 "$PF" -c "$TMP/norule.conf"
grep -q "norule.conf: no forwarding rule" "$TMP/cmd.err" || fail "no rule: $(cat "$TMP/cmd.err")"
expect_status 1 "$PF" -c "$TMP/does-not-exist.conf"
grep -q "does-not-exist.conf" "$TMP/cmd.err" || fail "missing file: $(cat "$TMP/cmd.err")"
printf '127.0.0.1 %s 127.0.0.1 %s\n127.0.0.1 %s no-such-host.invalid 80\n' "$P5" "$E" "$P1" >"$TMP/nohost.conf"
expect_status 1 "$PF" -c "$TMP/nohost.conf"
grep -q "nohost.conf:2: cannot resolve no-such-host.invalid" "$TMP/cmd.err" || fail "unknown host: $(cat "$TMP/cmd.err")"
! grep -q 'listening on' "$TMP/cmd.err" || fail "unknown host: it listened"
ok "no rule, a missing file, an unknown host: exit 1 with a message, before listening"
# (That nothing listened is what each run said: no "listening on" line, and
# it has exited.  Connecting to $P5 would prove nothing: another program
# may have been given that port since free_port let it go.)
no_sanitizer_reports
