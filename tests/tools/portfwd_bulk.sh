#!/usr/bin/env bash
# portfwd, bulk: 256 MiB each way at once through portfwd with socat as the
# client, sha256 checked at the far end of each direction and the byte
# counts of portfwd's connection line checked; iperf3 through portfwd in
# both directions (-R): it completes and reports more than 0 bits/s.
# shellcheck source=tests/tools/portfwd_common.bash
source "$(dirname "$0")/portfwd_common.bash"
need_cmd socat iperf3 sha256sum

SIZE=$((256 << 20))

# The far end: receives and hashes what comes, while it sends SIZE random
# bytes of its own (then half-closes); prints both hashes when done.
cat >"$TMP/bulk_server.py" <<'EOF'
import hashlib, os, socket, sys, threading
size = int(sys.argv[1])
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(1)
print(ls.getsockname()[1], flush=True)
c, _ = ls.accept()
sent = hashlib.sha256()
def send():
    left = size
    while left:
        b = os.urandom(min(left, 1 << 20))
        sent.update(b)
        c.sendall(b)
        left -= len(b)
    c.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send)
t.start()
got, n = hashlib.sha256(), 0
while True:
    b = c.recv(1 << 18)
    if not b:
        break
    got.update(b)
    n += len(b)
t.join()
c.close()
print("received", n, got.hexdigest(), flush=True)
print("sent", size, sent.hexdigest(), flush=True)
EOF

start_py bulk "$TMP/bulk_server.py" "$SIZE"
bulk_pid=$PY_PID
start_pf fwd -v -p 0 -r 127.0.0.1 -P "$PY_PORT"
fwd_pid=$PF_PID
port=$PF_PORT

# The client: SIZE random bytes from urandom into socat (hashed on the way),
# what comes back hashed.  -t 60: after its stdin ends, socat keeps reading
# the other direction until EOF (60 s at most).
timeout 50 bash -c '
    set -o pipefail
    head -c "$1" /dev/urandom | tee >(sha256sum >"$2/client.sent") |
        socat -t 60 -b 262144 - "TCP:127.0.0.1:$3" | sha256sum >"$2/client.got"
' _ "$SIZE" "$TMP" "$port" || fail "socat client failed (status $?)"
finish "$bulk_pid" 30
[ "$STATUS" -eq 0 ] || fail "the bulk server exited $STATUS"
sleep 0.2 # the sent hash comes from a process substitution
read -r _ rn rhash < <(grep '^received ' "$TMP/bulk.out")
read -r _ sn shash < <(grep '^sent ' "$TMP/bulk.out")
[ "$rn" -eq "$SIZE" ] || fail "the server received $rn bytes, not $SIZE"
[ "$rhash" = "$(cut -d' ' -f1 "$TMP/client.sent")" ] || fail "client -> server: sha256 differs"
[ "$shash" = "$(cut -d' ' -f1 "$TMP/client.got")" ] || fail "server -> client: sha256 differs"
ok "256 MiB each way at once through portfwd with socat: both sha256 match"
line=$(wait_line fwd ' via .* bytes in, ' 10)
[[ $line =~ \ $SIZE\ bytes\ in,\ $SIZE\ out,\ .*\ s,\ done-(remote|local)-closed$ ]] ||
    fail "connection line: '$line'"
ok "connection line: ${line#portfwd: info: }"

# iperf3 through portfwd, both ways.  Its control and data connections
# both go through the forwarder.
iport=$(free_port)
start iperf iperf3 -s -B 127.0.0.1 -p "$iport" --forceflush
iperf_pid=$PID
wait_out iperf 'Server listening' 10 >/dev/null
stop "$fwd_pid"
# portfwd ignores SIGPIPE, so the relay may splice: the stats say it did.
grep -Eq "bytes in $SIZE, out $SIZE, spliced 1$" "$TMP/fwd.err" ||
    fail "exit stats: $(grep 'spliced' "$TMP/fwd.err")"
ok "exit stats: the connection moved its bytes with splice(2)"
start_pf fwd2 -v -p 0 -r 127.0.0.1 -P "$iport"
fwd_pid=$PF_PID
for dir in "" -R; do
    timeout 40 iperf3 -c 127.0.0.1 -p "$PF_PORT" -t 2 -J $dir >"$TMP/iperf$dir.json" \
        2>"$TMP/iperf_client$dir.err" || fail "iperf3 $dir through portfwd failed: $(head -c 600 "$TMP/iperf$dir.json")"
    bps=$(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
if "error" in j:
    raise SystemExit("iperf3: " + j["error"])
print(int(j["end"]["sum_received"]["bits_per_second"]))' "$TMP/iperf$dir.json") ||
        fail "iperf3 $dir: no result"
    [ "$bps" -gt 0 ] || fail "iperf3 $dir: $bps bits/s"
    ok "iperf3 ${dir:-(forward)} through portfwd: $((bps / 1000000)) Mbit/s"
done
stop "$fwd_pid"
grep -Eq 'total [1-9][0-9]*, refused 0' "$TMP/fwd2.err" ||
    fail "exit stats: $(grep 'stats' -A2 "$TMP/fwd2.err")"
kill "$iperf_pid"
finish "$iperf_pid" 10
no_sanitizer_reports
