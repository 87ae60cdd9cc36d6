/* The resolver: c-ares driven by the map (asyncore_resolver.h).
 *
 * c-ares never opens a socket of its own here: ares_set_socket_functions
 * makes every socket it asks for ours, created non-blocking and attached
 * as a dispatcher of the map, and every call it makes on one (connect,
 * recvfrom, sendv, close) comes through us.  Its wishes (read, write) come
 * from ARES_OPT_SOCK_STATE_CB and become ac_set_reading/ac_set_writing, so
 * such a dispatcher costs nothing per iteration (X7); its events call
 * ares_process_fd.  Its timeouts are one ac_timer, armed from ares_timeout
 * only while a query waits.  c-ares 1.18.1 closes its sockets once no
 * query remains, so an idle resolver holds no descriptor.
 *
 * A socket of c-ares may be closed by the map behind its back
 * (ac_close_all before ac_resolver_free).  The close hook tells us, and
 * from then on every call c-ares makes on that descriptor number fails
 * with EBADF and closes nothing: the number may belong to someone else.
 *
 * Results are never delivered with c-ares on the stack: its callback only
 * queues them, and the queue is delivered after ares_process_fd returns,
 * or by the timer (delay 0) for an answer known at once, so a callback may
 * start, cancel, or free anything, the resolver included. */
#include "resolver_private.h"

#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A socket c-ares asked for.  It lives until both its dispatcher is
 * finalized (d_done) and c-ares has forgotten it (ares_done): a handler
 * may still run on the dispatcher after c-ares closed it within the same
 * event (L13), and c-ares may still name the descriptor after the map
 * closed the dispatcher. */
struct rsock {
    struct rsock *next; /* r->socks: those c-ares still knows */
    ac_resolver *r;
    ac_dispatcher *d; /* NULL once the map closed it (gone) */
    int fd;
    bool gone;      /* closed by the map: the number is not ours any more */
    bool nudged;    /* c-ares was made to notice it (let_go_of_gone) */
    bool ares_done; /* c-ares closed it, or the resolver went */
    bool d_done;    /* its dispatcher was finalized */
};

enum req_state { REQ_PENDING, REQ_DONE, REQ_DELIVERING };

struct ac_resolve_req {
    ac_resolver *r;
    struct ac_resolve_req *prev, *next; /* r's done queue */
    ac_resolve_fn cb;                   /* NULL: cancelled, dropped when c-ares answers */
    void *arg;
    uint16_t port;
    enum req_state state;
    int status;
    ac_address *addrs;
    size_t n;
};

struct ac_resolver {
    ac_map *m;
    ares_channel ch;
    ac_timer *timer;     /* c-ares' next timeout, or 0 for results to deliver */
    struct rsock *socks; /* the sockets c-ares knows */
    struct ac_resolve_req *done_head, *done_tail;
    struct ac__resolver_link *links; /* connects by name in flight */
    int busy;                        /* delivering: free(r) waits until it ends */
    bool freed;                      /* ac_resolver_free ran */
};

double ac__resolver_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

ac_map *ac__resolver_map(const ac_resolver *r) { return r->m; }
bool ac__resolver_is_freed(const ac_resolver *r) { return r->freed; }

void ac__resolver_link(ac_resolver *r, struct ac__resolver_link *l)
{
    l->prev = NULL;
    l->next = r->links;
    if (r->links)
        r->links->prev = l;
    r->links = l;
}

void ac__resolver_unlink(ac_resolver *r, struct ac__resolver_link *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        r->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->prev = l->next = NULL;
}

/* ------------------------------------------------------ status names */

/* c-ares' status as ours (asyncore_resolver.h lists them). */
static int status_of(int ares_status)
{
    switch (ares_status) {
    case ARES_SUCCESS: return 0;
    case ARES_ENODATA:
    case ARES_ENOTFOUND:
    case ARES_ENONAME: return AC_EAI_NONAME;
    case ARES_ETIMEOUT: return -ETIMEDOUT;
    case ARES_ESERVFAIL:
    case ARES_EREFUSED:
    case ARES_ECONNREFUSED: return AC_EAI_AGAIN;
    case ARES_EBADNAME:
    case ARES_EBADFAMILY:
    case ARES_EBADHINTS:
    case ARES_EBADSTR:
    case ARES_EBADFLAGS: return -EINVAL;
    case ARES_ENOMEM: return -ENOMEM;
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION: return -ECANCELED;
    default: return AC_EAI_FAIL; /* FORMERR, NOTIMP, BADRESP, EOF, ... */
    }
}

