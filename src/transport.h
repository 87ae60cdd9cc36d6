/* The transport under a dispatcher: how its bytes reach the socket
 * (DESIGN.md "Layers": TLS is a transport, not a layer).  Every dispatcher
 * has one transport; the dispatcher's recv, send, shutdown and close go
 * through it, so that the buffered sender and the chat channel run
 * unchanged over any transport.  A transport knows a descriptor and its
 * own state, and nothing about dispatchers or handlers.
 *
 * The plain socket is the default; a file dispatcher has its own (read and
 * writev, F8).  A TLS transport (a separate library of this tree that
 * includes this header and internal.h) will need two things more, which
 * plug in where the map computes interest and waits (map.c, wanted() and
 * iterate()):
 *   - bytes already decrypted and held inside TLS are readable although
 *     the socket is not: such a dispatcher must get its read event without
 *     a poll event, and the wait must not block while one has bytes;
 *   - a TLS write may need the socket readable first, and a read writable
 *     (handshake, renegotiation): the interest the poller is given must be
 *     the transport's answer to what the layer wants. */
#ifndef AC_TRANSPORT_H
#define AC_TRANSPORT_H

#include <sys/types.h>
#include <sys/uio.h>

/* A transport is an object whose first member is its table: a TLS
 * transport embeds struct ac_transport at the start of its own per-
 * connection state and gets it back from the pointer its functions are
 * given.  The plain and file transports have no state and are shared.
 * The plain socket costs a dispatcher nothing; another transport is kept
 * out of line (struct ac_rare, internal.h, ac__tp). */
struct ac_transport {
    const struct ac_transport_ops *ops;
};

struct ac_transport_ops {
    const char *name;
    /* One receive of up to len bytes: the count, 0 at end of stream, or
     * -errno (-EAGAIN: nothing now).  EINTR is retried inside. */
    ssize_t (*recv)(struct ac_transport *t, int fd, void *buf, size_t len);
    /* One send of the buffers: the bytes taken, or -errno (-EAGAIN: it
     * would block).  Never raises SIGPIPE on a socket (X12). */
    ssize_t (*sendv)(struct ac_transport *t, int fd, const struct iovec *iov, int iovcnt);
    int (*shutdown)(struct ac_transport *t, int fd, int how); /* 0 or -errno */
    /* Close fd and release t's state: 0 or -errno, and fd is gone either way. */
    int (*close)(struct ac_transport *t, int fd);
};

/* transport.c: sendmsg(2)/recv(2) on the socket itself, and read(2)/
 * writev(2) for a file dispatcher (F8).  Shared, never written. */
extern struct ac_transport ac__plain_transport;
extern struct ac_transport ac__file_transport;

#endif
