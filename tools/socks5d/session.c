/* socks5d's sessions: the handshake of one client, its request, and the
 * hand-off of its socket to a relay (see session.h).
 *
 * The handshake is read by a plain dispatcher into a small buffer and
 * parsed incrementally (proto.h): a message split across any number of
 * writes is the same as one in one piece, and whatever the client sent
 * after its request (the first bytes of the tunnel) stays in the buffer,
 * to be pushed to the destination before anything the relay reads.
 * Replies go through an output buffer of their own, written with ac_send;
 * the last one (success) is written at the hand-off, after whatever is
 * still queued, and what the socket does not take is pushed to the relay
 * ahead of everything else, so the order on the wire is the order sent.
 *
 * Once the request is read, nothing more is read until the command is
 * done (connected, bound, associated): reading pauses at the first byte
 * or EOF that comes meanwhile, so a client that half-closes after its
 * request still gets its reply, and the relay sees the EOF afterwards and
 * passes it on.  A failure reply is followed by shutdown(SHUT_WR) and by
 * reading (and dropping) until the client closes or the handshake timeout
 * passes, so that unread bytes never turn the close into a reset that
 * would destroy the reply in flight.
 *
 * Memory: the handshake state (buffers, the parsed request, timers) is
 * its own allocation, freed when the relay starts, so that an idle tunnel
 * costs the relay plus a struct s5_session and two short strings. */
#define _GNU_SOURCE
#include "session.h"

#include "toolkit.h"
#include "udp.h"

#include <asyncore_relay.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct s5_options s5_opt;
struct s5_stats s5_stats;

static const char *const cmd_names[] = {
    [S5_CMD_NONE] = "-",
    [S5_CMD_CONNECT] = "connect",
    [S5_CMD_BIND] = "bind",
    [S5_CMD_UDP] = "udp-associate",
    [S5_CMD_S4_CONNECT] = "socks4-connect",
    [S5_CMD_S4_BIND] = "socks4-bind",
    [S5_CMD_UNKNOWN] = "unknown",
};

static void session_end(struct s5_session *s);
static void flush(struct s5_session *s);

/* ------------------------------------------------- -1: trusted client IPs */

/* IPs that authenticated once (-1), in the IPv6 form, shared by the
 * workers.  Never shrinks: it holds one entry per client IP that ever
 * gave a good password, which a closed user base keeps small. */
static struct {
    pthread_mutex_t lock;
    uint8_t (*ip)[16];
    size_t n, cap;
} trusted = {.lock = PTHREAD_MUTEX_INITIALIZER};

static bool trusted_has(const struct sockaddr *sa)
{
    uint8_t ip[16];
    cidr_ipv6_form(sa, ip); /* a client's address: always IPv4 or IPv6 */
    pthread_mutex_lock(&trusted.lock);
    bool found = false;
    for (size_t i = 0; i < trusted.n && !found; i++)
        found = !memcmp(trusted.ip[i], ip, 16);
    pthread_mutex_unlock(&trusted.lock);
    return found;
}

static void trusted_add(const struct sockaddr *sa)
{
    if (trusted_has(sa))
        return;
    uint8_t ip[16];
    cidr_ipv6_form(sa, ip); /* a client's address: always IPv4 or IPv6 */
    pthread_mutex_lock(&trusted.lock);
    if (trusted.n == trusted.cap) {
        size_t cap = trusted.cap ? 2 * trusted.cap : 16;
        void *v = realloc(trusted.ip, cap * sizeof *trusted.ip);
        if (v) {
            trusted.ip = v;
            trusted.cap = cap;
        }
    }
    if (trusted.n < trusted.cap) /* out of memory: that client authenticates again */
        memcpy(trusted.ip[trusted.n++], ip, 16);
    pthread_mutex_unlock(&trusted.lock);
}

void s5_trusted_free(void)
{
    free(trusted.ip);
    trusted.ip = NULL;
    trusted.n = trusted.cap = 0;
}

/* --------------------------------------------------------------- helpers */

/* sa with an IPv4-mapped IPv6 address (how a "::" listener shows an IPv4
 * peer) turned into plain IPv4, so that logs, rules and replies see the
 * address the client has.  Returns the length. */
