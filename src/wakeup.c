/* The thread-safe wake-up: an eventfd in the poller and a queue of calls
 * guarded by a mutex (DESIGN decision 8, X20). */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

int ac__wakeup_open(ac_map *m)
{
    m->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->evfd < 0)
        return -errno;
    int rc = ac__internal_fd(m, m->evfd, 0, AC__WANT_IN);
    if (rc < 0) {
        close(m->evfd);
        m->evfd = -1;
    }
    return rc;
}

void ac_wakeup(ac_map *m)
{
    m = ac__map(m);
    uint64_t one = 1;
    if (m)
        (void)!write(m->evfd, &one, sizeof(one));
}

int ac_call_soon_threadsafe(ac_map *m, ac_call_fn fn, void *arg)
{
    m = ac__map(m);
    if (!m || !fn)
        return -EINVAL;
    struct ac_call *c = malloc(sizeof(*c));
    if (!c)
        return -ENOMEM;
    *c = (struct ac_call){NULL, fn, arg};
    pthread_mutex_lock(&m->lock);
    if (m->calls_tail)
        m->calls_tail->next = c;
    else
        m->calls = c;
    m->calls_tail = c;
    pthread_mutex_unlock(&m->lock);
    ac_wakeup(m);
    return 0;
}

/* In the loop thread: run every call queued so far, in order. */
void ac__wakeup_dispatch(ac_map *m)
{
    uint64_t n;
    (void)!read(m->evfd, &n, sizeof(n));
    pthread_mutex_lock(&m->lock);
    struct ac_call *c = m->calls;
    m->calls = m->calls_tail = NULL;
    pthread_mutex_unlock(&m->lock);
    while (c) {
        struct ac_call *next = c->next;
        c->fn(m, c->arg);
        free(c);
        c = next;
    }
}

void ac__wakeup_close(ac_map *m)
{
    ac__internal_fd(m, m->evfd, AC__WANT_IN, 0);
    close(m->evfd);
    m->evfd = -1;
    while (m->calls) {
        struct ac_call *next = m->calls->next;
        free(m->calls);
        m->calls = next;
    }
}
