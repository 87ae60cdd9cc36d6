#!/usr/bin/env bash
# chatd: the room.  Join and leave notices, broadcast to everyone (sender
# included) in one order for all, /who, /me, /msg, names (unique whatever
# the case, validated, renames), /quit, /help, unknown commands.
here=$(cd "$(dirname "$0")" && pwd)
exec timeout -k 5 60 env PYTHONPATH="$here" python3 - <<'EOF'
from chatd_harness import Chatd, Client, check, ok, pump, run


def test():
    s = Chatd()
    a = Client(s, "alice")
    b = Client(s, "bob")
    a.expect("* bob has joined")
    c = Client(s, "carol")
    a.expect("* carol has joined")
    b.expect("* carol has joined")
    ok("join notices go to everybody in the room, the newcomer included")

    a.send("hello, room")
    for x in (a, b, c):
        x.expect("<alice> hello, room")
    a.send("")
    a.send("//etc/passwd is a path")
    for x in (a, b, c):
        x.expect("<alice> /etc/passwd is a path")
    ok("<name> text to everyone; empty lines ignored; // escapes a slash")

    # Three clients send 300 lines each at once: everybody must see the
    # same 900 lines in the same order, each sender's lines in its order.
    for x in (a, b, c):
        x.sock.sendall(b"".join(f"{x.name} says {i}\n".encode() for i in range(300)))
    pump([a, b, c], lambda: all(len(x.lines) >= 900 for x in (a, b, c)), 20)
    check(a.lines == b.lines == c.lines, "the three transcripts differ")
    check(len(a.lines) == 900, f"{len(a.lines)} lines instead of 900")
    for x in (a, b, c):
        mine = [l for l in a.lines if l.startswith(f"<{x.name}> ")]
        check(mine == [f"<{x.name}> {x.name} says {i}" for i in range(300)],
              f"{x.name}'s lines are not all there in order")
    ok("900 interleaved lines: one order for everyone, each sender's order kept")

    a.send("/who")
    a.expect("* users (3): alice bob carol")
    b.send("/WHO")
    b.expect("* users (3): alice bob carol")
    b.send("/me waves")
    for x in (a, b, c):
        x.expect("<bob> * waves")
    b.send("/me")
    b.expect("! usage: /me TEXT")
    ok("/who lists the room in order of arrival; /me")

    a.send("/msg carol psst, carol: ünïcödé")
    c.expect("*alice* psst, carol: ünïcödé")
    a.expect("-> *carol* psst, carol: ünïcödé")
    a.send("/msg CAROL   two")
    c.expect("*alice* two")
    a.expect("-> *carol* two")
    a.send("/msg nobody hi")
    a.expect("! no such user: nobody")
    a.send("/msg carol")
    a.expect("! usage: /msg NAME TEXT")
    b.expect_silence()
    ok("/msg reaches one person only; errors go to the sender")

    d = Client(s)
    d.expect("* welcome to chatd; pick a name with /nick NAME")
    for line in ("hello?", "/me hops", "/msg alice hi"):
        d.send(line)
        d.expect("! pick a name first: /nick NAME")
    a.send("not for dave yet")
    for x in (a, b, c):
        x.expect("<alice> not for dave yet")
    d.send("/who")
    d.expect("* users (3): alice bob carol")
    for name, err in (("alice", "! name taken: alice"), ("ALICE", "! name taken: alice"),
                      ("", "! invalid name: use 1-32 letters, digits, '-' or '_'"),
                      ("two words", "! invalid name: use 1-32 letters, digits, '-' or '_'"),
                      ("-dash", "! invalid name: use 1-32 letters, digits, '-' or '_'"),
                      ("x" * 33, "! invalid name: use 1-32 letters, digits, '-' or '_'"),
                      ("dävé", "! invalid name: use 1-32 letters, digits, '-' or '_'")):
        d.send(f"/nick {name}")
        d.expect(err)
    d.send("/nick " + "d" * 32)
    for x in (a, b, c, d):
        x.expect(f"* {'d' * 32} has joined")
    d.send("/nick dave")
    for x in (a, b, c, d):
        x.expect(f"* {'d' * 32} is now known as dave")
    b.send("/nick Dave")
    b.expect("! name taken: dave")
    b.send("/nick robert")
    for x in (a, b, c, d):
        x.expect("* bob is now known as robert")
    b.send("/nick Robert")
    for x in (a, b, c, d):
        x.expect("* robert is now known as Robert")
    b.send("/nick Robert")
    b.expect_silence()
    a.send("/who")
    a.expect("* users (4): alice Robert carol dave")
    ok("names: taken whatever the case, validated, renames announced")

    a.send("/dance")
    a.expect("! unknown command: /dance (try /help)")
    a.send("/help")
    a.expect("* commands: /nick NAME, /who, /me TEXT, /msg NAME TEXT, /quit, /help")
    ok("/help; unknown commands")

    c.send("/quit")
    check(c.expect_closed() == ["* bye"], "/quit: no '* bye' before the close")
    for x in (a, b, d):
        x.expect("* carol has left")
    d.close()
    for x in (a, b):
        x.expect("* dave has left")
    a.send("/who")
    a.expect("* users (2): alice Robert")
    ok("/quit and a plain close are leave notices")

    check(s.stop() == 0, "SIGTERM: exit status not 0")
    s.check_clean()


run(test)
EOF
