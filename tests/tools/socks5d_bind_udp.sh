#!/usr/bin/env bash
# socks5d's BIND and UDP ASSOCIATE (RFC 1928 §4, §7), driven by a client of
# our own (socks5d_udp_client.py, Python's socket module) against UDP echo
# servers and peers it runs itself, all on loopback:
#   - UDP round trips through the relay to 127.0.0.1, to "localhost" and to
#     ::1 (socks5d listening on ::1), 1 B to 60 KB, bytes compared; from a
#     client that named its port in the request and from one that did not;
#     from an IPv4 client of an IPv6 listener (::ffff:127.0.0.1); the bytes
#     each way in socks5d's request line;
#   - FRAG != 0, a datagram from another port of the client's IP, malformed
#     headers: not relayed, and logged (-v) as dropped; --deny-dest: not
#     relayed, either way; -b: the datagrams leave from its address;
#   - closing the TCP connection ends the association (nothing relayed
#     afterwards, socks5d's descriptors back to what they were); closing it
#     while names are looked up (under ASan: no callback into freed memory);
#   - BIND: both replies, the second naming the peer, bytes both ways;
#     BIND with nobody connecting within --connect-timeout: a failure reply.
# socks5d stops cleanly (SIGTERM, exit 0) and, under the sanitizers,
# reports nothing.
# shellcheck source=tests/tools/socks5d_common.bash
source "$(dirname "${BASH_SOURCE[0]}")/socks5d_common.bash"

UDP_CLIENT=$S5_TOOLS/socks5d_udp_client.py

# check HOST PORT CHECK [ARGS...]: one check of the client; its "ok" lines
# are shown, a failure fails the test.
check() {
    local rc=0
    timeout 120 python3 "$UDP_CLIENT" "$@" >"$TMP/check.out" 2>"$TMP/check.err" || rc=$?
    cat "$TMP/check.out"
    [ $rc -eq 0 ] || fail "check $3 (socks5d at $1 port $2) exited $rc: $(cat "$TMP/check.err")"
}

# count NAME REGEX: lines of NAME's log matching REGEX.
count() {
    grep -Ec -- "$2" "$TMP/$1.err" || true
}

# udp_line NAME UP DOWN: a request line says an association relayed UP
# payload bytes up and DOWN down (they are logged when it ends).
udp_line() {
    local re="cmd=udp-associate .*reply=succeeded\(0\) up=$2 down=$3 "
    local deadline=$((SECONDS + 10))
    until grep -Eq -- "$re" "$TMP/$1.err"; do
        [ $SECONDS -lt $deadline ] || fail "no udp-associate line with up=$2 down=$3 from $1"
        sleep 0.05
    done
}

# -v: a line per datagram dropped, which the drop check counts.
start_s5 v4 -i 127.0.0.1 -p 0 --connect-timeout 2 -v
check 127.0.0.1 "$S5_PORT" udp4
udp_line v4 70913 70913 # 1 + 512 + 1400 + 9000 + 60000 bytes each way
check 127.0.0.1 "$S5_PORT" udp-name
frag=$(count v4 'dropped: fragment') other=$(count v4 'dropped: not from the client')
bad=$(count v4 'dropped: malformed header')
check 127.0.0.1 "$S5_PORT" udp-drop
udp_line v4 9 9 # "first" and "last"
frag=$(($(count v4 'dropped: fragment') - frag))
other=$(($(count v4 'dropped: not from the client') - other))
bad=$(($(count v4 'dropped: malformed header') - bad))
if [ $frag -ne 2 ] || [ $other -ne 1 ] || [ $bad -ne 4 ]; then
    fail "socks5d logged $frag fragments, $other strangers, $bad malformed headers dropped: not 2, 1, 4"
fi
ok "socks5d logged each datagram dropped, with why"
for c in udp-close udp-cancel bind bind-timeout; do
    check 127.0.0.1 "$S5_PORT" "$c" --pid "$S5_PID"
done
udp_line v4 16 16 # udp-close: "before the close", and nothing after it
stop "$S5_PID"

start_s5 deny -i 127.0.0.1 -p 0 --deny-dest 127.0.0.2/32
check 127.0.0.1 "$S5_PORT" udp-deny
stop "$S5_PID"

# -b: the source address of the datagrams sent to destinations.
start_s5 source -i 127.0.0.1 -p 0 -b 127.0.0.3
check 127.0.0.1 "$S5_PORT" udp-source=127.0.0.3
stop "$S5_PID"

if have_ipv6; then
    start_s5 v6 -i ::1 -p 0
    for c in udp6 udp-name udp-close bind; do
        check ::1 "$S5_PORT" "$c" --pid "$S5_PID"
    done
    stop "$S5_PID"
    # An IPv4 client of an IPv6 socket (::ffff:127.0.0.1, as on a dual-stack
    # "::" listener, but on loopback only): its relay is an IPv4 one.
    start_s5 mapped -i ::ffff:127.0.0.1 -p 0
    for c in udp4 udp-close; do
        check 127.0.0.1 "$S5_PORT" "$c" --pid "$S5_PID"
    done
    stop "$S5_PID"
else
    echo "# no IPv6 on loopback: the ::1 and ::ffff:127.0.0.1 checks are skipped"
fi

no_sanitizer_reports
ok "socks5d BIND and UDP ASSOCIATE"