socklen_t s5_unmap(const struct sockaddr *sa, socklen_t len, struct sockaddr_storage *out)
{
    struct sockaddr_storage in; /* out may be sa */
    memcpy(&in, sa, len < sizeof in ? len : sizeof in);
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&in;
    if (in.ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
        memcpy(out, &in, len < sizeof in ? len : sizeof in);
        return len;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)out;
    memset(s4, 0, sizeof *s4);
    s4->sin_family = AF_INET;
    s4->sin_port = s6->sin6_port;
    memcpy(&s4->sin_addr, &s6->sin6_addr.s6_addr[12], 4);
    return sizeof *s4;
}

/* The reply for a failed connect, lookup or bind (as microsocks maps
 * them, plus the resolver's statuses).  TTL expired stands for a timeout,
 * which is what RFC 1928's code 6 is taken to mean by its clients. */
int s5_reply_for(int err)
{
    switch (err) {
    case -ECONNREFUSED: return SOCKS5_CONNECTION_REFUSED;
    case -ENETUNREACH:
    case -ENETDOWN: return SOCKS5_NETWORK_UNREACHABLE;
    case -EHOSTUNREACH:
    case -EHOSTDOWN:
    case -EINVAL: /* a name the resolver cannot even ask for */
    case AC_EAI_NONAME:
    case AC_EAI_AGAIN: return SOCKS5_HOST_UNREACHABLE;
    case -ETIMEDOUT: return SOCKS5_TTL_EXPIRED;
    case -EACCES: return SOCKS5_NOT_ALLOWED; /* --deny-dest refused every address */
    default: return SOCKS5_GENERAL_FAILURE;
    }
}

/* A reply to the request, in the request's protocol: SOCKS4 has 90 and
 * 91 only. */
size_t s5_encode_reply(const struct s5_session *s, uint8_t *out, int rep,
                       const struct sockaddr *addr)
{
    return s->version4 ? sp_reply4(out, rep, addr) : sp_reply5(out, rep, addr);
}

/* Text from the client, safe for a log line: no blank, no control byte. */
static void log_safe(char *out, size_t size, const char *in)
{
    size_t i = 0;
    for (; in[i] && i + 1 < size; i++)
        out[i] = (unsigned char)in[i] > ' ' && (unsigned char)in[i] < 0x7f ? in[i] : '?';
    out[i] = 0;
}

static char *dest_text(const struct sp_request *r)
{
    char text[300], host[256];
    if (r->atyp == SOCKS5_ATYP_DOMAIN) {
        log_safe(host, sizeof host, r->host);
        snprintf(text, sizeof text, "%s:%u", host, r->port);
    } else {
        struct sockaddr_storage ss;
        socklen_t len = s5_unmap((const struct sockaddr *)&r->addr, r->addrlen, &ss);
        tool_peer_text((const struct sockaddr *)&ss, len, text, sizeof text);
    }
    return strdup(text);
}

static int stat_index(int rep)
{
    if (rep >= 0 && rep <= SOCKS5_ATYP_NOT_SUPPORTED)
        return rep;
    return rep == SOCKS4_GRANTED ? 0 : S5_NREPLIES - 1;
}

/* The request's line (once), and its counters. */
void s5_log_request(struct s5_session *s, uint64_t up, uint64_t down)
{
    if (s->logged || s->cmd == S5_CMD_NONE)
        return;
    s->logged = true;
    if (s->reply < 0)
        s->reply = s->version4 ? SOCKS4_REJECTED : SOCKS5_GENERAL_FAILURE;
    atomic_fetch_add(&s5_stats.replies[stat_index(s->reply)], 1);
    atomic_fetch_add(&s5_stats.up, up);
    atomic_fetch_add(&s5_stats.down, down);
    if (tool_verbosity < TOOL_INFO)
        return;
    char client[80], user[256];
    tool_peer_text(&s->client.sa, s->clen, client, sizeof client);
    log_safe(user, sizeof user, s->user ? s->user : "-");
    tool_log(TOOL_INFO,
             "request client=%s user=%s cmd=%s dest=%s reply=%s(%d) up=%llu down=%llu secs=%.3f",
             client, user, cmd_names[s->cmd], s->dest ? s->dest : "-", sp_reply_name(s->reply),
             s->reply, (unsigned long long)up, (unsigned long long)down,
             ac_now(s->w->map) - s->start);
}

