/* The transports the core brings: the plain socket, and the file
 * dispatcher's read(2) and writev(2) (F8). */
#include "transport.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static ssize_t plain_recv(struct ac_transport *t, int fd, void *buf, size_t len)
{
    (void)t;
    for (;;) {
        ssize_t n = recv(fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

static ssize_t plain_sendv(struct ac_transport *t, int fd, const struct iovec *iov, int iovcnt)
{
    (void)t;
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt};
    for (;;) {
        /* One buffer (the common case): send(2), cheaper in the kernel than
         * sendmsg's copy-in of a header and a vector. */
        ssize_t n = iovcnt == 1 ? send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
                                : sendmsg(fd, &msg, MSG_NOSIGNAL); /* X12 */
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

static ssize_t file_recv(struct ac_transport *t, int fd, void *buf, size_t len)
{
    (void)t;
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

/* A pipe whose reader is gone raises SIGPIPE here (X12, asyncore.h). */
static ssize_t file_sendv(struct ac_transport *t, int fd, const struct iovec *iov, int iovcnt)
{
    (void)t;
    for (;;) {
        ssize_t n = writev(fd, iov, iovcnt);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

static int plain_shutdown(struct ac_transport *t, int fd, int how)
{
    (void)t;
    return shutdown(fd, how) < 0 ? -errno : 0;
}

/* Never retried on EINTR: the descriptor is gone whatever close says (X11). */
static int plain_close(struct ac_transport *t, int fd)
{
    (void)t;
    return close(fd) < 0 ? -errno : 0;
}

static const struct ac_transport_ops plain_ops = {
    .name = "plain",
    .recv = plain_recv,
    .sendv = plain_sendv,
    .shutdown = plain_shutdown,
    .close = plain_close,
};

static const struct ac_transport_ops file_ops = {
    .name = "file",
    .recv = file_recv,
    .sendv = file_sendv,
    .shutdown = plain_shutdown, /* ENOTSOCK on anything but a socket */
    .close = plain_close,
};

struct ac_transport ac__plain_transport = {&plain_ops};
struct ac_transport ac__file_transport = {&file_ops};
