#!/usr/bin/env bash
# socks5d with other real clients, 4 MiB of random bytes over HTTP, every
# body checked by sha256: ncat --proxy-type socks5 (by address, and by
# name with --proxy-dns remote; ncat half-closes after its request, so the
# response must still come whole), ncat with --proxy-auth against -u/-P;
# proxychains4 with a config file of its own (strict_chain, quiet_mode,
# proxy_dns, socks5 127.0.0.1 PORT) running curl, by address and by name,
# and running ncat; proxychains4 with user and password.
# shellcheck source=tests/tools/socks5d_common.bash
source "$(dirname "$0")/socks5d_common.bash"
need_cmd ncat proxychains4 curl

want=$(make_file blob $((4 << 20)))
start_http http
H=$HTTP_PORT

# body_sha FILE: the sha256 of an HTTP response's body (after its headers).
body_sha() {
    python3 -c '
import hashlib, sys
data = open(sys.argv[1], "rb").read()
head, sep, body = data.partition(b"\r\n\r\n")
if not sep or not head.startswith(b"HTTP/1.1 200 "):
    raise SystemExit("no HTTP response: %r" % data[:80])
print(hashlib.sha256(body).hexdigest())' "$1"
}

# ncat_get NAME ARGS...: GET /blob through ncat ARGS; the body's sha256.
ncat_get() {
    local name=$1 rc=0
    shift
    printf 'GET /blob HTTP/1.0\r\nHost: x\r\n\r\n' |
        timeout 60 ncat "$@" >"$TMP/$name.resp" 2>"$TMP/$name.ncat" || rc=$?
    [ $rc -eq 0 ] || fail "ncat $* exited $rc: $(cat "$TMP/$name.ncat")"
    body_sha "$TMP/$name.resp" || fail "ncat $*: $(head -c 200 "$TMP/$name.resp")"
    rm -f "$TMP/$name.resp"
}

start_s5 s5 -p 0
P=$S5_PORT
[ "$(ncat_get n1 --proxy "127.0.0.1:$P" --proxy-type socks5 127.0.0.1 "$H")" = "$want" ] ||
    fail "ncat --proxy-type socks5: body differs"
wait_request s5 "cmd=connect dest=127\.0\.0\.1:$H reply=succeeded\(0\) " >/dev/null
[ "$(ncat_get n2 --proxy "127.0.0.1:$P" --proxy-type socks5 --proxy-dns remote localhost "$H")" = "$want" ] ||
    fail "ncat --proxy-dns remote: body differs"
wait_request s5 "cmd=connect dest=localhost:$H reply=succeeded\(0\) " >/dev/null
ok "ncat --proxy-type socks5, by address and by name (--proxy-dns remote): 4 MiB intact after ncat's half-close"

# proxychains4 with a config file of its own (no user's or system's).
cat >"$TMP/pc.conf" <<EOF
strict_chain
quiet_mode
proxy_dns
tcp_read_time_out 15000
tcp_connect_time_out 8000
[ProxyList]
socks5 127.0.0.1 $P
EOF
n=$(request_lines s5 | wc -l)
got=$(timeout 90 proxychains4 -q -f "$TMP/pc.conf" curl -sS --max-time 80 "http://127.0.0.1:$H/blob" |
    sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "proxychains4 curl http://127.0.0.1: body differs"
got=$(timeout 90 proxychains4 -q -f "$TMP/pc.conf" curl -sS --max-time 80 "http://localhost:$H/blob" |
    sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "proxychains4 curl http://localhost: body differs"
printf 'GET /blob HTTP/1.0\r\nHost: x\r\n\r\n' |
    timeout 60 proxychains4 -q -f "$TMP/pc.conf" ncat 127.0.0.1 "$H" >"$TMP/pc.resp" 2>"$TMP/pc.ncat" ||
    fail "proxychains4 ncat: $(cat "$TMP/pc.ncat")"
[ "$(body_sha "$TMP/pc.resp")" = "$want" ] || fail "proxychains4 ncat: body differs"
for _ in $(seq 100); do [ "$(request_lines s5 | wc -l)" -ge $((n + 3)) ] && break; sleep 0.05; done
[ "$(request_lines s5 | wc -l)" -eq $((n + 3)) ] ||
    fail "proxychains4: $(($(request_lines s5 | wc -l) - n)) request lines, not 3 (did it go around the proxy?)"
ok "proxychains4 (strict_chain, quiet_mode, proxy_dns): curl by address and by name, ncat; 3 requests seen"
stop "$S5_PID"

# With a user and password.
start_s5 auth -p 0 -u pcuser -P pcpass
P=$S5_PORT
[ "$(ncat_get n4 --proxy "127.0.0.1:$P" --proxy-type socks5 --proxy-auth pcuser:pcpass 127.0.0.1 "$H")" = "$want" ] ||
    fail "ncat --proxy-auth: body differs"
wait_request auth "user=pcuser cmd=connect dest=127\.0\.0\.1:$H reply=succeeded\(0\) " >/dev/null
sed -i "s/^socks5 .*/socks5 127.0.0.1 $P pcuser pcpass/" "$TMP/pc.conf"
got=$(timeout 90 proxychains4 -q -f "$TMP/pc.conf" curl -sS --max-time 80 "http://127.0.0.1:$H/blob" |
    sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "proxychains4 with a user: body differs"
[ "$(request_lines auth 'user=pcuser .*reply=succeeded' | wc -l)" -ge 1 ] || fail "no pcuser line"
sed -i "s/^socks5 .*/socks5 127.0.0.1 $P pcuser wrong/" "$TMP/pc.conf"
rc=0
timeout 60 proxychains4 -q -f "$TMP/pc.conf" curl -sS --max-time 30 "http://127.0.0.1:$H/blob" \
    >"$TMP/pcw.body" 2>/dev/null || rc=$?
[ $rc -ne 0 ] && [ ! -s "$TMP/pcw.body" ] || fail "proxychains4 with a wrong password: exit $rc, $(wc -c <"$TMP/pcw.body") bytes"
ok "ncat --proxy-auth and proxychains4 with user and password; a wrong password fetches nothing"
stop "$S5_PID"
no_sanitizer_reports
