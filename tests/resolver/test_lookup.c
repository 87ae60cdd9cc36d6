/* ac_resolve (asyncore_resolver.h): lookups driven by the map against a
 * fake DNS server in the same loop.  Every test counts the process's
 * descriptors before and after. */
#include "resolver_rig.h"

/* One lookup's outcome, filled by its callback. */
struct result {
    int calls;
    int status;
    size_t n;
    char addrs[4][80]; /* the first four, as text */
    bool inside;       /* the callback ran inside ac_resolve */
};

static bool in_call; /* set around ac_resolve: a callback must not run then */
static int total_calls;

static void on_result(void *arg, int status, const ac_address *addrs, size_t n)
{
    struct result *res = arg;
    res->calls++;
    total_calls++;
    res->status = status;
    res->n = n;
    res->inside = in_call;
    for (size_t i = 0; i < n && i < 4; i++)
        rig_addr(&addrs[i].u.sa, res->addrs[i], sizeof(res->addrs[i]));
    if (status == 0)
        cr_assert_not_null(addrs);
    else
        cr_assert(addrs == NULL && n == 0);
}

static ac_resolve_req *resolve(ac_resolver *r, const char *host, uint16_t port, int family,
                               struct result *res)
{
    ac_resolve_req *q = NULL;
    in_call = true;
    int rc = ac_resolve(&q, r, host, port, family, on_result, res);
    in_call = false;
    cr_assert_eq(rc, 0, "ac_resolve(%s): %d", host, rc);
    cr_assert_not_null(q);
    return q;
}

struct fixture {
    int fds;
    int fds_without_resolver;
    ac_map *m;
    struct fake_dns dns;
    ac_resolver *r;
};

static void setup(struct fixture *fx, double timeout, int tries)
{
    fx->fds = rig_fds();
    fx->m = tk_map();
    fake_dns_start(&fx->dns, fx->m);
    fx->fds_without_resolver = rig_fds();
    fx->r = rig_resolver(fx->m, &fx->dns, timeout, tries);
}

static void teardown(struct fixture *fx)
{
    ac_resolver_free(fx->r);
    tk_finish(fx->m);
    cr_assert_eq(rig_fds(), fx->fds, "descriptors: %d before, %d after", fx->fds, rig_fds());
}

Test(lookup, many_concurrent_lookups, .timeout = 30,
     .description = "hundreds of lookups at once; every callback once; sockets gone when idle")
{
    struct fixture fx = {0};
    setup(&fx, 2.0, 2);
    fx.dns.many = true;
    enum { N = 400 };
    static struct result res[N];
    for (int i = 0; i < N; i++) {
        char name[32];
        if (i % 4 == 3)
            snprintf(name, sizeof(name), "nx%d.example", i); /* NXDOMAIN */
        else
            snprintf(name, sizeof(name), "h%d.many", i);
        resolve(fx.r, name, (uint16_t)(1000 + i), i % 4 == 1 ? AF_INET : AF_UNSPEC, &res[i]);
    }
    cr_assert_eq(total_calls, 0);
    cr_assert(rig_wait_count(fx.m, &total_calls, N, 20.0), "%d of %d answered", total_calls, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(res[i].calls, 1, "lookup %d: %d calls", i, res[i].calls);
        cr_assert_not(res[i].inside);
        char want4[64], want6[64];
        snprintf(want4, sizeof(want4), "10.%d.%d.1:%d", i >> 8, i & 255, 1000 + i);
        char text[48];
        struct in6_addr a6;
        snprintf(text, sizeof(text), "fd00::%x", i);
        inet_pton(AF_INET6, text, &a6);
        inet_ntop(AF_INET6, &a6, text, sizeof(text));
        snprintf(want6, sizeof(want6), "[%s]:%d", text, 1000 + i);
        if (i % 4 == 3) {
            cr_assert_eq(res[i].status, AC_EAI_NONAME, "lookup %d: %d", i, res[i].status);
        } else if (i % 4 == 1) {
            cr_assert_eq(res[i].status, 0);
            cr_assert_eq(res[i].n, 1);
            cr_assert_str_eq(res[i].addrs[0], want4);
        } else {
            cr_assert_eq(res[i].status, 0, "lookup %d: %d", i, res[i].status);
            cr_assert_eq(res[i].n, 2);
            cr_assert_str_eq(res[i].addrs[0], want6, "IPv6 first: lookup %d got %s, %s", i,
                             res[i].addrs[0], res[i].addrs[1]);
            cr_assert_str_eq(res[i].addrs[1], want4);
        }
    }
    /* Idle again: c-ares closed its socket, so only the server is left. */
    cr_assert_eq(ac_poll(fx.m, 0.01), 0);
    cr_assert_eq(ac_map_count(fx.m), 1);
    teardown(&fx);
}

