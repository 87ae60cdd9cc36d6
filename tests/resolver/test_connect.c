/* Connect by name (asyncore_resolver.h): ac_resolver_connect's Happy
 * Eyeballs (RFC 8305) and ac_connect_name on a dispatcher, against
 * loopback listeners and the fake DNS server.  Every test counts the
 * process's descriptors before and after. */
#include "resolver_rig.h"

#include <netinet/in.h>

struct outcome {
    int calls;
    int fd;
    char addr[80];
    double at; /* when the callback ran */
};

static int total;
static bool in_call;
static char tried[512]; /* the filter's trace: the addresses in the order asked */

static void on_connected(void *arg, int fd, const struct sockaddr *addr, socklen_t len)
{
    struct outcome *o = arg;
    cr_assert_not(in_call, "called inside ac_resolver_connect");
    o->calls++;
    total++;
    o->fd = fd;
    o->at = tk_clock();
    rig_addr(addr, o->addr, sizeof(o->addr));
    if (addr)
        cr_assert(len == sizeof(struct sockaddr_in) || len == sizeof(struct sockaddr_in6));
}

static bool record(void *arg, const struct sockaddr *addr, socklen_t len)
{
    (void)arg;
    (void)len;
    char text[80];
    size_t l = strlen(tried);
    snprintf(tried + l, sizeof(tried) - l, "%s%s", l ? " " : "", rig_addr(addr, text, 80));
    return true;
}

static bool refuse_all(void *arg, const struct sockaddr *addr, socklen_t len)
{
    record(arg, addr, len);
    return false;
}

struct fixture {
    int fds;
    ac_map *m;
    struct fake_dns dns;
    ac_resolver *r;
};

static void setup(struct fixture *fx)
{
    fx->fds = rig_fds();
    fx->m = tk_map();
    fake_dns_start(&fx->dns, fx->m);
    fx->r = rig_resolver(fx->m, &fx->dns, 0.5, 2);
}

static void teardown(struct fixture *fx)
{
    ac_resolver_free(fx->r);
    tk_finish(fx->m);
    cr_assert_eq(rig_fds(), fx->fds, "descriptors: %d before, %d after", fx->fds, rig_fds());
}

