/* Timers: a binary min-heap ordered by (deadline, start order), and the
 * idle timeout built on them (W4). */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

#define NOT_IN_HEAP ((size_t)-1)

struct ac_timer {
    ac_map *map;           /* NULL once the map is freed: the timer never runs again */
    ac_timer *prev, *next; /* every timer of the map, stopped or not */
    ac_timer_fn fn;
    void *arg;
    double deadline;
    uint64_t seq;
    size_t index; /* position in the heap, NOT_IN_HEAP when stopped */
    bool running; /* inside its callback */
    bool freed;   /* ac_timer_free called from its callback */
};

static bool earlier(const ac_timer *a, const ac_timer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void place(ac_map *m, size_t i, ac_timer *t)
{
    m->heap[i] = t;
    t->index = i;
}

static void sift_up(ac_map *m, size_t i)
{
    ac_timer *t = m->heap[i];
    while (i > 0 && earlier(t, m->heap[(i - 1) / 2])) {
        place(m, i, m->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    place(m, i, t);
}

static void sift_down(ac_map *m, size_t i)
{
    ac_timer *t = m->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m->nheap)
            break;
        if (c + 1 < m->nheap && earlier(m->heap[c + 1], m->heap[c]))
            c++;
        if (!earlier(m->heap[c], t))
            break;
        place(m, i, m->heap[c]);
        i = c;
    }
    place(m, i, t);
}

static void heap_remove(ac_map *m, ac_timer *t)
{
    size_t i = t->index;
    t->index = NOT_IN_HEAP;
    ac_timer *last = m->heap[--m->nheap];
    if (i == m->nheap)
        return;
    place(m, i, last);
    sift_down(m, i);
    sift_up(m, last->index);
}

ac_timer *ac_timer_new(ac_map *m, ac_timer_fn fn, void *arg)
{
    m = ac__map(m);
    if (!m || !fn)
        return NULL;
    ac_timer *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    *t = (ac_timer){.map = m, .fn = fn, .arg = arg, .index = NOT_IN_HEAP, .next = m->timers};
    if (m->timers)
        m->timers->prev = t;
    m->timers = t;
    return t;
}

int ac_timer_start(ac_timer *t, double delay)
{
    ac_map *m = t->map;
    if (!m)
        return -EINVAL;
    if (t->index != NOT_IN_HEAP)
        heap_remove(m, t);
    if (m->nheap == m->heapcap) {
        size_t cap = m->heapcap ? 2 * m->heapcap : 16;
        ac_timer **h = realloc(m->heap, cap * sizeof(*h));
        if (!h)
            return -ENOMEM;
        m->heap = h;
        m->heapcap = cap;
    }
    t->deadline = ac__clock() + (delay > 0 ? delay : 0);
    t->seq = ++m->timer_seq;
    place(m, m->nheap++, t);
    sift_up(m, t->index);
    return 0;
}

void ac_timer_stop(ac_timer *t)
{
    if (t->index != NOT_IN_HEAP)
        heap_remove(t->map, t);
}

bool ac_timer_is_active(const ac_timer *t) { return t->index != NOT_IN_HEAP; }

void ac_timer_free(ac_timer *t)
{
    if (!t)
        return;
    if (t->map) {
        ac_timer_stop(t);
        if (t->prev)
            t->prev->next = t->next;
        else
            t->map->timers = t->next;
        if (t->next)
            t->next->prev = t->prev;
    }
    if (t->running)
        t->freed = true; /* released when its callback returns */
    else
        free(t);
}

/* Run the timers that are due.  A timer started during this run (even with
 * delay 0) waits for the next iteration, so none can spin the loop. */
void ac__timers_run(ac_map *m)
{
    if (!m->nheap)
        return;
    double now = ac__clock();
    uint64_t last = m->timer_seq;
    while (m->nheap && m->heap[0]->deadline <= now && m->heap[0]->seq <= last) {
        ac_timer *t = m->heap[0];
        heap_remove(m, t);
        t->running = true;
        double next = t->fn(t, t->arg);
        t->running = false;
        if (t->freed)
            free(t);
        else if (next >= 0 && t->index == NOT_IN_HEAP && t->map)
            ac_timer_start(t, next);
        if (m->exit_rc)
            return;
    }
}

/* Seconds until the first deadline (0 if one is due), -1 if none. */
double ac__timers_timeout(ac_map *m)
{
    if (!m->nheap)
        return -1;
    double s = m->heap[0]->deadline - ac__clock();
    return s > 0 ? s : 0;
}

/* The map goes away: its timers, running or stopped, stay the user's but
 * stop for good (ac_timer_start then fails with -EINVAL). */
void ac__timers_detach(ac_map *m)
{
    for (ac_timer *t = m->timers; t; t = t->next) {
        t->index = NOT_IN_HEAP;
        t->map = NULL;
    }
    m->timers = NULL;
    m->nheap = 0;
}

/* ------------------------------------------------------- idle timeout */

static struct ac_idle *idle_of(const ac_dispatcher *d)
{
    return d->has_idle ? d->rare->idle : NULL;
}

static double idle_fire(ac_timer *t, void *arg)
{
    ac_dispatcher *d = arg;
    struct ac_idle *idle = idle_of(d);
    double left = idle->last + idle->seconds - ac__clock();
    if (left > 0)
        return left; /* there was activity: look again later */
    int rc = AC__FN(d, handle_timeout)(d);
    if (rc < 0 && rc != AC_EXIT_NOW)
        rc = ac__route_error(d, rc, "handle_timeout");
    if (rc)
        d->map->exit_rc = rc;
    return idle_of(d) && idle_of(d)->timer == t && !d->closed ? idle->seconds : -1;
}

int ac_set_idle_timeout(ac_dispatcher *d, double seconds)
{
    if (seconds <= 0) {
        ac__idle_release(d);
        return 0;
    }
    if (d->closed)
        return -EBADF;
    struct ac_rare *r = ac__rare(d);
    if (!r)
        return -ENOMEM;
    if (!idle_of(d)) {
        struct ac_idle *idle = calloc(1, sizeof(*idle));
        if (!idle)
            return -ENOMEM;
        idle->timer = ac_timer_new(d->map, idle_fire, d);
        if (!idle->timer) {
            free(idle);
            return -ENOMEM;
        }
        r->idle = idle;
        d->has_idle = true;
    }
    idle_of(d)->seconds = seconds;
    idle_of(d)->last = ac__clock();
    return ac_timer_start(idle_of(d)->timer, seconds);
}

void ac__idle_activity(ac_dispatcher *d)
{
    /* Inside the loop the map's clock was read this iteration; outside it
     * may be long stale. */
    idle_of(d)->last = d->map->depth ? d->map->now : ac__clock();
}

void ac__idle_release(ac_dispatcher *d)
{
    if (!idle_of(d))
        return;
    ac_timer_free(d->rare->idle->timer);
    free(d->rare->idle);
    d->rare->idle = NULL;
    d->has_idle = false;
}
