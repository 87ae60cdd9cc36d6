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
    /* Whether the layer still holds bytes that ac_detach would drop:
     * output not yet sent, input not yet handed to the user. */
    bool (*holds_bytes)(const ac_dispatcher *d);
};

/* What few dispatchers use, out of line so that an idle connection does
 * not pay for it (issue 10): allocated at the first need, freed with d. */
struct ac_rare {
    struct ac_transport *tp;             /* when not the plain socket */
    const char *const *ignore_log_types; /* ac_set_ignore_log_types */
    ac_dispatcher *pprev, *pnext;        /* channels with predicates, map order */
    struct ac_idle *idle;                /* ac_set_idle_timeout */
    int family, type;                    /* ac_create_socket's */
    ac_close_hook_fn close_hook;         /* ac_set_close_hook (d->has_hook) */
    void *close_arg;
};

/* The address kept in d itself when it fits: IPv4's sockaddr_in.  A longer
 * one (IPv6, AF_UNIX) has its own allocation. */
#define AC__ADDR_INLINE 16

/* One dispatcher; the layer's state (buffered, chat) follows it in the same
 * allocation (ac__ext).  The fields read on every event come first. */
struct ac_dispatcher {
    ac_map *map;
    const ac_handlers *h;         /* the user's table, never NULL */
    const struct ac_layer *layer; /* the kind's table: base, file, buffered, chat */
    void *user;
    int fd;
    uint32_t gen;       /* registration generation, for stale events (X5) */
    uint8_t want, have; /* AC__WANT_* wanted, and as the poller knows it */
    uint8_t addrlen;    /* D1 addr's length, 0 = none */
    uint8_t lbits;      /* the layer's own flags */
    bool connected : 1, accepting : 1, connecting : 1, closing : 1;
    bool closed : 1, registered : 1, in_preds : 1, dirty : 1, debug : 1, read_paused : 1;
    bool write_paused : 1, has_tp : 1, has_idle : 1, has_hook : 1;
    ac_dispatcher *prev, *next; /* map order (every live one); graveyard after close */
    struct ac_rare *rare;       /* NULL until needed */
    union {
        unsigned char in[AC__ADDR_INLINE]; /* addrlen <= AC__ADDR_INLINE */
        struct sockaddr *out;              /* longer: its own allocation */
        void *align;
    } addr;
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
    ac_dispatcher **dirty;        /* interest changed, poller not told yet */
    size_t ndirty, dirtycap;
    bool dirty_lost;      /* the vector could not grow: collect looks at every channel */
    ac_dispatcher *grave; /* closed, memory not yet released */
    ac_dispatcher **snap; /* predicate snapshot of one iteration */
    size_t snapcap;
    struct ac_ready *ready;
    int readycap;
    bool ready_full; /* the last wait filled ready[] */
    uint32_t gen;
    int depth;   /* > 0 while a loop or dispatch runs */
    int exit_rc; /* set to leave the loop (ac_loop_stop, L16, L17) */
    double now;
    ac_error err; /* the current failure (D19) */
    /* The descriptor accept4 just gave to handle_accepted, while that call
     * runs and until ac_attach takes it: already non-blocking
     * (ac_default_handle_accept).  -1 otherwise. */
    int accepted_fd;
    /* Set while d's poll event is dispatched when that event says writable
     * without an error or hang-up: a connect completing then succeeded, and
     * SO_ERROR need not be read (D8, Linux). */
    const ac_dispatcher *connect_ok;

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

/* Water marks of an output queue (W3), for the layers that have one: 8
 * bytes, so a mark above AC__MARK_MAX counts as AC__MARK_MAX (a queue of
 * 2 GiB is far past any sensible mark). */
#define AC__MARK_MAX 0x7fffffffu
struct ac_marks {
    uint32_t low;       /* high 0: off */
    uint32_t high : 31; /* high 0: off */
    uint32_t above : 1; /* rose above high and not yet back to low */
};

/* The layer's state, right after d (allocated together, ac__dispatcher_alloc). */
static inline void *ac__ext(const ac_dispatcher *d) { return (char *)d + sizeof(*d); }

/* d's transport: the plain socket unless ac_set_file (or TLS) gave another. */
static inline struct ac_transport *ac__tp(const ac_dispatcher *d)
{
    return d->has_tp ? d->rare->tp : &ac__plain_transport;
}

/* map.c */
ac_map *ac__map(ac_map *m);                 /* NULL -> the default map */
struct ac_rare *ac__rare(ac_dispatcher *d); /* d->rare, allocated if need be; NULL: ENOMEM */
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
