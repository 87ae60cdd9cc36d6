#!/usr/bin/env bash
# socks5d's signals and limits.  SIGUSR1 prints one "stats:" line, and the
# counts in it move with the requests served.  --max-conns 2: with two
# tunnels open a third client gets no tunnel and is closed at once; once
# one ends, a new client is served.  --idle-timeout 2: an idle tunnel is
# closed after about 2 s, a busy one is not.  The server's
# descriptors (/proc/PID/fd) are back to their count once every client has
# gone.  SIGTERM while curl downloads 24 MiB at 4 MB/s: no new clients, the
# download completes intact, then exit 0; SIGINT when idle: exit 0.
# shellcheck source=tests/tools/socks5d_common.bash
source "$(dirname "$0")/socks5d_common.bash"
need_cmd curl

want=$(make_file blob $((24 << 20)))
start_http http
H=$HTTP_PORT
start_echo echo
E=$ECHO_PORT

# hold PORT N ECHO FILE: N tunnels to the echo server, held open (each
# echoes a byte first); prints "open N" once they are, closes them once
# FILE exists (60 s at most), then prints "done".
cat >"$TMP/hold.py" <<'EOF'
import os, sys, time
sys.path.insert(0, os.environ["S5_TOOLS"])
import socks5_client as sc
port, n, echo, release = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
held = []
for _ in range(n):
    s = sc.open_tunnel(("127.0.0.1", port), "127.0.0.1", echo)
    s.sendall(b"x")
    assert sc.recv_exact(s, 1) == b"x"
    held.append(s)
print("open", n, flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(release) and time.monotonic() < deadline:
    time.sleep(0.05)
for s in held:
    s.close()
print("done", flush=True)
EOF

start_s5 s5 -p 0 --max-conns 2
P=$S5_PORT
sleep 0.2
fds=$(fd_kinds "$S5_PID")

# ---- SIGUSR1
line0=$(usr1 s5 "$S5_PID")
for i in 1 2 3; do
    got=$(s5c "127.0.0.1:$P" 127.0.0.1 "$E" --send 'abc')
    [[ $got =~ data\ 3$ ]] || fail "request $i: '$got'"
done
want_s5c "method 0 reply 5 0.0.0.0 0 closed" "127.0.0.1:$P" 127.0.0.1 "$(free_port)"
for _ in $(seq 100); do [ "$(request_lines s5 | wc -l)" -ge 4 ] && break; sleep 0.05; done
line1=$(usr1 s5 "$S5_PID")
# stat_of FIELD LINE: the value of FIELD=N in a stats line.
stat_of() { sed -nE "s/.* $1=([0-9]+)( .*|$)/\1/p" <<<"$2"; }
for kv in connections=0 active=0 requests=0 succeeded=0 up=0 down=0; do
    [ "$(stat_of "${kv%=*}" "$line0")" = "${kv#*=}" ] || fail "SIGUSR1 at the start: want $kv in '$line0'"
done
for kv in connections=4 active=0 refused=0 requests=4 succeeded=3 connection-refused=1 \
    not-allowed=0 up=9 down=9; do
    [ "$(stat_of "${kv%=*}" "$line1")" = "${kv#*=}" ] || fail "SIGUSR1 after 4 requests: want $kv in '$line1'"
done
[ "$(grep -c 'stats:' "$TMP/s5.err")" -eq 2 ] || fail "SIGUSR1 twice: $(grep -c 'stats:' "$TMP/s5.err") stats lines"
ok "SIGUSR1: one stats line each time, with the counts of the 4 requests (connections=4 requests=4 succeeded=3 connection-refused=1 up=9 down=9)"

# ---- --max-conns 2
start hold python3 "$TMP/hold.py" "$P" 2 "$E" "$TMP/release"
hold_pid=$PID
wait_out hold '^open 2$' 30 >/dev/null
t0=$(date +%s%N)
got=$(s5c "127.0.0.1:$P" 127.0.0.1 "$E" --send 'abc' --timeout 10)
ms=$((($(date +%s%N) - t0) / 1000000))
third=$got
case $got in
*"reply 0 "*) fail "--max-conns 2: a third client got a tunnel: '$got'" ;;
esac
[ $ms -lt 8000 ] || fail "--max-conns 2: the third client waited $ms ms"
line2=$(usr1 s5 "$S5_PID")
for kv in active=2 refused=1 connections=7; do
    [ "$(stat_of "${kv%=*}" "$line2")" = "${kv#*=}" ] || fail "SIGUSR1 at --max-conns: want $kv in '$line2'"
