/* The socket map and the loop (spec section 1).
 *
 * The map is an fd-indexed array plus an insertion-ordered list (X6).
 * Interest is kept as "wanted" and "as the poller knows it" per channel;
 * channels with their own predicates are asked every iteration (L6), the
 * others are recomputed only when their state changes (X7), so an idle one
 * costs nothing per iteration.  Ready events carry a (generation, fd) tag
 * and are dropped when the fd now belongs to someone else (X5, L19). */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static ac_map *default_map;

static const ac_handlers no_handlers;

double ac__clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The poller AC_POLLER names.  A wrong value is a user's typo, so the one
 * log line says which variable and what it may be (issue 8 item 19); the
 * library does not print, the hook does. */
static const struct ac_poller_ops *env_poller(void)
{
    const char *env = getenv("AC_POLLER");
    if (!env || !*env || !strcmp(env, "epoll"))
        return &ac__poller_epoll;
    if (!strcmp(env, "poll"))
        return &ac__poller_poll;
    if (!strcmp(env, "select"))
        return &ac__poller_select;
    ac_log_infof(NULL, "error", "AC_POLLER=%s is not epoll, poll or select", env);
    return NULL;
}

static const struct ac_poller_ops *poller_ops(ac_poller_kind kind)
{
    if (kind == AC_POLLER_DEFAULT)
        return env_poller();
    switch (kind) {
    case AC_POLLER_EPOLL: return &ac__poller_epoll;
    case AC_POLLER_POLL: return &ac__poller_poll;
    case AC_POLLER_SELECT: return &ac__poller_select;
    default: return NULL;
    }
}