const char *ac_resolve_error_name(int status)
{
    if (status > 0)
        status = -status; /* handle_error's positive form */
    switch (status) {
    case 0: return "OK";
    case AC_EAI_NONAME: return "AC_EAI_NONAME";
    case AC_EAI_AGAIN: return "AC_EAI_AGAIN";
    case AC_EAI_FAIL: return "AC_EAI_FAIL";
    default: break;
    }
    const char *name = ac_errno_name(-status);
    return name ? name : "UNKNOWN";
}

const char *ac_resolve_strerror(int status)
{
    if (status > 0)
        status = -status;
    switch (status) {
    case 0: return "success";
    case AC_EAI_NONAME: return "name does not resolve";
    case AC_EAI_AGAIN: return "temporary failure in name resolution";
    case AC_EAI_FAIL: return "non-recoverable failure in name resolution";
    case -EACCES: return "every address was refused";
    default: return strerror(-status);
    }
}

/* ------------------------------------------------- c-ares' sockets */

static struct rsock *find(ac_resolver *r, int fd)
{
    for (struct rsock *s = r->socks; s; s = s->next)
        if (s->fd == fd)
            return s;
    return NULL;
}

/* The socket c-ares means by fd, if it is still ours; else EBADF. */
static struct rsock *ours(ac_resolver *r, int fd)
{
    struct rsock *s = find(r, fd);
    if (!s || s->gone) {
        errno = EBADF;
        return NULL;
    }
    return s;
}

static void maybe_free(struct rsock *s)
{
    if (s->ares_done && s->d_done)
        free(s);
}

static void forget(ac_resolver *r, struct rsock *s)
{
    for (struct rsock **p = &r->socks; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    s->ares_done = true;
}

static void after_ares(ac_resolver *r);

/* An event on a socket of c-ares: it reads or writes what it wants. */
static void process(ac_dispatcher *d, bool rd, bool wr)
{
    struct rsock *s = ac_user(d);
    if (s->gone || s->ares_done)
        return; /* c-ares closed it earlier in this event (L13) */
    ac_resolver *r = s->r;
    r->busy++;
    ares_process_fd(r->ch, rd ? s->fd : ARES_SOCKET_BAD, wr ? s->fd : ARES_SOCKET_BAD);
    r->busy--;
    after_ares(r);
}

static int sock_read(ac_dispatcher *d)
{
    process(d, true, false);
    return 0;
}

static int sock_write(ac_dispatcher *d)
{
    process(d, false, true);
    return 0;
}

/* A hang-up or error (L14): c-ares' next recvfrom gets the error and
 * closes the socket itself; the default would close it behind its back. */
static int sock_hangup(ac_dispatcher *d)
{
    process(d, true, false);
    return 0;
}

static int sock_error(ac_dispatcher *d, const ac_error *e)
{
    (void)d;
    (void)e;
    return 0; /* nothing of ours raises; a stray failure must not close it */
}

static void sock_finalize(ac_dispatcher *d)
{
    struct rsock *s = ac_user(d);
    s->d_done = true;
    maybe_free(s);
}

static const ac_handlers sock_handlers = {
    .name = "asyncore_resolver.socket",
    .handle_read = sock_read,
    .handle_write = sock_write,
    .handle_expt = sock_read,
    .handle_close = sock_hangup,
    .handle_error = sock_error,
    .finalize = sock_finalize,
};

/* The map closed the dispatcher (ac_close_all): the number is not ours.
 * c-ares learns it at the next iteration (let_go_of_gone), not inside
 * whatever closed it. */
static void sock_closed(ac_dispatcher *d, void *arg)
{
    (void)d;
    struct rsock *s = arg;
    s->gone = true;
    s->d = NULL;
    ac_timer_start(s->r->timer, 0);
}

static ares_socket_t sock_open(int family, int type, int protocol, void *arg)
{
    ac_resolver *r = arg;
    int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd < 0)
        return ARES_SOCKET_BAD;
    struct rsock *s = calloc(1, sizeof(*s));
    ac_dispatcher *d = s ? ac_dispatcher_new(r->m, &sock_handlers, s) : NULL;
    if (!d) {
        free(s);
        close(fd);
        errno = ENOMEM;
        return ARES_SOCKET_BAD;
    }
    *s = (struct rsock){.r = r, .d = d, .fd = fd};
    /* No interest until c-ares says what it wants (sock_state). */
    ac_set_reading(d, false);
    ac_set_writing(d, false);
    int rc = ac_attach(d, fd); /* -EMFILE: select cannot wait on it */
    if (rc == 0)
        rc = ac_set_close_hook(d, sock_closed, s);
    if (rc < 0) {
        if (ac_fd(d) < 0)
            close(fd); /* a failed attach leaves fd to us */
        s->ares_done = true;
        ac_close(d); /* sock_finalize frees s */
        errno = -rc;
        return ARES_SOCKET_BAD;
    }
    s->next = r->socks;
    r->socks = s;
    return fd;
}

