/* socks5d's UDP relay (RFC 1928 §7): see udp.h for what an association
 * does.  Here: the sockets and their handlers, the client filter, the
 * header on the way out and back, and the names.
 *
 * A datagram to a name waits for the name's lookup in the association's
 * queue (UDP_HELD_MAX datagrams, UDP_HELD_BYTES bytes at most); one lookup
 * per name is in flight at a time, and the last UDP_CACHE names answered
 * are kept for UDP_CACHE_TTL seconds, so that a client sending a stream of
 * datagrams to "example.org" does not ask the resolver for each.
 *
 * Sockets: none of them ever wants to write (a datagram that would block
 * is dropped, not kept), so writing is turned off when each is made, and
 * reading stays on for the association's whole life.  Their handlers
 * never raise: a failure drops one datagram and the socket goes on. */
#define _GNU_SOURCE
#include "udp.h"

#include "cidr.h"
#include "toolkit.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define UDP_MAX_DATAGRAM 65535 /* the largest UDP payload, and so the largest datagram read */
#define UDP_ROOM 32            /* room before a datagram from a destination for its header */
#define UDP_READS_PER_EVENT 32 /* datagrams read per readiness event: others get their turn */
#define UDP_HELD_MAX 32        /* datagrams waiting for lookups, per association */
#define UDP_HELD_BYTES (256 * 1024)
#define UDP_LOOKUPS_MAX 4 /* names being looked up at once, per association */
#define UDP_CACHE 4       /* names answered, kept per association */
#define UDP_CACHE_ADDRS 4 /* addresses kept per name */
#define UDP_CACHE_TTL 60.0

struct held { /* a datagram waiting for its destination's lookup */
    struct held *next;
    uint16_t port; /* the destination port */
    size_t len;
    uint8_t data[]; /* the payload */
};

struct lookup { /* one name being looked up, and the datagrams waiting for it */
    struct lookup *next;
    struct s5_udp *u;
    ac_resolve_req *req;
    struct held *first, **tail;
    char host[256];
};

struct cached { /* a name answered */
    char host[256];
    double expires; /* ac_now; 0: an empty slot */
    size_t n;
    ac_address addrs[UDP_CACHE_ADDRS];
};

struct s5_udp {
    ac_map *map;
    ac_resolver *resolver;
    const struct cidr_list *deny;
    ac_dispatcher *front;           /* the client's side */
    ac_dispatcher *out[2];          /* toward destinations: IPv4, IPv6; made at the first use */
    int out_err[2];                 /* why out[i] could not be made: not tried again */
    struct sockaddr_storage client; /* IPv4 or IPv6 (never mapped); its port once known */
    socklen_t client_len;
    bool port_known;
    struct sockaddr_storage source; /* -b, unmapped; source_len 0: none */
    socklen_t source_len;
    char name[64]; /* the client's address, for the log */
    struct lookup *lookups;
    unsigned nlookups, held;
    size_t held_bytes;
    struct cached cache[UDP_CACHE];
    unsigned cache_next;
    struct s5_udp_stats st;
};

/* One buffer per thread (socks5d runs a map per thread): a datagram is
 * handled whole before the next is read, so one is enough. */
static _Thread_local uint8_t udp_buf[UDP_ROOM + UDP_MAX_DATAGRAM];

/* ---------------------------------------------------------- addresses */

/* sa as IPv4 or IPv6, an IPv4-mapped address (::ffff:a.b.c.d, how a
 * dual-stack socket shows an IPv4 peer) turned into the IPv4 address it
 * stands for.  Returns the length, 0 for any other family. */
static socklen_t unmap(const struct sockaddr *sa, socklen_t len, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        memcpy(out, sa, sizeof(struct sockaddr_in));
        return sizeof(struct sockaddr_in);
    }
    if (sa->sa_family != AF_INET6 || len < sizeof(struct sockaddr_in6))
        return 0;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
        memcpy(out, sa, sizeof *s6);
        return sizeof *s6;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)out;
    s4->sin_family = AF_INET;
    s4->sin_port = s6->sin6_port;
    memcpy(&s4->sin_addr, &s6->sin6_addr.s6_addr[12], 4);
    return sizeof *s4;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
                                    : ((const struct sockaddr_in6 *)ss)->sin6_port;
}