/* ------------------------------------------------------ output, closing */

/* Queue reply bytes for the client and try to send them. */
void s5_send(struct s5_session *s, const void *data, size_t len)
{
    struct s5_handshake *h = s->hs;
    if (len > sizeof h->out - h->outlen) { /* cannot happen: replies are few and short */
        session_end(s);
        return;
    }
    if (len)
        memcpy(h->out + h->outlen, data, len);
    h->outlen += len;
    flush(s);
}

/* Send what the output buffer holds; once it is empty in ST_CLOSING, shut
 * the sending half and read until the client closes. */
static void flush(struct s5_session *s)
{
    struct s5_handshake *h = s->hs;
    while (h->outlen && !s->ended) {
        ssize_t n = ac_send(s->d, h->out, h->outlen);
        if (n < 0)
            session_end(s);
        if (n <= 0) /* would block, or failed (handle_close may have run) */
            break;
        memmove(h->out, h->out + n, h->outlen - (size_t)n);
        h->outlen -= (size_t)n;
    }
    if (s->ended)
        return;
    if (!h->outlen && s->state == ST_CLOSING && !s->shut) {
        s->shut = true;
        (void)ac_shutdown(s->d, SHUT_WR);
        ac_set_reading(s->d, true);
    }
    ac_set_writing(s->d, h->outlen > 0);
}

/* Stop whatever the request started (lookup, connect, BIND listener). */
static void stop_pending(struct s5_handshake *h)
{
    if (h->connect)
        ac_resolver_connect_cancel(h->connect);
    h->connect = NULL;
    s5_bind_stop(h);
}

/* The end of a session that will not get a relay: send `len` bytes (a
 * failure reply, a refused method; may be 0), then close politely. */
void s5_close_after(struct s5_session *s, const void *data, size_t len)
{
    struct s5_handshake *h = s->hs;
    stop_pending(h);
    s->state = ST_CLOSING;
    h->inlen = 0;
    ac_timer_start(h->timer, s5_opt.handshake_timeout > 0 ? s5_opt.handshake_timeout : 10);
    s5_send(s, data, len);
}

/* The request failed with SOCKS5 reply rep (SOCKS4: 91): log, reply, close. */
void s5_fail(struct s5_session *s, int rep)
{
    uint8_t out[SP_REPLY_MAX];
    s->reply = s->version4 ? SOCKS4_REJECTED : rep;
    s5_log_request(s, 0, 0);
    s5_close_after(s, out, s5_encode_reply(s, out, rep, NULL));
}

/* ------------------------------------------------------------ the relay */

static void session_unlink(struct s5_session *s)
{
    if (!s->linked)
        return;
    s->linked = false;
    struct s5_worker *w = s->w;
    if (s->prev)
        s->prev->next = s->next;
    else
        w->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    atomic_fetch_sub(&s5_stats.active, 1);
    /* An idle worker gives back the pipes and buffers the relay keeps for
     * the next tunnels: descriptors and memory go back to what they were
     * at startup (a busy one never gets here between tunnels). */
    if (!w->sessions)
        ac_relay_cache_release();
}

static void free_handshake(struct s5_session *s)
{
    struct s5_handshake *h = s->hs;
    if (!h)
        return;
    stop_pending(h);
    ac_timer_free(h->timer);
    free(h);
    s->hs = NULL;
}

static void free_session(struct s5_session *s)
{
    free_handshake(s);
    free(s->user);
    free(s->dest);
    free(s);
}

static void relay_done(ac_relay *r, const ac_relay_stats *st, void *arg)
{
    (void)r;
    struct s5_session *s = arg;
    uint64_t down = st->bytes[AC_RELAY_BA];
    down = down > s->replied ? down - s->replied : 0; /* the replies are not tunnel bytes */
    s->relay = NULL;
    if (st->how != AC_RELAY_CLEAN)
        tool_log(TOOL_DEBUG, "tunnel to %s: %s%s%s", s->dest, ac_relay_end_name(st->how),
                 st->err ? ": " : "", st->err ? strerror(st->err) : "");
    s5_log_request(s, st->bytes[AC_RELAY_AB], down);
    session_unlink(s);
    free_session(s);
}

