#!/usr/bin/env python3
"""portfwd_asyncore.py -- the seed's port forwarder on Python's own asyncore.

The classic asyncore port-forwarder recipe (the seed documents' headline
example, translated to C in examples/port_forwarder.c), rewritten here for
bench/run_portfwd.sh:

- a listening ``Forwarder`` whose accept pairs a ``Receiver`` (the client's
  end) with a ``Sender`` (a new outgoing connection to the remote);
- each end reads up to 4096 bytes at a time (the recipe's read size) and
  appends them to its peer's buffer; each end is writable while its own
  buffer holds bytes and sends as much of it as the kernel takes;
- the buffers are plain ``bytes`` that grow without bound, as in the recipe
  (no backpressure), and either end closing closes both (what is still
  buffered is dropped, as in the recipe; no half-close).

Two departures from the recipe, both needed to run the benchmark at all:
the loop uses poll (``use_poll=True``), because with select descriptors
>= FD_SETSIZE (1024) make select() fail and the idle row holds thousands;
and the Sender is writable while its connect is in progress, so a connect
completes even before the client has sent anything (the recipe waited for
the client's first bytes).  Nagle is left on, as in the recipe.  The listen
backlog is 4096 (the recipe's 5 would drop SYNs in the connection-rate row),
as every server of bench/run.sh.

usage: portfwd_asyncore.py LOCAL_PORT REMOTE_HOST REMOTE_PORT
       (LOCAL_PORT 0 = any; prints "PORT <n>" first; listens on 127.0.0.1)
"""
import resource
import signal
import socket
import sys
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asyncore

READ_SIZE = 4096


class End(asyncore.dispatcher):
    """One side of a relayed connection: what it reads goes to its peer."""

    def __init__(self, sock=None):
        asyncore.dispatcher.__init__(self, sock)
        self.peer = None
        self.outbuf = b""

    def readable(self):
        return True

    def writable(self):
        return self.connecting or len(self.outbuf) > 0

    def handle_connect(self):
        pass

    def handle_read(self):
        data = self.recv(READ_SIZE)
        if data and self.peer is not None:
            self.peer.outbuf += data

    def handle_write(self):
        if self.outbuf:
            sent = self.send(self.outbuf)
            self.outbuf = self.outbuf[sent:]

    def handle_close(self):
        peer, self.peer = self.peer, None
        self.close()
        if peer is not None:
            peer.peer = None
            peer.close()


class Receiver(End):
    """The client's end, accepted by the Forwarder."""


class Sender(End):
    """The remote's end: an outgoing connection paired with a Receiver."""

    def __init__(self, receiver, host, port):
        End.__init__(self)
        self.peer = receiver
        receiver.peer = self
        self.create_socket(socket.AF_INET, socket.SOCK_STREAM)
        self.connect((host, port))


class Forwarder(asyncore.dispatcher):
    def __init__(self, port, remote_host, remote_port):
        asyncore.dispatcher.__init__(self)
        self.remote = (remote_host, remote_port)
        self.create_socket(socket.AF_INET, socket.SOCK_STREAM)
        self.set_reuse_addr()
        self.bind(("127.0.0.1", port))
        self.listen(4096)

    def handle_accepted(self, sock, addr):
        Sender(Receiver(sock), *self.remote)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    port, host, rport = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def stop(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    fwd = Forwarder(port, host, rport)
    print("PORT %d" % fwd.socket.getsockname()[1], flush=True)
    try:
        asyncore.loop(timeout=30.0, use_poll=True)
    except SystemExit:
        pass


if __name__ == "__main__":
    main()
