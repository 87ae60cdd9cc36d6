/* select backend: asyncore's poll (L6, L10, L12).  The sets are kept up to
 * date by set() and copied for every wait. */
#include "poller.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/select.h>

struct ac_poller {
    fd_set rd, wr, ex;
    int maxfd; /* highest fd in any set, -1 if none */
    uint64_t tags[FD_SETSIZE];
};

static int select_open(struct ac_poller **out)
{
    struct ac_poller *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    FD_ZERO(&p->rd);
    FD_ZERO(&p->wr);
    FD_ZERO(&p->ex);
    p->maxfd = -1;
    *out = p;
    return 0;
}

static void select_close(struct ac_poller *p) { free(p); }

static void put(fd_set *s, int fd, bool on)
{
    if (on)
        FD_SET(fd, s);
    else
        FD_CLR(fd, s);
}

static int select_set(struct ac_poller *p, int fd, uint64_t tag, unsigned have, unsigned want)
{
    (void)have;
    /* X9: a descriptor select() cannot represent is never written into a
     * set.  The map refuses it before it gets here (fd_limit); this is the
     * backstop against writing past the fd_set. */
    if (fd >= FD_SETSIZE)
        return want ? -EMFILE : 0;
    put(&p->rd, fd, want & AC__WANT_IN);
    put(&p->wr, fd, want & AC__WANT_OUT);
    put(&p->ex, fd, want & AC__WANT_EX);
    p->tags[fd] = tag;
    if (want && fd > p->maxfd)
        p->maxfd = fd;
    while (p->maxfd >= 0 && !FD_ISSET(p->maxfd, &p->rd) && !FD_ISSET(p->maxfd, &p->wr) &&
           !FD_ISSET(p->maxfd, &p->ex))
        p->maxfd--;
    return 0;
}

static int select_wait(struct ac_poller *p, double timeout, struct ac_ready *out, int max)
{
    fd_set rd = p->rd, wr = p->wr, ex = p->ex;
    /* L8: microseconds, a remainder rounded up. */
    double us = timeout * 1e6 > 1e15 ? 1e15 : timeout * 1e6;
    long long whole = (long long)us + ((double)(long long)us < us);
    struct timeval tv = {(time_t)(whole / 1000000), (suseconds_t)(whole % 1000000)};
    int n = select(p->maxfd + 1, &rd, &wr, &ex, timeout < 0 ? NULL : &tv);
    if (n < 0)
        return -errno;
    int k = 0;
    for (int fd = 0; fd <= p->maxfd && n > 0 && k < max; fd++) {
        unsigned ev = (FD_ISSET(fd, &rd) ? POLLIN : 0u) | (FD_ISSET(fd, &wr) ? POLLOUT : 0u) |
                      (FD_ISSET(fd, &ex) ? POLLPRI : 0u);
        if (ev)
            out[k++] = (struct ac_ready){p->tags[fd], ev};
    }
    return k;
}

const struct ac_poller_ops ac__poller_select = {
    .name = "select",
    .select_style = true,
    .fd_limit = FD_SETSIZE,
    .open = select_open,
    .close = select_close,
    .set = select_set,
    .wait = select_wait,
};