static ac_connect_req *start(struct fixture *fx, const char *host, uint16_t port,
                             const ac_connect_config *cfg, struct outcome *o)
{
    ac_connect_req *c = NULL;
    in_call = true;
    int rc = ac_resolver_connect(&c, fx->r, host, port, cfg, on_connected, o);
    in_call = false;
    cr_assert_eq(rc, 0, "ac_resolver_connect(%s): %d", host, rc);
    return c;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
                                          : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* A socket of the family bound to loopback:port (0: the kernel's), or -1
 * when that port is taken.  Its port goes to *out_port. */
static int bound_on(int family, uint16_t port, uint16_t *out_port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    int on = 1;
    if (family == AF_INET6)
        cr_assert_eq(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)), 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(family, &ss);
    if (family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        cr_assert(port && errno == EADDRINUSE, "bind: %s", strerror(errno));
        close(fd);
        return -1;
    }
    len = sizeof(ss);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (out_port)
        *out_port = port_of(&ss);
    return fd;
}

/* A listener of the family, port from the kernel. */
static int listener_on(int family, int backlog, uint16_t *out_port)
{
    int fd = bound_on(family, 0, out_port);
    cr_assert_eq(listen(fd, backlog), 0);
    return fd;
}

/* Sockets bound to the same port of 127.0.0.1 and ::1, not listening yet:
 * a port free in both (another program may hold the number in one). */
static uint16_t same_port(int *fd4, int *fd6)
{
    for (int i = 0; i < 100; i++) {
        uint16_t port;
        *fd4 = bound_on(AF_INET, 0, &port);
        *fd6 = bound_on(AF_INET6, port, NULL);
        if (*fd6 >= 0)
            return port;
        close(*fd4);
    }
    cr_assert_fail("no port free on both 127.0.0.1 and ::1");
    return 0;
}

/* Make bound socket fd a listener whose accept queue is full: a SYN to it
 * is dropped and the connect hangs, as towards a host that is down (a
 * blackhole).  Returns the connection filling it. */
static int fill(int fd, int family, uint16_t port)
{
    cr_assert_eq(listen(fd, 0), 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(family, &ss);
    if (family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
    return tk_connect_raw(&ss, len);
}

/* A blackhole of the family, port from the kernel (see fill). */
static int blackhole(int family, uint16_t *out_port, int *filler)
{
    int l = bound_on(family, 0, out_port);
    *filler = fill(l, family, *out_port);
    return l;
}

static void check_peer(int fd, const char *want)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    cr_assert_eq(getpeername(fd, (struct sockaddr *)&ss, &len), 0, "not connected");
    char text[80];
    cr_assert_str_eq(rig_addr((struct sockaddr *)&ss, text, sizeof(text)), want);
    cr_assert(tk_nonblocking(fd));
}

Test(connect, numeric_address, .timeout = 10, .description = "connects; fd and address given")
{
    struct fixture fx = {0};
    setup(&fx);
    uint16_t port;
    int l = listener_on(AF_INET, 4, &port);
    struct outcome o = {0};
    start(&fx, "127.0.0.1", port, NULL, &o);
    cr_assert(rig_wait_count(fx.m, &o.calls, 1, 5.0));
    char want[80];
    snprintf(want, sizeof(want), "127.0.0.1:%u", port);
    cr_assert_geq(o.fd, 0, "%d", o.fd);
    cr_assert_str_eq(o.addr, want);
    check_peer(o.fd, want);
    cr_assert_eq(ac_map_count(fx.m), 1, "the attempt's dispatcher let go of the socket");
    close(o.fd);
    close(l);
    cr_assert_eq(fx.dns.datagrams, 0);
    teardown(&fx);
}

Test(connect, refused_reports_the_last_error, .timeout = 10)
{
    struct fixture fx = {0};
    setup(&fx);
    int holder;
    struct sockaddr_storage ss;
    tk_refusing_addr(AF_INET, &ss, &holder);
    struct outcome o = {0};
    start(&fx, "127.0.0.1", port_of(&ss), NULL, &o);
    cr_assert(rig_wait_count(fx.m, &o.calls, 1, 5.0));
    cr_assert_eq(o.fd, -ECONNREFUSED, "%d", o.fd);
    char want[80];
    snprintf(want, sizeof(want), "127.0.0.1:%u", port_of(&ss));
    cr_assert_str_eq(o.addr, want);
    close(holder);
    teardown(&fx);
}

Test(connect, ipv6_refused_falls_back_to_ipv4, .timeout = 10,
     .description = "RFC 8305: IPv6 first; refused, IPv4 at once")
{
    cr_assert(tk_ipv6_ok());
    struct fixture fx = {0};
    setup(&fx);
    int l4, h6; /* h6 bound, not listening: refused */
    uint16_t port = same_port(&l4, &h6);
    cr_assert_eq(listen(l4, 4), 0);
    fake_dns_add(&fx.dns,
                 (struct rig_name){.name = "dual.test", .v4 = {"127.0.0.1"}, .v6 = {"::1"}});
    ac_connect_config cfg = {.filter = record};
    struct outcome o = {0};
    double t0 = tk_clock();
    start(&fx, "dual.test", port, &cfg, &o);
    cr_assert(rig_wait_count(fx.m, &o.calls, 1, 5.0));
    char want[200];
    snprintf(want, sizeof(want), "[::1]:%u 127.0.0.1:%u", port, port);
    cr_assert_str_eq(tried, want);
    cr_assert_geq(o.fd, 0, "%d", o.fd);
    cr_assert_lt(o.at - t0, 0.2, "a refusal starts the next attempt at once");
    check_peer(o.fd, strchr(want, ' ') + 1);
    close(o.fd);
    close(l4);
    close(h6);
    teardown(&fx);
}

Test(connect, ipv6_blackhole_ipv4_after_the_head_start, .timeout = 10,
     .description = "RFC 8305 5: the IPv4 attempt starts 250 ms later and wins")
{
    cr_assert(tk_ipv6_ok());
    struct fixture fx = {0};
    setup(&fx);
    int l4, l6;
    uint16_t port = same_port(&l4, &l6);
    cr_assert_eq(listen(l4, 4), 0);
    int filler = fill(l6, AF_INET6, port);
    fake_dns_add(&fx.dns,
                 (struct rig_name){.name = "dual.test", .v4 = {"127.0.0.1"}, .v6 = {"::1"}});
    struct outcome o = {0};
    double t0 = tk_clock();
    start(&fx, "dual.test", port, NULL, &o);
    cr_assert(rig_wait_count(fx.m, &o.calls, 1, 5.0));
    double took = o.at - t0;
    cr_assert_geq(o.fd, 0, "%d", o.fd);
    char want[80];
    snprintf(want, sizeof(want), "127.0.0.1:%u", port);
    cr_assert_str_eq(o.addr, want);
    cr_assert(took >= 0.24 && took < 1.5, "took %.3f s", took);
    cr_assert_eq(ac_map_count(fx.m), 1, "the IPv6 attempt was closed");
    close(o.fd);
    close(filler);
    close(l6);
    close(l4);
    teardown(&fx);
}

Test(connect, both_work_ipv6_wins, .timeout = 10)
{
    cr_assert(tk_ipv6_ok());
    struct fixture fx = {0};
    setup(&fx);
    int l4, l6;
    uint16_t port = same_port(&l4, &l6);
    cr_assert_eq(listen(l4, 4), 0);
    cr_assert_eq(listen(l6, 4), 0);
    fake_dns_add(
        &fx.dns,
        (struct rig_name){.name = "dual.test", .v4 = {"127.0.0.1", "127.0.0.2"}, .v6 = {"::1"}});
    struct outcome o = {0};
    start(&fx, "dual.test", port, NULL, &o);
    cr_assert(rig_wait_count(fx.m, &o.calls, 1, 5.0));
    char want[80];
    snprintf(want, sizeof(want), "[::1]:%u", port);
    cr_assert_str_eq(o.addr, want);
    check_peer(o.fd, want);
    close(o.fd);
    close(l4);
    close(l6);
    teardown(&fx);
}

Test(connect, filter_refusing_all_is_eacces, .timeout = 10,
     .description = "cfg->filter asked for every address; all refused: -EACCES")
{
    struct fixture fx = {0};
    setup(&fx);
    fake_dns_add(
        &fx.dns,
        (struct rig_name){.name = "three.test", .v4 = {"127.0.0.1", "127.0.0.2"}, .v6 = {"::1"}});
    ac_connect_config cfg = {.filter = refuse_all};
    struct outcome o = {0};
    start(&fx, "three.test", 9, &cfg, &o);
    cr_assert(rig_wait_count(fx.m, &o.calls, 1, 5.0));
    cr_assert_eq(o.fd, -EACCES);
    cr_assert_str_eq(o.addr, "none", "no address was tried");
    cr_assert_str_eq(tried, "[::1]:9 127.0.0.1:9 127.0.0.2:9", "interleaved, IPv6 first");
    cr_assert_eq(ac_map_count(fx.m), 1);
    teardown(&fx);
}

Test(connect, bind_addr_is_the_source, .timeout = 10,
     .description = "cfg->bind_addr: the source address; the other family is not tried")
{
    struct fixture fx = {0};
    setup(&fx);
    uint16_t port;
    int l4 = listener_on(AF_INET, 4, &port);
    fake_dns_add(&fx.dns,
                 (struct rig_name){.name = "dual.test", .v4 = {"127.0.0.1"}, .v6 = {"::1"}});
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000002)};
    ac_connect_config cfg = {
        .filter = record, .bind_addr = (struct sockaddr *)&src, .bind_len = sizeof(src)};
    struct outcome o = {0};
    start(&fx, "dual.test", port, &cfg, &o);
    cr_assert(rig_wait_count(fx.m, &o.calls, 1, 5.0));
    cr_assert_geq(o.fd, 0, "%d", o.fd);
    char want[80];
    snprintf(want, sizeof(want), "127.0.0.1:%u", port);
    cr_assert_str_eq(tried, want, "IPv6 skipped");
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int a = accept(l4, (struct sockaddr *)&ss, &len);
    cr_assert_geq(a, 0);
    char text[80];
    rig_addr((struct sockaddr *)&ss, text, sizeof(text));
    cr_assert_eq(strncmp(text, "127.0.0.2:", 10), 0, "peer %s", text);
    close(a);
    close(o.fd);
    close(l4);

    /* A name without an address of the source's family. */
    fake_dns_add(&fx.dns, (struct rig_name){.name = "v6.test", .v6 = {"::1"}});
    struct outcome o2 = {0};
    start(&fx, "v6.test", port, &cfg, &o2);
    cr_assert(rig_wait_count(fx.m, &o2.calls, 1, 5.0));
    cr_assert_eq(o2.fd, AC_EAI_NONAME, "%d", o2.fd);

    struct sockaddr_in6 src6 = {.sin6_family = AF_INET6};
    ac_connect_config bad = {
        .family = AF_INET, .bind_addr = (struct sockaddr *)&src6, .bind_len = sizeof(src6)};
    cr_assert_eq(ac_resolver_connect(NULL, fx.r, "x.test", 1, &bad, on_connected, &o2), -EINVAL);
    teardown(&fx);
}

