#!/usr/bin/env bash
# portfwd's allow / deny on IPv4, IPv6 and dual-stack ("::") listeners
# (issue 8 item 5: an IPv4 client of a "::" listener arrives as
# ::ffff:127.0.0.1 and passed "deny 127.0.0.1").  Each pattern form is
# tried globally and under each rule, with three rules listening on
# 127.0.0.1, ::1 and ::, and clients from 127.0.0.1, 127.0.0.2 and ::1:
# which are forwarded and which closed must be exactly as expected, and
# the dual-stack listener logs its IPv4 clients as IPv4.  Then duplicate
# bind addresses (item 6): refused before listening, naming both lines,
# with and without --threads, written as literals or as a host name.
# shellcheck source=tests/tools/portfwd_common.bash
source "$(dirname "$0")/portfwd_common.bash"

python3 -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::", 0)); s.listen(); c = socket.create_connection(("127.0.0.1", s.getsockname()[1]), timeout=2)' 2>/dev/null ||
    { echo "SKIP: no dual-stack IPv6 here"; exit 77; }

start_py echo "$TMP/echo_server.py"
E=$PY_PORT

# tries.py P4 P6 PD [P4 P6 PD...]: for each portfwd, a line of 7 tries,
# each "Y" (echoed) or "n" (closed without data): 127.0.0.1 and 127.0.0.2
# to P4; ::1 to P6; 127.0.0.1, 127.0.0.2 and ::1 to PD; and 127.0.0.1 to
# PD through its IPv4-mapped IPv6 address.  (One python for all: under
# load each start of one takes a second.)
cat >"$TMP/tries.py" <<'PY'
import os, socket, sys
def one(family, src, dst, port):
    s = socket.socket(family)
    s.settimeout(10)
    s.bind((src, 0))
    s.connect((dst, port))
    data = os.urandom(1000)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
    except OSError:
        got = b""
    s.close()
    if got == data:
        return "Y"
    assert got == b"", "%d bytes that are not the echo" % len(got)
    return "n"
V4, V6 = socket.AF_INET, socket.AF_INET6
ports = [int(a) for a in sys.argv[1:]]
for i in range(0, len(ports), 3):
    p4, p6, pd = ports[i:i + 3]
    print(one(V4, "127.0.0.1", "127.0.0.1", p4) + one(V4, "127.0.0.2", "127.0.0.1", p4) +
          one(V6, "::1", "::1", p6) + one(V4, "127.0.0.1", "127.0.0.1", pd) +
          one(V4, "127.0.0.2", "127.0.0.1", pd) + one(V6, "::1", "::1", pd) +
          one(V6, "::ffff:127.0.0.1", "::ffff:127.0.0.1", pd), flush=True)
PY

n=0
LINES=() WANTS=() FORMS=() PF_PIDS=()
# expect PATTERN-LINE WANT: a portfwd with the line globally, another with
# it under each rule; all are tried at once by try_all.
expect() {
    local line=$1 want=$2 form
    for form in global rule; do
        n=$((n + 1))
        if [ $form = global ]; then
            printf '%s\n127.0.0.1 0 127.0.0.1 %s\n::1 0 127.0.0.1 %s\n:: 0 127.0.0.1 %s\n' \
                "$line" "$E" "$E" "$E" >"$TMP/a$n.conf"
        else
            printf '127.0.0.1 0 127.0.0.1 %s\n%s\n::1 0 127.0.0.1 %s\n%s\n:: 0 127.0.0.1 %s\n%s\n' \
                "$E" "$line" "$E" "$line" "$E" "$line" >"$TMP/a$n.conf"
        fi
        start "a$n" "$PF" -v -c "$TMP/a$n.conf"
        PF_PIDS+=("$PID") LINES+=("$line") WANTS+=("$want") FORMS+=("$form")
    done
}
try_all() {
    local i ports=() got
    for i in $(seq "$n"); do
        local deadline=$((SECONDS + 60))
        while [ "$(pf_ports "a$i" | wc -l)" -lt 3 ] && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
        [ "$(pf_ports "a$i" | wc -l)" -eq 3 ] || fail "a$i: not 3 listeners: $(cat "$TMP/a$i.err")"
        ports+=($(pf_ports "a$i"))
    done
    timeout 120 python3 "$TMP/tries.py" "${ports[@]}" >"$TMP/tries.out" || fail "the tries failed"
    for i in $(seq "$n"); do
        got=$(sed -n "${i}p" "$TMP/tries.out")
        [ "$got" = "${WANTS[i - 1]}" ] ||
            fail "'${LINES[i - 1]}' (${FORMS[i - 1]}): $got, want ${WANTS[i - 1]} (v4 .1 .2 to 127.0.0.1; ::1 to ::1; .1 .2 ::1 ::ffff:.1 to ::)"
        [ "${FORMS[i - 1]}" = rule ] && echo "ok - '${LINES[i - 1]}': $got, globally and per rule"
    done
    for i in "${PF_PIDS[@]}"; do stop "$i"; done
}
#                               4:.1 .2  6:::1  ::.1 .2 ::1 mapped
expect "deny 127.0.0.1"          nYYnYYn
expect "deny 127.*"              nnYnnYn
expect "deny 127.0.0.?"          nnYnnYn
expect "deny 12?.0.0.2"          YnYYnYY
expect "deny ::ffff:127.0.0.1"   nYYnYYn
expect "deny ::1"                YYnYYnY
expect "deny 0:0:0:0:0:0:0:1"    YYnYYnY
expect "deny 0000:0000:0000:0000:0000:0000:0000:0001" YYnYYnY
expect "deny *:*"                YYnYYnY
expect "deny 0:0:0:0:0:0:0:?"    YYnYYnY
expect "deny ::*"                YYnYYnY
expect "deny *"                  nnnnnnn
expect "allow 127.0.0.1"         YnnYnnY
expect "allow 127.*"             YYnYYnY
expect "allow ::1"               nnYnnYn
expect "allow 0:0:0:0:0:0:0:1"   nnYnnYn
expect "allow 0000:*:0001"       nnYnnYn
expect "allow ::ffff:127.0.0.2"  nYnnYnn
try_all
ok "$n configurations: every allow / deny form on IPv4, IPv6 and dual-stack listeners"

