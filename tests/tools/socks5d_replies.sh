#!/usr/bin/env bash
# socks5d's reply codes (RFC 1928 §6; SOCKS4's 90 and 91), each provoked
# for real and each logged with its name and code: succeeded (0) with the
# outgoing socket's own address and port in BND (the destination sees the
# connection come from there); a name that does not resolve (a .invalid
# name: 4); a refused port (5); a --deny-dest destination, by address, by
# a name written as an address, and by a name that resolves to a denied
# address (localhost with --deny-dest 127.0.0.0/8: 2); a client not in
# --allow (2), also on a dual-stack listener (-i ::, where an IPv4 client
# arrives as ::ffff:127.0.0.1: --allow 127.0.0.1/32 lets it in, --allow
# 10.0.0.0/8 keeps it out); an unknown command (7); an unknown address
# type (8); a connect that times out (--connect-timeout 2 to a listener
# whose backlog is full: 6, TTL expired, as socks5d(1) says); SOCKS4 and 4a: 90, and 91
# for a refused port and a name that does not resolve.  After each refusal
# the connection is closed.  -b 127.0.0.2: the destination sees the
# connection come from 127.0.0.2.  No open-proxy warning on 127.0.0.1, one
# on ::.
# shellcheck source=tests/tools/socks5d_common.bash
source "$(dirname "$0")/socks5d_common.bash"

# A server that tells each client the address it sees it come from.
cat >"$TMP/peer.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.bind((sys.argv[1], 0))
s.listen(64)
print(s.getsockname()[1], flush=True)
while True:
    c, a = s.accept()
    c.sendall(("%s %d\n" % (a[0], a[1])).encode())
    c.close()
EOF
start_py peer "$TMP/peer.py" 127.0.0.1
PEER=$PY_PORT
# A listener that never accepts, its backlog full: a connect to it hangs.
cat >"$TMP/blackhole.py" <<'EOF'
import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(0)
port = s.getsockname()[1]
held = []
for _ in range(4):  # fill the queue: from here on SYNs are dropped
    c = socket.socket()
    c.setblocking(False)
    c.connect_ex(("127.0.0.1", port))
    held.append(c)
time.sleep(0.5)
print(port, flush=True)
time.sleep(3600)
EOF
start_py hole "$TMP/blackhole.py"
HOLE=$PY_PORT
REFUSED=$(free_port)

start_s5 s5 -p 0 --connect-timeout 2 --deny-dest 127.0.0.2/32
P=127.0.0.1:$S5_PORT

# ---- 0: BND.ADDR and BND.PORT are where the destination sees us come from.
out=$(timeout 30 python3 - "$S5_PORT" "$PEER" <<'EOF'
import sys
sys.path.insert(0, __import__("os").environ["S5_TOOLS"])
import socks5_client as sc
s = sc.connect(("127.0.0.1", int(sys.argv[1])))
assert sc.handshake(s) == 0
sc.send(s, sc.request(1, "127.0.0.1", int(sys.argv[2])))
rep, addr, port = sc.read_reply(s)
seen = sc.read_all(s).decode().split()
assert rep == 0, rep
assert [addr, str(port)] == seen, "BND %s:%d, the destination saw %s" % (addr, port, seen)
print("ok", addr, port)
EOF
) || fail "succeeded: $out"
wait_request s5 "cmd=connect dest=127\.0\.0\.1:$PEER reply=succeeded\(0\) up=0 down=[0-9]+ " >/dev/null
ok "succeeded (0): BND ${out#ok } is the address the destination saw"

# ---- each failure: the reply, then a close, and its line.
want_s5c "method 0 reply 4 0.0.0.0 0 closed" "$P" no-such-host.invalid 80
wait_request s5 "dest=no-such-host\.invalid:80 reply=host-unreachable\(4\) up=0 down=0 " >/dev/null
ok "a name that does not resolve: 4 (host-unreachable), closed"

want_s5c "method 0 reply 5 0.0.0.0 0 closed" "$P" 127.0.0.1 "$REFUSED"
wait_request s5 "dest=127\.0\.0\.1:$REFUSED reply=connection-refused\(5\) " >/dev/null
ok "a refused port: 5 (connection-refused), closed"

want_s5c "method 0 reply 2 0.0.0.0 0 closed" "$P" 127.0.0.2 "$PEER"
wait_request s5 "dest=127\.0\.0\.2:$PEER reply=not-allowed\(2\) " >/dev/null
want_s5c "method 0 reply 2 0.0.0.0 0 closed" "$P" 127.0.0.2 "$PEER" --atyp 3
ok "--deny-dest 127.0.0.2/32: 2 (not-allowed) by address and by a name written as one, closed"