int ac_map_new(ac_map **out, ac_poller_kind kind)
{
    const struct ac_poller_ops *ops = poller_ops(kind);
    if (!ops)
        return -EINVAL;
    ac_map *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->ops = ops;
    m->sigfd = -1;
    m->evfd = -1;
    m->accepted_fd = -1;
    m->now = ac__clock();
    sigemptyset(&m->sigmask);
    pthread_mutex_init(&m->lock, NULL);
    int rc = ops->open(&m->poller);
    if (rc == 0) {
        rc = ac__wakeup_open(m);
        if (rc < 0)
            ops->close(m->poller);
    }
    if (rc < 0) {
        pthread_mutex_destroy(&m->lock);
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

ac_map *ac_default_map(void)
{
    if (!default_map && ac_map_new(&default_map, AC_POLLER_DEFAULT) < 0)
        default_map = NULL;
    return default_map;
}

ac_map *ac__map(ac_map *m) { return m ? m : ac_default_map(); }

/* finalize (X4), then the layer's state, then the memory. */
static void release(ac_dispatcher *d)
{
    if (d->h->finalize)
        d->h->finalize(d);
    if (d->layer->release)
        d->layer->release(d);
    if (d->addrlen > AC__ADDR_INLINE)
        free(d->addr.out);
    free(d->rare);
    free(d);
}

/* The queued interest changes of closed channels go: they are about to be
 * released.  Every closed channel not yet released is in the graveyard. */
static void forget_dirty(ac_map *m)
{
    for (size_t i = 0; i < m->ndirty; i++)
        if (m->dirty[i] && m->dirty[i]->closed)
            m->dirty[i] = NULL;
}

/* Release the memory of closed channels (X4).  A finalizer may close more
 * channels: they are released in turn.  The dirty queue is swept once per
 * batch, not once per channel: a thousand channels closed in one
 * iteration must not cost a million steps. */
static void reap(ac_map *m)
{
    while (m->grave) {
        ac_dispatcher *batch = m->grave;
        m->grave = NULL;
        for (ac_dispatcher *d = batch; d; d = d->next)
            if (d->dirty) {
                forget_dirty(m);
                break;
            }
        while (batch) {
            ac_dispatcher *d = batch;
            batch = d->next;
            release(d);
        }
    }
}

int ac_map_free(ac_map *m)
{
    m = m ? m : default_map;
    if (!m)
        return 0;
    if (m->count || m->depth)
        return -EBUSY;
    while (m->head)
        ac_close(m->head);
    reap(m);
    ac__timers_detach(m);
    ac__signals_close(m);
    ac__wakeup_close(m);
    m->ops->close(m->poller);
    pthread_mutex_destroy(&m->lock);
    free(m->fds);
    free(m->dirty);
    free(m->snap);
    free(m->ready);
    free(m->heap);
    if (m == default_map)
        default_map = NULL;
    free(m);
    return 0;
}

const char *ac_map_poller_name(const ac_map *m)
{
    m = m ? m : default_map;
    return m ? m->ops->name : NULL;
}

size_t ac_map_count(const ac_map *m)
{
    m = m ? m : default_map;
    return m ? m->count : 0;
}

ac_dispatcher *ac_map_get(const ac_map *m, int fd)
{
    m = m ? m : default_map;
    return m && fd >= 0 && fd < m->fdcap ? m->fds[fd] : NULL;
}

double ac_now(const ac_map *m)
{
    m = m ? m : default_map;
    return m ? m->now : ac__clock();
}

/* ------------------------------------------------------------ channels */

static void list_append(ac_map *m, ac_dispatcher *d)
{
    d->next = NULL;
    d->prev = m->tail;
    if (m->tail)
        m->tail->next = d;
    else
        m->head = d;
    m->tail = d;
}

static void list_remove(ac_map *m, ac_dispatcher *d)
{
    if (d->prev)
        d->prev->next = d->next;
    else
        m->head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else
        m->tail = d->prev;
    d->prev = d->next = NULL;
}

/* Into the list of channels with predicates at d's place in map order
 * (L6): before the next one after d that is in it.  A channel just
 * registered is the map's last, so this is an append then. */
static int preds_insert(ac_map *m, ac_dispatcher *d)
{
    struct ac_rare *r = ac__rare(d);
    if (!r)
        return -ENOMEM;
    ac_dispatcher *after = d->next;
    while (after && !after->in_preds)
        after = after->next;
    r->pnext = after;
    r->pprev = after ? after->rare->pprev : m->ptail;
    *(r->pprev ? &r->pprev->rare->pnext : &m->phead) = d;
    *(after ? &after->rare->pprev : &m->ptail) = d;
    d->in_preds = true;
    return 0;
}

static void preds_remove(ac_map *m, ac_dispatcher *d)
{
    if (!d->in_preds)
        return;
    struct ac_rare *r = d->rare;
    if (r->pprev)
        r->pprev->rare->pnext = r->pnext;
    else
        m->phead = r->pnext;
    if (r->pnext)
        r->pnext->rare->pprev = r->pprev;
    else
        m->ptail = r->pprev;
    r->pprev = r->pnext = NULL;
    d->in_preds = false;
}

static bool has_predicates(const ac_dispatcher *d) { return d->h->readable || d->h->writable; }

ac_dispatcher *ac__dispatcher_alloc(ac_map *m, const ac_handlers *h, void *user,
                                    const struct ac_layer *layer, size_t extra)
{
    m = ac__map(m);
    if (!m)
        return NULL;
    ac_dispatcher *d = calloc(1, sizeof(*d) + extra); /* the layer's state: ac__ext */
    if (!d)
        return NULL;
    d->map = m;
    d->h = h ? h : &no_handlers;
    d->layer = layer;
    d->user = user;
    d->fd = -1;
    list_append(m, d);
    return d;
}

struct ac_rare *ac__rare(ac_dispatcher *d)
{
    if (!d->rare)
        d->rare = calloc(1, sizeof(*d->rare));
    return d->rare;
}

ac_dispatcher *ac_dispatcher_new(ac_map *m, const ac_handlers *h, void *user)
{
    return ac__dispatcher_alloc(m, h, user, &ac__base_layer, 0);
}

/* The poller's tag for d: generation and descriptor (X5). */
static uint64_t tag_of(const ac_dispatcher *d) { return (uint64_t)d->gen << 32 | (uint32_t)d->fd; }

/* Tell the poller what d wants now. */
static int apply(ac_dispatcher *d, unsigned want)
{
    ac_map *m = d->map;
    int rc = m->ops->set(m->poller, d->fd, tag_of(d), d->have, want);
    if (rc < 0)
        return AC_RAISE(d, -rc, "poller");
    d->have = (uint8_t)want;
    return 0;
}

/* L6: readable() then writable(), exactly once each; write interest only
 * when not accepting (read after writable() ran); the select-style
 * exceptional set when either was true.  Paused writing (ac_set_writing)
 * stands in for the layer's writable, as paused reading does for its
 * readable; the user's predicate is always asked.  (A TLS transport will
 * translate this answer: a write that needs a read first, see
 * transport.h.) */
static unsigned wanted(ac_dispatcher *d)
{
    bool r = AC__FN(d, readable)(d);
    bool w = d->h->writable ? d->h->writable(d) : !d->write_paused && AC__FN(d, writable)(d);
    unsigned want = 0;
    if (r)
        want |= AC__WANT_IN;
    if (w && !d->accepting)
        want |= AC__WANT_OUT;
    if (r || w)
        want |= AC__WANT_EX;
    return want;
}

void ac__touch(ac_dispatcher *d)
{
    if (!d->registered || d->in_preds)
        return;
    d->want = (uint8_t)wanted(d);
    if (d->want == d->have || d->dirty)
        return;
    ac_map *m = d->map;
    if (m->ndirty == m->dirtycap) {
        size_t cap = m->dirtycap ? 2 * m->dirtycap : 64;
        ac_dispatcher **n = realloc(m->dirty, cap * sizeof(*n));
        if (!n) {
            m->dirty_lost = true; /* no memory: the next collect looks at all */
            return;
        }
        m->dirty = n;
        m->dirtycap = cap;
    }
    d->dirty = true;
    m->dirty[m->ndirty++] = d;
}

/* select() cannot wait on a descriptor >= FD_SETSIZE (L12, X9, W2).  One
 * such channel in the map would fail every later wait and so stop the loop
 * for every channel; refused when it is registered, it fails alone
 * (issue 8 item 3).  -EMFILE: the map can watch no more descriptors. */
static bool over_limit(const struct ac_poller_ops *ops, int fd)
{
    return ops->fd_limit && fd >= ops->fd_limit;
}

static int refuse_fd(ac_dispatcher *d, const struct ac_poller_ops *ops, int fd)
{
    ac_log_infof(d, "error", "descriptor %d is >= FD_SETSIZE (%d): %s() cannot wait on it", fd,
                 ops->fd_limit, ops->name);
    return -EMFILE;
}

int ac__fd_fits(ac_dispatcher *d, int fd)
{
    return over_limit(d->map->ops, fd) ? refuse_fd(d, d->map->ops, fd) : 0;
}

int ac__register(ac_dispatcher *d)
{
    ac_map *m = d->map;
    int fd = d->fd;
    if (fd < 0)
        return -EBADF;
    if (d->registered)
        return 0;
    int rc = ac__fd_fits(d, fd);
    if (rc < 0)
        return rc;
    if (fd >= m->fdcap) {
        int cap = m->fdcap ? m->fdcap : 64;
        while (cap <= fd)
            cap *= 2;
        /* calloc, not realloc and memset: a large table is fresh zero pages,
         * and those past the highest descriptor cost no memory until used. */
        ac_dispatcher **n = calloc((size_t)cap, sizeof(*n));
        if (!n)
            return -ENOMEM;
        if (m->fdcap)
            memcpy(n, m->fds, (size_t)m->fdcap * sizeof(*n));
        free(m->fds);
        m->fds = n;
        m->fdcap = cap;
    }
    if (m->fds[fd])
        ac__unregister(m->fds[fd]); /* S3: add_channel replaces the entry */
    m->fds[fd] = d;
    m->count++;
    if (++m->gen == 0)
        m->gen = 1; /* generation 0 tags the map's own descriptors */
    d->gen = m->gen;
    d->registered = true;
    d->have = d->want = 0;
    list_remove(m, d); /* L2: (re-)insertion moves to the end */
    list_append(m, d);
    if (has_predicates(d) && preds_insert(m, d) < 0) {
        ac__unregister(d);
        return -ENOMEM;
    }
    ac__touch(d);
    return 0;
}

void ac__unregister(ac_dispatcher *d)
{
    if (!d->registered)
        return;
    ac_map *m = d->map;
    if (d->have)
        m->ops->set(m->poller, d->fd, tag_of(d), d->have, 0);
    d->have = 0;
    m->fds[d->fd] = NULL;
    m->count--;
    preds_remove(m, d);
    d->registered = false;
}

/* Called by ac_close: d leaves the list of the living for the graveyard. */
void ac__bury(ac_dispatcher *d)
{
    ac_map *m = d->map;
    list_remove(m, d);
    d->next = m->grave;
    m->grave = d;
}

int ac_set_handlers(ac_dispatcher *d, const ac_handlers *h)
{
    const ac_handlers *old = d->h;
    d->h = h ? h : &no_handlers;
    if (d->registered && has_predicates(d) != d->in_preds) {
        if (d->in_preds) {
            preds_remove(d->map, d);
        } else if (preds_insert(d->map, d) < 0) {
            d->h = old;
            return -ENOMEM;
        }
    }
    ac__touch(d);
    return 0;
}

int ac__internal_fd(ac_map *m, int fd, unsigned have, unsigned want)
{
    if (want && over_limit(m->ops, fd))
        return -EMFILE; /* the map's own eventfd or signalfd: as ac__fd_fits */
    return m->ops->set(m->poller, fd, (uint32_t)fd, have, want);
}

/* Whether every descriptor m watches fits the poller ops (see ac__fd_fits). */
static int all_fit(ac_map *m, const struct ac_poller_ops *ops)
{
    if (!ops->fd_limit)
        return 0;
    if (over_limit(ops, m->evfd) || (m->sig_registered && over_limit(ops, m->sigfd)))
        return -EMFILE;
    for (ac_dispatcher *d = m->head; d; d = d->next)
        if (d->registered && over_limit(ops, d->fd))
            return refuse_fd(d, ops, d->fd);
    return 0;
}

int ac_map_set_poller(ac_map *m, ac_poller_kind kind)
{
    m = ac__map(m);
    const struct ac_poller_ops *ops = poller_ops(kind);
    if (!m || !ops)
        return -EINVAL;
    if (m->depth)
        return -EBUSY;
    int rc = all_fit(m, ops);
    if (rc < 0)
        return rc;
    struct ac_poller *p;
    rc = ops->open(&p);
    if (rc < 0)
        return rc;
    m->ops->close(m->poller);
    m->ops = ops;
    m->poller = p;
    ac__internal_fd(m, m->evfd, 0, AC__WANT_IN);
    if (m->sig_registered)
        ac__internal_fd(m, m->sigfd, 0, AC__WANT_IN);
    for (ac_dispatcher *d = m->head; d; d = d->next) {
        d->have = 0;
        ac__touch(d);
    }
    return 0;
}

/* ---------------------------------------------------------------- loop */

/* Bring the poller up to date: ask the predicates (L6), then flush the
 * state changes of the others. */
static int collect(ac_map *m)
{
    size_t n = 0;
    for (ac_dispatcher *d = m->phead; d; d = d->rare->pnext) {
        if (n == m->snapcap) {
            size_t cap = m->snapcap ? 2 * m->snapcap : 64;
            ac_dispatcher **s = realloc(m->snap, cap * sizeof(*s));
            if (!s)
                return -ENOMEM;
            m->snap = s;
            m->snapcap = cap;
        }
        m->snap[n++] = d;
    }
    for (size_t i = 0; i < n; i++) {
        ac_dispatcher *d = m->snap[i];
        if (!d->in_preds) /* closed or changed by an earlier predicate */
            continue;
        unsigned want = wanted(d);
        if (!d->in_preds) /* a predicate closed d (close works from anywhere) */
            continue;
        if (want != d->have) {
            int rc = apply(d, want);
            if (rc < 0)
                return rc;
        }
    }
    /* Flushed from the end: an apply that fails leaves the rest queued. */
    while (m->ndirty) {
        ac_dispatcher *d = m->dirty[--m->ndirty];
        if (!d) /* released since it was queued */
            continue;
        d->dirty = false;
        if (d->registered && !d->in_preds && d->want != d->have) {
            int rc = apply(d, d->want);
            if (rc < 0)
                return rc;
        }
    }
    if (m->dirty_lost) {
        m->dirty_lost = false;
        for (ac_dispatcher *d = m->head; d; d = d->next)
            if (d->registered && !d->in_preds && d->want != d->have) {
                int rc = apply(d, d->want);
                if (rc < 0)
                    return rc;
            }
    }
    return 0;
}

/* The wait, resumed with the remaining time after EINTR (L9). */
static int wait_ready(ac_map *m, double timeout)
{
    int cap = (int)m->count + 8;
    if (m->ops->batch_max) {
        /* A batch (epoll): as many entries as the waits have needed, up to
         * batch_max; a wait that filled it doubles it for the next. */
        int need = m->readycap < 64 ? 64 : m->ready_full ? 2 * m->readycap : m->readycap;
        cap = need < m->ops->batch_max ? need : m->ops->batch_max;
    }
    if (m->readycap < cap) {
        struct ac_ready *r = realloc(m->ready, (size_t)cap * sizeof(*r));
        if (!r)
            return -ENOMEM;
        m->ready = r;
        m->readycap = cap;
    }
    double deadline = timeout >= 0 ? ac__clock() + timeout : -1;
    for (;;) {
        double wait = timeout;
        double t = ac__timers_timeout(m);
        if (t >= 0 && (wait < 0 || t < wait))
            wait = t;
        int n = m->ops->wait(m->poller, wait, m->ready, m->readycap);
        if (n != -EINTR) {
            m->ready_full = n == m->readycap;
            return n;
        }
        if (deadline >= 0) {
            timeout = deadline - ac__clock();
            if (timeout < 0)
                timeout = 0;
        }
    }
}

static ac_dispatcher *lookup(ac_map *m, uint64_t tag)
{
    int fd = (int)(uint32_t)tag;
    uint32_t gen = (uint32_t)(tag >> 32);
    if (fd >= m->fdcap)
        return NULL;
    ac_dispatcher *d = m->fds[fd];
    return d && d->gen == gen ? d : NULL;
}

static void internal_event(ac_map *m, int fd)
{
    if (fd == m->evfd)
        ac__wakeup_dispatch(m);
    else if (fd == m->sigfd)
        ac__signals_dispatch(m);
}

/* L10: every read event, then every write event, then every exceptional
 * one, each looked up in the current map. */
static int dispatch_select(ac_map *m, int n)
{
    static const unsigned phase[3] = {POLLIN, POLLOUT, POLLPRI};
    for (int p = 0; p < 3; p++) {
        for (int i = 0; i < n; i++) {
            struct ac_ready *r = &m->ready[i];
            if (!(r->events & phase[p]))
                continue;
            if ((r->tag >> 32) == 0) {
                if (p == 0)
                    internal_event(m, (int)(uint32_t)r->tag);
            } else {
                ac_dispatcher *d = lookup(m, r->tag);
                if (!d)
                    continue;
                int rc = p == 0 ? ac_read(d) : p == 1 ? ac_write(d) : ac_exception(d);
                if (rc)
                    return rc;
            }
            if (m->exit_rc)
                return m->exit_rc;
        }
    }
    return 0;
}

/* L13: all steps for one descriptor, then the next. */
static int dispatch_poll(ac_map *m, int n)
{
    for (int i = 0; i < n; i++) {
        struct ac_ready *r = &m->ready[i];
        if ((r->tag >> 32) == 0) {
            internal_event(m, (int)(uint32_t)r->tag);
        } else {
            ac_dispatcher *d = lookup(m, r->tag);
            if (!d)
                continue;
            /* poll and epoll report a failed connect as an error or a
             * hang-up; writable alone means it succeeded (D8). */
            bool ok = (r->events & (POLLOUT | POLLERR | POLLHUP | POLLNVAL)) == POLLOUT;
            m->connect_ok = ok ? d : NULL;
            int rc = ac_readwrite(d, (short)r->events);
            m->connect_ok = NULL;
            if (rc)
                return rc;
        }
        if (m->exit_rc)
            return m->exit_rc;
    }
    return 0;
}

/* One iteration.  (A TLS transport holding decrypted bytes will plug in
 * here: those dispatchers get their read event without a poll event, and
 * the wait does not block while one has some; see transport.h.) */
static int iterate(ac_map *m, double timeout)
{
    int rc = collect(m);
    if (rc < 0)
        return rc;
    int n = wait_ready(m, timeout);
    if (n < 0)
        return n;
    m->now = ac__clock();
    rc = m->ops->select_style ? dispatch_select(m, n) : dispatch_poll(m, n);
    if (rc)
        return rc;
    ac__timers_run(m);
    return m->exit_rc;
}

int ac_loop(ac_map *m, double timeout, long count)
{
    m = ac__map(m);
    if (!m)
        return -ENOMEM;
    if (m->depth)
        return -EBUSY; /* X19 */
    reap(m);
    m->exit_rc = 0;
    m->depth++;
    int rc = 0;
    /* L4, L5: stop when the map is empty, checked before each iteration. */
    while (m->count && (count == AC_FOREVER || count-- > 0)) {
        rc = iterate(m, timeout);
        if (rc)
            break;
        reap(m); /* nothing is being dispatched between iterations */
    }
    m->depth--;
    m->exit_rc = 0;
    reap(m);
    return rc;
}

int ac_poll(ac_map *m, double timeout) { return ac_loop(m, timeout, 1); }

void ac_loop_stop(ac_map *m)
{
    m = ac__map(m);
    if (m)
        m->exit_rc = AC_EXIT_NOW;
}

int ac_close_all(ac_map *m, bool ignore_all)
{
    m = ac__map(m);
    if (!m)
        return 0;
    size_t n = 0;
    for (ac_dispatcher *d = m->head; d; d = d->next)
        n++;
    ac_dispatcher **snap = malloc((n ? n : 1) * sizeof(*snap));
    if (!snap)
        return -ENOMEM;
    n = 0;
    for (ac_dispatcher *d = m->head; d; d = d->next)
        snap[n++] = d;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        int r = ac_close(snap[i]);
        /* L21: EBADF is ignored; others stop the sweep unless ignore_all. */
        if (r < 0 && r != -EBADF && !ignore_all) {
            rc = r;
            break;
        }
    }
    free(snap);
    return rc;
}