/* Give the client's socket and fd_b (connected: the destination, or
 * BIND's peer) to a relay, with `reply` (the success reply) first for the
 * client and the bytes it pipelined first for fd_b. */
/* The relay could not start (out of memory; -EMFILE under select), or
 * not take the bytes to push: both sockets are closed, and the request
 * logged as succeeded (its reply may have gone out already). */
static void relay_failed(struct s5_session *s, int fd_a, int fd_b, int rc)
{
    tool_log(TOOL_WARNING, "relay: %s", strerror(-rc));
    if (s->relay) {
        ac_relay_abort(s->relay, true); /* relay_done frees s */
        return;
    }
    close(fd_a);
    close(fd_b);
    s5_log_request(s, 0, 0);
    session_unlink(s);
    free_session(s);
}

void s5_handoff(struct s5_session *s, int fd_b, const uint8_t *reply, size_t len)
{
    struct s5_handshake *h = s->hs;
    s->reply = s->version4 ? SOCKS4_GRANTED : SOCKS5_SUCCEEDED;
    /* The reply goes out now, behind any reply still queued: a fresh
     * socket takes a few bytes at once, and the client hears sooner than
     * through a write event of the relay.  What it does not take is pushed
     * to the relay ahead of everything else. */
    memcpy(h->out + h->outlen, reply, len); /* S5_HS_OUT holds every reply a request sends */
    h->outlen += len;
    ssize_t sent = send(ac_fd(s->d), h->out, h->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        close(fd_b); /* the client is gone */
        session_end(s);
        return;
    }
    size_t left = h->outlen - (sent > 0 ? (size_t)sent : 0);
    int fd_a = ac_detach(s->d); /* d ends as closed; the socket stays open, now ours */
    if (fd_a < 0) {             /* cannot happen: a plain dispatcher with a descriptor */
        close(fd_b);
        session_end(s);
        return;
    }
    ac_set_user(s->d, NULL); /* its finalize is not the session's end any more */
    s->d = NULL;
    ac_relay_config cfg = {.buffer_size = s5_opt.buffer,
                           .nagle = true, /* TCP_NODELAY set: the listener's, and fd_b's below */
                           .idle_timeout = s5_opt.idle_timeout};
    int one = 1;
    (void)setsockopt(fd_b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = ac_relay_new(&s->relay, s->w->map, fd_a, fd_b, &cfg, relay_done, s);
    if (rc == 0 && left)
        rc = ac_relay_push(s->relay, AC_RELAY_A, h->out + h->outlen - left, left);
    if (rc == 0 && h->inlen) /* what the client sent after its request */
        rc = ac_relay_push(s->relay, AC_RELAY_B, h->in, h->inlen);
    s->replied = left;
    free_handshake(s);
    s->state = ST_RELAY;
    if (rc < 0)
        relay_failed(s, fd_a, fd_b, rc);
}

/* --------------------------------------------------------------- CONNECT */

static bool dest_allowed(void *arg, const struct sockaddr *addr, socklen_t len)
{
    (void)arg, (void)len;
    return !cidr_list_match(&s5_opt.deny_dest, addr);
}

static void connected(void *arg, int fd, const struct sockaddr *addr, socklen_t len)
{
    (void)addr, (void)len;
    struct s5_session *s = arg;
    s->hs->connect = NULL;
    if (fd < 0) {
        tool_log(TOOL_DEBUG, "connect %s: %s", s->dest, ac_resolve_strerror(fd));
        s5_fail(s, s5_reply_for(fd));
        return;
    }
    /* BND.ADDR and BND.PORT: the outgoing socket's own address (§6). */
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) < 0)
        blen = 0;
    uint8_t reply[SP_REPLY_MAX];
    size_t n =
        s5_encode_reply(s, reply, SOCKS5_SUCCEEDED, blen ? (const struct sockaddr *)&bound : NULL);
    s5_handoff(s, fd, reply, n);
}

/* The destination as the resolver takes it: the name, or the address as
 * text (answered without a query). */
