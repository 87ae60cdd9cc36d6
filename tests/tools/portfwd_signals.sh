#!/usr/bin/env bash
# portfwd's signals and limits.  SIGHUP while a 48 MiB transfer runs: the
# transfer completes intact, a connection on a removed rule goes on, the
# removed rule stops listening, the kept one still listens, the new one
# works; a broken file on SIGHUP keeps the old rules; so does a file
# that cannot listen, and SIGUSR1 then shows the rules that serve, with
# counters kept across the reloads (issue 8 item 9).  SIGUSR1 prints the
# right totals.  --max-conns 2: the third client is closed at once and
# counted as refused; a free place is taken again.  SIGTERM with a live
# connection: no new connections, the live one completes, exit 0; with
# --drain-timeout 1 an idle one is closed and it still exits 0.
# shellcheck source=tests/tools/portfwd_common.bash
source "$(dirname "$0")/portfwd_common.bash"

start_py echo "$TMP/echo_server.py"
E=$PY_PORT

# A client of the echo server through PORT, in steps, driven by its stdin:
# "send N" (N random bytes, echo checked), "half" (SHUT_WR, then the rest
# of the echo must come, then EOF), "close"; says "ok" after each step.
cat >"$TMP/stepper.py" <<'EOF'
import os, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
print("connected", flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "send":
        n = int(cmd[1])
        data = os.urandom(n)
        s.sendall(data)
        got = bytearray()
        while len(got) < n:
            b = s.recv(n - len(got))
            if not b:
                raise SystemExit("EOF after %d of %d bytes" % (len(got), n))
            got += b
        assert got == data, "the echo differs"
    elif cmd[0] == "half":
        s.shutdown(socket.SHUT_WR)
        assert s.recv(1) == b"", "data after the echo"
    elif cmd[0] == "close":
        s.close()
    print("ok", cmd[0], flush=True)
EOF
# stepper NAME PORT: start one; `step NAME CMD` drives it through a fifo
# (opened read-write here, so that neither side blocks on opening it).
stepper() {
    mkfifo "$TMP/$1.in"
    local fd
    exec {fd}<>"$TMP/$1.in"
    eval "fd_$1=$fd"
    python3 "$TMP/stepper.py" "$2" <&"$fd" >"$TMP/$1.out" 2>"$TMP/$1.err" &
    PIDS+=("$!")
    eval "pid_$1=$!"
    wait_out "$1" '^connected$' 60 >/dev/null
}
step() { # NAME COMMAND: run a step and wait for its "ok"
    local fd=fd_$1 pid=pid_$1 want
    want=$(($(grep -c '^ok ' "$TMP/$1.out" || true) + 1))
    echo "$2" >&"${!fd}"
    local deadline=$((SECONDS + 20))
    while [ "$(grep -c '^ok ' "$TMP/$1.out" || true)" -lt "$want" ]; do
        kill -0 "${!pid}" 2>/dev/null || fail "$1: step '$2' failed: $(tail -n3 "$TMP/$1.err")"
        [ $SECONDS -lt $deadline ] || fail "$1: step '$2' did not finish"
        sleep 0.05
    done
}
# usr1 NAME PID: SIGUSR1, then print the rule lines of the new stats block
# (written in one piece).
usr1() {
    local before after=0
    before=$(grep -c 'stats (SIGUSR1)' "$TMP/$1.err" || true)
    kill -USR1 "$2"
    for _ in $(seq 200); do
        after=$(grep -c 'stats (SIGUSR1)' "$TMP/$1.err" || true)
        [ "$after" -gt "$before" ] && break
        sleep 0.05
    done
    [ "$after" -gt "$before" ] || fail "$1: no stats block after SIGUSR1"
    awk -v n="$after" '/stats \(SIGUSR1\)/ { b++; next } b == n && /^portfwd:   / { print; next } b == n { exit }' "$TMP/$1.err"
}
# want_stats NAME PID LINES: the stats block is LINES, without the spliced
# counts, which are the relay's choice (asked again for up to 5 s: a
# connection's end is counted just after its client sees it).
want_stats() {
    local got
    for _ in $(seq 50); do
        got=$(usr1 "$1" "$2" | sed -E 's/, spliced [0-9]+$//')
        [ "$got" = "$3" ] && return 0
        sleep 0.1
    done
    fail "$1 stats:
$got
want:
$3"
}

# ---- SIGHUP
P1=$(free_port) P2=$(free_port) P3=$(free_port)
printf '127.0.0.1 %s 127.0.0.1 %s\n127.0.0.1 %s 127.0.0.1 %s\n' "$P1" "$E" "$P2" "$E" >"$TMP/pf.conf"
start_pf fwd -v -c "$TMP/pf.conf"
fwd_pid=$PF_PID
stepper old "$P2"
step old "send 1000"
# The long transfer: 48 MiB echoed in 1 MiB steps, 40 ms apart.
start bulk timeout 50 python3 -c '
import os, socket, sys, time, threading, hashlib
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
data = os.urandom(48 << 20)
def send():
    for i in range(0, len(data), 1 << 20):
        s.sendall(data[i:i + (1 << 20)])
        time.sleep(0.04)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send)