Test(lookup, hosts_and_numeric_without_a_packet, .timeout = 10,
     .description = "/etc/hosts (localhost) and numeric addresses: no query sent, from the loop")
{
    struct fixture fx = {0};
    setup(&fx, 1.0, 1);
    struct result v4 = {0}, v6 = {0}, lh = {0}, lh4 = {0};
    resolve(fx.r, "127.0.0.1", 80, AF_UNSPEC, &v4);
    resolve(fx.r, "::1", 443, AF_UNSPEC, &v6);
    resolve(fx.r, "localhost", 8080, AF_UNSPEC, &lh);
    resolve(fx.r, "localhost", 8081, AF_INET, &lh4);
    cr_assert_eq(total_calls, 0, "never inside ac_resolve");
    cr_assert_eq(ac_map_count(fx.m), 1, "no socket opened for them");
    cr_assert(rig_wait_count(fx.m, &total_calls, 4, 5.0));
    cr_assert_eq(v4.status, 0);
    cr_assert_str_eq(v4.addrs[0], "127.0.0.1:80");
    cr_assert_eq(v6.status, 0);
    cr_assert_str_eq(v6.addrs[0], "[::1]:443");
    cr_assert_eq(lh.status, 0);
    cr_assert_geq(lh.n, 1);
    bool found = false;
    for (size_t i = 0; i < lh.n && i < 4; i++)
        found |= !strcmp(lh.addrs[i], "127.0.0.1:8080") || !strcmp(lh.addrs[i], "[::1]:8080");
    cr_assert(found, "localhost: %s", lh.addrs[0]);
    cr_assert_eq(lh4.status, 0);
    cr_assert_str_eq(lh4.addrs[0], "127.0.0.1:8081");
    /* Give a stray query every chance to arrive. */
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ac_poll(fx.m, 0.02), 0);
    cr_assert_eq(fx.dns.datagrams, 0, "%d datagrams reached the server", fx.dns.datagrams);
    teardown(&fx);
}

Test(lookup, nxdomain_and_nodata_are_noname, .timeout = 10,
     .description = "NXDOMAIN -> AC_EAI_NONAME; a name without that family too")
{
    struct fixture fx = {0};
    setup(&fx, 1.0, 1);
    fake_dns_add(&fx.dns, (struct rig_name){.name = "v6only.test", .v6 = {"2001:db8::1"}});
    struct result nx = {0}, nodata = {0}, ok = {0};
    resolve(fx.r, "nothere.test", 1, AF_UNSPEC, &nx);
    resolve(fx.r, "v6only.test", 1, AF_INET, &nodata);
    resolve(fx.r, "v6only.test", 2, AF_UNSPEC, &ok);
    cr_assert(rig_wait_count(fx.m, &total_calls, 3, 5.0));
    cr_assert_eq(nx.status, AC_EAI_NONAME, "%d", nx.status);
    cr_assert_eq(nodata.status, AC_EAI_NONAME, "%d", nodata.status);
    cr_assert_eq(ok.status, 0, "%d", ok.status);
    cr_assert_str_eq(ok.addrs[0], "[2001:db8::1]:2");
    teardown(&fx);
}

Test(lookup, silent_server_times_out, .timeout = 10,
     .description = "no answer: -ETIMEDOUT after timeout, doubled per try (c-ares 1.18.1)")
{
    struct fixture fx = {0};
    setup(&fx, 0.2, 2);
    fx.dns.silent = true;
    struct result res = {0};
    double t0 = tk_clock();
    resolve(fx.r, "slow.test", 1, AF_INET, &res);
    cr_assert(rig_wait_count(fx.m, &res.calls, 1, 5.0));
    double took = tk_clock() - t0;
    cr_assert_eq(res.status, -ETIMEDOUT, "%d", res.status);
    /* Tries of 0.2 s and 0.4 s. */
    cr_assert(took >= 0.55 && took < 2.0, "took %.3f s", took);
    cr_assert_eq(fx.dns.datagrams, 2, "one query per try: %d", fx.dns.datagrams);
    cr_assert_eq(ac_map_count(fx.m), 1, "the socket went with the last query");
    teardown(&fx);
}