# The dual-stack listener logs an IPv4 client as IPv4, and a refused one
# as denied.
grep -Eq '^portfwd: debug: 127\.0\.0\.2 via :::0 -> 127\.0\.0\.1:[0-9]+: .*, done-remote-closed$' "$TMP/a1.err" ||
    fail "no IPv4 client line of the :: rule: $(grep ':::0' "$TMP/a1.err")"
! grep -q '::ffff:' "$TMP"/a*.err || fail "a client logged as ::ffff:...: $(grep -h -m1 '::ffff:' "$TMP"/a*.err)"
grep -Eq '^portfwd: debug: 127\.0\.0\.1 via :::0 -> .*: 0 bytes in, 0 out, .*, not-allowed$' "$TMP/a1.err" ||
    fail "the denied IPv4 client of the :: rule: $(grep ':::0' "$TMP/a1.err")"
ok "the dual-stack listener logs IPv4 clients as 127.0.0.1"

# ---- Duplicate bind addresses: exit 1 before listening, both lines named.
P=$(free_port)
dup() { # WANT-REGEX FILE-TEXT [OPTIONS]
    local want=$1 text=$2 opt
    shift 2
    printf '%s' "$text" >"$TMP/dup.conf"
    for opt in "" --threads=2; do
        expect_status 1 "$PF" $opt -c "$TMP/dup.conf"
        [ "$(wc -l <"$TMP/cmd.err")" -eq 1 ] && grep -Eq -- "^portfwd: error: $TMP/dup.conf:$want$" "$TMP/cmd.err" ||
            fail "duplicate ${opt:-without --threads}: '$(cat "$TMP/cmd.err")', want /$want/"
        # (one line, the error: it never said "listening on")
    done
}
dup "3: 127\\.0\\.0\\.1 port $P overlaps line 1's 127\\.0\\.0\\.1 port $P \\(one rule per address\\)" \
    "127.0.0.1 $P 127.0.0.1 $E
# the same address, another remote
127.0.0.1 $P 127.0.0.2 $E
"
dup "2: 0\\.0\\.0\\.0 port $P overlaps line 1's 127\\.0\\.0\\.1 port $P .*" \
    "127.0.0.1 $P 127.0.0.1 $E
0.0.0.0 $P 127.0.0.1 $E
"
dup "2: :: port $P overlaps line 1's 127\\.0\\.0\\.1 port $P .*" \
    "127.0.0.1 $P 127.0.0.1 $E
:: $P 127.0.0.1 $E
"
dup "2: 0:0:0:0:0:0:0:1 port $P overlaps line 1's ::1 port $P .*" \
    "[::1] $P 127.0.0.1 $E
0:0:0:0:0:0:0:1 $P 127.0.0.1 $E
"
if getent hosts localhost | grep -q '^127\.0\.0\.1 '; then
    dup "2: localhost port $P overlaps line 1's 127\\.0\\.0\\.1 port $P .*" \
        "127.0.0.1 $P 127.0.0.1 $E
localhost $P 127.0.0.1 $E
"
fi
# Different addresses on one port, different ports, two port 0 rules: fine.
# (Another program may take the port free_port let go: then try another.)
for try in 1 2 3; do
    P=$(free_port)
    printf '127.0.0.1 %s 127.0.0.1 %s\n127.0.0.2 %s 127.0.0.1 %s\n127.0.0.1 0 127.0.0.1 %s\n127.0.0.1 0 127.0.0.1 %s\n' \
        "$P" "$E" "$P" "$E" "$E" "$E" >"$TMP/nodup.conf"
    start "nodup$try" "$PF" -v --threads 2 -c "$TMP/nodup.conf"
    nodup=$PID
    deadline=$((SECONDS + 60))
    while [ "$(pf_ports "nodup$try" | wc -l)" -lt 4 ] && kill -0 "$nodup" 2>/dev/null &&
        [ $SECONDS -lt $deadline ]; do
        sleep 0.05
    done
    kill -0 "$nodup" 2>/dev/null && break
    grep -q 'Address already in use' "$TMP/nodup$try.err" || fail "nodup: $(cat "$TMP/nodup$try.err")"
done
[ "$(pf_ports "nodup$try" | wc -l)" -eq 4 ] || fail "not 4 listeners: $(pf_ports "nodup$try" | tr '\n' ' ')"
stop "$nodup"
ok "duplicate bind addresses (same, wildcard, ::, IPv6 spellings, a name): exit 1 naming both lines, with and without --threads"
no_sanitizer_reports