const char *s5_dest_host(const struct sp_request *r, char *buf, size_t size)
{
    if (r->atyp == SOCKS5_ATYP_DOMAIN)
        return r->host;
    const void *ip = r->addr.ss_family == AF_INET
                         ? (const void *)&((const struct sockaddr_in *)&r->addr)->sin_addr
                         : (const void *)&((const struct sockaddr_in6 *)&r->addr)->sin6_addr;
    return inet_ntop(r->addr.ss_family, ip, buf, (socklen_t)size) ? buf : "";
}

static void start_connect(struct s5_session *s)
{
    struct s5_handshake *h = s->hs;
    char buf[INET6_ADDRSTRLEN];
    ac_connect_config cfg = {.timeout = s5_opt.connect_timeout, .filter = dest_allowed};
    if (s5_opt.bind_len) { /* -b: its family only, the one it can be a source for */
        cfg.bind_addr = (const struct sockaddr *)&s5_opt.bind_addr;
        cfg.bind_len = s5_opt.bind_len;
        cfg.family = s5_opt.bind_addr.ss_family;
    }
    s->state = ST_CONNECTING;
    int rc =
        ac_resolver_connect(&h->connect, s->w->resolver, s5_dest_host(&h->req, buf, sizeof buf),
                            h->req.port, &cfg, connected, s);
    if (rc < 0) {
        h->connect = NULL;
        s5_fail(s, s5_reply_for(rc));
    }
}

/* ----------------------------------------------------------- UDP ASSOCIATE */

static void start_udp(struct s5_session *s)
{
    struct s5_handshake *h = s->hs;
    struct sockaddr_storage local, bnd;
    socklen_t llen = sizeof local, blen = sizeof bnd;
    if (getsockname(ac_fd(s->d), (struct sockaddr *)&local, &llen) < 0) {
        s5_fail(s, SOCKS5_GENERAL_FAILURE);
        return;
    }
    llen = s5_unmap((const struct sockaddr *)&local, llen, &local);
    struct s5_udp_config cfg = {
        .map = s->w->map,
        .resolver = s->w->resolver,
        .deny_dest = &s5_opt.deny_dest,
        .bind_addr = s5_opt.bind_len ? (const struct sockaddr *)&s5_opt.bind_addr : NULL,
        .bind_len = s5_opt.bind_len,
        .idle_timeout = s5_opt.idle_timeout,
    };
    int rc = s5_udp_open(&s->udp, &cfg, &s->client.sa, s->clen, &h->req,
                         (const struct sockaddr *)&local, llen, &bnd, &blen);
    if (rc < 0) {
        s->udp = NULL;
        tool_log(TOOL_WARNING, "udp-associate: %s", strerror(-rc));
        s5_fail(s, SOCKS5_GENERAL_FAILURE);
        return;
    }
    /* The association lives as long as this connection, which is read
     * (and what comes is dropped) until it ends; --idle-timeout ends it
     * when it is silent (the datagrams do not count: RFC 1928 ties the
     * association to the TCP connection alone). */
    s->state = ST_UDP;
    s->reply = SOCKS5_SUCCEEDED;
    ac_timer_stop(h->timer);
    h->inlen = 0;
    if (s5_opt.idle_timeout > 0)
        (void)ac_set_idle_timeout(s->d, s5_opt.idle_timeout);
    ac_set_reading(s->d, true);
    uint8_t reply[SP_REPLY_MAX];
    s5_send(s, reply, sp_reply5(reply, SOCKS5_SUCCEEDED, (const struct sockaddr *)&bnd));
}

static void end_udp(struct s5_session *s)
{
    struct s5_udp_stats st = {0};
    s5_udp_close(s->udp, &st);
    s->udp = NULL;
    if (st.dropped)
        tool_log(TOOL_DEBUG, "udp-associate for %s: %lu datagrams dropped", s->dest ? s->dest : "-",
                 st.dropped);
    s5_log_request(s, st.up, st.down);
}

/* ------------------------------------------------------------ requests */