static int sock_close(ares_socket_t fd, void *arg)
{
    ac_resolver *r = arg;
    struct rsock *s = find(r, fd);
    if (!s)
        return 0; /* never ours: close nothing */
    forget(r, s);
    if (s->gone) { /* closed by the map: close nothing */
        maybe_free(s);
        return 0;
    }
    ac_set_close_hook(s->d, NULL, NULL);
    ac_close(s->d); /* sock_finalize frees s */
    return 0;
}

static int sock_connect(ares_socket_t fd, const struct sockaddr *sa, ares_socklen_t len, void *arg)
{
    if (!ours(arg, fd))
        return -1;
    return connect(fd, sa, len);
}

static ares_ssize_t sock_recvfrom(ares_socket_t fd, void *buf, size_t len, int flags,
                                  struct sockaddr *from, ares_socklen_t *fromlen, void *arg)
{
    if (!ours(arg, fd))
        return -1;
    return recvfrom(fd, buf, len, flags, from, fromlen);
}

static ares_ssize_t sock_sendv(ares_socket_t fd, const struct iovec *iov, int n, void *arg)
{
    if (!ours(arg, fd))
        return -1;
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
    return sendmsg(fd, &msg, MSG_NOSIGNAL); /* a TCP server gone: EPIPE, not SIGPIPE */
}

static const struct ares_socket_functions sock_functions = {
    .asocket = sock_open,
    .aclose = sock_close,
    .aconnect = sock_connect,
    .arecvfrom = sock_recvfrom,
    .asendv = sock_sendv,
};

/* ARES_OPT_SOCK_STATE_CB: what c-ares waits for on a socket. */
static void sock_state(void *arg, ares_socket_t fd, int readable, int writable)
{
    struct rsock *s = ours(arg, fd);
    if (!s)
        return;
    ac_set_reading(s->d, readable != 0);
    ac_set_writing(s->d, writable != 0);
}

/* ------------------------------------------------------------ timer */

/* Results waiting: the next iteration delivers them; else c-ares' next
 * timeout while a query waits; else nothing (an idle resolver). */
static void rearm(ac_resolver *r)
{
    if (r->done_head) {
        ac_timer_start(r->timer, 0);
        return;
    }
    struct timeval tv;
    if (ares_timeout(r->ch, NULL, &tv)) /* +1 ms: never early, never spinning */
        ac_timer_start(r->timer, (double)tv.tv_sec + (double)tv.tv_usec / 1e6 + 0.001);
    else
        ac_timer_stop(r->timer);
}

/* Make c-ares drop the sockets the map closed: asked to read one, it gets
 * EBADF from sock_recvfrom, closes it (sock_close closes nothing then) and
 * sends its queries again on a new socket.  Once per socket: one it keeps
 * is left to its next error or its last query's end. */
static void let_go_of_gone(ac_resolver *r)
{
    for (struct rsock *s = r->socks; s;) {
        if (!s->gone || s->nudged) {
            s = s->next;
            continue;
        }
        s->nudged = true;
        ares_process_fd(r->ch, s->fd, ARES_SOCKET_BAD);
        s = r->socks; /* the list may have changed */
    }
}

static double fire(ac_timer *t, void *arg)
{
    (void)t;
    ac_resolver *r = arg;
    r->busy++;
    let_go_of_gone(r);
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* the timeouts due */
    r->busy--;
    after_ares(r);
    return -1; /* rearm() has started it again if need be */
}

/* ------------------------------------------------------------ lookups */

static void release(struct ac_resolve_req *q)
{
    free(q->addrs);
    free(q);
}

static void done_remove(ac_resolver *r, struct ac_resolve_req *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        r->done_head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        r->done_tail = q->prev;
    q->prev = q->next = NULL;
}

/* Deliver what c-ares answered, in order, c-ares being off the stack.  A
 * callback may free the resolver: the rest is dropped, and r goes when the
 * outermost delivery ends. */
