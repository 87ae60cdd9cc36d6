/* Connect by name (asyncore_resolver.h): a lookup, then Happy Eyeballs
 * (RFC 8305) over the addresses.
 *
 * Each attempt is a dispatcher of the map connecting its own socket (D6-D8
 * tell it the outcome).  Addresses alternate between the families, IPv6
 * first (section 4); an attempt that fails starts the next at once, and
 * one still connecting after the head start gets a sibling (section 5);
 * the first to connect wins: its descriptor is taken back (ac_detach) and
 * the others are closed.  One timer per request serves the head start,
 * the deadline and deferred endings.
 *
 * The user's callback runs from the loop only (the lookup's answer, an
 * attempt's event, the timer), never inside ac_resolver_connect, and only
 * once nothing of the request is on the stack any more (depth): a filter
 * or a connect that completes at once may end the request while it is
 * still starting attempts. */
#include "resolver_private.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct attempt {
    struct ac_connect_req *c; /* NULL once the request let go of it */
    ac_dispatcher *d;
    size_t index; /* its address in c->addrs */
};

struct ac_connect_req {
    struct ac__resolver_link link; /* first: the link is the request */
    ac_resolver *r;
    ac_map *m;
    ac_resolve_req *q; /* the lookup, until it answers */
    ac_connected_fn cb;
    void *arg;
    ac_dispatcher *owner; /* ac_connect_name's dispatcher (its close hook is ours) */
    bool (*filter)(void *arg, const struct sockaddr *addr, socklen_t len);
    double delay;
    struct sockaddr_storage bind;
    socklen_t bind_len;
    ac_timer *timer;
    double deadline; /* 0: none */
    double next_at;  /* when the next attempt may start beside the others */
    ac_address *addrs;
    size_t n, next;        /* addresses, and the next to try */
    struct attempt **live; /* attempts connecting (n slots) */
    size_t nlive;
    int depth;     /* > 0 while a function of the request is on the stack */
    bool finished; /* result known: deliver once depth is 0 */
    bool cancelled;
    bool tried;     /* some address passed the filter */
    bool linked;    /* in the resolver's list (ac_resolver_free cancels it) */
    int result;     /* fd, or the status */
    int last_err;   /* the last attempt's */
    ssize_t last;   /* index of the last address tried, -1 none */
    ac_address won; /* the winner's address */
};

static void step(struct ac_connect_req *c);

static void unlink_req(struct ac_connect_req *c)
{
    if (c->linked)
        ac__resolver_unlink(c->r, &c->link);
    c->linked = false;
}

/* ------------------------------------------------------------ endings */

/* Let go of an attempt: it will not call back. */
static void drop(struct ac_connect_req *c, struct attempt *a)
{
    for (size_t i = 0; i < c->nlive; i++)
        if (c->live[i] == a) {
            c->live[i] = c->live[--c->nlive];
            break;
        }
    a->c = NULL;
    ac_set_close_hook(a->d, NULL, NULL);
}

static void close_attempts(struct ac_connect_req *c)
{
    while (c->nlive) {
        struct attempt *a = c->live[0];
        drop(c, a);
        ac_close(a->d);
    }
}

/* The result is known: stop everything else of the request. */
static void finish(struct ac_connect_req *c, int result)
{
    if (c->finished) {
        if (result >= 0)
            close(result); /* cannot happen: a second winner */
        return;
    }
    c->finished = true;
    c->result = result;
    ac_resolve_cancel(c->q);
    c->q = NULL;
    close_attempts(c);
}

static void destroy(struct ac_connect_req *c)
{
    if (c->owner)
        ac_set_close_hook(c->owner, NULL, NULL);
    ac_timer_free(c->timer);
    free(c->addrs);
    free(c->live);
    free(c);
}

/* Deliver the result once nothing of c is on the stack, then free c. */
static void settle(struct ac_connect_req *c)
{
    if (c->depth || !c->finished)
        return;
    unlink_req(c);
    ac_connected_fn cb = c->cancelled ? NULL : c->cb;
    void *arg = c->arg;
    int result = c->result;
    ac_address addr = result >= 0 ? c->won : c->last >= 0 ? c->addrs[c->last] : (ac_address){0};
    if (cb)
        c->owner = NULL; /* ac_connect_name's callback clears its hook itself */
    destroy(c);
    if (cb)
        cb(arg, result, addr.len ? &addr.u.sa : NULL, addr.len);
    else if (result >= 0)
        close(result);
}