for cmd in 0 4 9 255; do
    want_s5c "method 0 reply 7 0.0.0.0 0 closed" "$P" 127.0.0.1 "$PEER" --cmd $cmd
done
wait_request s5 "cmd=unknown dest=127\.0\.0\.1:$PEER reply=command-not-supported\(7\) " >/dev/null
ok "commands 0, 4, 9, 255: 7 (command-not-supported), closed"

# An unknown ATYP: the address cannot be read, so the reply comes at once
# and the rest of the request stays unread.
for atyp in 0 2 5 255; do
    want_s5c "method 0 reply 8 0.0.0.0 0 closed" "$P" 127.0.0.1 "$PEER" --atyp $atyp
done
wait_request s5 "reply=address-type-not-supported\(8\) " >/dev/null
ok "address types 0, 2, 5, 255: 8 (address-type-not-supported), closed"

t0=$(date +%s%N)
got=$(s5c "$P" 127.0.0.1 "$HOLE" --timeout 20)
ms=$((($(date +%s%N) - t0) / 1000000))
# socks5d(1): a connect that takes longer than --connect-timeout gets 6.
[ "$got" = "method 0 reply 6 0.0.0.0 0 closed" ] || fail "a connect that times out: '$got'"
[ $ms -ge 1500 ] && [ $ms -lt 15000 ] || fail "--connect-timeout 2: the reply came after $ms ms"
wait_request s5 "dest=127\.0\.0\.1:$HOLE reply=ttl-expired\(6\) up=0 down=0 secs=[0-9.]+$" >/dev/null
ok "--connect-timeout 2, a connect that hangs: '${got#method 0 }' after $ms ms"

# SOCKS4 / 4a.
got=$(s5c "$P" 127.0.0.1 "$PEER" --socks4 --send '')
[[ $got =~ ^reply4\ 90\ 127\.0\.0\.1\ [0-9]+\ data\ [0-9]+$ ]] || fail "SOCKS4 connect: '$got'"
want_s5c "reply4 91 0.0.0.0 0 closed" "$P" 127.0.0.1 "$REFUSED" --socks4
wait_request s5 "cmd=socks4-connect dest=127\.0\.0\.1:$REFUSED reply=rejected\(91\) " >/dev/null
want_s5c "reply4 91 0.0.0.0 0 closed" "$P" no-such-host.invalid 80 --socks4a
wait_request s5 "cmd=socks4-connect dest=no-such-host\.invalid:80 reply=rejected\(91\) " >/dev/null
want_s5c "reply4 91 0.0.0.0 0 closed" "$P" 127.0.0.2 "$PEER" --socks4
ok "SOCKS4/4a: 90 for a good connect; 91 for a refused port, a name that does not resolve, a denied destination"

kill -0 "$S5_PID" || fail "socks5d died"
stop "$S5_PID"
bad=$(grep 'request client=' "$TMP/s5.err" | grep -Ev -- "$REQ_RE" || true)
[ -z "$bad" ] || fail "request lines not of the documented form: $bad"

! grep -q 'open proxy' "$TMP/s5.err" || fail "an open-proxy warning on 127.0.0.1"

# ---- -b: the outgoing connection comes from the address given, and BND says so.
start_s5 srcb -p 0 -b 127.0.0.2
out=$(timeout 30 python3 - "$S5_PORT" "$PEER" <<'EOF'
import sys
sys.path.insert(0, __import__("os").environ["S5_TOOLS"])
import socks5_client as sc
s = sc.connect(("127.0.0.1", int(sys.argv[1])))
sc.handshake(s)
sc.send(s, sc.request(1, "localhost", int(sys.argv[2])))
rep, addr, port = sc.read_reply(s)
seen = sc.read_all(s).decode().split()
assert rep == 0 and [addr, str(port)] == seen and addr == "127.0.0.2", (rep, addr, port, seen)
print(addr, port)
EOF
) || fail "-b 127.0.0.2: $out"
stop "$S5_PID"
ok "-b 127.0.0.2: the destination sees 127.0.0.2, BND is ${out% *}:${out#* }"