Test(lookup, cancelled_requests_never_call_back, .timeout = 10,
     .description = "cancel before the loop, pending, or answered but not delivered")
{
    struct fixture fx = {0};
    setup(&fx, 1.0, 1);
    fx.dns.many = true;
    enum { N = 100 };
    static struct result res[N];
    ac_resolve_req *q[N];
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof(name), "h%d.many", i);
        q[i] = resolve(fx.r, name, 1, AF_INET, &res[i]);
    }
    struct result num = {0};
    ac_resolve_req *qn = resolve(fx.r, "192.0.2.1", 1, AF_INET, &num); /* known at once */
    ac_resolve_cancel(qn);
    for (int i = 0; i < N; i += 2)
        ac_resolve_cancel(q[i]);
    /* Until the server has answered every query and c-ares let go. */
    cr_assert(rig_wait_count(fx.m, &fx.dns.answered, N, 5.0));
    cr_assert(rig_wait_count(fx.m, &total_calls, N / 2, 5.0));
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ac_poll(fx.m, 0.01), 0);
    cr_assert_eq(num.calls, 0);
    for (int i = 0; i < N; i++)
        cr_assert_eq(res[i].calls, i % 2, "lookup %d", i);
    cr_assert_eq(ac_map_count(fx.m), 1, "c-ares' socket closed");
    teardown(&fx);
}

/* A callback that cancels another request whose answer is queued behind it. */
static ac_resolve_req *victim;
static void cancel_victim(void *arg, int status, const ac_address *addrs, size_t n)
{
    on_result(arg, status, addrs, n);
    ac_resolve_cancel(victim);
}

Test(lookup, cancel_from_a_callback, .timeout = 10)
{
    struct fixture fx = {0};
    setup(&fx, 1.0, 1);
    struct result a = {0}, b = {0};
    in_call = true;
    cr_assert_eq(ac_resolve(NULL, fx.r, "10.0.0.1", 1, AF_INET, cancel_victim, &a), 0);
    cr_assert_eq(ac_resolve(&victim, fx.r, "10.0.0.2", 1, AF_INET, on_result, &b), 0);
    in_call = false;
    cr_assert(rig_wait_count(fx.m, &a.calls, 1, 5.0));
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ac_poll(fx.m, 0.01), 0);
    cr_assert_eq(b.calls, 0);
    teardown(&fx);
}

Test(lookup, freed_with_requests_pending, .timeout = 10,
     .description = "ac_resolver_free with queries in flight: no callback, no descriptor left")
{
    struct fixture fx = {0};
    setup(&fx, 5.0, 3);
    fx.dns.silent = true;
    static struct result res[50];
    for (int i = 0; i < 50; i++)
        resolve(fx.r, "pending.test", 1, AF_UNSPEC, &res[i]);
    struct result num = {0};
    resolve(fx.r, "127.0.0.1", 1, AF_INET, &num); /* answered, not delivered */
    cr_assert(rig_wait_count(fx.m, &fx.dns.datagrams, 2, 5.0));
    cr_assert_eq(num.calls, 1);
    struct result late = {0};
    resolve(fx.r, "127.0.0.2", 1, AF_INET, &late);
    cr_assert_gt(ac_map_count(fx.m), 1, "c-ares has its socket");
    ac_resolver_free(fx.r);
    fx.r = NULL;
    cr_assert_eq(ac_map_count(fx.m), 1);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ac_poll(fx.m, 0.01), 0);
    cr_assert_eq(total_calls, 1);
    cr_assert_eq(late.calls, 0);
    teardown(&fx);
}

Test(lookup, close_all_then_free, .timeout = 10,
     .description = "ac_close_all closes c-ares' socket; c-ares then touches no descriptor")
{
    struct fixture fx = {0};
    setup(&fx, 0.2, 3);
    fx.dns.silent = true;
    struct result res = {0};
    resolve(fx.r, "pending.test", 1, AF_INET, &res);
    cr_assert(rig_wait_count(fx.m, &fx.dns.datagrams, 1, 5.0));
    int cares_fd = -1;
    for (int fd = 0; fd < 1024 && cares_fd < 0; fd++) {
        ac_dispatcher *d = ac_map_get(fx.m, fd);
        if (d && d != fx.dns.d)
            cares_fd = fd;
    }
    cr_assert_geq(cares_fd, 0);
    cr_assert_eq(ac_close_all(fx.m, false), 0);
    /* The number c-ares had now belongs to someone else. */
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    int other = sv[0] == cares_fd ? sv[0] : sv[1] == cares_fd ? sv[1] : -1;
    cr_assert_geq(other, 0, "the number was reused (%d %d, c-ares had %d)", sv[0], sv[1], cares_fd);
    /* A dispatcher keeps the loop going: c-ares' retries find EBADF. */
    ac_dispatcher *keep = ac_dispatcher_new(fx.m, NULL, NULL);
    int kp[2];
    tk_socketpair(SOCK_STREAM, kp);
    cr_assert_eq(ac_attach(keep, kp[0]), 0);
    ac_set_reading(keep, false);
    ac_set_writing(keep, false);
    double end = tk_clock() + 1.5;
    while (tk_clock() < end && !res.calls)
        cr_assert_eq(ac_poll(fx.m, 0.05), 0);
    ac_resolver_free(fx.r);
    fx.r = NULL;
    cr_assert(tk_fd_open(sv[0]) && tk_fd_open(sv[1]), "c-ares closed a number not its own");
    /* Nothing but our own byte went through it (a DNS query would). */
    cr_assert_not(tk_wait_fd(sv[0], POLLIN, 0) || tk_wait_fd(sv[1], POLLIN, 0));
    cr_assert_eq(write(sv[0], "x", 1), 1);
    char c[8];
    cr_assert_eq(read(sv[1], c, sizeof(c)), 1);
    cr_assert_eq(c[0], 'x');
    close(sv[0]);
    close(sv[1]);
    close(kp[1]);
    teardown(&fx);
}

