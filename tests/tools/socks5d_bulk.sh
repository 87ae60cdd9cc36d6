#!/usr/bin/env bash
# socks5d, bulk: curl --socks5-hostname fetches 256 MiB of random bytes
# from a local HTTP server, sha256 checked, its request line counting them
# (down: the headers and the 256 MiB); then 64 MiB each way at once through
# one tunnel to an echo server (send and receive in parallel, both hashes
# compared), which moves bytes in both directions under backpressure.
# shellcheck source=tests/tools/socks5d_common.bash
source "$(dirname "$0")/socks5d_common.bash"
need_cmd curl

SIZE=$((256 << 20))
want=$(make_file big $SIZE)
start_http http
H=$HTTP_PORT
start_echo echo
start_s5 s5 -p 0
P=$S5_PORT

t0=$SECONDS
[ "$(curl_sha --socks5-hostname "127.0.0.1:$P" "http://localhost:$H/big")" = "$want" ] ||
    fail "256 MiB through socks5d: the body differs"
rm -f "$TMP/www/big"
line=$(wait_request s5 "dest=localhost:$H reply=succeeded\(0\) ")
[[ $line =~ up=([0-9]+)\ down=([0-9]+)\  ]] || fail "request line: $line"
[ "${BASH_REMATCH[2]}" -gt $SIZE ] && [ "${BASH_REMATCH[2]}" -lt $((SIZE + 1000)) ] ||
    fail "down=${BASH_REMATCH[2]} for $SIZE bytes of body"
ok "256 MiB through socks5d with curl --socks5-hostname in $((SECONDS - t0)) s: sha256 matches, down=${BASH_REMATCH[2]}"

out=$(timeout 120 python3 - "$P" "$ECHO_PORT" <<'EOF'
import hashlib, os, socket, sys, threading
sys.path.insert(0, os.environ["S5_TOOLS"])
import socks5_client as sc
s = sc.open_tunnel(("127.0.0.1", int(sys.argv[1])), "127.0.0.1", int(sys.argv[2]), timeout=60)
size, sent = 64 << 20, hashlib.sha256()
def send():
    block = os.urandom(1 << 20)
    for i in range(size >> 20):
        b = block[i:] + block[:i]  # 64 different blocks
        sent.update(b)
        s.sendall(b)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send)
t.start()
got, n = hashlib.sha256(), 0
while True:
    b = s.recv(1 << 18)
    if not b:
        break
    got.update(b)
    n += len(b)
t.join()
assert n == size, "%d of %d bytes came back" % (n, size)
assert got.digest() == sent.digest(), "the echo differs"
print("ok")
EOF
) || fail "64 MiB each way: $out"
line=$(wait_request s5 "dest=127\.0\.0\.1:$ECHO_PORT reply=succeeded\(0\) ")
[[ $line =~ up=67108864\ down=67108864\  ]] || fail "request line of the echo: $line"
ok "64 MiB each way at once through one tunnel, then a half-close: every byte back; up=down=67108864"
stop "$S5_PID"
no_sanitizer_reports
