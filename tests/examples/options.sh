#!/usr/bin/env bash
# Every example follows the programs' conventions (issue 8 item 19):
# --version is one line "NAME (libasyncore) X.Y.Z" on stdout; --help is
# the usage on stdout; a wrong option, a missing argument or a bad value is
# one line saying what is wrong, then "Try 'NAME --help' for more
# information." on stderr, exit 2, under the short name however the program
# was run; an invalid AC_POLLER is named, exit 1; a startup failure is one
# line, exit 1.
# shellcheck source=tests/examples/common.bash
source "$(dirname "$0")/common.bash"
version=$(sed -nE 's/^project\(asyncore VERSION ([0-9.]+).*/\1/p' "$AC_SOURCE_DIR/CMakeLists.txt")
[ -n "$version" ] || fail "no version in CMakeLists.txt"

# usage_error WANT_FIRST_LINE PROGRAM ARGS...: exit 2, stderr exactly two lines.
usage_error() {
    local want=$1 name
    shift
    name=$(basename "$1")
    expect_status 2 "$@"
    [ ! -s "$TMP/cmd.out" ] || fail "'$*': wrote to stdout"
    printf '%s\nTry '\''%s --help'\'' for more information.\n' "$want" "$name" >"$TMP/want"
    cmp -s "$TMP/cmd.err" "$TMP/want" ||
        fail "'$*': stderr was:"$'\n'"$(cat "$TMP/cmd.err")"$'\n'"want:"$'\n'"$(cat "$TMP/want")"
}

for name in echo_server socketserver_echo http_client port_forwarder; do
    need_example "$name"
    prog=$EX/$name
    expect_status 0 "$prog" --version
    [ "$(cat "$TMP/cmd.out")" = "$name (libasyncore) $version" ] ||
        fail "$name --version: '$(cat "$TMP/cmd.out")'"
    [ ! -s "$TMP/cmd.err" ] || fail "$name --version wrote to stderr"
    expect_status 0 "$prog" --help
    head -n1 "$TMP/cmd.out" | grep -q "^usage: $name " || fail "$name --help: $(head -n1 "$TMP/cmd.out")"
    [ ! -s "$TMP/cmd.err" ] || fail "$name --help wrote to stderr"
    usage_error "$name: unrecognized option '--bogus'" "$prog" --bogus
    ok "$name: --version, --help, --bogus"
done

ES=$EX/echo_server SS=$EX/socketserver_echo HC=$EX/http_client PF=$EX/port_forwarder
usage_error "echo_server: option requires an argument -- 'p'" "$ES" -p
usage_error "echo_server: '65536' is not a port (0-65535)" "$ES" -p 65536
usage_error "echo_server: 'localhost' is not a numeric IPv4 or IPv6 address" "$ES" -l localhost
usage_error "echo_server: unexpected argument 'extra'" "$ES" extra
usage_error "socketserver_echo: '-1' is not a client limit (0-65535)" "$SS" -m -1
usage_error "socketserver_echo: '12x' is not a port (0-65535)" "$SS" -p 12x
usage_error "http_client: give HOST PORT PATH, or an http:// URL" "$HC"
usage_error "http_client: '0' is not a timeout (seconds > 0)" "$HC" -t 0 http://127.0.0.1/
usage_error "http_client: '0' is not a port (1-65535)" "$HC" 127.0.0.1 0 /
usage_error "port_forwarder: give both -p PORT and -P PORT" "$PF" -p 0
usage_error "port_forwarder: '70000' is not a remote port (1-65535)" "$PF" -p 0 -P 70000
ok "bad values: one line each, then the hint"

# Run through a path (as a build tree does): still the short name.
(cd "$EX/.." && expect_status 2 examples/echo_server --bogus)
head -n1 "$TMP/cmd.err" | grep -q "^echo_server: unrecognized option" ||
    fail "run by its path: $(head -n1 "$TMP/cmd.err")"
ok "run by a path: messages start with the short name"

for name in echo_server socketserver_echo http_client port_forwarder; do
    args=(-p 0)
    [ "$name" = http_client ] && args=(http://127.0.0.1:1/)
    [ "$name" = port_forwarder ] && args=(-p 0 -P 1)
    expect_status 1 env AC_POLLER=kqueue "$EX/$name" "${args[@]}"
    [ "$(cat "$TMP/cmd.err")" = "$name: error: AC_POLLER=kqueue is not epoll, poll or select" ] ||
        fail "$name, AC_POLLER=kqueue: '$(cat "$TMP/cmd.err")'"
done
ok "AC_POLLER=kqueue: named, exit 1"

# A startup failure: one line, exit 1 (the port is taken).
start holder "$ES" -p 0
port=$(port_of "$(wait_line holder 'listening on ')")
expect_status 1 "$ES" -p "$port"
[ "$(cat "$TMP/cmd.err")" = "echo_server: cannot listen on 127.0.0.1 port $port: Address already in use" ] ||
    fail "port in use: '$(cat "$TMP/cmd.err")'"
expect_status 1 "$SS" -p "$port"
[ "$(cat "$TMP/cmd.err")" = "socketserver_echo: cannot serve on 127.0.0.1 port $port: Address already in use" ] ||
    fail "port in use: '$(cat "$TMP/cmd.err")'"
expect_status 1 "$PF" -p "$port" -P 1
[ "$(cat "$TMP/cmd.err")" = "port_forwarder: cannot listen on 127.0.0.1 port $port: Address already in use" ] ||
    fail "port in use: '$(cat "$TMP/cmd.err")'"
ok "startup failure: one line, exit 1"
no_sanitizer_reports