/* The parsed request (h->req): rules, then the command. */
static void start_request(struct s5_session *s)
{
    struct s5_handshake *h = s->hs;
    const struct sp_request *r = &h->req;
    ac_timer_stop(h->timer); /* the handshake is over; each command has its own bound */
    s->dest = dest_text(r);
    if (r->version == 4)
        s->cmd = r->cmd == SOCKS_CMD_BIND ? S5_CMD_S4_BIND : S5_CMD_S4_CONNECT;
    else
        s->cmd = r->cmd == SOCKS_CMD_CONNECT ? S5_CMD_CONNECT
                 : r->cmd == SOCKS_CMD_BIND  ? S5_CMD_BIND
                                             : S5_CMD_UDP;
    if (!s->dest) { /* out of memory (every later log line names it) */
        s5_fail(s, SOCKS5_GENERAL_FAILURE);
        return;
    }
    if (s->denied) {
        s5_fail(s, SOCKS5_NOT_ALLOWED);
        return;
    }
    /* SOCKS4 has no authentication: with users required, only an IP that
     * authenticated before (-1) may use it. */
    if (r->version == 4 && s5_opt.auth && !(s5_opt.auth_once && trusted_has(&s->client.sa))) {
        s5_fail(s, SOCKS5_NOT_ALLOWED);
        return;
    }
    switch (r->cmd) {
    case SOCKS_CMD_CONNECT: start_connect(s); break;
    case SOCKS_CMD_BIND: s5_bind_start(s); break;
    default: start_udp(s); break;
    }
}

/* A parser's error: its reply (or a plain close), logged when a request
 * was read far enough to have a command. */
static void parse_error(struct s5_session *s, int err, bool request)
{
    if (request) {
        struct s5_handshake *h = s->hs;
        s->cmd = S5_CMD_UNKNOWN;
        if (err == SP_E_COMMAND) /* the whole request was read: it can be named */
            s->dest = dest_text(&h->req);
        int rep = sp_error_reply(err);
        if (rep >= 0 || s->version4) {
            s5_fail(s, rep >= 0 ? rep : SOCKS5_GENERAL_FAILURE);
            return;
        }
    }
    atomic_fetch_add(&s5_stats.dropped, 1);
    s5_close_after(s, NULL, 0);
}

/* The method for a greeting (RFC 1928 §3), as microsocks chooses: "none"
 * when no user is required, or the client authenticated before (-1);
 * else username/password.  A client that offers only username/password
 * where none is required gets it, and any name and password do. */
static int choose_method(const struct s5_session *s, const struct sp_greeting *g)
{
    bool need = s5_opt.auth && !s->denied;
    if (g->none && (!need || (s5_opt.auth_once && trusted_has(&s->client.sa))))
        return SOCKS5_METHOD_NONE;
    if (g->userpass && !s->denied)
        return SOCKS5_METHOD_USERPASS;
    return SOCKS5_METHOD_REFUSED;
}

static void consume(struct s5_handshake *h, size_t n)
{
    memmove(h->in, h->in + n, h->inlen - n);
    h->inlen -= n;
}

/* Each step parses one message: 1 when it was whole and the next state
 * may parse on, 0 to wait for more bytes (or when the session moved on to
 * something else). */
static int on_greeting(struct s5_session *s)
{
    struct s5_handshake *h = s->hs;
    struct sp_greeting g;
    int rc = sp_parse_greeting(h->in, h->inlen, &g);
    uint8_t out[2];
    if (rc == SP_E_NOMETHOD) {
        atomic_fetch_add(&s5_stats.dropped, 1);
        s5_close_after(s, out, sp_method_reply(out, SOCKS5_METHOD_REFUSED));
        return 0;
    }
    if (rc <= 0) {
        if (rc < 0)
            parse_error(s, rc, false);
        return 0;
    }
    consume(h, (size_t)rc);
    int m = choose_method(s, &g);
    if (m == SOCKS5_METHOD_REFUSED) {
        atomic_fetch_add(&s5_stats.dropped, 1);
        s5_close_after(s, out, sp_method_reply(out, m));
        return 0;
    }
    s->state = m == SOCKS5_METHOD_USERPASS ? ST_AUTH : ST_REQUEST;
    s5_send(s, out, sp_method_reply(out, m));
    return !s->ended;
}

