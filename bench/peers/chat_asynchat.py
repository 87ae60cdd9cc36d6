#!/usr/bin/env python3
"""chat_asynchat.py -- the line-echo server of the chat benchmark on Python's
own asynchat, the reference design of include/asynchat.h.

The classic asynchat pattern: an async_chat per connection with b"\\n" as
its terminator, collect_incoming_data appending to a list, found_terminator
joining it and pushing the line back with its "\\n".  Everything else is
asynchat's default: ac_in_buffer_size = ac_out_buffer_size = 65536, push
sends at once (one send per line).

Policy, the same in every server of the chat benchmark (bench/chat_ac.c):
TCP_NODELAY on every accepted socket.  Without it, two lines pushed from one
read meet Nagle's algorithm and the client's delayed ACK (40 ms).  The loop
uses poll (use_poll=True), as bench/peers/echo_asyncore.py does.

usage: chat_asynchat.py [PORT]   (0 = any; prints "PORT <n>" first)
"""
import signal
import socket
import sys
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asynchat
    import asyncore


class LineEcho(asynchat.async_chat):
    def __init__(self, sock):
        asynchat.async_chat.__init__(self, sock)
        self.set_terminator(b"\n")
        self.ibuffer = []

    def collect_incoming_data(self, data):
        self.ibuffer.append(data)

    def found_terminator(self):
        self.ibuffer.append(b"\n")
        self.push(b"".join(self.ibuffer))
        self.ibuffer = []


class LineServer(asyncore.dispatcher):
    def __init__(self, host, port):
        asyncore.dispatcher.__init__(self)
        self.create_socket(socket.AF_INET, socket.SOCK_STREAM)
        self.set_reuse_addr()
        self.bind((host, port))
        self.listen(4096)

    def handle_accepted(self, sock, addr):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        LineEcho(sock)


def main():
    args = sys.argv[1:]
    if args and args[0].startswith("-"):
        sys.exit(__doc__)
    port = int(args[0]) if args else 0

    def stop(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    server = LineServer("127.0.0.1", port)
    print("PORT %d" % server.socket.getsockname()[1], flush=True)
    try:
        asyncore.loop(timeout=30.0, use_poll=True)
    except SystemExit:
        pass


if __name__ == "__main__":
    main()