/* ------------------------------------------------------------ attempts */

static void attempt_failed(struct ac_connect_req *c, struct attempt *a, int err)
{
    drop(c, a);
    ac_close(a->d);
    c->last_err = err;
    c->next_at = 0; /* a failure starts the next one at once (RFC 8305 5) */
    step(c);
}

static int attempt_connected(ac_dispatcher *d)
{
    struct attempt *a = ac_user(d);
    struct ac_connect_req *c = a->c;
    if (!c)
        return 0;
    drop(c, a);
    int fd = ac_detach(d); /* D8 goes on with d closed: harmless (W11) */
    c->depth++;
    if (fd < 0) {
        c->last_err = fd;
    } else {
        c->won = c->addrs[a->index];
        finish(c, fd);
    }
    c->depth--;
    step(c);
    return 0;
}

static int attempt_error(ac_dispatcher *d, const ac_error *e)
{
    struct attempt *a = ac_user(d);
    if (a->c)
        attempt_failed(a->c, a, e->err > 0 ? -e->err : -ECONNREFUSED);
    return 0;
}

/* A disconnected errno (L15) or a hang-up while connecting. */
static int attempt_close(ac_dispatcher *d)
{
    struct attempt *a = ac_user(d);
    if (a->c) {
        int err = ac_current_error(d)->err;
        attempt_failed(a->c, a, err > 0 ? -err : -ECONNRESET);
    }
    return 0;
}

static int attempt_quiet(ac_dispatcher *d)
{
    (void)d;
    return 0; /* steps after the connect of an event already settled (L13) */
}

static void attempt_finalize(ac_dispatcher *d) { free(ac_user(d)); }

static const ac_handlers attempt_handlers = {
    .name = "asyncore_resolver.attempt",
    .handle_read = attempt_quiet,
    .handle_write = attempt_quiet,
    .handle_expt = attempt_quiet,
    .handle_connect = attempt_connected,
    .handle_close = attempt_close,
    .handle_error = attempt_error,
    .finalize = attempt_finalize,
};

/* Closed by someone else (ac_close_all): the request cannot go on.  It
 * ends from the timer, not inside whatever closed the attempt. */
static void attempt_closed(ac_dispatcher *d, void *arg)
{
    (void)d;
    struct attempt *a = arg;
    struct ac_connect_req *c = a->c;
    drop(c, a);
    finish(c, -ECONNABORTED);
    ac_timer_start(c->timer, 0);
}

static int open_attempt(struct ac_connect_req *c, struct attempt *a, const ac_address *to)
{
    int rc = ac_create_socket(a->d, to->u.sa.sa_family, SOCK_STREAM);
    if (rc == 0 && c->bind_len) {
        /* Port 0: the kernel picks the port at connect, per destination,
         * so that a proxy with one source address runs out later. */
        int on = 1;
        (void)setsockopt(ac_fd(a->d), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof(on));
        rc = ac_bind(a->d, (const struct sockaddr *)&c->bind, c->bind_len);
    }
    if (rc == 0)
        rc = ac_set_close_hook(a->d, attempt_closed, a);
    if (rc == 0) {
        c->live[c->nlive++] = a;
        a->c = c;
        rc = ac_connect(a->d, &to->u.sa, to->len); /* may connect at once (D8) */
    }
    return rc;
}

/* Start the attempt on the next address, unless the filter refuses it. */
static void start_next(struct ac_connect_req *c)
{
    size_t i = c->next++;
    const ac_address *to = &c->addrs[i];
    if (c->filter && !c->filter(c->arg, &to->u.sa, to->len))
        return;
    if (c->finished)
        return; /* the filter cancelled the request */
    c->tried = true;
    c->last = (ssize_t)i;
    c->next_at = ac__resolver_clock() + c->delay;
    struct attempt *a = calloc(1, sizeof(*a));
    ac_dispatcher *d = a ? ac_dispatcher_new(c->m, &attempt_handlers, a) : NULL;
    if (!d) {
        free(a);
        c->last_err = -ENOMEM;
        c->next_at = 0;
        return;
    }
    *a = (struct attempt){.d = d, .index = i};
    int rc = open_attempt(c, a, to);
    if (rc < 0) { /* failed at once: the next one now */
        if (a->c)
            drop(c, a);
        c->last_err = rc;
        c->next_at = 0;
        ac_close(d);
    }
}