static int on_auth(struct s5_session *s)
{
    struct s5_handshake *h = s->hs;
    struct sp_auth a;
    int rc = sp_parse_auth(h->in, h->inlen, &a);
    uint8_t out[2];
    if (rc == 0)
        return 0;
    bool ok = rc > 0 && (!s5_opt.auth || users_check(&s5_opt.users, a.user, a.pass));
    memset(a.pass, 0, sizeof a.pass);
    if (!ok) { /* RFC 1929 §2: a failure status, then the connection closes */
        char user[256];
        log_safe(user, sizeof user, rc > 0 ? a.user : "?");
        char client[80];
        tool_log(TOOL_WARNING, "authentication failed: client=%s user=%s",
                 tool_peer_text(&s->client.sa, s->clen, client, sizeof client), user);
        atomic_fetch_add(&s5_stats.auth_failed, 1);
        s5_close_after(s, out, sp_auth_reply(out, false));
        return 0;
    }
    consume(h, (size_t)rc);
    s->user = strdup(a.user);
    if (s5_opt.auth && s5_opt.auth_once)
        trusted_add(&s->client.sa);
    s->state = ST_REQUEST;
    s5_send(s, out, sp_auth_reply(out, true));
    return !s->ended;
}

static int on_request(struct s5_session *s)
{
    struct s5_handshake *h = s->hs;
    int rc = s->version4 ? sp_parse_socks4(h->in, h->inlen, &h->req)
                         : sp_parse_request(h->in, h->inlen, &h->req);
    if (rc <= 0) {
        if (rc < 0)
            parse_error(s, rc, true);
        return 0;
    }
    consume(h, (size_t)rc); /* what is left was pipelined: the tunnel's first bytes */
    start_request(s);
    return 0;
}

/* Parse what has arrived, as far as it goes. */
static void advance(struct s5_session *s)
{
    struct s5_handshake *h = s->hs;
    for (int more = 1; more && !s->ended;) {
        switch (s->state) {
        case ST_FIRST: {
            int v = sp_version(h->in, h->inlen);
            if (v == 0)
                return;
            if (v < 0) { /* neither SOCKS4 nor 5 */
                atomic_fetch_add(&s5_stats.dropped, 1);
                s5_close_after(s, NULL, 0);
                return;
            }
            s->version4 = v == SOCKS4_VERSION;
            s->state = s->version4 ? ST_REQUEST : ST_GREETING;
            break;
        }
        case ST_GREETING: more = on_greeting(s); break;
        case ST_AUTH: more = on_auth(s); break;
        case ST_REQUEST: more = on_request(s); break;
        default: return;
        }
    }
}

/* ------------------------------------------------------------- handlers */

