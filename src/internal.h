/* Private declarations shared by the library's files (ac__ prefix). */
#ifndef AC_INTERNAL_H
#define AC_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4, strerrorname_np, signalfd */
#endif

#include "asyncore.h"
#include "poller.h"
#include "transport.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>

struct ac_idle {
    ac_timer *timer;
    double seconds;
    double last; /* map time of the last byte received or sent */
};

/* A layer: what a kind of dispatcher (base, file, buffered, chat) adds to
 * the base.  The core calls up through this table only, never a layer by
 * name (DESIGN.md "Layers"); a hook left NULL means the kind has none. */
struct ac_layer {
    ac_handlers h;                            /* its defaults; NULL: the base's */
    void (*release)(ac_dispatcher *d);        /* free d->ext's contents, after finalize */
    int (*initiate_send)(ac_dispatcher *d);   /* ac_initiate_send (S16, C16) */
    int (*close_when_done)(ac_dispatcher *d); /* ac_close_when_done (W12, C15) */
};

struct ac_dispatcher {
    ac_map *map;
    const ac_handlers *h;         /* the user's table, never NULL */
    const struct ac_layer *layer; /* the kind's table: base, file, buffered, chat */
    struct ac_transport *tp;      /* how the bytes move: plain socket by default */
    void *user;
    void *ext;             /* the layer's state, allocated with d */
    struct sockaddr *addr; /* D1 addr, NULL = none */
    const char *const *ignore_log_types;
    struct ac_idle *idle;
    ac_dispatcher *prev, *next;   /* map order (every live one); graveyard after close */
    ac_dispatcher *pprev, *pnext; /* channels with predicates, map order */
    ac_dispatcher *dirty_next;    /* interest changed, poller not told yet */
    int fd;
    uint32_t gen; /* registration generation, for stale events (X5) */
    socklen_t addrlen;
    int family, type;
    uint8_t want, have; /* AC__WANT_* wanted, and as the poller knows it */
    bool connected : 1, accepting : 1, connecting : 1, closing : 1;
    bool closed : 1, registered : 1, in_preds : 1, dirty : 1, debug : 1, read_paused : 1;
    bool write_paused : 1;
};

struct ac_call {
    struct ac_call *next;
    ac_call_fn fn;
    void *arg;
};

struct ac_map {
    const struct ac_poller_ops *ops;
    struct ac_poller *poller;
    ac_dispatcher **fds; /* fd -> registered channel */
    int fdcap;
    size_t count;                 /* registered channels (len(map)) */
    ac_dispatcher *head, *tail;   /* every live dispatcher, map order */
    ac_dispatcher *phead, *ptail; /* those with predicates */
    ac_dispatcher *dirty;
    ac_dispatcher *grave; /* closed, memory not yet released */
    ac_dispatcher **snap; /* predicate snapshot of one iteration */
    size_t snapcap;
    struct ac_ready *ready;
    int readycap;
    uint32_t gen;
    int depth;   /* > 0 while a loop or dispatch runs */
    int exit_rc; /* set to leave the loop (ac_loop_stop, L16, L17) */
    double now;
    ac_error err; /* the current failure (D19) */

    ac_timer **heap;  /* timers, min-heap on (deadline, seq) */
    ac_timer *timers; /* every timer made on this map, for ac_map_free */
    size_t nheap, heapcap;
    uint64_t timer_seq;

    int sigfd; /* signalfd, -1 until a signal is watched */
    bool sig_registered;
    sigset_t sigmask;
    struct {
        ac_signal_fn fn;
        void *arg;
    } sig[NSIG];

    int evfd;             /* eventfd for ac_wakeup / ac_call_soon_threadsafe */
    pthread_mutex_t lock; /* guards calls */
    struct ac_call *calls, *calls_tail;
};

/* dispatcher.c: the plain dispatcher, whose handlers are asyncore's
 * defaults (section 3): every entry is set, and no hook. */
extern const struct ac_layer ac__base_layer;

/* The handler d runs for `f`: the user's, else the layer's, else the default (X2). */
#define AC__FN(d, f)                                                                               \
    ((d)->h->f ? (d)->h->f : (d)->layer->h.f ? (d)->layer->h.f : ac__base_layer.h.f)

/* Water marks of an output queue (W3), for the layers that have one. */
struct ac_marks {
    size_t low, high; /* high 0: off */
    bool above;       /* rose above high and not yet back to low */
};

/* map.c */
ac_map *ac__map(ac_map *m); /* NULL -> the default map */
ac_dispatcher *ac__dispatcher_alloc(ac_map *m, const ac_handlers *h, void *user,
                                    const struct ac_layer *layer, size_t extra);
int ac__fd_fits(ac_dispatcher *d, int fd);
int ac__register(ac_dispatcher *d);
void ac__unregister(ac_dispatcher *d);
void ac__touch(ac_dispatcher *d);
void ac__bury(ac_dispatcher *d);
int ac__internal_fd(ac_map *m, int fd, unsigned have, unsigned want);
double ac__clock(void);

/* dispatcher.c */
ssize_t ac__sendv(ac_dispatcher *d, const struct iovec *iov, int iovcnt);
int ac__route_error(ac_dispatcher *d, int rc, const char *op);
/* Set the marks (W3): 0, or -EINVAL when low > high != 0; "not above". */
int ac__marks_set(struct ac_marks *w, size_t low, size_t high);
/* After the bytes pending changed: handle_high_water when they rose above
 * the high mark, handle_low_water when they then fell to the low mark, and
 * that handler's result.  flow (may be NULL) runs first, told which way. */
int ac__marks_changed(ac_dispatcher *d, struct ac_marks *w, size_t pending,
                      void (*flow)(ac_dispatcher *d, bool above));

/* timer.c */
void ac__timers_run(ac_map *m);
double ac__timers_timeout(ac_map *m); /* seconds to the next timer, -1 if none */
void ac__timers_detach(ac_map *m);
void ac__idle_release(ac_dispatcher *d);
void ac__idle_activity(ac_dispatcher *d);

/* signal.c, wakeup.c */
void ac__signals_dispatch(ac_map *m);
void ac__signals_close(ac_map *m);
int ac__wakeup_open(ac_map *m);
void ac__wakeup_dispatch(ac_map *m);
void ac__wakeup_close(ac_map *m);

#endif
