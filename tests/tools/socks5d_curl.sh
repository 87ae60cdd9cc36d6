#!/usr/bin/env bash
# socks5d with curl, fetching 4 MiB of random bytes from a local HTTP
# server, every body checked by sha256: --socks5 (socks5d gets an IPv4
# address), --socks5-hostname (a name, resolved by socks5d), socks5h://
# user:pass@ with -u/-P and with --users FILE (and a wrong password: curl
# fails, nothing is fetched), --socks4, --socks4a; 8 at once with
# --threads 2; keep-alive (two files over one tunnel).  Each request logs
# one line of the documented form with the right user, command,
# destination, reply and byte counts; -q logs none.
# shellcheck source=tests/tools/socks5d_common.bash
source "$(dirname "$0")/socks5d_common.bash"
need_cmd curl

want=$(make_file blob $((4 << 20)))
small=$(make_file small 1000)
start_http http
H=$HTTP_PORT

start_s5 s5 -p 0
P=$S5_PORT
[ "$(curl_sha --socks5 "127.0.0.1:$P" "http://127.0.0.1:$H/blob")" = "$want" ] || fail "--socks5: body differs"
line=$(wait_request s5 "dest=127\.0\.0\.1:$H ")
[[ $line =~ request\ client=127\.0\.0\.1:[0-9]+\ user=-\ cmd=connect\ dest=127\.0\.0\.1:$H\ reply=succeeded\(0\)\ up=([0-9]+)\ down=([0-9]+)\ secs=[0-9]+\.[0-9]{3}$ ]] ||
    fail "request line: '$line'"
up=${BASH_REMATCH[1]} down=${BASH_REMATCH[2]}
# up: curl's GET; down: the headers and the body (the reply is not counted).
[ "$up" -gt 30 ] && [ "$up" -lt 1000 ] || fail "up=$up for one GET"
[ "$down" -gt $((4 << 20)) ] && [ "$down" -lt $(((4 << 20) + 1000)) ] || fail "down=$down for 4 MiB"
ok "curl --socks5: 4 MiB intact; $(sed 's/.*request /request /' <<<"$line")"

[ "$(curl_sha --socks5-hostname "127.0.0.1:$P" "http://localhost:$H/blob")" = "$want" ] ||
    fail "--socks5-hostname: body differs"
wait_request s5 "user=- cmd=connect dest=localhost:$H reply=succeeded\(0\) " >/dev/null
ok "curl --socks5-hostname: 4 MiB intact, dest=localhost:$H in the log"

[ "$(curl_sha --socks4 "127.0.0.1:$P" "http://127.0.0.1:$H/blob")" = "$want" ] || fail "--socks4: body differs"
wait_request s5 "cmd=socks4-connect dest=127\.0\.0\.1:$H reply=granted\(90\) " >/dev/null
[ "$(curl_sha --socks4a "127.0.0.1:$P" "http://localhost:$H/blob")" = "$want" ] || fail "--socks4a: body differs"
wait_request s5 "cmd=socks4-connect dest=localhost:$H reply=granted\(90\) " >/dev/null
ok "curl --socks4 and --socks4a: 4 MiB intact, logged as socks4-connect, granted(90)"

# Keep-alive: two files over one tunnel, one request line.
n=$(request_lines s5 | wc -l)
timeout 60 curl -sS --max-time 50 --socks5-hostname "127.0.0.1:$P" \
    "http://localhost:$H/small" "http://localhost:$H/blob" -o "$TMP/k1" -o "$TMP/k2" ||
    fail "keep-alive curl failed"
[ "$(sha256sum <"$TMP/k1" | cut -d' ' -f1)" = "$small" ] && [ "$(sha256sum <"$TMP/k2" | cut -d' ' -f1)" = "$want" ] ||
    fail "keep-alive: a body differs"
rm -f "$TMP/k1" "$TMP/k2"
for _ in $(seq 100); do [ "$(request_lines s5 | wc -l)" -gt "$n" ] && break; sleep 0.05; done
[ "$(request_lines s5 | wc -l)" -eq $((n + 1)) ] || fail "keep-alive: $(($(request_lines s5 | wc -l) - n)) request lines, not 1"
ok "keep-alive: two files through one tunnel, one request line"

# Every line so far has the documented form.
bad=$(grep 'request client=' "$TMP/s5.err" | grep -Ev -- "$REQ_RE" || true)
[ -z "$bad" ] || fail "request lines not of the documented form: $bad"
stop "$S5_PID"

# ---- -u/-P: socks5h://user:pass@
start_s5 auth -p 0 -u alice -P 's3cret pass'
P=$S5_PORT
[ "$(curl_sha --proxy "socks5h://alice:s3cret%20pass@127.0.0.1:$P" "http://localhost:$H/blob")" = "$want" ] ||
    fail "socks5h://alice:...: body differs"
wait_request auth "user=alice cmd=connect dest=localhost:$H reply=succeeded\(0\) " >/dev/null
rc=0
timeout 30 curl -sS --max-time 20 --proxy "socks5h://alice:wrong@127.0.0.1:$P" "http://localhost:$H/small" \
    >"$TMP/wrong.body" 2>"$TMP/wrong.err" || rc=$?
[ $rc -ne 0 ] && [ ! -s "$TMP/wrong.body" ] || fail "a wrong password: curl exited $rc with $(wc -c <"$TMP/wrong.body") bytes"
rc=0
timeout 30 curl -sS --max-time 20 --socks5-hostname "127.0.0.1:$P" "http://localhost:$H/small" \
    >"$TMP/none.body" 2>"$TMP/none.err" || rc=$?
[ $rc -ne 0 ] && [ ! -s "$TMP/none.body" ] || fail "no credentials: curl exited $rc with $(wc -c <"$TMP/none.body") bytes"
ok "-u/-P: socks5h://alice:...@ fetches (user=alice in the log); a wrong password and none fetch nothing"
stop "$S5_PID"

# ---- --users FILE
printf '# users\nbob:hunter2\ncarol:pa:ss:word\n\n' >"$TMP/users"
start_s5 users -p 0 --users "$TMP/users"
P=$S5_PORT
[ "$(curl_sha --proxy "socks5h://bob:hunter2@127.0.0.1:$P" "http://localhost:$H/blob")" = "$want" ] ||
    fail "--users, bob: body differs"
[ "$(curl_sha --proxy "socks5h://carol:pa%3Ass%3Aword@127.0.0.1:$P" "http://127.0.0.1:$H/small")" = "$small" ] ||
    fail "--users, carol (a password with ':'): body differs"
wait_request users "user=bob cmd=connect dest=localhost:$H reply=succeeded\(0\) " >/dev/null
wait_request users "user=carol cmd=connect dest=127\.0\.0\.1:$H reply=succeeded\(0\) " >/dev/null
rc=0
timeout 30 curl -sS --max-time 20 --proxy "socks5h://bob:hunter3@127.0.0.1:$P" "http://localhost:$H/small" \
    >"$TMP/wrong.body" 2>"$TMP/wrong.err" || rc=$?
[ $rc -ne 0 ] && [ ! -s "$TMP/wrong.body" ] || fail "--users, a wrong password: curl exited $rc"
ok "--users FILE: bob and carol (password with ':') fetch; a wrong password does not"
stop "$S5_PID"

# ---- --threads 2: 8 curls at once, half by name, half by address.
start_s5 thr -p 0 --threads 2
P=$S5_PORT
pids=()
for i in $(seq 8); do
    host=localhost opt=--socks5-hostname
    [ $((i % 2)) -eq 0 ] && host=127.0.0.1 opt=--socks5
    (
        got=$(timeout 90 curl -sS --max-time 80 "$opt" "127.0.0.1:$P" "http://$host:$H/blob" | sha256sum | cut -d' ' -f1)
        [ "$got" = "$want" ]
    ) &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "--threads 2: one of 8 curls got a wrong body"; done
for _ in $(seq 100); do [ "$(request_lines thr 'reply=succeeded' | wc -l)" -ge 8 ] && break; sleep 0.05; done
[ "$(request_lines thr 'reply=succeeded' | wc -l)" -eq 8 ] || fail "--threads 2: $(request_lines thr | wc -l) request lines"
ok "--threads 2: 8 curls at once, every body intact, 8 request lines"
stop "$S5_PID"

# ---- -q: no request lines.  (-q keeps warnings and errors only, so no
# startup line either: the port is given, and tried until it answers.)
qport=$(free_port)
start quiet "$S5" -p "$qport" -q
quiet_pid=$PID
for _ in $(seq 600); do
    python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)' "$qport" 2>/dev/null && break
    kill -0 "$quiet_pid" 2>/dev/null || fail "-q: socks5d exited: $(cat "$TMP/quiet.err")"
    sleep 0.1
done
[ "$(curl_sha --socks5-hostname "127.0.0.1:$qport" "http://localhost:$H/small")" = "$small" ] ||
    fail "-q: body differs"
stop "$quiet_pid"
! grep -q 'request client=' "$TMP/quiet.err" || fail "-q: a request line: $(grep 'request client=' "$TMP/quiet.err")"
ok "-q: the transfer works, no request line"
no_sanitizer_reports