Test(connect, timeout_while_connecting, .timeout = 10,
     .description = "cfg->timeout: -ETIMEDOUT; the attempt is closed")
{
    struct fixture fx = {0};
    setup(&fx);
    uint16_t port;
    int filler;
    int l = blackhole(AF_INET, &port, &filler);
    ac_connect_config cfg = {.timeout = 0.3};
    struct outcome o = {0};
    double t0 = tk_clock();
    start(&fx, "127.0.0.1", port, &cfg, &o);
    cr_assert(rig_wait_count(fx.m, &o.calls, 1, 5.0));
    double took = o.at - t0;
    cr_assert_eq(o.fd, -ETIMEDOUT, "%d", o.fd);
    cr_assert(took >= 0.29 && took < 1.0, "took %.3f s", took);
    cr_assert_eq(ac_map_count(fx.m), 1);
    close(filler);
    close(l);
    teardown(&fx);
}

Test(connect, timeout_while_resolving, .timeout = 10)
{
    struct fixture fx = {0};
    setup(&fx);
    fx.dns.silent = true;
    ac_connect_config cfg = {.timeout = 0.2};
    struct outcome o = {0};
    start(&fx, "slow.test", 80, &cfg, &o);
    cr_assert(rig_wait_count(fx.m, &o.calls, 1, 5.0));
    cr_assert_eq(o.fd, -ETIMEDOUT);
    cr_assert_str_eq(o.addr, "none");
    teardown(&fx);
}