static int session_read(ac_dispatcher *d)
{
    struct s5_session *s = ac_user(d);
    struct s5_handshake *h = s->hs;
    if (s->state == ST_CONNECTING || s->state == ST_BINDING) {
        /* The request is read; what comes now is the tunnel's, or the
         * client's EOF: it waits in the socket for the relay.  Pausing
         * only now spares an epoll_ctl to every client that waits for its
         * reply, as clients do.  A reset ends the session now (select
         * shows it as readable only; epoll and poll as a hang-up too). */
        char c;
        if (recv(ac_fd(d), &c, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno != EAGAIN &&
            errno != EWOULDBLOCK && errno != EINTR) {
            session_end(s);
            return 0;
        }
        ac_set_reading(d, false);
        return 0;
    }
    bool discard = s->state == ST_UDP || s->state == ST_CLOSING;
    if (discard)
        h->inlen = 0;
    if (h->inlen == sizeof h->in) { /* cannot happen: every message fits (SP_MAX_MESSAGE) */
        session_end(s);
        return 0;
    }
    ssize_t n = ac_recv(d, h->in + h->inlen, sizeof h->in - h->inlen);
    if (n <= 0) /* 0: EOF, handle_close ran */
        return n == -EAGAIN ? 0 : (int)n;
    if (discard)
        return 0;
    h->inlen += (size_t)n;
    advance(s);
    return 0;
}

static int session_write(ac_dispatcher *d)
{
    flush(ac_user(d));
    return 0;
}

static int session_close(ac_dispatcher *d)
{
    struct s5_session *s = ac_user(d);
    if (s->state < ST_CONNECTING && !s->cmd)
        atomic_fetch_add(&s5_stats.dropped, 1);
    session_end(s);
    return 0;
}

static int session_error(ac_dispatcher *d, const ac_error *e)
{
    struct s5_session *s = ac_user(d);
    tool_log(TOOL_DEBUG, "client %s: %s: %s", s->dest ? s->dest : "-", e->op, strerror(e->err));
    return session_close(d);
}

static void session_finalize(ac_dispatcher *d)
{
    struct s5_session *s = ac_user(d);
    if (!s)
        return; /* the relay took the socket */
    session_end(s);
    free_session(s);
}

static const ac_handlers session_handlers = {
    .name = "socks5d.session",
    .handle_read = session_read,
    .handle_write = session_write,
    .handle_close = session_close,
    .handle_error = session_error,
    .handle_timeout = session_close, /* --idle-timeout of a UDP association */
    .finalize = session_finalize,
};

/* The handshake timeout (before the request), BIND's wait for its peer,
 * and the end of a polite close. */
static double session_timer(ac_timer *t, void *arg)
{
    (void)t;
    struct s5_session *s = arg;
    if (s->state == ST_BINDING) {
        s5_fail(s, SOCKS5_TTL_EXPIRED);
        return -1;
    }
    if (s->state < ST_CONNECTING) {
        tool_log(TOOL_DEBUG, "handshake timeout");
        atomic_fetch_add(&s5_stats.dropped, 1);
    }
    session_end(s);
    return -1;
}

/* The session is over (not for one in a relay: relay_done ends those).
 * Its memory goes with its dispatcher's finalize. */
static void session_end(struct s5_session *s)
{
    if (s->ended)
        return;
    s->ended = true;
    if (s->udp)
        end_udp(s);
    s5_log_request(s, 0, 0); /* a request cut short: by the client, or a drain */
    session_unlink(s);
    if (s->hs)
        stop_pending(s->hs);
    if (s->hs)
        ac_timer_stop(s->hs->timer);
    if (s->d)
        ac_close(s->d);
}

void s5_sessions_abort(struct s5_worker *w)
{
    while (w->sessions) {
        struct s5_session *s = w->sessions;
        if (s->relay)
            ac_relay_abort(s->relay, false); /* relay_done unlinks and frees s */
        else
            session_end(s); /* unlinks s; its finalize frees it */
    }
}

void s5_session_start(struct s5_worker *w, int fd, const struct sockaddr *peer, socklen_t len)
{
    struct s5_session *s = calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        atomic_fetch_add(&s5_stats.dropped, 1);
        return;
    }
    *s = (struct s5_session){.w = w, .reply = -1};
    s->hs = calloc(1, sizeof *s->hs);
    s->d = s->hs ? ac_dispatcher_new(w->map, &session_handlers, s) : NULL;
    if (s->d)
        s->hs->timer = ac_timer_new(w->map, session_timer, s);
    /* The descriptor as accept4 made it (non-blocking): ac_set_socket
     * spares ac_attach's getpeername, the address is known. */
    if (!s->d || !s->hs->timer || ac_set_socket(s->d, fd) < 0) {
        close(fd);
        atomic_fetch_add(&s5_stats.dropped, 1);
        if (s->d)
            ac_close(s->d); /* its finalize frees s */
        else
            free_session(s);
        return;
    }
    struct sockaddr_storage ss;
    socklen_t clen = s5_unmap(peer, len, &ss);
    s->clen = clen < sizeof s->client ? clen : sizeof s->client;
    memcpy(&s->client, &ss, s->clen);
    s->denied = s5_opt.allow.n && !cidr_list_match(&s5_opt.allow, &s->client.sa);
    s->start = ac_now(w->map);
    s->linked = true;
    s->next = w->sessions;
    if (s->next)
        s->next->prev = s;
    w->sessions = s;
    atomic_fetch_add(&s5_stats.active, 1);
    ac_set_connected(s->d, true);
    ac_set_writing(s->d, false); /* a plain dispatcher is writable: only while replies wait */
    if (s5_opt.handshake_timeout > 0)
        ac_timer_start(s->hs->timer, s5_opt.handshake_timeout);
}
