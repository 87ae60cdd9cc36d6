/* poll backend: asyncore's poll2 (L6, L13).  A pollfd array in order of
 * registration; a removed entry is replaced by the last one. */
#include "poller.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

struct ac_poller {
    struct pollfd *pfd;
    uint64_t *tags;
    int n, cap;
    int *slot; /* fd -> index + 1, 0 = absent */
    int slotcap;
};

static int poll_open(struct ac_poller **out)
{
    struct ac_poller *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    *out = p;
    return 0;
}

static void poll_close(struct ac_poller *p)
{
    free(p->pfd);
    free(p->tags);
    free(p->slot);
    free(p);
}

static int grow(struct ac_poller *p, int fd)
{
    if (fd >= p->slotcap) {
        int cap = p->slotcap ? p->slotcap : 64;
        while (cap <= fd)
            cap *= 2;
        int *s = realloc(p->slot, (size_t)cap * sizeof(*s));
        if (!s)
            return -ENOMEM;
        for (int i = p->slotcap; i < cap; i++)
            s[i] = 0;
        p->slot = s;
        p->slotcap = cap;
    }
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        struct pollfd *f = realloc(p->pfd, (size_t)cap * sizeof(*f));
        if (!f)
            return -ENOMEM;
        p->pfd = f;
        uint64_t *t = realloc(p->tags, (size_t)cap * sizeof(*t));
        if (!t)
            return -ENOMEM;
        p->tags = t;
        p->cap = cap;
    }
    return 0;
}

static int poll_set(struct ac_poller *p, int fd, uint64_t tag, unsigned have, unsigned want)
{
    (void)have;
    /* L6: readable -> POLLIN|POLLPRI, writable and not accepting -> POLLOUT;
     * nothing wanted -> not registered. */
    short ev =
        (short)((want & AC__WANT_IN ? POLLIN | POLLPRI : 0) | (want & AC__WANT_OUT ? POLLOUT : 0));
    int i = fd < p->slotcap ? p->slot[fd] - 1 : -1;
    if (!ev) {
        if (i >= 0) {
            p->n--;
            if (i != p->n) {
                p->pfd[i] = p->pfd[p->n];
                p->tags[i] = p->tags[p->n];
                p->slot[p->pfd[i].fd] = i + 1;
            }
            p->slot[fd] = 0;
        }
        return 0;
    }
    if (i < 0) {
        int rc = grow(p, fd);
        if (rc < 0)
            return rc;
        i = p->n++;
        p->slot[fd] = i + 1;
    }
    p->pfd[i] = (struct pollfd){.fd = fd, .events = ev};
    p->tags[i] = tag;
    return 0;
}

static int poll_wait(struct ac_poller *p, double timeout, struct ac_ready *out, int max)
{
    int n = poll(p->pfd, (nfds_t)p->n, ac__timeout_ms(timeout));
    if (n < 0)
        return -errno;
    int k = 0;
    for (int i = 0; i < p->n && k < n && k < max; i++)
        if (p->pfd[i].revents)
            out[k++] = (struct ac_ready){p->tags[i], (unsigned)(unsigned short)p->pfd[i].revents};
    return k;
}

const struct ac_poller_ops ac__poller_poll = {
    .name = "poll",
    .select_style = false,
    .open = poll_open,
    .close = poll_close,
    .set = poll_set,
    .wait = poll_wait,
};