Test(connect, nxdomain, .timeout = 10)
{
    struct fixture fx = {0};
    setup(&fx);
    struct outcome o = {0};
    start(&fx, "nowhere.test", 80, NULL, &o);
    cr_assert(rig_wait_count(fx.m, &o.calls, 1, 5.0));
    cr_assert_eq(o.fd, AC_EAI_NONAME);
    teardown(&fx);
}

Test(connect, cancelled_never_calls_back, .timeout = 10,
     .description = "cancel while resolving and while connecting: no callback, nothing left")
{
    struct fixture fx = {0};
    setup(&fx);
    uint16_t port;
    int filler;
    int l = blackhole(AF_INET, &port, &filler);
    fake_dns_add(&fx.dns, (struct rig_name){.name = "hole.test", .v4 = {"127.0.0.1"}});
    struct outcome a = {0}, b = {0}, c = {0};
    ac_connect_req *ca = start(&fx, "hole.test", port, NULL, &a);
    ac_connect_req *cb = start(&fx, "hole.test", port, NULL, &b);
    ac_connect_req *cc = start(&fx, "127.0.0.1", port, NULL, &c);
    ac_resolver_connect_cancel(ca); /* before the lookup answered */
    cr_assert(rig_wait_count(fx.m, &fx.dns.answered, 2, 5.0));
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ac_poll(fx.m, 0.01), 0);
    cr_assert_eq(ac_map_count(fx.m), 3, "two attempts connecting");
    ac_resolver_connect_cancel(cb);
    ac_resolver_connect_cancel(cc);
    cr_assert_eq(ac_map_count(fx.m), 1);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ac_poll(fx.m, 0.01), 0);
    cr_assert_eq(total, 0);
    close(filler);
    close(l);
    teardown(&fx);
}

Test(connect, resolver_freed_or_map_closed_in_flight, .timeout = 10,
     .description = "ac_close_all, then ac_resolver_free, with connects in flight")
{
    struct fixture fx = {0};
    setup(&fx);
    uint16_t port;
    int filler;
    int l = blackhole(AF_INET, &port, &filler);
    fx.dns.silent = true;
    struct outcome a = {0}, b = {0};
    start(&fx, "127.0.0.1", port, NULL, &a);
    start(&fx, "pending.test", port, NULL, &b);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ac_poll(fx.m, 0.01), 0);
    cr_assert_eq(ac_map_count(fx.m), 3, "server, c-ares' socket, one attempt");
    cr_assert_eq(ac_close_all(fx.m, false), 0);
    ac_resolver_free(fx.r);
    fx.r = NULL;
    cr_assert_eq(total, 0);
    close(filler);
    close(l);
    teardown(&fx);
}

/* ------------------------------------------------------- ac_connect_name */