done
touch "$TMP/release"
finish "$hold_pid" 30
[ "$STATUS" -eq 0 ] || fail "the two held tunnels broke: $(cat "$TMP/hold.err")"
got=$(s5c "127.0.0.1:$P" 127.0.0.1 "$E" --send 'abc')
[[ $got =~ ^method\ 0\ reply\ 0\ .*\ data\ 3$ ]] || fail "--max-conns 2: after the two closed: '$got'"
ok "--max-conns 2: a third client gets no tunnel ('$third') ($ms ms), stats say active=2 refused=1; a place freed is taken again"

wait_fds "$S5_PID" "$fds" 10
ok "descriptors back to (sockets pipes others) $fds"
stop "$S5_PID" INT
ok "SIGINT: exit 0"

# ---- --idle-timeout 2: idle closed, busy kept.
start_s5 idle -p 0 --idle-timeout 2
out=$(timeout 60 python3 - "$S5_PORT" "$E" <<'EOF'
import os, sys, time
sys.path.insert(0, os.environ["S5_TOOLS"])
import socks5_client as sc
port, echo = int(sys.argv[1]), int(sys.argv[2])
idle = sc.open_tunnel(("127.0.0.1", port), "127.0.0.1", echo)
t = time.monotonic()
closed = sc.wait_closed(idle, 10)
dt = time.monotonic() - t
assert closed and 1.5 < dt < 8, "idle tunnel: closed %s after %.2f s" % (closed, dt)
busy = sc.open_tunnel(("127.0.0.1", port), "127.0.0.1", echo)
for i in range(10):
    busy.sendall(b"%d" % i)
    assert sc.recv_exact(busy, 1) == b"%d" % i, "busy tunnel broke at %d" % i
    time.sleep(0.3)
busy.close()
print("idle %.2f s" % dt)
EOF
) || fail "--idle-timeout 1: $out"
ok "--idle-timeout 2: an idle tunnel closed after ${out#idle }, a busy one (a byte every 0.3 s) kept for 3 s"
stop "$S5_PID"

# ---- SIGTERM drains.
start_s5 drain -p 0 --drain-timeout 60
P=$S5_PORT
start dl timeout 90 curl -sS --max-time 80 --limit-rate 4M --socks5-hostname "127.0.0.1:$P" \
    "http://localhost:$H/blob" -o "$TMP/dl.body"
dl_pid=$PID
for _ in $(seq 400); do [ -s "$TMP/dl.body" ] && [ "$(stat -c %s "$TMP/dl.body")" -gt $((2 << 20)) ] && break; sleep 0.05; done
[ "$(stat -c %s "$TMP/dl.body" 2>/dev/null || echo 0)" -gt 0 ] ||
    fail "the download did not start in 20 s (curl $(kill -0 "$dl_pid" 2>/dev/null && echo runs || echo ended): $(cat "$TMP/dl.err"); socks5d has $(fd_count "$S5_PID") descriptors)"
kill -TERM "$S5_PID"
sleep 0.5
kill -0 "$S5_PID" 2>/dev/null || fail "socks5d exited with a download in flight"
kill -0 "$dl_pid" 2>/dev/null || fail "the download ended at once after SIGTERM ($(stat -c %s "$TMP/dl.body") bytes)"
got=$(timeout 10 python3 -c '
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
    s.sendall(b"\x05\x01\x00")
    b = s.recv(10)
    print("answered %r" % b if b else "closed")
except ConnectionRefusedError:
    print("refused")
except OSError as e:
    print("closed")' "$P")
[ "$got" = refused ] || [ "$got" = closed ] || fail "a new client while draining: $got"
finish "$dl_pid" 60
[ "$STATUS" -eq 0 ] || fail "the download failed during the drain (curl exit $STATUS)"
[ "$(sha256sum <"$TMP/dl.body" | cut -d' ' -f1)" = "$want" ] || fail "the download differs"
finish "$S5_PID" 20
[ "$STATUS" -eq 0 ] || fail "after the drain: exit $STATUS"
wait_request drain "dest=localhost:$H reply=succeeded\(0\) up=[0-9]+ down=[0-9]{8,} " 1 >/dev/null
ok "SIGTERM: a new client is $got, the 24 MiB download completes intact, its line is logged, exit 0"
no_sanitizer_reports
