#!/usr/bin/env bash
# socks5d's command line: --version is one line "socks5d (libasyncore)
# X.Y.Z" (the project's version) and --help the usage, both on stdout,
# exit 0; a bad option or value is one line saying so, then "Try 'socks5d
# --help' for more information.", exit 2, nothing on stdout; a startup
# failure (the port taken, a --users file missing or malformed, an
# address that is not ours) is one error line, exit 1.  Without -i and -p
# it listens on 127.0.0.1 port 1080 (or says why it cannot).  Every option
# of the contract is accepted, and the server they make serves.
# shellcheck source=tests/tools/socks5d_common.bash
source "$(dirname "$0")/socks5d_common.bash"

version=$(sed -nE 's/^project\(asyncore VERSION ([0-9.]+).*/\1/p' "$AC_SOURCE_DIR/CMakeLists.txt")
expect_status 0 "$S5" --version
[ "$(cat "$TMP/cmd.out")" = "socks5d (libasyncore) $version" ] || fail "--version: '$(cat "$TMP/cmd.out")'"
[ ! -s "$TMP/cmd.err" ] || fail "--version wrote to stderr"
expect_status 0 "$S5" --help
head -n1 "$TMP/cmd.out" | grep -q '^usage: socks5d ' || fail "--help: $(head -n1 "$TMP/cmd.out")"
for opt in -i -p -u -P --users -b -1 -q --allow --deny-dest --threads --max-conns \
    --handshake-timeout --connect-timeout --idle-timeout -v; do
    grep -q -- "$opt\\b" "$TMP/cmd.out" || fail "--help does not mention $opt"
done
grep -q 1080 "$TMP/cmd.out" || fail "--help does not give the default port 1080"
[ ! -s "$TMP/cmd.err" ] || fail "--help wrote to stderr"
ok "--version: socks5d (libasyncore) $version; --help lists every option"

# usage_error ARGS...: exit 2, nothing on stdout, stderr two lines: what is
# wrong ("socks5d: ..."), then the hint.
usage_error() {
    expect_status 2 "$S5" "$@"
    [ ! -s "$TMP/cmd.out" ] || fail "'$*': wrote to stdout"
    [ "$(wc -l <"$TMP/cmd.err")" -eq 2 ] && head -n1 "$TMP/cmd.err" | grep -q '^socks5d: ' &&
        [ "$(tail -n1 "$TMP/cmd.err")" = "Try 'socks5d --help' for more information." ] ||
        fail "'$*': stderr was:"$'\n'"$(cat "$TMP/cmd.err")"
}
usage_error --bogus
usage_error -x
usage_error -p
usage_error -p 65536
usage_error -p -1
usage_error -p 12x
usage_error -p ''
usage_error --threads 0
usage_error --threads many
usage_error --max-conns -5
usage_error --max-conns x
usage_error --handshake-timeout -1
usage_error --handshake-timeout soon
usage_error --connect-timeout 1s
usage_error --idle-timeout x
usage_error --allow 10.0.0.0/33
usage_error --allow 300.0.0.0/8
usage_error --allow nonsense
usage_error --allow ::1/129
usage_error --deny-dest 1.2.3.4/
usage_error --deny-dest /8
usage_error -p 0 extra
usage_error -u alice
usage_error -P secret
expect_status 2 "$S5" --bogus
[ "$(head -n1 "$TMP/cmd.err")" = "socks5d: unrecognized option '--bogus'" ] ||
    fail "--bogus: '$(head -n1 "$TMP/cmd.err")'"
(cd "$(dirname "$S5")" && expect_status 2 ./socks5d --bogus)
head -n1 "$TMP/cmd.err" | grep -q "^socks5d: unrecognized option" ||
    fail "run by its path: $(head -n1 "$TMP/cmd.err")"
ok "bad options and values: one line each, then the hint, exit 2"

# ---- startup failures: one line, exit 1.
startup_error() { # REGEX ARGS...
    local want=$1
    shift
    expect_status 1 "$S5" "$@"
    [ "$(wc -l <"$TMP/cmd.err")" -eq 1 ] && grep -Eq -- "^socks5d: (error: )?$want" "$TMP/cmd.err" ||
        fail "'$*': stderr was:"$'\n'"$(cat "$TMP/cmd.err")"$'\n'"want one line /$want/"
}
start holder python3 -c '
import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True); time.sleep(120)'
taken=$(wait_out holder '^[0-9]+$' 60)
startup_error ".*127\.0\.0\.1.*$taken.*Address already in use" -p "$taken"
startup_error ".*$TMP/none.*No such file or directory" -p 0 --users "$TMP/none"
printf 'alice:ok\nnocolon\n' >"$TMP/bad.users"
startup_error ".*$TMP/bad\.users:2: " -p 0 --users "$TMP/bad.users"
printf 'alice:ok\nalice:again\n' >"$TMP/dup.users"
startup_error ".*$TMP/dup\.users:2: " -p 0 --users "$TMP/dup.users"
startup_error ".*192\.0\.2\.1.*" -i 192.0.2.1 -p 0
ok "startup failures: the port taken, a users file missing, malformed, with a user twice, an address not ours: one line, exit 1"

# ---- the default address: 127.0.0.1 port 1080
start default "$S5"
deadline=$((SECONDS + 30))
while ! grep -Eq 'listening on|1080' "$TMP/default.err" && kill -0 "$PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
    sleep 0.05
done
if grep -q 'listening on' "$TMP/default.err"; then
    grep -Eq 'listening on 127\.0\.0\.1 port 1080\b' "$TMP/default.err" || fail "default: $(cat "$TMP/default.err")"
    stop "$PID"
    ok "no -i, no -p: listening on 127.0.0.1 port 1080"
else
    finish "$PID" 10
    [ "$STATUS" -eq 1 ] && grep -q '127\.0\.0\.1 port 1080: Address already in use' "$TMP/default.err" ||
        fail "default address: exit $STATUS, $(cat "$TMP/default.err")"
    ok "no -i, no -p: 127.0.0.1 port 1080 (taken here: said so, exit 1)"
fi

# ---- every option together, and the server serves
start_echo echo
printf 'bob:pw\n' >"$TMP/users"
start_s5 all -i 127.0.0.1 -p 0 -u alice -P secret --users "$TMP/users" -b 127.0.0.1 -1 \
    --allow 127.0.0.0/8 --allow ::1/128 --deny-dest 10.0.0.0/8 --deny-dest 127.0.0.2/32 \
    --threads 2 --max-conns 100 --handshake-timeout 5 --connect-timeout 5 --idle-timeout 60 -v
got=$(s5c "127.0.0.1:$S5_PORT" 127.0.0.1 "$ECHO_PORT" --user bob --password pw --send 'abc')
[[ $got =~ ^method\ 2\ auth\ 0\ reply\ 0\ 127\.0\.0\.1\ [0-9]+\ data\ 3$ ]] || fail "all options: '$got'"
want_s5c "method 2 auth 0 reply 2 0.0.0.0 0 closed" "127.0.0.1:$S5_PORT" 127.0.0.2 "$ECHO_PORT" --user bob --password pw
stop "$S5_PID"
ok "every option at once: the server serves and refuses as told"
no_sanitizer_reports