static char trace[512];
static void tr(const char *s)
{
    size_t l = strlen(trace);
    snprintf(trace + l, sizeof(trace) - l, "%s%s", l ? " " : "", s);
}

static int named_connect(ac_dispatcher *d)
{
    cr_assert_geq(ac_fd(d), 0);
    cr_assert_not(ac_is_connected(d), "D8: connected is set after handle_connect");
    tr("connect");
    return ac_close(d);
}

static int named_error(ac_dispatcher *d, const ac_error *e)
{
    char line[128];
    snprintf(line, sizeof(line), "error:%s:%s", e->op, ac_resolve_error_name(e->err));
    tr(line);
    return ac_close(d);
}

static int named_close(ac_dispatcher *d)
{
    tr("close");
    return ac_close(d);
}

static int finalized;
static void named_finalize(ac_dispatcher *d)
{
    (void)d;
    finalized++;
    tr("finalize");
}

static const ac_handlers named = {.name = "named",
                                  .handle_connect = named_connect,
                                  .handle_error = named_error,
                                  .handle_close = named_close,
                                  .finalize = named_finalize};

Test(connect_name, handle_connect_runs, .timeout = 10,
     .description = "ac_connect_name: d gets the socket; handle_connect as after ac_connect (D8)")
{
    struct fixture fx = {0};
    setup(&fx);
    uint16_t port;
    int l = listener_on(AF_INET, 4, &port);
    fake_dns_add(&fx.dns, (struct rig_name){.name = "svc.test", .v4 = {"127.0.0.1"}});
    ac_dispatcher *d = ac_dispatcher_new(fx.m, &named, NULL);
    cr_assert_eq(ac_connect_name(d, fx.r, "svc.test", port, NULL), 0);
    cr_assert(ac_is_connecting(d));
    cr_assert_eq(ac_connect_name(d, fx.r, "svc.test", port, NULL), -EBUSY, "one at a time");
    cr_assert(rig_wait_count(fx.m, &finalized, 1, 5.0));
    cr_assert_str_eq(trace, "connect finalize");
    close(l);
    teardown(&fx);
}

Test(connect_name, failures_reach_handle_error, .timeout = 10,
     .description = "refused: op connect; NXDOMAIN: op resolve")
{
    struct fixture fx = {0};
    setup(&fx);
    int holder;
    struct sockaddr_storage ss;
    tk_refusing_addr(AF_INET, &ss, &holder);
    ac_dispatcher *a = ac_dispatcher_new(fx.m, &named, NULL);
    cr_assert_eq(ac_connect_name(a, fx.r, "127.0.0.1", port_of(&ss), NULL), 0);
    cr_assert(rig_wait_count(fx.m, &finalized, 1, 5.0));
    cr_assert_str_eq(trace, "error:connect:ECONNREFUSED finalize");
    trace[0] = '\0';
    ac_dispatcher *b = ac_dispatcher_new(fx.m, &named, NULL);
    cr_assert_eq(ac_connect_name(b, fx.r, "nowhere.test", 80, NULL), 0);
    cr_assert(rig_wait_count(fx.m, &finalized, 2, 5.0));
    cr_assert_str_eq(trace, "error:resolve:AC_EAI_NONAME finalize");
    close(holder);
    teardown(&fx);
}

Test(connect_name, closing_d_cancels, .timeout = 10,
     .description = "d closed while resolving or connecting: nothing is called, no leak")
{
    struct fixture fx = {0};
    setup(&fx);
    uint16_t port;
    int filler;
    int l = blackhole(AF_INET, &port, &filler);
    fx.dns.silent = true;
    ac_dispatcher *a = ac_dispatcher_new(fx.m, &named, NULL);
    ac_dispatcher *b = ac_dispatcher_new(fx.m, &named, NULL);
    ac_dispatcher *c = ac_dispatcher_new(fx.m, &named, NULL);
    cr_assert_eq(ac_connect_name(a, fx.r, "pending.test", 80, NULL), 0);
    cr_assert_eq(ac_connect_name(b, fx.r, "127.0.0.1", port, NULL), 0);
    cr_assert_eq(ac_connect_name(c, fx.r, "127.0.0.1", port, NULL), 0);
    ac_close(c); /* before anything happened */
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ac_poll(fx.m, 0.01), 0);
    cr_assert_eq(ac_map_count(fx.m), 3, "server, c-ares' socket, b's attempt");
    ac_close(a); /* resolving */
    ac_close(b); /* connecting */
    cr_assert_eq(ac_map_count(fx.m), 2, "b's attempt closed with b");
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ac_poll(fx.m, 0.01), 0);
    cr_assert_str_eq(trace, "finalize finalize finalize");
    close(filler);
    close(l);
    teardown(&fx);
}