/* Start what is due, end the request when nothing is left, and arm the
 * timer for the next head start or the deadline. */
static void step(struct ac_connect_req *c)
{
    c->depth++;
    while (!c->finished && !c->q && c->next < c->n &&
           (c->nlive == 0 || ac__resolver_clock() >= c->next_at))
        start_next(c);
    if (!c->finished && !c->q && c->nlive == 0 && c->next >= c->n)
        finish(c, c->tried ? c->last_err : -EACCES);
    c->depth--;
    if (c->finished) {
        settle(c);
        return;
    }
    double now = ac__resolver_clock(), wake = -1;
    if (!c->q && c->next < c->n)
        wake = c->next_at - now;
    if (c->deadline > 0 && (wake < 0 || c->deadline - now < wake))
        wake = c->deadline - now;
    if (wake >= 0)
        ac_timer_start(c->timer, wake > 0 ? wake : 0);
    else
        ac_timer_stop(c->timer);
}

static double tick(ac_timer *t, void *arg)
{
    (void)t;
    struct ac_connect_req *c = arg;
    if (!c->finished && c->deadline > 0 && ac__resolver_clock() >= c->deadline)
        finish(c, -ETIMEDOUT);
    if (c->finished)
        settle(c);
    else
        step(c);
    return -1;
}

/* -------------------------------------------------------------- lookup */

/* Interleave the families, IPv6 first (RFC 8305 section 4, First Address
 * Family Count 1); the lookup gives IPv6 then IPv4. */
static void interleave(ac_address *out, const ac_address *in, size_t n)
{
    size_t v6 = 0, v4 = 0, k = 0;
    while (v6 < n && in[v6].u.sa.sa_family != AF_INET6)
        v6++;
    while (v4 < n && in[v4].u.sa.sa_family != AF_INET)
        v4++;
    while (k < n) {
        if (v6 < n) {
            out[k++] = in[v6++];
            while (v6 < n && in[v6].u.sa.sa_family != AF_INET6)
                v6++;
        }
        if (v4 < n && k < n) {
            out[k++] = in[v4++];
            while (v4 < n && in[v4].u.sa.sa_family != AF_INET)
                v4++;
        }
    }
}

static void resolved(void *arg, int status, const ac_address *addrs, size_t n)
{
    struct ac_connect_req *c = arg;
    c->q = NULL;
    if (status == 0) {
        c->addrs = calloc(n, sizeof(*c->addrs));
        c->live = calloc(n, sizeof(*c->live));
        if (!c->addrs || !c->live)
            status = -ENOMEM;
    }
    if (status < 0) {
        c->depth++;
        finish(c, status);
        c->depth--;
    } else {
        interleave(c->addrs, addrs, n);
        c->n = n;
    }
    step(c);
}

/* ----------------------------------------------------------------- API */

static void cancel_link(struct ac__resolver_link *l)
{
    struct ac_connect_req *c = (struct ac_connect_req *)l;
    c->linked = false; /* the resolver, or ac_resolver_connect_cancel, unlinked it */
    c->cancelled = true;
    c->depth++;
    finish(c, -ECANCELED);
    c->depth--;
    if (c->depth) /* on the stack: settle frees it, without a callback */
        return;
    if (c->result >= 0)
        close(c->result);
    destroy(c);
}

void ac_resolver_connect_cancel(ac_connect_req *c)
{
    if (!c)
        return;
    unlink_req(c);
    cancel_link(&c->link);
}

static int check_config(const ac_connect_config *cfg)
{
    if (cfg->family != AF_UNSPEC && cfg->family != AF_INET && cfg->family != AF_INET6)
        return -EINVAL;
    if (!(cfg->attempt_delay >= 0) || !(cfg->timeout >= 0))
        return -EINVAL; /* negative or NaN */
    if (!cfg->bind_addr)
        return 0;
    int bf = cfg->bind_addr->sa_family;
    socklen_t want = bf == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if ((bf != AF_INET && bf != AF_INET6) || cfg->bind_len < want)
        return -EINVAL;
    if (cfg->family != AF_UNSPEC && cfg->family != bf)
        return -EINVAL; /* no address could be tried */
    return 0;
}