static void set_port(void *sa, uint16_t net_port)
{
    if (((struct sockaddr *)sa)->sa_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = net_port;
    else
        ((struct sockaddr_in6 *)sa)->sin6_port = net_port;
}

static bool denied(const struct s5_udp *u, const struct sockaddr_storage *sa)
{
    return u->deny && cidr_list_match(u->deny, (const struct sockaddr *)sa);
}

/* ------------------------------------------------------------ drops */

static void drop(struct s5_udp *u, const char *why)
{
    u->st.dropped++;
    tool_log(TOOL_DEBUG, "udp %s: datagram dropped: %s", u->name, why);
}

/* Why a send failed with err, for drop(). */
static const char *send_error(int err)
{
    return err == -EACCES   ? "destination denied"
           : err == -EAGAIN ? "socket buffer full"
                            : strerror(-err);
}

/* ---------------------------------------------------------- sockets */

static int front_read(ac_dispatcher *d);
static int out_read(ac_dispatcher *d);

/* Neither kind is connected, so a read event is handle_read alone (D6).
 * An error a socket reports (POLLERR) is read and dropped: handle_close
 * must not close it, the TCP connection decides that. */
static int udp_error_event(ac_dispatcher *d)
{
    int err = ac_socket_error(d);
    if (err > 0)
        tool_log(TOOL_DEBUG, "udp: %s", strerror(err));
    return 0;
}

static int udp_error(ac_dispatcher *d, const ac_error *e)
{
    (void)d;
    tool_log(TOOL_DEBUG, "udp: %s: %s", e->op, strerror(e->err));
    return 0;
}

static int udp_nothing(ac_dispatcher *d)
{
    (void)d;
    return 0;
}

static const ac_handlers front_handlers = {
    .name = "socks5d-udp-client",
    .handle_read = front_read,
    .handle_write = udp_nothing,
    .handle_expt = udp_nothing,
    .handle_close = udp_error_event,
    .handle_error = udp_error,
};

static const ac_handlers out_handlers = {
    .name = "socks5d-udp-out",
    .handle_read = out_read,
    .handle_write = udp_nothing,
    .handle_expt = udp_nothing,
    .handle_close = udp_error_event,
    .handle_error = udp_error,
};

/* A UDP socket of u's map, reading only, bound to addr (NULL: unbound
 * until its first send).  0 or -errno. */
static int udp_socket(struct s5_udp *u, const ac_handlers *h, int family,
                      const struct sockaddr *addr, socklen_t len, ac_dispatcher **out)
{
    ac_dispatcher *d = ac_dispatcher_new(u->map, h, u);
    if (!d)
        return -ENOMEM;
    int r = ac_create_socket(d, family, SOCK_DGRAM);
    if (r == 0 && addr)
        r = ac_bind(d, addr, len);
    if (r < 0) {
        ac_close(d);
        return r;
    }
    ac_set_writing(d, false);
    *out = d;
    return 0;
}

/* The socket toward destinations of family, made at its first use: bound
 * to -b's address when there is one, which then must be of that family.
 * A failure (no IPv6 on the host, -b's address gone) is kept, so that a
 * stream of datagrams does not make and close a socket each. */
static int out_socket(struct s5_udp *u, int family, ac_dispatcher **out)
{
    int i = family == AF_INET6;
    if (!u->out[i] && !u->out_err[i]) {
        const struct sockaddr *src = u->source_len ? (const struct sockaddr *)&u->source : NULL;
        if (src && u->source.ss_family != family)
            u->out_err[i] = -EAFNOSUPPORT;
        else
            u->out_err[i] = udp_socket(u, &out_handlers, family, src, u->source_len, &u->out[i]);
        if (u->out_err[i] < 0)
            tool_log(TOOL_DEBUG, "udp %s: no socket toward IPv%d destinations: %s", u->name,
                     i ? 6 : 4,
                     src && u->source.ss_family != family ? "-b gave an address of the other family"
                                                          : strerror(-u->out_err[i]));
    }
    *out = u->out[i];
    return u->out_err[i];
}

/* ------------------------------------------------ client -> destination */

/* Send a payload to one address: 0, or -errno (-EACCES: denied). */
static int send_out(struct s5_udp *u, const struct sockaddr *to, socklen_t tolen, const uint8_t *p,
                    size_t len)
{
    struct sockaddr_storage dst;
    socklen_t dlen = unmap(to, tolen, &dst);
    if (!dlen)
        return -EAFNOSUPPORT;
    if (denied(u, &dst))
        return -EACCES;
    ac_dispatcher *d = NULL;
    int r = out_socket(u, dst.ss_family, &d);
    if (r < 0)
        return r;
    ssize_t n = ac_sendto(d, p, len, (const struct sockaddr *)&dst, dlen);
    if (n < 0)
        return (int)n;
    u->st.up += len;
    return 0;
}

/* A name's addresses in the resolver's order: the first that takes the
 * datagram wins.  A denied address, or one the host cannot reach (no
 * route, no IPv6, not -b's family), passes the datagram to the next; a
 * full buffer or an oversized datagram would fail for every one. */
static const char *send_to_addrs(struct s5_udp *u, const ac_address *addrs, size_t n, uint16_t port,
                                 const uint8_t *p, size_t len)
{
    int r = -EHOSTUNREACH;
    for (size_t i = 0; i < n; i++) {
        ac_address a = addrs[i];
        set_port(&a.u.sa, htons(port));
        r = send_out(u, &a.u.sa, a.len, p, len);
        if (r == 0 || r == -EAGAIN || r == -EMSGSIZE || r == -ENOBUFS)
            break;
    }
    return r < 0 ? send_error(r) : NULL;
}

static struct cached *cache_find(struct s5_udp *u, const char *host)
{
    double now = ac_now(u->map);
    for (unsigned i = 0; i < UDP_CACHE; i++) {
        struct cached *c = &u->cache[i];
        if (c->expires > now && !strcasecmp(c->host, host))
            return c;
    }
    return NULL;
}

static void cache_put(struct s5_udp *u, const char *host, const ac_address *addrs, size_t n)
{
    struct cached *c = &u->cache[u->cache_next++ % UDP_CACHE];
    snprintf(c->host, sizeof c->host, "%s", host);
    c->n = n < UDP_CACHE_ADDRS ? n : UDP_CACHE_ADDRS;
    memcpy(c->addrs, addrs, c->n * sizeof *addrs);
    c->expires = ac_now(u->map) + UDP_CACHE_TTL;
}

static void lookup_unlink(struct s5_udp *u, struct lookup *l)
{
    struct lookup **pp = &u->lookups;
    while (*pp != l)
        pp = &(*pp)->next;
    *pp = l->next;
    u->nlookups--;
}

/* Free l's datagrams: each is sent (addrs, n) or dropped (n 0, why). */
static void lookup_flush(struct lookup *l, const ac_address *addrs, size_t n, const char *why)
{
    struct s5_udp *u = l->u;
    struct held *h;
    while ((h = l->first)) {
        l->first = h->next;
        const char *failed = n ? send_to_addrs(u, addrs, n, h->port, h->data, h->len) : why;
        if (failed)
            drop(u, failed);
        u->held--;
        u->held_bytes -= h->len;
        free(h);
    }
}

static void resolved(void *arg, int status, const ac_address *addrs, size_t n)
{
    struct lookup *l = arg;
    struct s5_udp *u = l->u;
    lookup_unlink(u, l);
    if (status == 0 && n > 0)
        cache_put(u, l->host, addrs, n);
    else
        tool_log(TOOL_DEBUG, "udp %s: %s: %s", u->name, l->host, ac_resolve_strerror(status));
    lookup_flush(l, addrs, status == 0 ? n : 0, "destination name does not resolve");
    free(l);
}

/* The lookup of host, joined or started: 0, -EBUSY (too many at once),
 * or ac_resolve's -errno (-EINVAL: not a host name). */
static int lookup_start(struct s5_udp *u, const char *host, struct lookup **out)
{
    struct lookup *l;
    for (l = u->lookups; l; l = l->next)
        if (!strcasecmp(l->host, host)) {
            *out = l;
            return 0;
        }
    if (u->nlookups >= UDP_LOOKUPS_MAX)
        return -EBUSY;
    if (!(l = calloc(1, sizeof *l)))
        return -ENOMEM;
    l->u = u;
    l->tail = &l->first;
    snprintf(l->host, sizeof l->host, "%s", host);
    /* With -b, only the addresses a socket bound there can reach. */
    int family = u->source_len ? u->source.ss_family : AF_UNSPEC;
    int r = ac_resolve(&l->req, u->resolver, host, 0, family, resolved, l);
    if (r < 0) {
        free(l);
        return r;
    }
    l->next = u->lookups;
    u->lookups = l;
    u->nlookups++;
    *out = l;
    return 0;
}

/* Send, or queue for the name's lookup.  NULL, or why it was dropped. */
static const char *to_name(struct s5_udp *u, const char *host, uint16_t port, const uint8_t *p,
                           size_t len)
{
    struct cached *c = cache_find(u, host);
    if (c)
        return send_to_addrs(u, c->addrs, c->n, port, p, len);
    if (!u->resolver)
        return "no resolver for a destination name";
    if (u->held >= UDP_HELD_MAX || u->held_bytes + len > UDP_HELD_BYTES)
        return "too many datagrams waiting for lookups";
    struct lookup *l = NULL;
    int r = lookup_start(u, host, &l);
    if (r < 0)
        return r == -EBUSY ? "too many lookups at once" : ac_resolve_strerror(r);
    struct held *h = malloc(sizeof *h + len);
    if (!h)
        return "out of memory";
    h->next = NULL;
    h->port = port;
    h->len = len;
    memcpy(h->data, p, len);
    *l->tail = h;
    l->tail = &h->next;
    u->held++;
    u->held_bytes += len;
    return NULL;
}

/* Only the associated client (udp.h): its IP, and its port once known. */
static bool from_the_client(const struct s5_udp *u, const struct sockaddr_storage *from)
{
    return cidr_same_ip((const struct sockaddr *)from, (const struct sockaddr *)&u->client) &&
           (!u->port_known || port_of(from) == port_of(&u->client));
}

/* A datagram on the client's socket: NULL once sent or queued, or why it
 * was dropped. */
static const char *from_client(struct s5_udp *u, const uint8_t *buf, size_t n,
                               const struct sockaddr_storage *from)
{
    if (!from_the_client(u, from))
        return "not from the client";
    struct sp_udp h;
    int hl = sp_parse_udp(buf, n, &h);
    /* §7: an implementation that does not reassemble fragments drops any
     * datagram whose FRAG field is not 0. */
    if (hl == SP_E_FRAG)
        return "fragment (FRAG != 0)";
    if (hl <= 0)
        return "malformed header";
    if (!u->port_known) {
        set_port(&u->client, port_of(from));
        u->port_known = true;
    }
    const uint8_t *p = buf + hl;
    size_t len = n - (size_t)hl;
    if (h.atyp == SOCKS5_ATYP_DOMAIN)
        return to_name(u, h.host, h.port, p, len);
    int r = send_out(u, (const struct sockaddr *)&h.addr, h.addrlen, p, len);
    return r < 0 ? send_error(r) : NULL;
}

static int front_read(ac_dispatcher *d)
{
    struct s5_udp *u = ac_user(d);
    for (int i = 0; i < UDP_READS_PER_EVENT; i++) {
        struct sockaddr_storage from, ss;
        socklen_t flen = sizeof from;
        ssize_t n = ac_recvfrom(d, udp_buf, UDP_MAX_DATAGRAM, (struct sockaddr *)&from, &flen);
        if (n < 0) {
            if (n != -EAGAIN && n != -EINTR)
                tool_log(TOOL_DEBUG, "udp %s: recvfrom: %s", u->name, strerror((int)-n));
            break;
        }
        const char *why = unmap((struct sockaddr *)&from, flen, &ss)
                              ? from_client(u, udp_buf, (size_t)n, &ss)
                              : "not from an IP address";
        if (why)
            drop(u, why);
    }
    return 0;
}

/* ------------------------------------------------ destination -> client */

/* A datagram from anywhere (what an association allows, §7) but a denied
 * source, with the header naming its source, to the client's port. */
static const char *from_destination(struct s5_udp *u, size_t n, const struct sockaddr_storage *from)
{
    if (!u->port_known)
        return "the client's port is not known yet";
    if (denied(u, from))
        return "source denied";
    uint8_t hdr[SP_REPLY_MAX];
    size_t hl = sp_udp_header(hdr, (const struct sockaddr *)from);
    if (hl > UDP_ROOM)
        return "header too long";
    uint8_t *p = udp_buf + UDP_ROOM - hl;
    memcpy(p, hdr, hl);
    ssize_t r = ac_sendto(u->front, p, hl + n, (const struct sockaddr *)&u->client, u->client_len);
    if (r < 0)
        return send_error((int)r);
    u->st.down += n;
    return NULL;
}

static int out_read(ac_dispatcher *d)
{
    struct s5_udp *u = ac_user(d);
    for (int i = 0; i < UDP_READS_PER_EVENT; i++) {
        struct sockaddr_storage from, ss;
        socklen_t flen = sizeof from;
        ssize_t n =
            ac_recvfrom(d, udp_buf + UDP_ROOM, UDP_MAX_DATAGRAM, (struct sockaddr *)&from, &flen);
        if (n < 0) {
            if (n != -EAGAIN && n != -EINTR)
                tool_log(TOOL_DEBUG, "udp %s: recvfrom: %s", u->name, strerror((int)-n));
            break;
        }
        const char *why = unmap((struct sockaddr *)&from, flen, &ss)
                              ? from_destination(u, (size_t)n, &ss)
                              : "not from an IP address";
        if (why)
            drop(u, why);
    }
    return 0;
}

/* ------------------------------------------------------- open, close */

int s5_udp_open(struct s5_udp **out, const struct s5_udp_config *cfg, const struct sockaddr *client,
                socklen_t clen, const struct sp_request *req, const struct sockaddr *local,
                socklen_t llen, struct sockaddr_storage *bnd, socklen_t *bndlen)
{
    struct sockaddr_storage cl, lo;
    socklen_t cl_len = unmap(client, clen, &cl), lo_len = unmap(local, llen, &lo);
    if (!cl_len || !lo_len)
        return -EAFNOSUPPORT;
    struct s5_udp *u = calloc(1, sizeof *u);
    if (!u)
        return -ENOMEM;
    u->map = cfg->map;
    u->resolver = cfg->resolver;
    u->deny = cfg->deny_dest;
    if (cfg->bind_addr)
        u->source_len = unmap(cfg->bind_addr, cfg->bind_len, &u->source);
    u->client = cl;
    u->client_len = cl_len;
    /* §7: DST.PORT is the port the client will send from; 0 if it does
     * not know it yet: then its first datagram tells. */
    u->port_known = req && req->port;
    set_port(&u->client, u->port_known ? htons(req->port) : 0);
    tool_host_text((struct sockaddr *)&cl, cl_len, u->name, sizeof u->name);
    set_port(&lo, 0);
    int r = udp_socket(u, &front_handlers, lo.ss_family, (struct sockaddr *)&lo, lo_len, &u->front);
    *bndlen = sizeof *bnd;
    if (r == 0 && getsockname(ac_fd(u->front), (struct sockaddr *)bnd, bndlen) < 0)
        r = -errno;
    if (r < 0) {
        s5_udp_close(u, NULL);
        return r;
    }
    *out = u;
    return 0;
}

void s5_udp_close(struct s5_udp *u, struct s5_udp_stats *st)
{
    /* The dispatchers' memory goes after this dispatch; no handler of
     * theirs runs after ac_close, and they have no finalize to touch u. */
    if (u->front)
        ac_close(u->front);
    for (int i = 0; i < 2; i++)
        if (u->out[i])
            ac_close(u->out[i]);
    struct lookup *l;
    while ((l = u->lookups)) {
        ac_resolve_cancel(l->req);
        lookup_unlink(u, l);
        lookup_flush(l, NULL, 0, "association closed while its name was looked up");
        free(l);
    }
    if (st)
        *st = u->st;
    free(u);
}