static void after_ares(ac_resolver *r)
{
    r->busy++;
    while (r->done_head && !r->freed) {
        struct ac_resolve_req *q = r->done_head;
        done_remove(r, q);
        q->state = REQ_DELIVERING;
        q->cb(q->arg, q->status, q->n ? q->addrs : NULL, q->n);
        release(q);
    }
    r->busy--;
    if (!r->freed)
        rearm(r);
    else if (!r->busy)
        free(r);
}

static bool same(const struct sockaddr *a, const ac_address *b)
{
    if (a->sa_family != b->u.sa.sa_family)
        return false;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr ==
               b->u.in.sin_addr.s_addr;
    return !memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr, &b->u.in6.sin6_addr,
                   sizeof(struct in6_addr));
}

/* Append the nodes of one family, each once, with the port. */
static void take(struct ac_resolve_req *q, const struct ares_addrinfo *res, int family)
{
    for (const struct ares_addrinfo_node *n = res->nodes; n; n = n->ai_next) {
        if (n->ai_family != family || n->ai_addrlen > sizeof(q->addrs[0].u))
            continue;
        bool dup = false;
        for (size_t i = 0; i < q->n && !dup; i++)
            dup = same(n->ai_addr, &q->addrs[i]);
        if (dup)
            continue;
        ac_address *a = &q->addrs[q->n++];
        memset(a, 0, sizeof(*a));
        memcpy(&a->u, n->ai_addr, n->ai_addrlen);
        a->len = (socklen_t)n->ai_addrlen;
        if (family == AF_INET)
            a->u.in.sin_port = htons(q->port);
        else
            a->u.in6.sin6_port = htons(q->port);
    }
}

/* IPv6 first, then IPv4 (RFC 8305 section 4 orders by family first). */
static int collect(struct ac_resolve_req *q, const struct ares_addrinfo *res)
{
    size_t count = 0;
    for (const struct ares_addrinfo_node *n = res->nodes; n; n = n->ai_next)
        count++;
    if (!count)
        return AC_EAI_NONAME;
    q->addrs = calloc(count, sizeof(*q->addrs));
    if (!q->addrs)
        return -ENOMEM;
    take(q, res, AF_INET6);
    take(q, res, AF_INET);
    return q->n ? 0 : AC_EAI_NONAME;
}

static void queue_done(ac_resolver *r, struct ac_resolve_req *q);

/* c-ares' callback: queue the result; delivery comes later (after_ares). */
static void answered(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    (void)timeouts;
    struct ac_resolve_req *q = arg;
    ac_resolver *r = q->r;
    if (!q->cb || r->freed) { /* cancelled: nobody waits for it */
        ares_freeaddrinfo(res);
        release(q);
        return;
    }
    q->status = status_of(status);
    if (q->status == 0)
        q->status = res ? collect(q, res) : AC_EAI_NONAME;
    ares_freeaddrinfo(res);
    queue_done(r, q);
}

/* A numeric address is answered here, without c-ares: 1.18.1's
 * ares_getaddrinfo sends a query for an IPv4 address asked with AF_UNSPEC
 * (its fake_addrinfo forgets the IPv4 match when the IPv6 parse fails). */
static bool numeric(struct ac_resolve_req *q, const char *host, int family)
{
    ac_address a = {0};
    if (inet_pton(AF_INET, host, &a.u.in.sin_addr) == 1) {
        a.u.in.sin_family = AF_INET;
        a.u.in.sin_port = htons(q->port);
        a.len = sizeof(a.u.in);
    } else if (inet_pton(AF_INET6, host, &a.u.in6.sin6_addr) == 1) {
        a.u.in6.sin6_family = AF_INET6;
        a.u.in6.sin6_port = htons(q->port);
        a.len = sizeof(a.u.in6);
    } else {
        return false;
    }
    if (family != AF_UNSPEC && family != a.u.sa.sa_family) {
        q->status = AC_EAI_NONAME; /* an address of the other family is no name */
    } else if ((q->addrs = malloc(sizeof(a))) == NULL) {
        q->status = -ENOMEM;
    } else {
        q->addrs[0] = a;
        q->n = 1;
    }
    return true;
}

static void queue_done(ac_resolver *r, struct ac_resolve_req *q)
{
    q->state = REQ_DONE;
    q->prev = r->done_tail;
    *(r->done_tail ? &r->done_tail->next : &r->done_head) = q;
    r->done_tail = q;
}