Test(connect_name, refuses_a_dispatcher_with_a_socket, .timeout = 10)
{
    struct fixture fx = {0};
    setup(&fx);
    ac_dispatcher *d = ac_dispatcher_new(fx.m, &named, NULL);
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect_name(d, fx.r, "127.0.0.1", 1, NULL), -EISCONN);
    ac_close(d);
    cr_assert_eq(ac_connect_name(d, fx.r, "127.0.0.1", 1, NULL), -EINVAL);
    teardown(&fx);
}

/* ------------------------------------------------ from inside a filter */

static ac_connect_req *self;
static ac_resolver *resolver_to_free;

static bool cancel_self(void *arg, const struct sockaddr *addr, socklen_t len)
{
    record(arg, addr, len);
    ac_resolver_connect_cancel(self);
    return true;
}

static bool free_resolver(void *arg, const struct sockaddr *addr, socklen_t len)
{
    record(arg, addr, len);
    ac_resolver_free(resolver_to_free);
    return true;
}

Test(connect, filter_cancels_or_frees, .timeout = 10,
     .description = "the filter cancels its request, or frees the resolver: no callback")
{
    struct fixture fx = {0};
    setup(&fx);
    uint16_t port;
    int l = listener_on(AF_INET, 4, &port);
    struct outcome o = {0};
    ac_connect_config cfg = {.filter = cancel_self};
    self = start(&fx, "127.0.0.1", port, &cfg, &o);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ac_poll(fx.m, 0.01), 0);
    char want[80];
    snprintf(want, sizeof(want), "127.0.0.1:%u", port);
    cr_assert_str_eq(tried, want);
    cr_assert_eq(o.calls, 0);
    cr_assert_eq(ac_map_count(fx.m), 1);

    resolver_to_free = fx.r;
    cfg.filter = free_resolver;
    start(&fx, "127.0.0.1", port, &cfg, &o);
    start(&fx, "127.0.0.1", port, NULL, &o); /* ends with the resolver */
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ac_poll(fx.m, 0.01), 0);
    fx.r = NULL;
    cr_assert_eq(o.calls, 0);
    cr_assert_eq(ac_map_count(fx.m), 1);
    close(l);
    teardown(&fx);
}

static bool close_owner(void *arg, const struct sockaddr *addr, socklen_t len)
{
    record(arg, addr, len);
    ac_close(arg); /* arg: ac_connect_name's dispatcher */
    return true;
}

Test(connect_name, filter_closes_the_dispatcher, .timeout = 10)
{
    struct fixture fx = {0};
    setup(&fx);
    uint16_t port;
    int l = listener_on(AF_INET, 4, &port);
    ac_dispatcher *d = ac_dispatcher_new(fx.m, &named, NULL);
    ac_connect_config cfg = {.filter = close_owner};
    cr_assert_eq(ac_connect_name(d, fx.r, "127.0.0.1", port, &cfg), 0);
    cr_assert(rig_wait_count(fx.m, &finalized, 1, 5.0));
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ac_poll(fx.m, 0.01), 0);
    cr_assert_str_eq(trace, "finalize");
    cr_assert_eq(ac_map_count(fx.m), 1);
    close(l);
    teardown(&fx);
}

Test(connect, attempt_closed_by_the_map, .timeout = 10,
     .description = "ac_close_all closes an attempt: the request ends -ECONNABORTED, later")
{
    struct fixture fx = {0};
    setup(&fx);
    uint16_t port;
    int filler;
    int l = blackhole(AF_INET, &port, &filler);
    struct outcome o = {0};
    start(&fx, "127.0.0.1", port, NULL, &o);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ac_poll(fx.m, 0.01), 0);
    cr_assert_eq(ac_map_count(fx.m), 2);
    cr_assert_eq(ac_close_all(fx.m, false), 0);
    cr_assert_eq(o.calls, 0, "not inside ac_close_all");
    fake_dns_start(&fx.dns, fx.m); /* something for the loop to run on */
    cr_assert(rig_wait_count(fx.m, &o.calls, 1, 5.0));
    cr_assert_eq(o.fd, -ECONNABORTED);
    close(filler);
    close(l);
    teardown(&fx);
}