t.start()
got = bytearray()
while True:
    b = s.recv(1 << 18)
    if not b:
        break
    got += b
    if len(got) >= (4 << 20) and not os.path.exists(sys.argv[2]):
        open(sys.argv[2], "w").close()
t.join()
print("ok" if got == data else "bad: %d of %d bytes" % (len(got), len(data)), flush=True)
' "$P1" "$TMP/bulk.running"
bulk_pid=$PID
for _ in $(seq 200); do [ -e "$TMP/bulk.running" ] && break; sleep 0.05; done
[ -e "$TMP/bulk.running" ] || fail "the transfer did not start"
printf '# P2 removed, P3 added\n127.0.0.1 %s 127.0.0.1 %s\n127.0.0.1 %s 127.0.0.1 %s\n' \
    "$P1" "$E" "$P3" "$E" >"$TMP/pf.conf"
kill -HUP "$fwd_pid"
wait_line fwd 'SIGHUP: 2 rules loaded' 10 >/dev/null
for _ in $(seq 100); do
    [ "$(pf_ports fwd | tail -n2 | tr '\n' ' ')" = "$P1 $P3 " ] && break
    sleep 0.05
done
[ "$(pf_ports fwd | tail -n2 | tr '\n' ' ')" = "$P1 $P3 " ] || fail "after SIGHUP: listening on $(pf_ports fwd)"
kill -0 "$bulk_pid" 2>/dev/null || fail "the transfer ended before the reload was done"
# The removed rule's live connection is still counted, and said to be so.
usr1 fwd "$fwd_pid" | grep -Fxq "portfwd:   127.0.0.1:$P2 -> 127.0.0.1:$E (removed by a reload): active 1, total 1, refused 0, errors 0, bytes in 0, out 0, spliced 0" ||
    fail "stats after the reload: $(usr1 fwd "$fwd_pid")"
out=$(echo_clients "$P3" --bytes 65536 --clients 4 2>&1) || fail "the new rule: $out"
out=$(echo_clients "$P1" --bytes 65536 2>&1) || fail "the kept rule: $out"
! listens_on "$fwd_pid" "$P2" || fail "the removed rule's port still listens"
step old "send 100000"
step old half
ok "SIGHUP: the new rule works, the kept one too, the removed one stops listening; its live connection goes on"
finish "$bulk_pid" 45
[ "$STATUS" -eq 0 ] && [ "$(cat "$TMP/bulk.out")" = ok ] || fail "the transfer across SIGHUP: $(cat "$TMP/bulk.out") (status $STATUS)"
ok "SIGHUP during a 48 MiB transfer: every byte echoed"
# A broken file on SIGHUP: reported, the old rules stay.
printf '127.0.0.1 %s 127.0.0.1 %s\nnonsense\n' "$P1" "$E" >"$TMP/pf.conf"
kill -HUP "$fwd_pid"
wait_line fwd "reload: .*pf.conf:2: .*old configuration stays" 10 >/dev/null
out=$(echo_clients "$P3" --bytes 1000 2>&1) || fail "after a bad reload: $out"
ok "a broken file on SIGHUP: reported with FILE:LINE, the old rules stay"
# A reload that cannot listen on one of its addresses changes nothing: the
# rules that were there still forward, nothing new listens.
start busy python3 -c '
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True); time.sleep(60)'
wait_out busy '^[0-9]+$' 60 >/dev/null
P4=$(head -n1 "$TMP/busy.out") P5=$(free_port)
printf '127.0.0.1 %s 127.0.0.1 %s\n127.0.0.1 %s 127.0.0.1 %s\n127.0.0.1 %s 127.0.0.1 %s\n' \
    "$P1" "$E" "$P5" "$E" "$P4" "$E" >"$TMP/pf.conf"