int ac_resolve(ac_resolve_req **out, ac_resolver *r, const char *host, uint16_t port, int family,
               ac_resolve_fn cb, void *arg)
{
    if (!r || r->freed || !host || !cb)
        return -EINVAL;
    size_t len = strlen(host);
    /* RFC 1035 2.3.4: 253 characters at most, 254 with the root's dot. */
    if (len == 0 || len > 254 || (len == 254 && host[253] != '.'))
        return -EINVAL;
    if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
        return -EINVAL;
    struct ac_resolve_req *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    *q = (struct ac_resolve_req){.r = r, .cb = cb, .arg = arg, .port = port};
    /* NOSORT: c-ares' RFC 6724 sort connects a UDP socket per address;
     * the order asked for is by family (collect). */
    struct ares_addrinfo_hints hints = {.ai_family = family, .ai_flags = ARES_AI_NOSORT};
    if (out)
        *out = q;
    /* A numeric address or a name of /etc/hosts is answered inside this
     * call: queued, and delivered by the timer at the next iteration. */
    if (numeric(q, host, family))
        queue_done(r, q);
    else
        ares_getaddrinfo(r->ch, host, NULL, &hints, answered, q);
    rearm(r);
    return 0;
}

void ac_resolve_cancel(ac_resolve_req *q)
{
    if (!q)
        return;
    switch (q->state) {
    case REQ_PENDING: q->cb = NULL; break; /* freed when c-ares answers */
    case REQ_DONE:
        done_remove(q->r, q);
        release(q);
        break;
    case REQ_DELIVERING: break; /* inside its own callback: freed after it */
    }
}

/* ----------------------------------------------------------- resolver */

static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static int library_status;

/* ares_library_init is not thread-safe, and maps of several threads may
 * each make a resolver: once per process, never cleaned up (on Linux it
 * holds nothing). */
static void library_init(void) { library_status = ares_library_init(ARES_LIB_INIT_ALL); }

static int channel_open(ac_resolver *r, const ac_resolver_config *cfg)
{
    struct ares_options o = {.sock_state_cb = sock_state, .sock_state_cb_data = r};
    int mask = ARES_OPT_SOCK_STATE_CB;
    if (cfg && cfg->timeout > 0) {
        o.timeout = cfg->timeout * 1000 < 1 ? 1 : (int)(cfg->timeout * 1000);
        mask |= ARES_OPT_TIMEOUTMS;
    }
    if (cfg && cfg->tries > 0) {
        o.tries = cfg->tries;
        mask |= ARES_OPT_TRIES;
    }
    int st = ares_init_options(&r->ch, &o, mask);
    if (st != ARES_SUCCESS)
        return st == ARES_ENOMEM ? -ENOMEM : -EIO;
    ares_set_socket_functions(r->ch, &sock_functions, r);
    if (cfg && cfg->servers) {
        st = ares_set_servers_ports_csv(r->ch, cfg->servers);
        if (st != ARES_SUCCESS) {
            ares_destroy(r->ch);
            return st == ARES_ENOMEM ? -ENOMEM : -EINVAL;
        }
    }
    return 0;
}

int ac_resolver_new(ac_resolver **out, ac_map *m, const ac_resolver_config *cfg)
{
    if (!m)
        m = ac_default_map();
    if (!out || !m)
        return -EINVAL;
    /* !(x >= 0) also refuses NaN. */
    if (cfg && (!(cfg->timeout >= 0) || cfg->timeout > 86400 || cfg->tries < 0 ||
                (cfg->servers && !*cfg->servers)))
        return -EINVAL;
    pthread_once(&library_once, library_init);
    if (library_status != ARES_SUCCESS)
        return -EIO;
    ac_resolver *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->m = m;
    r->timer = ac_timer_new(m, fire, r);
    int rc = r->timer ? channel_open(r, cfg) : -ENOMEM;
    if (rc < 0) {
        ac_timer_free(r->timer);
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void ac_resolver_free(ac_resolver *r)
{
    if (!r || r->freed)
        return;
    r->freed = true;
    while (r->links) { /* connects by name first: they hold lookups */
        struct ac__resolver_link *l = r->links;
        ac__resolver_unlink(r, l);
        l->cancel(l);
    }
    while (r->done_head) {
        struct ac_resolve_req *q = r->done_head;
        done_remove(r, q);
        release(q);
    }
    /* Calls answered() with ARES_EDESTRUCTION for every pending query
     * (freed, not delivered) and sock_close for every socket. */
    ares_destroy(r->ch);
    while (r->socks) { /* none should be left; never leave one open */
        struct rsock *s = r->socks;
        sock_close(s->fd, r);
    }
    ac_timer_free(r->timer);
    if (!r->busy)
        free(r);
}
