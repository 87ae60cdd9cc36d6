/* epoll backend: poll-style dispatch (L20), level-triggered (X8). */
#include "poller.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

/* Regular files cannot be added to epoll (EPERM) yet are always ready for
 * poll and select (F9); they live in this list and are reported as ready
 * at every wait. */
struct always_ready {
    int fd;
    uint64_t tag;
    unsigned want;
};

struct ac_poller {
    int epfd;
    struct epoll_event *evs;
    int evcap;
    struct always_ready *files;
    int nfiles, filecap;
};

static int epoll_open(struct ac_poller **out)
{
    struct ac_poller *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0) {
        int err = errno;
        free(p);
        return -err;
    }
    *out = p;
    return 0;
}

static void epoll_close(struct ac_poller *p)
{
    close(p->epfd);
    free(p->evs);
    free(p->files);
    free(p);
}

static uint32_t to_epoll(unsigned want)
{
    uint32_t ev = 0;
    if (want & AC__WANT_IN)
        ev |= EPOLLIN | EPOLLPRI;
    if (want & AC__WANT_OUT)
        ev |= EPOLLOUT;
    return ev;
}

static int find_file(struct ac_poller *p, int fd)
{
    for (int i = 0; i < p->nfiles; i++)
        if (p->files[i].fd == fd)
            return i;
    return -1;
}

static int set_file(struct ac_poller *p, int fd, uint64_t tag, unsigned want)
{
    int i = find_file(p, fd);
    if (!want) {
        if (i >= 0)
            p->files[i] = p->files[--p->nfiles];
        return 0;
    }
    if (i < 0) {
        if (p->nfiles == p->filecap) {
            int cap = p->filecap ? 2 * p->filecap : 4;
            void *n = realloc(p->files, (size_t)cap * sizeof(*p->files));
            if (!n)
                return -ENOMEM;
            p->files = n;
            p->filecap = cap;
        }
        i = p->nfiles++;
    }
    p->files[i] = (struct always_ready){fd, tag, want};
    return 0;
}

static int epoll_set(struct ac_poller *p, int fd, uint64_t tag, unsigned have, unsigned want)
{
    uint32_t old = to_epoll(have), ev = to_epoll(want);
    if (p->nfiles && find_file(p, fd) >= 0)
        return set_file(p, fd, tag, ev ? want : 0);
    if (old == ev && ev == 0)
        return 0;
    struct epoll_event e = {.events = ev, .data.u64 = tag};
    int op = !old ? EPOLL_CTL_ADD : !ev ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(p->epfd, op, fd, &e) == 0)
        return 0;
    if (errno == EPERM && op == EPOLL_CTL_ADD)
        return set_file(p, fd, tag, want);
    if (errno == EEXIST && op == EPOLL_CTL_ADD && epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &e) == 0)
        return 0;
    if (errno == ENOENT && op == EPOLL_CTL_DEL)
        return 0;
    return -errno;
}

static int epoll_wait_ready(struct ac_poller *p, double timeout, struct ac_ready *out, int max)
{
    int timeout_ms = p->nfiles ? 0 : ac__timeout_ms(timeout);
    int room = max - p->nfiles;
    if (room < 1)
        room = 1;
    if (p->evcap < room) {
        void *n = realloc(p->evs, (size_t)room * sizeof(*p->evs));
        if (!n)
            return -ENOMEM;
        p->evs = n;
        p->evcap = room;
    }
    int n = epoll_wait(p->epfd, p->evs, room, timeout_ms);
    if (n < 0)
        return -errno;
    for (int i = 0; i < n; i++) {
        uint32_t e = p->evs[i].events;
        /* L20: the epoll flags map one to one onto the poll flags. */
        unsigned ev = (e & EPOLLIN ? POLLIN : 0) | (e & EPOLLOUT ? POLLOUT : 0) |
                      (e & EPOLLPRI ? POLLPRI : 0) | (e & EPOLLHUP ? POLLHUP : 0) |
                      (e & EPOLLERR ? POLLERR : 0);
        out[i] = (struct ac_ready){p->evs[i].data.u64, ev};
    }
    for (int i = 0; i < p->nfiles && n < max; i++) {
        unsigned w = p->files[i].want;
        out[n++] = (struct ac_ready){p->files[i].tag, (w & AC__WANT_IN ? POLLIN : 0u) |
                                                          (w & AC__WANT_OUT ? POLLOUT : 0u)};
    }
    return n;
}

const struct ac_poller_ops ac__poller_epoll = {
    .name = "epoll",
    .select_style = false,
    /* poll and select report every ready descriptor at once; epoll hands
     * out at most a batch, rotating fairly through the rest. */
    .batch_max = 1024,
    .open = epoll_open,
    .close = epoll_close,
    .set = epoll_set,
    .wait = epoll_wait_ready,
};
