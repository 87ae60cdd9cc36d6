#!/usr/bin/env python3
"""echo_asyncore.py -- Python's own asyncore running the seed echo server.

The EchoHandler/EchoServer pair of the asyncore documentation, unchanged but
for the listen backlog (4096 instead of 5, as every server of the benchmark)
and the port-0 protocol of bench/run.sh.  recv(8192) and Nagle left on are
the documentation's choices.

usage: echo_asyncore.py [-n] [--select] [PORT]   (0 = any; prints "PORT <n>" first)

-n sets TCP_NODELAY on accepted sockets (the supplementary row of
bench/run.sh); the documentation's server leaves Nagle on.

The loop uses poll (use_poll=True) by default: with select, descriptors
>= FD_SETSIZE (1024) make select() fail, so the 1000-connection and the
10,000-idle rows cannot run at all.  --select runs asyncore's default.
"""
import resource
import signal
import socket
import sys
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asyncore


class EchoHandler(asyncore.dispatcher_with_send):
    def handle_read(self):
        data = self.recv(8192)
        if data:
            self.send(data)


NODELAY = False


class EchoServer(asyncore.dispatcher):
    def __init__(self, host, port):
        asyncore.dispatcher.__init__(self)
        self.create_socket(socket.AF_INET, socket.SOCK_STREAM)
        self.set_reuse_addr()
        self.bind((host, port))
        self.listen(4096)

    def handle_accepted(self, sock, addr):
        if NODELAY:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        EchoHandler(sock)


def main():
    global NODELAY
    args = sys.argv[1:]
    use_poll = True
    while args and args[0].startswith("-"):
        if args[0] == "-n":
            NODELAY = True
        elif args[0] == "--select":
            use_poll = False
        else:
            sys.exit(__doc__)
        args = args[1:]
    port = int(args[0]) if args else 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def stop(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    server = EchoServer("127.0.0.1", port)
    print("PORT %d" % server.socket.getsockname()[1], flush=True)
    try:
        asyncore.loop(timeout=30.0, use_poll=use_poll)
    except SystemExit:
        pass


if __name__ == "__main__":
    main()
