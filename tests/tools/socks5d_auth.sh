#!/usr/bin/env bash
# socks5d's authentication (RFC 1929) and -1.  With -u/-P: a greeting
# without method 2 gets 05 FF and a close; the right password status 0 and
# a working tunnel; a wrong password, an unknown user, a user of another
# case: a status that is not 0, then a close (and no request line, no
# tunnel); SOCKS4, which has no password, 91.  --users FILE with -u/-P:
# both kinds of users get in.  -1: before any authentication a no-auth
# greeting from 127.0.0.1 is refused (FF), a wrong password does not change
# that, and after one authenticated request from 127.0.0.1 a no-auth
# greeting from it is accepted (curl without credentials fetches), while
# 127.0.0.2 still has to authenticate; SOCKS4 likewise (socks5d(1)).
# shellcheck source=tests/tools/socks5d_common.bash
source "$(dirname "$0")/socks5d_common.bash"
need_cmd curl

small=$(make_file small 100000)
start_http http
H=$HTTP_PORT
start_echo echo
E=$ECHO_PORT

printf 'dave:d4ve\n' >"$TMP/users"
start_s5 s5 -p 0 -u alice -P 'pa ss' --users "$TMP/users"
P=127.0.0.1:$S5_PORT
want_s5c "method 255 closed" "$P" 127.0.0.1 "$E"
want_s5c "method 255 closed" "$P" 127.0.0.1 "$E" --methods 0,1,3,128
ok "a greeting without method 2: 05 FF, closed"
got=$(s5c "$P" 127.0.0.1 "$E" --user alice --password 'pa ss' --send 'hello\n')
[[ $got =~ ^method\ 2\ auth\ 0\ reply\ 0\ 127\.0\.0\.1\ [0-9]+\ data\ 6$ ]] || fail "alice: '$got'"
got=$(s5c "$P" 127.0.0.1 "$E" --user dave --password d4ve --methods 0,2 --send 'hi\n')
[[ $got =~ ^method\ 2\ auth\ 0\ reply\ 0\ 127\.0\.0\.1\ [0-9]+\ data\ 3$ ]] || fail "dave: '$got'"
wait_request s5 "user=alice cmd=connect dest=127\.0\.0\.1:$E reply=succeeded\(0\) up=6 down=6 " >/dev/null
wait_request s5 "user=dave cmd=connect dest=127\.0\.0\.1:$E reply=succeeded\(0\) up=3 down=3 " >/dev/null
ok "-u alice and --users' dave: status 0, the tunnel echoes, user= in the log"
n=$(request_lines s5 | wc -l)
for cred in "alice wrong" "alice pa" "Alice pa_ss" "bob pa_ss" "dave d4vE" "dave pa_ss" "alice pa_ss_and_more" "alice d4ve"; do
    set -- $cred
    pw=${2//_/ }
    got=$(s5c "$P" 127.0.0.1 "$E" --user "$1" --password "$pw")
    [[ $got =~ ^method\ 2\ auth\ ([0-9]+)\ closed$ ]] && [ "${BASH_REMATCH[1]}" -ne 0 ] ||
        fail "user '$1' password '$pw': '$got'"
done
# The right user with an empty password (RFC 1929 allows PLEN 0).
got=$(s5c "$P" 127.0.0.1 "$E" --user alice --password '')
[[ $got =~ ^method\ 2\ auth\ [1-9][0-9]*\ closed$ ]] || fail "an empty password: '$got'"
sleep 0.3
[ "$(request_lines s5 | wc -l)" -eq "$n" ] || fail "a failed authentication logged a request: $(request_lines s5 | tail -n1)"
grep -Eq 'warning: authentication failed: client=127\.0\.0\.1:[0-9]+ user=Alice$' "$TMP/s5.err" ||
    fail "no warning for Alice's failed authentication: $(grep -m3 'authentication' "$TMP/s5.err")"
[ "$(grep -c 'authentication failed' "$TMP/s5.err")" -eq 9 ] ||
    fail "$(grep -c 'authentication failed' "$TMP/s5.err") 'authentication failed' warnings, not 9"
ok "wrong passwords, unknown users, another case, an empty password: status != 0, closed, no request line, a warning each"
want_s5c "reply4 91 0.0.0.0 0 closed" "$P" 127.0.0.1 "$E" --socks4
want_s5c "reply4 91 0.0.0.0 0 closed" "$P" localhost "$E" --socks4a --user alice
ok "SOCKS4 and 4a when a password is required: 91"
# curl: with credentials it fetches, without it does not.
[ "$(curl_sha --proxy "socks5h://dave:d4ve@$P" "http://localhost:$H/small")" = "$small" ] || fail "curl as dave"
rc=0
timeout 30 curl -sS --max-time 20 --socks5-hostname "$P" "http://localhost:$H/small" >"$TMP/no.body" 2>/dev/null || rc=$?
[ $rc -ne 0 ] && [ ! -s "$TMP/no.body" ] || fail "curl without credentials: exit $rc"
stop "$S5_PID"
ok "curl socks5h://dave:d4ve@ fetches; without credentials it does not"

# ---- -1
start_s5 once -p 0 -1 -u alice -P secret
P=127.0.0.1:$S5_PORT
want_s5c "method 255 closed" "$P" 127.0.0.1 "$E"
got=$(s5c "$P" 127.0.0.1 "$E" --user alice --password wrong --methods 0,2)
[[ $got =~ ^method\ 2\ auth\ [1-9][0-9]*\ closed$ ]] || fail "-1, a wrong password: '$got'"
want_s5c "method 255 closed" "$P" 127.0.0.1 "$E"
ok "-1: no-auth refused before any authentication, and after a wrong password"
got=$(s5c "$P" 127.0.0.1 "$E" --user alice --password secret --send 'x\n')
[[ $got =~ ^method\ 2\ auth\ 0\ reply\ 0\ .*\ data\ 2$ ]] || fail "-1, authenticated: '$got'"
wait_request once "client=127\.0\.0\.1:[0-9]+ user=alice cmd=connect .*reply=succeeded\(0\)" >/dev/null
got=$(s5c "$P" 127.0.0.1 "$E" --send 'y\n')
[[ $got =~ ^method\ 0\ reply\ 0\ .*\ data\ 2$ ]] || fail "-1, after one authentication, no-auth from 127.0.0.1: '$got'"
[ "$(curl_sha --socks5-hostname "$P" "http://localhost:$H/small")" = "$small" ] ||
    fail "-1: curl without credentials"
# socks5d(1): -1 lets that address use SOCKS4 too.
got=$(s5c "$P" 127.0.0.1 "$E" --socks4 --send 'w\n')
[[ $got =~ ^reply4\ 90\ .*\ data\ 2$ ]] || fail "-1, SOCKS4 after authentication: '$got'"
# Another address has not authenticated.
out=$(timeout 30 python3 - "$S5_PORT" <<'EOF'
import os, sys
sys.path.insert(0, os.environ["S5_TOOLS"])
import socks5_client as sc
s = sc.connect(("127.0.0.1", int(sys.argv[1])), source="127.0.0.2")
sc.send(s, sc.greeting((0,)))
m = sc.read_method(s)
s = sc.connect(("127.0.0.1", int(sys.argv[1])), source="127.0.0.2")
sc.send(s, sc.socks4_request(1, "127.0.0.1", 9))
print(m, sc.read_socks4_reply(s)[0])
EOF
) || fail "-1 from 127.0.0.2: $out"
[ "$out" = "255 91" ] || fail "-1: 127.0.0.2 was let in without authenticating (method, SOCKS4 reply: $out)"
# A client that offers both gets no-auth now (or still 2: either is fine),
# and a tunnel either way.
got=$(s5c "$P" 127.0.0.1 "$E" --user alice --password secret --methods 0,2 --send 'z\n')
[[ $got =~ ^method\ [02]\ (auth\ 0\ )?reply\ 0\ .*\ data\ 2$ ]] || fail "-1, both methods: '$got'"
stop "$S5_PID"
ok "-1: after alice's request from 127.0.0.1, no-auth and SOCKS4 from 127.0.0.1 are let in (curl too); 127.0.0.2 is not"
no_sanitizer_reports