/* A callback that frees the resolver while more answers wait behind it. */
static ac_resolver *to_free;
static void free_resolver(void *arg, int status, const ac_address *addrs, size_t n)
{
    on_result(arg, status, addrs, n);
    ac_resolver_free(to_free);
}

Test(lookup, freed_from_a_callback, .timeout = 10)
{
    struct fixture fx = {0};
    setup(&fx, 1.0, 1);
    fx.dns.many = true;
    to_free = fx.r;
    static struct result res[20];
    in_call = true;
    for (int i = 0; i < 20; i++) {
        char name[32];
        snprintf(name, sizeof(name), i < 10 ? "10.0.0.%d" : "h%d.many", i);
        cr_assert_eq(ac_resolve(NULL, fx.r, name, 1, AF_INET, free_resolver, &res[i]), 0);
    }
    in_call = false;
    cr_assert(rig_wait_count(fx.m, &total_calls, 1, 5.0));
    fx.r = NULL;
    for (int i = 0; i < 10; i++)
        cr_assert_eq(ac_poll(fx.m, 0.01), 0);
    cr_assert_eq(total_calls, 1, "the first callback freed the resolver");
    cr_assert_eq(ac_map_count(fx.m), 1);
    teardown(&fx);
}

Test(lookup, bad_arguments, .timeout = 10)
{
    struct fixture fx = {0};
    setup(&fx, 1.0, 1);
    struct result res = {0};
    char big[300];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert_eq(ac_resolve(NULL, fx.r, "", 1, AF_UNSPEC, on_result, &res), -EINVAL);
    cr_assert_eq(ac_resolve(NULL, fx.r, big, 1, AF_UNSPEC, on_result, &res), -EINVAL);
    cr_assert_eq(ac_resolve(NULL, fx.r, "x.test", 1, AF_UNIX, on_result, &res), -EINVAL);
    cr_assert_eq(ac_resolve(NULL, fx.r, "x.test", 1, AF_UNSPEC, NULL, &res), -EINVAL);
    ac_resolver *bad = NULL;
    ac_resolver_config cfg = {.servers = "not an address"};
    cr_assert_eq(ac_resolver_new(&bad, fx.m, &cfg), -EINVAL);
    cfg = (ac_resolver_config){.timeout = -1};
    cr_assert_eq(ac_resolver_new(&bad, fx.m, &cfg), -EINVAL);
    cr_assert_eq(ac_map_count(fx.m), 1);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ac_poll(fx.m, 0.01), 0);
    cr_assert_eq(res.calls, 0, "a call that fails never calls back");
    teardown(&fx);
}

Test(lookup, status_names, .timeout = 5)
{
    cr_assert_str_eq(ac_resolve_error_name(0), "OK");
    cr_assert_str_eq(ac_resolve_error_name(AC_EAI_NONAME), "AC_EAI_NONAME");
    cr_assert_str_eq(ac_resolve_error_name(-AC_EAI_NONAME), "AC_EAI_NONAME");
    cr_assert_str_eq(ac_resolve_error_name(AC_EAI_AGAIN), "AC_EAI_AGAIN");
    cr_assert_str_eq(ac_resolve_error_name(AC_EAI_FAIL), "AC_EAI_FAIL");
    cr_assert_str_eq(ac_resolve_error_name(-ETIMEDOUT), "ETIMEDOUT");
    cr_assert_str_eq(ac_resolve_error_name(ECONNREFUSED), "ECONNREFUSED");
    cr_assert_str_eq(ac_resolve_strerror(AC_EAI_NONAME), "name does not resolve");
    cr_assert_str_eq(ac_resolve_strerror(-ECONNREFUSED), strerror(ECONNREFUSED));
}

