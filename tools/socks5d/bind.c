/* socks5d's BIND (RFC 1928 §4, and SOCKS4's BIND): the client asks for a
 * connection from a peer, as FTP's active mode needs.
 *
 * A listening socket is opened on the IP the client reached us on (the
 * client connection's local address), port 0: the first reply gives its
 * address.  The first connection from the expected IP is taken (the one
 * DST.ADDR names; a name is looked up first; 0.0.0.0 or :: names none:
 * any IP), and the second reply gives the peer's address; then the two
 * are relayed.  Connections from another IP are closed and the wait goes
 * on; a peer in --deny-dest ends the request with "not allowed".  The
 * lookup and the wait together are bounded by --connect-timeout ("TTL
 * expired" when it passes).  Reading the client pauses meanwhile, as for
 * CONNECT: bytes it sent after the request go to the peer first. */
#define _GNU_SOURCE
#include "session.h"

#include "toolkit.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

static void set_port0(struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = 0;
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = 0;
}

static bool unspecified(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return ss->ss_family != AF_INET6 ||
           IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static bool expected(const struct s5_handshake *h, const struct sockaddr_storage *peer)
{
    for (size_t i = 0; i < h->nfrom; i++)
        if (cidr_same_ip((const struct sockaddr *)&h->from[i], (const struct sockaddr *)peer))
            return true;
    return h->nfrom == 0;
}

static int bind_accepted(ac_dispatcher *l, int fd, const struct sockaddr *addr, socklen_t len)
{
    struct s5_session *s = ac_user(l);
    struct s5_handshake *h = s->hs;
    struct sockaddr_storage peer;
    socklen_t plen = s5_unmap(addr, len, &peer);
    char text[80];
    if (!expected(h, &peer)) { /* not the peer DST.ADDR names: it may still come */
        tool_log(TOOL_DEBUG, "bind for %s: connection from %s closed (not DST.ADDR)", s->dest,
                 tool_peer_text((const struct sockaddr *)&peer, plen, text, sizeof text));
        close(fd);
        return 0;
    }
    if (cidr_list_match(&s5_opt.deny_dest, (const struct sockaddr *)&peer)) {
        close(fd);
        s5_fail(s, SOCKS5_NOT_ALLOWED); /* closes l */
        return 0;
    }
    s5_bind_stop(h); /* one connection only */
    uint8_t reply[SP_REPLY_MAX];
    size_t n = s5_encode_reply(s, reply, SOCKS5_SUCCEEDED, (const struct sockaddr *)&peer);
    s5_handoff(s, fd, reply, n);
    return 0;
}

/* accept failed (EMFILE, ENFILE, ENOBUFS): this request fails, the
 * others go on. */
static int bind_error(ac_dispatcher *l, const ac_error *e)
{
    struct s5_session *s = ac_user(l);
    tool_log(TOOL_WARNING, "bind for %s: %s: %s", s->dest, e->op, strerror(e->err));
    s5_fail(s, SOCKS5_GENERAL_FAILURE);
    return 0;
}

static const ac_handlers bind_handlers = {
    .name = "socks5d.bind",
    .handle_accepted = bind_accepted,
    .handle_error = bind_error,
};

/* The listening socket, on the client connection's local IP, and the
 * first reply with its address. */
static void bind_listen(struct s5_session *s)
{
    struct s5_handshake *h = s->hs;
    struct sockaddr_storage local, bound;
    socklen_t llen = sizeof local, blen = sizeof bound;
    int rc = getsockname(ac_fd(s->d), (struct sockaddr *)&local, &llen) < 0 ? -errno : 0;
    llen = s5_unmap((const struct sockaddr *)&local, llen, &local);
    set_port0(&local);
    ac_dispatcher *l = rc == 0 ? ac_dispatcher_new(s->w->map, &bind_handlers, s) : NULL;
    if (rc == 0)
        rc = l ? ac_create_socket(l, local.ss_family, SOCK_STREAM) : -ENOMEM;
    if (rc == 0)
        rc = ac_bind(l, (const struct sockaddr *)&local, llen);
    if (rc == 0)
        rc = ac_listen(l, 1);
    if (rc == 0 && getsockname(ac_fd(l), (struct sockaddr *)&bound, &blen) < 0)
        rc = -errno;
    if (rc < 0) {
        if (l)
            ac_close(l);
        tool_log(TOOL_WARNING, "bind for %s: %s", s->dest, strerror(-rc));
        s5_fail(s, s5_reply_for(rc));
        return;
    }
    h->listener = l;
    uint8_t reply[SP_REPLY_MAX];
    s5_send(s, reply, s5_encode_reply(s, reply, SOCKS5_SUCCEEDED, (const struct sockaddr *)&bound));
}

static void looked_up(void *arg, int status, const ac_address *addrs, size_t n)
{
    struct s5_session *s = arg;
    struct s5_handshake *h = s->hs;
    h->lookup = NULL;
    if (status < 0) {
        s5_fail(s, s5_reply_for(status));
        return;
    }
    for (size_t i = 0; i < n && h->nfrom < S5_BIND_FROM; i++)
        s5_unmap(&addrs[i].u.sa, addrs[i].len, &h->from[h->nfrom++]);
    bind_listen(s);
}

void s5_bind_start(struct s5_session *s)
{
    struct s5_handshake *h = s->hs;
    const struct sp_request *r = &h->req;
    s->state = ST_BINDING;
    if (s5_opt.connect_timeout > 0)
        ac_timer_start(h->timer, s5_opt.connect_timeout);
    if (r->atyp == SOCKS5_ATYP_DOMAIN) {
        int rc = ac_resolve(&h->lookup, s->w->resolver, r->host, 0, AF_UNSPEC, looked_up, s);
        if (rc < 0) {
            h->lookup = NULL;
            s5_fail(s, s5_reply_for(rc));
        }
        return;
    }
    if (!unspecified(&r->addr))
        s5_unmap((const struct sockaddr *)&r->addr, r->addrlen, &h->from[h->nfrom++]);
    bind_listen(s);
}

void s5_bind_stop(struct s5_handshake *h)
{
    if (h->lookup)
        ac_resolve_cancel(h->lookup);
    h->lookup = NULL;
    if (h->listener)
        ac_close(h->listener);
    h->listener = NULL;
}