int ac_resolver_connect(ac_connect_req **out, ac_resolver *r, const char *host, uint16_t port,
                        const ac_connect_config *cfg, ac_connected_fn cb, void *arg)
{
    static const ac_connect_config defaults;
    cfg = cfg ? cfg : &defaults;
    if (!r || ac__resolver_is_freed(r) || !cb)
        return -EINVAL;
    int rc = check_config(cfg);
    if (rc < 0)
        return rc;
    struct ac_connect_req *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    *c = (struct ac_connect_req){.r = r,
                                 .m = ac__resolver_map(r),
                                 .cb = cb,
                                 .arg = arg,
                                 .filter = cfg->filter,
                                 .last = -1,
                                 .link.cancel = cancel_link,
                                 .delay = cfg->attempt_delay > 0 ? cfg->attempt_delay : 0.25};
    int family = cfg->family;
    if (cfg->bind_addr) { /* addresses of the other family are skipped: not asked for */
        family = cfg->bind_addr->sa_family;
        c->bind_len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        memcpy(&c->bind, cfg->bind_addr, c->bind_len);
    }
    c->timer = ac_timer_new(c->m, tick, c);
    rc = c->timer ? ac_resolve(&c->q, r, host, port, family, resolved, c) : -ENOMEM;
    if (rc == 0 && cfg->timeout > 0) {
        c->deadline = ac__resolver_clock() + cfg->timeout;
        rc = ac_timer_start(c->timer, cfg->timeout);
        if (rc < 0)
            ac_resolve_cancel(c->q);
    }
    if (rc < 0) {
        ac_timer_free(c->timer);
        free(c);
        return rc;
    }
    ac__resolver_link(r, &c->link);
    c->linked = true;
    if (out)
        *out = c;
    return 0;
}

/* ---------------------------------------------------- ac_connect_name */

/* What ac_connect_name reports a failure as: a lookup's when no address
 * was reached (the filter refusing them all is the connect's answer). */
static const char *failed_op(int status, const struct sockaddr *addr)
{
    return !addr && status != -EACCES ? "resolve" : "connect";
}

static void name_connected(void *arg, int fd, const struct sockaddr *addr, socklen_t len)
{
    (void)len;
    ac_dispatcher *d = arg;
    ac_set_close_hook(d, NULL, NULL);
    const char *op = failed_op(fd, addr);
    if (fd >= 0) {
        int rc = ac_attach(d, fd); /* addr = the peer's, connected: undone below */
        if (rc == 0) {
            /* The write event the loop reports next runs D8, as after
             * ac_connect: handle_connect, then connected. */
            ac_set_connected(d, false);
            ac_set_connecting(d, true);
            return;
        }
        close(fd);
        fd = rc;
        op = "attach";
    }
    /* Routed as the loop's guard would (D19): current error, handle_error. */
    const ac_handlers *h = ac_handlers_of(d);
    ac_raise(d, -fd, op, __FILE__, __func__, __LINE__);
    const ac_error *e = ac_current_error(d);
    int rc = h->handle_error ? h->handle_error(d, e) : ac_default_handle_error(d, e);
    if (rc != 0)
        ac_loop_stop(ac_map_of(d)); /* L17, as near as a timer can */
}

/* d closed while its connect was in flight: nothing is called any more. */
static void name_closed(ac_dispatcher *d, void *arg)
{
    (void)d;
    struct ac_connect_req *c = arg;
    c->owner = NULL; /* its hook is spent */
    ac_resolver_connect_cancel(c);
}

int ac_connect_name(ac_dispatcher *d, ac_resolver *r, const char *host, uint16_t port,
                    const ac_connect_config *cfg)
{
    if (!d || ac_is_closed(d))
        return -EINVAL;
    if (ac_fd(d) >= 0)
        return -EISCONN;
    ac_connect_req *c;
    int rc = ac_resolver_connect(&c, r, host, port, cfg, name_connected, d);
    if (rc < 0)
        return rc;
    rc = ac_set_close_hook(d, name_closed, c);
    if (rc < 0) {
        ac_resolver_connect_cancel(c);
        return rc;
    }
    c->owner = d;
    ac_set_connected(d, false); /* S7: connecting from now on */
    ac_set_connecting(d, true);
    return 0;
}
