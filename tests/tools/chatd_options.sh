#!/usr/bin/env bash
# chatd: the command line.  --help and --version exit 0; bad values, unknown
# options and extra arguments exit 2 with one line and a hint; an address
# that does not resolve, a port in use or a bad AC_POLLER exit 1 with one
# line and no "bye" (issue 8 item 19); the startup line; -v; IPv6.
here=$(cd "$(dirname "$0")" && pwd)
exec timeout -k 5 60 env PYTHONPATH="$here" python3 - <<'EOF'
import os
import re
import socket
import subprocess

from chatd_harness import CHATD, WELCOME, Chatd, Client, check, ok, run


def chatd(*args):
    """Run chatd to its end; returns (status, stdout, stderr)."""
    p = subprocess.run([CHATD, *args], capture_output=True, text=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def test():
    st, out, err = chatd("--help")
    check(st == 0 and err == "", f"--help: status {st}, stderr {err!r}")
    for opt in ("--listen", "--port", "--max-clients", "--max-line", "--max-queue",
                "--idle-timeout", "--quiet", "--verbose", "--version"):
        check(opt in out, f"--help does not mention {opt}")
    check(chatd("-h")[1] == out, "-h differs from --help")
    st, out, err = chatd("--version")
    check(st == 0 and re.fullmatch(r"chatd \(libasyncore\) \d+\.\d+\.\d+\n", out),
          f"--version: status {st}, {out!r}")
    ok("--help and --version: exit 0, on stdout")

    for args, msg in ((["-p", "65536"], "invalid value for --port: '65536'"),
                      (["-p", "12x"], "invalid value for --port: '12x'"),
                      (["--port=-1"], "invalid value for --port: '-1'"),
                      (["--max-line", "0"], "invalid value for --max-line: '0'"),
                      (["--max-line", "4k"], "invalid value for --max-line: '4k'"),
                      (["--max-clients", "0"], "invalid value for --max-clients: '0'"),
                      (["--max-queue", ""], "invalid value for --max-queue: ''"),
                      (["--idle-timeout", "-1"], "invalid value for --idle-timeout: '-1'"),
                      (["--idle-timeout", "soon"], "invalid value for --idle-timeout: 'soon'"),
                      (["--no-such-option"], "unrecognized option"),
                      (["-x"], "invalid option"),
                      (["--port"], "requires an argument"),
                      (["extra"], "unexpected argument 'extra'")):
        st, out, err = chatd(*args)
        check(st == 2, f"{args}: status {st}, not 2")
        # Issue 8 item 19: one line saying what is wrong, from "chatd: "
        # (not the path it was run by), then the hint, not the usage.
        lines = err.splitlines()
        check(len(lines) == 2 and lines[0].startswith("chatd: ") and msg in lines[0]
              and lines[1] == "Try 'chatd --help' for more information.",
              f"{args}: stderr {err!r}")
        check(out == "", f"{args}: stdout {out!r}")
    ok("bad options: exit 2 with one line and the --help hint")

    # A startup failure: one error line, exit 1, and no "bye" (item 19).
    st, _, err = chatd("-l", "no.such.host.invalid", "-p", "0")
    check(st == 1 and re.fullmatch(r"chatd: error: cannot resolve no\.such\.host\.invalid: .*\n",
                                   err), f"bad host: {st} {err!r}")
    s = Chatd()
    st, _, err = chatd("-p", str(s.port))
    check(st == 1 and err == f"chatd: error: cannot listen on 127.0.0.1 port {s.port}: "
          "Address already in use\n", f"port in use: {st} {err!r}")
    p = subprocess.run([CHATD, "-p", "0"], capture_output=True, text=True, timeout=10,
                       stdin=subprocess.DEVNULL, env=dict(os.environ, AC_POLLER="bogus"))
    check(p.returncode == 1 and re.fullmatch(r"chatd: error: AC_POLLER=bogus:? (is )?not "
                                             r"(a poller \()?epoll, poll or select\)?\n", p.stderr),
          f"AC_POLLER=bogus: {p.returncode} {p.stderr!r}")
    ok("an unknown host, a port in use or a bad AC_POLLER: exit 1 with one line, no bye")

    first = s.log().splitlines()[0]
    check(first == f"chatd: info: listening on 127.0.0.1 port {s.port}, at most 1000 clients",
          f"startup line: {first!r}")
    check(s.stop() == 0, "SIGTERM: exit status not 0")
    s.check_clean()
    ok(f"startup line: {first}")

    s = Chatd("-v", "--max-clients", "7")
    a = Client(s, "alice")
    s.wait_log(r"chatd: debug: 127\.0\.0\.1:\d+ connected")
    s.wait_log(r"chatd: debug: 127\.0\.0\.1:\d+ is alice")
    check("at most 7 clients" in s.log(), "--max-clients not in the startup line")
    a.close()
    s.wait_log(r"chatd: info: 127\.0\.0\.1:\d+ alice left\n")
    check(s.stop() == 0, "SIGTERM: exit status not 0")
    ok("-v logs connections and names")

    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        print("skip - IPv6: no ::1 here")
        return
    s = Chatd(listen="::1")
    check(s.host == "::1", f"IPv6 startup line: {s.log()!r}")
    a, b = Client(s, "a"), Client(s, "b")
    a.expect("* b has joined")
    b.send("over IPv6")
    a.expect("<b> over IPv6")
    b.expect("<b> over IPv6")
    a.close()
    b.expect("* a has left")
    s.wait_log(r"\[::1\]:\d+ a left")  # peers as [addr]:port in the log
    check(s.stop() == 0, "SIGTERM: exit status not 0")
    s.check_clean()
    ok("-l ::1: IPv6")


run(test)
EOF