kill -HUP "$fwd_pid"
wait_line fwd "reload: cannot listen on 127.0.0.1 port $P4: Address already in use \(the old configuration stays\)" 10 >/dev/null
out=$(echo_clients "$P1" --bytes 1000 2>&1) || fail "the kept rule after a failed reload: $out"
out=$(echo_clients "$P3" --bytes 1000 2>&1) || fail "the old rule after a failed reload: $out"
! listens_on "$fwd_pid" "$P5" || fail "a failed reload left its new listener on port $P5 open"
ok "a reload that cannot listen on an address: reported, the old listeners all stay, no new one"
# What serves is P1 and P3, with every connection they had across the
# reloads (P1: the 48 MiB one, 64 KiB, 1000 bytes; P3: 4 x 64 KiB, 1000,
# 1000); P2's connection is over, so its rule is gone; P4, P5 never served.
want_stats fwd "$fwd_pid" "portfwd:   127.0.0.1:$P1 -> 127.0.0.1:$E: active 0, total 3, refused 0, errors 0, bytes in 50398184, out 50398184
portfwd:   127.0.0.1:$P3 -> 127.0.0.1:$E: active 0, total 6, refused 0, errors 0, bytes in 264144, out 264144"
ok "SIGUSR1 after the failed reload: the 2 rules that serve, their counts across 3 reloads"
stop "$fwd_pid"

# ---- SIGUSR1 and --max-conns 2
start_pf fwd2 -v --max-conns 2 --drain-timeout 120 -p 0 -r 127.0.0.1 -P "$E"
port=$PF_PORT
for n in 1000 2000 3000; do
    out=$(echo_clients "$port" --bytes $n 2>&1) || fail "$n bytes: $out"
done
for _ in $(seq 100); do [ "$(conn_lines fwd2 'done-remote-closed$')" -ge 3 ] && break; sleep 0.05; done
kill -USR1 "$PF_PID"
wait_line fwd2 "active 0, total 3, refused 0, errors 0, bytes in 6000, out 6000" 10 >/dev/null
ok "SIGUSR1: active 0, total 3, bytes in 6000, out 6000"
stepper a "$port"
step a "send 500"
stepper b "$port"
step b "send 500"
got=$(timeout 10 python3 -c '
import socket, sys, time
t = time.monotonic()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
try:
    s.sendall(b"x" * 10)
    b = s.recv(10)
except OSError:
    b = b""
print("closed" if b == b"" and time.monotonic() - t < 3 else "got %r" % b)' "$port")
[ "$got" = closed ] || fail "--max-conns 2, third client: $got"
wait_line fwd2 ' via .*, refused$' 10 >/dev/null
kill -USR1 "$PF_PID"
for _ in $(seq 100); do [ "$(grep -c 'stats (SIGUSR1)' "$TMP/fwd2.err")" -ge 2 ] && break; sleep 0.05; done
tail -n1 "$TMP/fwd2.err" | grep -q "active 2, total 6, refused 1, errors 0, bytes in 6000, out 6000" ||
    fail "SIGUSR1 with 2 open, 1 refused: $(tail -n1 "$TMP/fwd2.err")"
step a close
for _ in $(seq 100); do [ "$(conn_lines fwd2 'done-remote-closed$')" -ge 4 ] && break; sleep 0.05; done
out=$(echo_clients "$port" --bytes 1000 2>&1) || fail "a free place is not taken again: $out"
ok "--max-conns 2: the third client is closed at once and counted (refused 1); a free place is taken again"

# ---- SIGTERM drains: b is live; no new clients; b completes; exit 0.
# (fwd2 has --drain-timeout 120: under load the checks below can take more
# than the default 10 s, and the drain must not end before b does.)
kill -TERM "$PF_PID"
wait_line fwd2 'no new connections; 1 to finish' 10 >/dev/null
! listens_on "$PF_PID" "$port" || fail "after SIGTERM it still listens"
kill -0 "$PF_PID" || fail "exited with a live connection"
step b "send 200000"
step b half
finish "$PF_PID" 10
[ "$STATUS" -eq 0 ] || fail "after the drain: exit $STATUS"
grep -q "stats (exit)" "$TMP/fwd2.err" || fail "no exit stats"
ok "SIGTERM: no new connections, the live one completes, exit 0"

# ---- --drain-timeout 1 with an idle connection
start_pf fwd3 -v --drain-timeout 1 -p 0 -r 127.0.0.1 -P "$E"
stepper c "$PF_PORT"
step c "send 10"
kill -TERM "$PF_PID"
finish "$PF_PID" 10
[ "$STATUS" -eq 0 ] || fail "--drain-timeout 1: exit $STATUS"
grep -q 'drain timeout' "$TMP/fwd3.err" || fail "no drain timeout message"
ok "--drain-timeout 1: the idle connection is closed, exit 0"
no_sanitizer_reports