# ---- a name that resolves to a denied address
start_s5 deny -p 0 --deny-dest 127.0.0.0/8 --deny-dest ::1/128
want_s5c "method 0 reply 2 0.0.0.0 0 closed" "127.0.0.1:$S5_PORT" localhost "$PEER"
wait_request deny "dest=localhost:$PEER reply=not-allowed\(2\) " >/dev/null
want_s5c "method 0 reply 2 0.0.0.0 0 closed" "127.0.0.1:$S5_PORT" 127.0.0.1 "$PEER"
want_s5c "reply4 91 0.0.0.0 0 closed" "127.0.0.1:$S5_PORT" localhost "$PEER" --socks4a
stop "$S5_PID"
ok "--deny-dest 127.0.0.0/8: localhost (resolved by socks5d) and 127.0.0.1 get 2, SOCKS4a 91"

# ---- clients not in --allow
start_s5 allow -p 0 --allow 10.0.0.0/8
want_s5c "method 0 reply 2 0.0.0.0 0 closed" "127.0.0.1:$S5_PORT" 127.0.0.1 "$PEER"
wait_request allow "client=127\.0\.0\.1:[0-9]+ user=- cmd=connect dest=127\.0\.0\.1:$PEER reply=not-allowed\(2\) " >/dev/null
want_s5c "reply4 91 0.0.0.0 0 closed" "127.0.0.1:$S5_PORT" 127.0.0.1 "$PEER" --socks4
stop "$S5_PID"
# 127.0.0.1 in, 127.0.0.2 (another source address) out.
start_s5 allow1 -p 0 --allow 127.0.0.1/32
out=$(timeout 30 python3 - "$S5_PORT" "$PEER" <<'EOF'
import sys
sys.path.insert(0, __import__("os").environ["S5_TOOLS"])
import socks5_client as sc
port, peer = int(sys.argv[1]), int(sys.argv[2])
res = []
for src in ("127.0.0.1", "127.0.0.2"):
    s = sc.connect(("127.0.0.1", port), source=src)
    sc.handshake(s)
    sc.send(s, sc.request(1, "127.0.0.1", peer))
    res.append("%s:%d" % (src, sc.read_reply(s)[0]))
    s.close()
print(" ".join(res))
EOF
) || fail "--allow 127.0.0.1/32: $out"
[ "$out" = "127.0.0.1:0 127.0.0.2:2" ] || fail "--allow 127.0.0.1/32: $out, want 127.0.0.1:0 127.0.0.2:2"
wait_request allow1 "client=127\.0\.0\.2:[0-9]+ .* reply=not-allowed\(2\) " >/dev/null
stop "$S5_PID"
ok "--allow 10.0.0.0/8 keeps 127.0.0.1 out (2, SOCKS4 91); --allow 127.0.0.1/32 lets 127.0.0.1 in, not 127.0.0.2"

# The dual-stack listener: the IPv4 client matches its IPv4 rule.
if have_ipv6 && python3 -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::", 0)); s.listen(); socket.create_connection(("127.0.0.1", s.getsockname()[1]), timeout=2)' 2>/dev/null; then
    start_s5 ds -i :: -p 0 --allow 127.0.0.1/32
    got=$(s5c "127.0.0.1:$S5_PORT" 127.0.0.1 "$PEER" --send '')
    [[ $got =~ ^method\ 0\ reply\ 0\ 127\.0\.0\.1\ [0-9]+\ data\ [0-9]+$ ]] || fail "-i :: --allow 127.0.0.1/32, IPv4 client: '$got'"
    want_s5c "method 0 reply 2 0.0.0.0 0 closed" "[::1]:$S5_PORT" 127.0.0.1 "$PEER"
    wait_request ds "client=127\.0\.0\.1:[0-9]+ .*reply=succeeded\(0\) " >/dev/null
    ! grep -q 'client=::ffff:' "$TMP/ds.err" || fail "an IPv4 client logged as ::ffff:"
    grep -q 'warning: .*open proxy' "$TMP/ds.err" || fail "-i :: without a password: no open-proxy warning"
    stop "$S5_PID"
    start_s5 ds2 -i :: -p 0 --allow 10.0.0.0/8
    want_s5c "method 0 reply 2 0.0.0.0 0 closed" "127.0.0.1:$S5_PORT" 127.0.0.1 "$PEER"
    wait_request ds2 "client=127\.0\.0\.1:[0-9]+ .*reply=not-allowed\(2\) " >/dev/null
    stop "$S5_PID"
    ok "-i :: --allow 127.0.0.1/32 lets the IPv4 client in (logged as 127.0.0.1), not ::1, and warns of an open proxy; --allow 10.0.0.0/8 keeps it out"
else
    echo "# no dual-stack IPv6 here: the -i :: checks are skipped"
fi
no_sanitizer_reports
