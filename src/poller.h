/* The poller interface: a backend knows descriptors, interest masks and
 * 64-bit tags, and nothing about dispatchers or handlers. */
#ifndef AC_POLLER_H
#define AC_POLLER_H

#include <stdbool.h>
#include <stdint.h>

/* Interest bits the map asks for (L6).  AC__WANT_EX is the select-style
 * exceptional set (readable or writable was true); poll and epoll ignore it
 * and watch POLLPRI together with AC__WANT_IN. */
enum {
    AC__WANT_IN = 1,
    AC__WANT_OUT = 2,
    AC__WANT_EX = 4,
};

struct ac_ready {
    uint64_t tag;
    unsigned events; /* POLLIN, POLLOUT, POLLPRI, POLLHUP, POLLERR, POLLNVAL */
};

struct ac_poller;

struct ac_poller_ops {
    const char *name;
    bool select_style; /* dispatch in three phases (L10) instead of per fd (L13) */
    int fd_limit;      /* descriptors >= this cannot be waited on; 0 = no limit */
    int batch_max;     /* ready entries one wait hands out at most; 0 = all */
    int (*open)(struct ac_poller **out);
    void (*close)(struct ac_poller *p);
    /* Called only when want != have.  want 0 removes fd. */
    int (*set)(struct ac_poller *p, int fd, uint64_t tag, unsigned have, unsigned want);
    /* Wait up to timeout seconds (negative = forever) at the backend's own
     * resolution; fill out[] with up to max ready entries; return the count
     * or -errno.  EINTR is the caller's. */
    int (*wait)(struct ac_poller *p, double timeout, struct ac_ready *out, int max);
};

/* Seconds to whole milliseconds for poll and epoll, rounded up so that a
 * short wait never becomes a busy poll (L8's allowed deviation, W18);
 * negative stays -1 (forever). */
static inline int ac__timeout_ms(double s)
{
    if (s < 0)
        return -1;
    double ms = s * 1000.0;
    if (ms >= 2147483647.0)
        return 2147483647;
    int whole = (int)ms;
    return whole < ms ? whole + 1 : whole;
}

extern const struct ac_poller_ops ac__poller_epoll;
extern const struct ac_poller_ops ac__poller_poll;
extern const struct ac_poller_ops ac__poller_select;

#endif
