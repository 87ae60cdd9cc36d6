#!/usr/bin/env bash
# socks5d over IPv6: listening on ::1 (-i ::1), curl --socks5 and
# --socks5-hostname through [::1]:PORT to an IPv6 destination [::1] (ATYP
# 4 and a name) and to an IPv4 one; a request with ATYP 4 gets a reply
# with ATYP 4 and the outgoing socket's own address (the destination sees
# the connection come from there); the log writes IPv6 clients and
# destinations as [::1]:PORT; --deny-dest ::1/128 refuses [::1] (2) and
# --deny-dest 127.0.0.0/8 also refuses ::ffff:127.0.0.1 (an IPv4-mapped
# address is its IPv4 address).
# shellcheck source=tests/tools/socks5d_common.bash
source "$(dirname "$0")/socks5d_common.bash"
need_cmd curl
have_ipv6 || { echo "SKIP: no IPv6 on loopback"; exit 77; }

want=$(make_file blob $((2 << 20)))
start_http http6 ::1
H6=$HTTP_PORT
start_http http4 127.0.0.1
H4=$HTTP_PORT
cat >"$TMP/peer.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET6)
s.bind(("::1", 0))
s.listen(64)
print(s.getsockname()[1], flush=True)
while True:
    c, a = s.accept()
    c.sendall(("%s %d\n" % (a[0], a[1])).encode())
    c.close()
EOF
start_py peer "$TMP/peer.py"
PEER=$PY_PORT

start_s5 s5 -i ::1 -p 0
P=$S5_PORT
grep -Eq 'listening on (\[::1\]|::1) port' "$TMP/s5.err" || fail "startup line: $(grep 'listening' "$TMP/s5.err")"
[ "$(curl_sha --socks5 "[::1]:$P" "http://[::1]:$H6/blob")" = "$want" ] || fail "--socks5 to [::1]: body differs"
wait_request s5 "client=\[::1\]:[0-9]+ user=- cmd=connect dest=\[::1\]:$H6 reply=succeeded\(0\) " >/dev/null
[ "$(curl_sha --socks5-hostname "[::1]:$P" "http://[::1]:$H6/blob")" = "$want" ] ||
    fail "--socks5-hostname to [::1]: body differs"
[ "$(curl_sha --socks5-hostname "[::1]:$P" "http://127.0.0.1:$H4/blob")" = "$want" ] ||
    fail "--socks5-hostname to 127.0.0.1 from an IPv6 client: body differs"
[ "$(curl_sha --socks5 "[::1]:$P" "http://127.0.0.1:$H4/blob")" = "$want" ] ||
    fail "--socks5 to 127.0.0.1 from an IPv6 client: body differs"
ok "curl through [::1]:PORT to [::1] and to 127.0.0.1, --socks5 and --socks5-hostname: bodies intact"

out=$(timeout 30 python3 - "$P" "$PEER" <<'EOF'
import os, sys
sys.path.insert(0, os.environ["S5_TOOLS"])
import socks5_client as sc
s = sc.connect(("::1", int(sys.argv[1])))
assert sc.handshake(s) == 0
sc.send(s, sc.request(1, "::1", int(sys.argv[2])))
assert s.recv(4, 0x2)[3] == 4, "the reply's ATYP is not 4"  # MSG_PEEK
rep, addr, port = sc.read_reply(s)
seen = sc.read_all(s).decode().split()
assert rep == 0 and [addr, str(port)] == seen, "reply %d BND %s:%d; the destination saw %s" % (rep, addr, port, seen)
print(addr, port)
EOF
) || fail "ATYP 4: $out"
wait_request s5 "dest=\[::1\]:$PEER reply=succeeded\(0\) " >/dev/null
ok "ATYP 4 request: reply ATYP 4, BND [${out% *}]:${out#* } is where the destination saw us"
stop "$S5_PID"

start_s5 deny -i ::1 -p 0 --deny-dest ::1/128 --deny-dest 127.0.0.0/8
P=$S5_PORT
want_s5c "method 0 reply 2 0.0.0.0 0 closed" "[::1]:$P" ::1 "$PEER"
want_s5c "method 0 reply 2 0.0.0.0 0 closed" "[::1]:$P" ::ffff:127.0.0.1 "$H4"
want_s5c "method 0 reply 2 0.0.0.0 0 closed" "[::1]:$P" ::ffff:7f00:2 "$H4"
want_s5c "method 0 reply 2 0.0.0.0 0 closed" "[::1]:$P" 0:0:0:0:0:0:0:1 "$PEER" --atyp 3
wait_request deny "client=\[::1\]:[0-9]+ user=- cmd=connect dest=\[::1\]:$PEER reply=not-allowed\(2\) " >/dev/null
stop "$S5_PID"
ok "--deny-dest ::1/128 and 127.0.0.0/8: [::1], ::ffff:127.0.0.1, ::ffff:127.0.0.2 and the name 0:0:0:0:0:0:0:1 get 2"
no_sanitizer_reports