Test(lookup, idle_resolver_costs_nothing, .timeout = 10,
     .description = "no descriptor, no timer while idle: the loop waits its whole timeout")
{
    struct fixture fx = {0};
    setup(&fx, 1.0, 1);
    cr_assert_eq(ac_map_count(fx.m), 1);
    cr_assert_eq(rig_fds(), fx.fds_without_resolver, "the resolver holds no descriptor");
    double t0 = tk_clock();
    int iterations = 0;
    while (tk_clock() - t0 < 0.3) {
        cr_assert_eq(ac_poll(fx.m, 0.1), 0);
        iterations++;
    }
    cr_assert_leq(iterations, 4, "%d iterations in 0.3 s: something wakes the loop", iterations);
    teardown(&fx);
}

Test(lookup, truncated_answer_retried_over_tcp, .timeout = 10,
     .description = "TC set: c-ares asks again over TCP, through the same socket functions")
{
    struct fixture fx = {0};
    setup(&fx, 1.0, 2);
    /* Another TCP socket on the server's port: the rig moves both (the
     * path a parallel run may need, taken every time here). */
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(AF_INET, &ss);
    ((struct sockaddr_in *)&ss)->sin_port = htons(fx.dns.port);
    int squatter = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* EADDRINUSE: someone else's TCP socket has it already, as well. */
    cr_assert(bind(squatter, (struct sockaddr *)&ss, len) == 0 || errno == EADDRINUSE);
    uint16_t old = fx.dns.port;
    fake_dns_tcp(&fx.dns, fx.m);
    cr_assert_neq(fx.dns.port, old);
    close(squatter);
    ac_resolver_free(fx.r); /* the servers have moved */
    fx.r = rig_resolver(fx.m, &fx.dns, 1.0, 2);
    fx.dns.truncate = true;
    fake_dns_add(&fx.dns, (struct rig_name){.name = "big.test",
                                            .v4 = {"192.0.2.1", "192.0.2.2", "192.0.2.3"}});
    struct result res = {0}, res2 = {0};
    resolve(fx.r, "big.test", 53, AF_INET, &res);
    resolve(fx.r, "missing.test", 53, AF_INET, &res2);
    cr_assert(rig_wait_count(fx.m, &total_calls, 2, 5.0));
    cr_assert_eq(res.status, 0, "%d", res.status);
    cr_assert_eq(res.n, 3);
    cr_assert_str_eq(res.addrs[0], "192.0.2.1:53");
    cr_assert_str_eq(res.addrs[2], "192.0.2.3:53");
    cr_assert_eq(res2.status, AC_EAI_NONAME, "%d", res2.status);
    cr_assert_eq(fx.dns.tcp_queries, 2);
    /* Idle: c-ares closed both sockets; the server's connection saw EOF. */
    for (int i = 0; i < 5 && ac_map_count(fx.m) > 2; i++)
        cr_assert_eq(ac_poll(fx.m, 0.02), 0);
    cr_assert_eq(ac_map_count(fx.m), 2, "the two servers only");
    teardown(&fx);
}

Test(lookup, recovers_from_its_socket_closed_by_the_map, .timeout = 10,
     .description = "c-ares' socket closed by someone else: c-ares drops it and asks again")
{
    struct fixture fx = {0};
    setup(&fx, 0.5, 3);
    fx.dns.silent = true;
    fake_dns_add(&fx.dns, (struct rig_name){.name = "back.test", .v4 = {"192.0.2.7"}});
    struct result res = {0};
    resolve(fx.r, "back.test", 1, AF_INET, &res);
    cr_assert(rig_wait_count(fx.m, &fx.dns.datagrams, 1, 5.0));
    ac_dispatcher *cares = NULL;
    for (int fd = 0; fd < 1024 && !cares; fd++)
        if (ac_map_get(fx.m, fd) && ac_map_get(fx.m, fd) != fx.dns.d)
            cares = ac_map_get(fx.m, fd);
    cr_assert_not_null(cares);
    cr_assert_eq(ac_close(cares), 0);
    fx.dns.silent = false;
    double t0 = tk_clock();
    cr_assert(rig_wait_count(fx.m, &res.calls, 1, 5.0));
    cr_assert_eq(res.status, 0, "%d", res.status);
    cr_assert_str_eq(res.addrs[0], "192.0.2.7:1");
    cr_assert_lt(tk_clock() - t0, 0.4, "asked again at once, not after the timeout");
    cr_assert_eq(fx.dns.datagrams, 2);
    teardown(&fx);
}
