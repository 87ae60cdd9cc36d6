/* Conformance: the socket-like methods of a dispatcher (spec S1-S13).
 *
 * Each test names the rules it checks in its description.  Scenarios of
 * CPython's test_asyncore.py (test_create_socket, test_bind,
 * test_set_reuse_addr, test_connection_attributes, test_handle_connect,
 * test_handle_accepted, ...) are rewritten here in C, next to our own.
 * Backend-specific expectations look at ac_map_poller_name(). */
#include "ac_testkit.h"

#include <signal.h>

/* ---------------------------------------------------------- handlers */

static int h_close(ac_dispatcher *d)
{
    tk_node(d)->closes++;
    tk_tr("close");
    return ac_close(d);
}

static int h_error(ac_dispatcher *d, const ac_error *e)
{
    struct tk_node *n = tk_node(d);
    n->errors++;
    n->last_err = e->err;
    tk_tr("error:%s:%d", strerrorname_np(e->err), ac_is_connecting(d));
    return ac_default_handle_error(d, e);
}

/* handle_connect sees the flags before D8 updates them: "connect:CN" with
 * C = connected, N = connecting. */
static int h_connect(ac_dispatcher *d)
{
    tk_node(d)->connects++;
    tk_tr("connect:%d%d", ac_is_connected(d), ac_is_connecting(d));
    return 0;
}

/* Reads up to node->chunk bytes (default 4096), keeps them, traces the
 * result: "read:N", or "read:-ENAME". */
static int h_read(ac_dispatcher *d)
{
    struct tk_node *n = tk_node(d);
    n->reads++;
    size_t want = n->chunk ? n->chunk : 4096;
    char buf[65536];
    if (want > sizeof(buf))
        want = sizeof(buf);
    ssize_t r = ac_recv(d, buf, want);
    if (r > 0) {
        tk_tr("read:%zd", r);
        if (n->buf && n->len + (size_t)r <= n->cap) {
            memcpy(n->buf + n->len, buf, (size_t)r);
            n->len += (size_t)r;
        }
    } else if (r == 0) {
        tk_tr("read:0");
    } else {
        tk_tr("read:-%s", strerrorname_np((int)-r));
    }
    return r < 0 ? (int)r : 0;
}

static int h_write_quiet(ac_dispatcher *d)
{
    tk_node(d)->writes++;
    return 0;
}


static const ac_handlers traced = {
    .handle_read = h_read,
    .handle_write = h_write_quiet,
    .handle_connect = h_connect,
    .handle_close = h_close,
    .handle_error = h_error,
    .finalize = tk_finalize,
};

/* ------------------------------------------------------------- S1 */

static void check_create(int family, int type)
{
    if (family == AF_INET6 && !tk_ipv6_ok())
        cr_skip_test("no IPv6 loopback");
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    ac_set_connecting(d, true); /* S1: flags unchanged */
    ac_set_closing(d, true);

    cr_assert_eq(ac_create_socket(d, family, type), 0);
    int fd = ac_fd(d);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ac_family(d), family);
    cr_assert_eq(ac_socktype(d), type);

    int v = 0;
    socklen_t len = sizeof(v);
    cr_assert_eq(getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len), 0);
    cr_assert_eq(v, family);
    len = sizeof(v);
    cr_assert_eq(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len), 0);
    cr_assert_eq(v, type);
    cr_assert(tk_cloexec(fd), "create_socket must make a close-on-exec socket");
    cr_assert(tk_nonblocking(fd), "create_socket must make a non-blocking socket");

    cr_assert_eq(ac_map_count(m), 1);
    cr_assert_eq(ac_map_get(m, fd), d);
    cr_assert_not(ac_is_connected(d));
    cr_assert_not(ac_is_accepting(d));
    cr_assert(ac_is_connecting(d));
    cr_assert(ac_is_closing(d));
    socklen_t alen = 99;
    cr_assert_null(ac_addr(d, &alen));
    cr_assert_eq(alen, 0);
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
}

Test(socket_methods, create_socket_inet_stream, .timeout = 5,
     .description = "S1: AF_INET stream socket, close-on-exec, non-blocking, registered")
{
    check_create(AF_INET, SOCK_STREAM);
}

Test(socket_methods, create_socket_inet_dgram, .timeout = 5,
     .description = "S1: AF_INET datagram socket, close-on-exec, non-blocking, registered")
{
    check_create(AF_INET, SOCK_DGRAM);
}

Test(socket_methods, create_socket_inet6_stream, .timeout = 5,
     .description = "S1: AF_INET6 stream socket, close-on-exec, non-blocking, registered")
{
    check_create(AF_INET6, SOCK_STREAM);
}

Test(socket_methods, create_socket_inet6_dgram, .timeout = 5,
     .description = "S1: AF_INET6 datagram socket, close-on-exec, non-blocking, registered")
{
    check_create(AF_INET6, SOCK_DGRAM);
}

Test(socket_methods, create_socket_unix_stream, .timeout = 5,
     .description = "S1: AF_UNIX stream socket, close-on-exec, non-blocking, registered")
{
    check_create(AF_UNIX, SOCK_STREAM);
}

Test(socket_methods, create_socket_unix_dgram, .timeout = 5,
     .description = "S1: AF_UNIX datagram socket, close-on-exec, non-blocking, registered")
{
    check_create(AF_UNIX, SOCK_DGRAM);
}

Test(socket_methods, create_socket_twice_replaces_the_old_socket, .timeout = 5,
     .description = "S1 W16 (header deviation): a second create_socket closes and "
                    "unregisters the first socket")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    int old = ac_fd(d);
    cr_assert_eq(ac_create_socket(d, AF_UNIX, SOCK_DGRAM), 0);
    int now = ac_fd(d);
    cr_assert_neq(now, old);
    cr_assert_not(tk_fd_open(old), "the first socket must be closed");
    cr_assert_eq(ac_map_count(m), 1);
    cr_assert_null(ac_map_get(m, old));
    cr_assert_eq(ac_map_get(m, now), d);
    cr_assert_eq(ac_family(d), AF_UNIX);
    cr_assert_eq(ac_socktype(d), SOCK_DGRAM);
    tk_finish(m);
}

Test(socket_methods, create_socket_failure_registers_nothing, .timeout = 5,
     .description = "S1 X3: socket() failing returns -errno, d stays without descriptor")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    int rc = ac_create_socket(d, 4242, SOCK_STREAM);
    cr_assert_eq(rc, -EAFNOSUPPORT, "got %d", rc);
    cr_assert_eq(ac_fd(d), -1);
    cr_assert_eq(ac_map_count(m), 0);
    tk_finish(m);
}

/* ------------------------------------------------------------- S2 */

Test(socket_methods, set_socket_changes_no_mode_and_no_flag, .timeout = 5,
     .description = "S2: set_socket registers fd; blocking mode, connected and addr untouched")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv); /* a connected, blocking socket */
    cr_assert_eq(ac_set_socket(d, sv[0]), 0);
    cr_assert_eq(ac_fd(d), sv[0]);
    cr_assert_eq(ac_map_get(m, sv[0]), d);
    cr_assert_eq(ac_map_count(m), 1);
    cr_assert_not(tk_nonblocking(sv[0]), "set_socket must not change the blocking mode");
    cr_assert_not(ac_is_connected(d), "set_socket must not set connected (that is D4's job)");
    cr_assert_null(ac_addr(d, NULL));
    cr_assert_eq(ac_family(d), 0);
    tk_finish(m);
    close(sv[1]);
}

Test(socket_methods, set_socket_bad_descriptor, .timeout = 5,
     .description = "S2 X3: a negative descriptor is refused with -EBADF")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    cr_assert_eq(ac_set_socket(d, -1), -EBADF);
    cr_assert_eq(ac_map_count(m), 0);
    tk_finish(m);
}

/* ------------------------------------------------------------- S3 */

Test(socket_methods, del_channel_then_add_channel, .timeout = 5,
     .description = "S3 L5: del_channel takes d out of the map (loop returns at once), "
                    "add_channel puts it back")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    int fd = ac_fd(d);

    cr_assert_eq(ac_del_channel(d), 0);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_null(ac_map_get(m, fd));
    cr_assert_eq(ac_fd(d), fd, "header: d keeps its descriptor");
    cr_assert(tk_fd_open(fd));
    cr_assert_not(ac_is_closed(d));
    double t0 = tk_clock();
    cr_assert_eq(ac_loop(m, 2.0, 5), 0);
    cr_assert_lt(tk_clock() - t0, 0.5, "an empty map must not wait");
    cr_assert_str_empty(tk_trace);

    cr_assert_eq(ac_add_channel(d), 0);
    cr_assert_eq(ac_map_count(m), 1);
    cr_assert_eq(ac_map_get(m, fd), d);
    tk_finish(m);
}

Test(socket_methods, add_channel_replaces_the_entry, .timeout = 5,
     .description = "S3 X4 (header deviation): add replaces map[fd]; del by the replaced "
                    "channel leaves the new entry alone")
{
    ac_map *m = tk_map();
    ac_dispatcher *a = tk_new(m, &traced, "a");
    ac_dispatcher *b = tk_new(m, &traced, "b");
    cr_assert_eq(ac_create_socket(a, AF_INET, SOCK_STREAM), 0);
    int fd = ac_fd(a);
    cr_assert_eq(ac_set_socket(b, fd), 0);
    cr_assert_eq(ac_map_count(m), 1);
    cr_assert_eq(ac_map_get(m, fd), b);
    cr_assert_not(ac_is_closed(a));
    cr_assert_eq(ac_fd(a), fd);

    cr_assert_eq(ac_del_channel(a), 0);
    cr_assert_eq(ac_map_get(m, fd), b, "del_channel removes only its own entry");
    cr_assert_eq(ac_map_count(m), 1);

    cr_assert_eq(ac_add_channel(a), 0);
    cr_assert_eq(ac_map_get(m, fd), a);
    cr_assert_eq(ac_map_count(m), 1);
    /* Both now hold the same number; the second close sees EBADF, ignored. */
    tk_finish(m);
}

Test(socket_methods, add_del_without_descriptor, .timeout = 5,
     .description = "S3 X3: add_channel/del_channel without a descriptor return -EBADF")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    cr_assert_eq(ac_add_channel(d), -EBADF);
    cr_assert_eq(ac_del_channel(d), -EBADF);
    cr_assert_eq(ac_map_count(m), 0);
    tk_finish(m);
}

/* ------------------------------------------------------------- S4 */

static void check_reuse(int family)
{
    if (family == AF_INET6 && !tk_ipv6_ok())
        cr_skip_test("no IPv6 loopback");
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    cr_assert_eq(ac_create_socket(d, family, SOCK_STREAM), 0);
    int v = -1;
    socklen_t len = sizeof(v);
    cr_assert_eq(getsockopt(ac_fd(d), SOL_SOCKET, SO_REUSEADDR, &v, &len), 0);
    cr_assert_eq(v, 0);
    ac_set_reuse_addr(d);
    len = sizeof(v);
    cr_assert_eq(getsockopt(ac_fd(d), SOL_SOCKET, SO_REUSEADDR, &v, &len), 0);
    cr_assert_neq(v, 0);
    ac_set_reuse_addr(d); /* "current value OR 1": still on */
    len = sizeof(v);
    cr_assert_eq(getsockopt(ac_fd(d), SOL_SOCKET, SO_REUSEADDR, &v, &len), 0);
    cr_assert_neq(v, 0);
    tk_finish(m);
}

Test(socket_methods, set_reuse_addr_inet, .timeout = 5,
     .description = "S4: SO_REUSEADDR goes from off to on (CPython test_set_reuse_addr)")
{
    check_reuse(AF_INET);
}

Test(socket_methods, set_reuse_addr_inet6, .timeout = 5,
     .description = "S4: SO_REUSEADDR goes from off to on over IPv6")
{
    check_reuse(AF_INET6);
}

Test(socket_methods, set_reuse_addr_failure_is_ignored, .timeout = 5,
     .description = "S4: failures are silently ignored (no socket, closed dispatcher)")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    ac_set_reuse_addr(d); /* no descriptor */
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_close(d), 0);
    ac_set_reuse_addr(d); /* closed */
    cr_assert_str_empty(tk_trace);
    cr_assert_eq(tk_log_lines, 0);
    tk_finish(m);
}

/* ------------------------------------------------------------- S5 */

Test(socket_methods, listen_sets_accepting, .timeout = 5,
     .description = "S5 D5: listen sets accepting, connected stays false")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(AF_INET, &ss);
    cr_assert_eq(ac_bind(d, (struct sockaddr *)&ss, len), 0);
    cr_assert_not(ac_is_accepting(d));
    cr_assert_eq(ac_listen(d, 5), 0);
    cr_assert(ac_is_accepting(d));
    cr_assert_not(ac_is_connected(d));
    cr_assert_not(ac_is_connecting(d));
    int v = 0;
    len = sizeof(v);
    cr_assert_eq(getsockopt(ac_fd(d), SOL_SOCKET, SO_ACCEPTCONN, &v, &len), 0);
    cr_assert_eq(v, 1);
    tk_finish(m);
}

Test(socket_methods, listen_failure_keeps_accepting, .timeout = 5,
     .description = "S5: listen on a datagram socket fails with EOPNOTSUPP; accepting was "
                    "set before the call and stays true")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_DGRAM), 0);
    int rc = ac_listen(d, 5);
    cr_assert_eq(rc, -EOPNOTSUPP, "got %d", rc);
    cr_assert(ac_is_accepting(d));
    cr_assert_str_empty(tk_trace, "a failing call never runs a handler");
    tk_finish(m);
}

Test(socket_methods, listen_without_socket_keeps_accepting, .timeout = 5,
     .description = "S5 S13: listen without a socket fails with EBADF, accepting stays true")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    cr_assert_eq(ac_listen(d, 5), -EBADF);
    cr_assert(ac_is_accepting(d));
    tk_finish(m);
}

static int accepted_fds[8];
static int n_accepted;

static int h_accepted(ac_dispatcher *d, int fd, const struct sockaddr *addr, socklen_t alen)
{
    (void)d;
    tk_tr("accepted:%d", addr ? addr->sa_family : -1);
    (void)alen;
    accepted_fds[n_accepted++] = fd;
    return 0;
}

static const ac_handlers listener_h = {
    .handle_accepted = h_accepted,
    .handle_close = h_close,
    .handle_error = h_error,
    .finalize = tk_finalize,
};

static bool client_connected(void *arg) { return ac_is_connected(arg); }

static void check_connection_attributes(int family)
{
    if (family == AF_INET6 && !tk_ipv6_ok())
        cr_skip_test("no IPv6 loopback");
    ac_map *m = tk_map();
    ac_dispatcher *srv = tk_new(m, &listener_h, "srv"); /* keeps accepted fds open */
    cr_assert_eq(ac_create_socket(srv, family, SOCK_STREAM), 0);
    struct sockaddr_storage ss;
    socklen_t len = family == AF_UNIX ? tk_unix_addr(&ss, "srv") : tk_loopback(family, &ss);
    ac_set_reuse_addr(srv);
    cr_assert_eq(ac_bind(srv, (struct sockaddr *)&ss, len), 0);
    cr_assert_eq(ac_listen(srv, 5), 0);
    if (family != AF_UNIX) {
        len = sizeof(ss);
        cr_assert_eq(getsockname(ac_fd(srv), (struct sockaddr *)&ss, &len), 0);
    }
    ac_dispatcher *cli = tk_new(m, &traced, "cli");
    cr_assert_eq(ac_create_socket(cli, family, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(cli, (struct sockaddr *)&ss, len), 0);

    cr_assert_not(ac_is_connected(srv));
    cr_assert(ac_is_accepting(srv));
    cr_assert_not(ac_is_accepting(cli));

    cr_assert(tk_loop_until(m, client_connected, cli, 3.0));
    cr_assert_not(ac_is_connected(srv));
    cr_assert(ac_is_accepting(srv));
    cr_assert(ac_is_connected(cli));
    cr_assert_not(ac_is_accepting(cli));
    cr_assert_not(ac_is_connecting(cli));
    cr_assert_eq(tk_node(cli)->connects, 1);

    cr_assert_eq(ac_close(cli), 0);
    cr_assert_not(ac_is_connected(cli));
    cr_assert_not(ac_is_accepting(cli));
    cr_assert(ac_is_accepting(srv));

    cr_assert_eq(ac_close(srv), 0);
    cr_assert_not(ac_is_connected(srv));
    cr_assert_not(ac_is_accepting(srv));
    for (int i = 0; i < n_accepted; i++)
        close(accepted_fds[i]);
    tk_finish(m);
}

Test(socket_methods, connection_attributes_inet, .timeout = 10,
     .description = "S5 S7 S12 D5: flags of a listener and a client through connect and "
                    "close (CPython test_connection_attributes), IPv4")
{
    check_connection_attributes(AF_INET);
}

Test(socket_methods, connection_attributes_inet6, .timeout = 10,
     .description = "S5 S7 S12 D5: connection attributes over IPv6")
{
    check_connection_attributes(AF_INET6);
}

Test(socket_methods, connection_attributes_unix, .timeout = 10,
     .description = "S5 S7 S12 D5: connection attributes over AF_UNIX")
{
    check_connection_attributes(AF_UNIX);
}

/* ------------------------------------------------------------- S6 */

Test(socket_methods, bind_sets_addr, .timeout = 5,
     .description = "S6 D5: bind keeps the requested address as addr (port 0 stays 0)")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(AF_INET, &ss);
    cr_assert_eq(ac_bind(d, (struct sockaddr *)&ss, len), 0);
    socklen_t alen = 0;
    const struct sockaddr *a = ac_addr(d, &alen);
    cr_assert_not_null(a);
    cr_assert_eq(alen, len);
    cr_assert_eq(memcmp(a, &ss, len), 0);
    cr_assert_eq(((const struct sockaddr_in *)a)->sin_port, 0);
    tk_finish(m);
}

static void check_bind_in_use(int family)
{
    if (family == AF_INET6 && !tk_ipv6_ok())
        cr_skip_test("no IPv6 loopback");
    ac_map *m = tk_map();
    ac_dispatcher *s1 = tk_new(m, &traced, "s1");
    ac_dispatcher *s2 = tk_new(m, &traced, "s2");
    cr_assert_eq(ac_create_socket(s1, family, SOCK_STREAM), 0);
    struct sockaddr_storage ss;
    socklen_t len = family == AF_UNIX ? tk_unix_addr(&ss, "inuse") : tk_loopback(family, &ss);
    cr_assert_eq(ac_bind(s1, (struct sockaddr *)&ss, len), 0);
    cr_assert_eq(ac_listen(s1, 5), 0);
    if (family != AF_UNIX) {
        len = sizeof(ss);
        cr_assert_eq(getsockname(ac_fd(s1), (struct sockaddr *)&ss, &len), 0);
    }

    cr_assert_eq(ac_create_socket(s2, family, SOCK_STREAM), 0);
    int rc = ac_bind(s2, (struct sockaddr *)&ss, len);
    cr_assert_eq(rc, -EADDRINUSE, "got %d", rc);
    socklen_t alen = 0;
    const struct sockaddr *a = ac_addr(s2, &alen);
    cr_assert_not_null(a, "S6: addr is set before the bind and kept on failure");
    cr_assert_eq(alen, len);
    cr_assert_eq(memcmp(a, &ss, len), 0);
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
}

Test(socket_methods, bind_in_use_inet, .timeout = 5,
     .description = "S6: second bind to a bound port fails with EADDRINUSE, addr kept "
                    "(CPython test_bind)")
{
    check_bind_in_use(AF_INET);
}

Test(socket_methods, bind_in_use_inet6, .timeout = 5,
     .description = "S6: EADDRINUSE over IPv6, addr kept")
{
    check_bind_in_use(AF_INET6);
}

Test(socket_methods, bind_in_use_unix, .timeout = 5,
     .description = "S6: EADDRINUSE for an existing AF_UNIX path, addr kept")
{
    check_bind_in_use(AF_UNIX);
}

/* ------------------------------------------------------------- S7 */

static void check_connect_in_progress(int family)
{
    if (family == AF_INET6 && !tk_ipv6_ok())
        cr_skip_test("no IPv6 loopback");
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = tk_listener(family, &ss, &len, 5);
    ac_dispatcher *c = tk_new(m, &traced, "c");
    cr_assert_eq(ac_create_socket(c, family, SOCK_STREAM), 0);

    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
    cr_assert(ac_is_connecting(c));
    cr_assert_not(ac_is_connected(c));
    socklen_t alen = 0;
    const struct sockaddr *a = ac_addr(c, &alen);
    cr_assert_not_null(a);
    cr_assert_eq(alen, len);
    cr_assert_eq(memcmp(a, &ss, len), 0);
    cr_assert_str_empty(tk_trace, "a TCP connect is in progress: no handler yet");

    cr_assert(tk_loop_until(m, client_connected, c, 3.0));
    /* D8: handle_connect saw connected=0 connecting=1; D7: then handle_write. */
    cr_assert_str_eq(tk_trace, "connect:01");
    cr_assert_eq(tk_node(c)->connects, 1);
    cr_assert_eq(tk_node(c)->writes, 1, "D7: the same write event goes on to handle_write");
    cr_assert_not(ac_is_connecting(c));
    tk_finish(m);
    close(lfd);
}

Test(socket_methods, connect_in_progress_inet, .timeout = 10,
     .description = "S7 D5 D8: EINPROGRESS sets connecting and addr; completion calls "
                    "handle_connect once (CPython test_handle_connect)")
{
    check_connect_in_progress(AF_INET);
}

Test(socket_methods, connect_in_progress_inet6, .timeout = 10,
     .description = "S7 D5 D8: connect in progress over IPv6")
{
    check_connect_in_progress(AF_INET6);
}

/* handle_connect inside ac_connect: record what the caller cannot see. */
static int h_connect_inside(ac_dispatcher *d)
{
    struct tk_node *n = tk_node(d);
    n->connects++;
    socklen_t alen = 0;
    tk_tr("connect:%d%d:addr=%d", ac_is_connected(d), ac_is_connecting(d),
          ac_addr(d, &alen) != NULL);
    return 0;
}

static const ac_handlers connect_inside = {
    .handle_connect = h_connect_inside,
    .handle_close = h_close,
    .handle_error = h_error,
    .handle_write = h_write_quiet,
    .finalize = tk_finalize,
};

Test(socket_methods, connect_completed_at_once_unix, .timeout = 5,
     .description = "S7 D5 D8: an AF_UNIX connect completes at once; handle_connect runs "
                    "inside connect() with addr already set")
{
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = tk_listener(AF_UNIX, &ss, &len, 5);
    ac_dispatcher *c = tk_new(m, &connect_inside, "c");
    cr_assert_eq(ac_create_socket(c, AF_UNIX, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
    cr_assert_str_eq(tk_trace, "connect:01:addr=1");
    cr_assert(ac_is_connected(c));
    cr_assert_not(ac_is_connecting(c));
    socklen_t alen = 0;
    const struct sockaddr *a = ac_addr(c, &alen);
    cr_assert_eq(alen, len);
    cr_assert_eq(memcmp(a, &ss, len), 0);
    tk_finish(m);
    close(lfd);
}

Test(socket_methods, connect_again_when_connected_runs_completion, .timeout = 5,
     .description = "S7: EISCONN counts as completed: D8 runs again inside connect()")
{
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = tk_listener(AF_UNIX, &ss, &len, 5);
    ac_dispatcher *c = tk_new(m, &connect_inside, "c");
    cr_assert_eq(ac_create_socket(c, AF_UNIX, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
    /* S7 sets connected=false, connecting=true before the call. */
    cr_assert_str_eq(tk_trace, "connect:01:addr=1 connect:01:addr=1");
    cr_assert(ac_is_connected(c));
    cr_assert_not(ac_is_connecting(c));
    tk_finish(m);
    close(lfd);
}

static int h_connect_fails(ac_dispatcher *d)
{
    tk_tr("connect");
    return AC_RAISE(d, EPROTO, "handshake");
}

Test(socket_methods, connect_completed_at_once_handler_failure_propagates, .timeout = 5,
     .description = "S7 D8: a failing handle_connect inside connect() propagates to the "
                    "caller; the flags are not updated")
{
    static const ac_handlers h = {
        .handle_connect = h_connect_fails,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = tk_listener(AF_UNIX, &ss, &len, 5);
    ac_dispatcher *c = tk_new(m, &h, "c");
    cr_assert_eq(ac_create_socket(c, AF_UNIX, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), -EPROTO);
    cr_assert_str_eq(tk_trace, "connect");
    cr_assert_not(ac_is_connected(c));
    cr_assert(ac_is_connecting(c));
    cr_assert_eq(ac_map_get(m, ac_fd(c)), c);
    tk_finish(m);
    close(lfd);
}

static void check_failed_at_once(struct sockaddr_storage *ss, socklen_t len, int want)
{
    ac_map *m = tk_map();
    ac_dispatcher *c = tk_new(m, &traced, "c");
    cr_assert_eq(ac_create_socket(c, AF_UNIX, SOCK_STREAM), 0);
    int fd = ac_fd(c);
    int rc = ac_connect(c, (struct sockaddr *)ss, len);
    cr_assert_eq(rc, -want, "got %d (%s)", rc, strerror(-rc));
    cr_assert(ac_is_connecting(c), "S7: connecting is left set");
    cr_assert_not(ac_is_connected(c));
    cr_assert_null(ac_addr(c, NULL), "S7: addr unchanged on failure");
    cr_assert_eq(ac_map_get(m, fd), c, "S7: the channel stays in the map");
    cr_assert_eq(ac_map_count(m), 1);
    cr_assert_not(ac_is_closed(c));
    cr_assert_str_empty(tk_trace, "no handler runs for a failure at once");
    cr_assert_eq(ac_close(c), 0); /* the caller closes it */
    cr_assert_eq(ac_map_count(m), 0);
    tk_finish(m);
}

Test(socket_methods, connect_refused_at_once_enoent, .timeout = 5,
     .description = "S7 D5: AF_UNIX connect to a missing path fails at once with ENOENT; "
                    "connecting stays true, still in the map")
{
    struct sockaddr_storage ss;
    socklen_t len = tk_unix_addr(&ss, "nobody-here");
    check_failed_at_once(&ss, len, ENOENT);
}

Test(socket_methods, connect_refused_at_once_econnrefused, .timeout = 5,
     .description = "S7 D5: AF_UNIX connect to a bound, non-listening path fails at once "
                    "with ECONNREFUSED; connecting stays true, still in the map")
{
    struct sockaddr_storage ss;
    socklen_t len = tk_unix_addr(&ss, "not-listening");
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&ss, len), 0);
    check_failed_at_once(&ss, len, ECONNREFUSED);
    close(fd);
}

Test(socket_methods, connect_ealready_counts_as_in_progress, .timeout = 10,
     .description = "S7: a second connect while the handshake is pending (EALREADY) is "
                    "'in progress': returns 0, no handler")
{
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = tk_listener(AF_INET, &ss, &len, 0);
    int filler = tk_connect_raw(&ss, len); /* fills the accept queue: SYNs are dropped */
    ac_dispatcher *c = tk_new(m, &traced, "c");
    cr_assert_eq(ac_create_socket(c, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
    cr_assert(ac_is_connecting(c));
    cr_assert_not(ac_is_connected(c));
    cr_assert_str_empty(tk_trace);
    cr_assert_eq(ac_poll(m, 0.05), 0);
    cr_assert_str_empty(tk_trace, "still no handshake: nothing is dispatched");
    tk_finish(m);
    close(filler);
    close(lfd);
}

/* ------------------------------------------------------------- S8 */

static void check_async_refusal(int family)
{
    if (family == AF_INET6 && !tk_ipv6_ok())
        cr_skip_test("no IPv6 loopback");
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    int holder;
    socklen_t len = tk_refusing_addr(family, &ss, &holder);
    ac_dispatcher *c = tk_new(m, &traced, "c");
    struct tk_node *n = tk_node(c);
    cr_assert_eq(ac_create_socket(c, family, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0, "loopback refusal starts "
                                                                 "with EINPROGRESS");
    cr_assert_eq(ac_loop(m, 1.0, 20), 0);
    /* handle_error ran while connecting was still true (D8 leaves flags),
     * its default closed the channel: the map emptied and the loop ended. */
    cr_assert_str_eq(tk_trace, "error:ECONNREFUSED:1 close");
    cr_assert_eq(n->connects, 0, "S8: handle_connect is never called");
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_not_null(strstr(tk_logbuf, "error: "), "D19 logs at type error: %s", tk_logbuf);
    cr_assert_not_null(strstr(tk_logbuf, "ECONNREFUSED"));
    cr_assert_eq(tk_finalized, 1, "closed in the loop, finalized when it returned");
    tk_finish(m);
    close(holder);
}

Test(socket_methods, async_refusal_reaches_handle_error_inet, .timeout = 10,
     .description = "S8 D8 L11 L14: a refused TCP connect fails D8 with ECONNREFUSED, "
                    "handle_error under every poller, never handle_connect")
{
    check_async_refusal(AF_INET);
}

Test(socket_methods, async_refusal_reaches_handle_error_inet6, .timeout = 10,
     .description = "S8 D8 L11 L14: async refusal over IPv6")
{
    check_async_refusal(AF_INET6);
}

Test(socket_methods, reset_before_connect_noticed, .timeout = 10,
     .description = "S8 L11 L14 W10: SO_ERROR=ECONNRESET at completion: handle_error under "
                    "select, handle_close alone under poll and epoll")
{
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = tk_listener(AF_INET, &ss, &len, 5);
    ac_dispatcher *c = tk_new(m, &traced, "c");
    struct tk_node *n = tk_node(c);
    cr_assert_eq(ac_create_socket(c, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
    int s = accept(lfd, NULL, NULL);
    cr_assert_geq(s, 0);
    struct linger lg = {1, 0};
    cr_assert_eq(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(s); /* RST */
    cr_assert(tk_wait_fd(ac_fd(c), POLLIN, 2000));
    cr_assert_str_empty(tk_trace);

    cr_assert_eq(ac_poll(m, 1.0), 0);
    if (tk_is_select(m))
        cr_assert_str_eq(tk_trace, "error:ECONNRESET:1 close");
    else
        cr_assert_str_eq(tk_trace, "close");
    cr_assert_eq(n->connects, 0);
    cr_assert_eq(n->finalized, 1, "closed in the iteration, finalized after it");
    tk_finish(m);
    close(lfd);
}

static bool never(ac_dispatcher *d)
{
    (void)d;
    return false;
}

Test(socket_methods, readable_only_connecting_learns_completion_on_read, .timeout = 10,
     .description = "S8 D6: a connecting channel that is not writable learns of the "
                    "completion at its first read event: handle_connect, then handle_read")
{
    static const ac_handlers h = {
        .writable = never,
        .handle_read = h_read,
        .handle_connect = h_connect,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = tk_listener(AF_INET, &ss, &len, 5);
    ac_dispatcher *c = tk_new(m, &h, "c");
    cr_assert_eq(ac_create_socket(c, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
    int s = accept(lfd, NULL, NULL);
    cr_assert_geq(s, 0);
    cr_assert_eq(ac_poll(m, 0.05), 0);
    cr_assert_str_empty(tk_trace, "not writable, nothing to read: no event");
    cr_assert_eq(write(s, "hi", 2), 2);
    cr_assert_eq(ac_poll(m, 2.0), 0);
    cr_assert_str_eq(tk_trace, "connect:01 read:2");
    cr_assert(ac_is_connected(c));
    cr_assert_not(ac_is_connecting(c));
    tk_finish(m);
    close(s);
    close(lfd);
}

/* ------------------------------------------------------------- S9 */

static ac_dispatcher *make_listener(ac_map *m, int family, struct sockaddr_storage *ss,
                                    socklen_t *len)
{
    ac_dispatcher *l = tk_new(m, &listener_h, "l");
    cr_assert_eq(ac_create_socket(l, family, SOCK_STREAM), 0);
    *len = family == AF_UNIX ? tk_unix_addr(ss, "l") : tk_loopback(family, ss);
    cr_assert_eq(ac_bind(l, (struct sockaddr *)ss, *len), 0);
    cr_assert_eq(ac_listen(l, 5), 0);
    if (family != AF_UNIX) {
        *len = sizeof(*ss);
        cr_assert_eq(getsockname(ac_fd(l), (struct sockaddr *)ss, len), 0);
    }
    return l;
}

Test(socket_methods, accept_with_nothing_pending, .timeout = 5,
     .description = "S9 X3: accept with no connection waiting returns -EAGAIN ('nothing'), "
                    "no handler")
{
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    ac_dispatcher *l = make_listener(m, AF_INET, &ss, &len);
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    cr_assert_eq(ac_accept(l, (struct sockaddr *)&peer, &plen), -EAGAIN);
    cr_assert_eq(ac_accept(l, NULL, NULL), -EAGAIN);
    cr_assert_str_empty(tk_trace);
    cr_assert_not(ac_is_closed(l));
    tk_finish(m);
}

Test(socket_methods, accept_returns_descriptor_and_address, .timeout = 5,
     .description = "S9 X13: accept returns a close-on-exec, non-blocking descriptor and "
                    "the peer's address")
{
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    ac_dispatcher *l = make_listener(m, AF_INET, &ss, &len);
    int cfd = tk_connect_raw(&ss, len);
    struct sockaddr_in me;
    socklen_t melen = sizeof(me);
    cr_assert_eq(getsockname(cfd, (struct sockaddr *)&me, &melen), 0);

    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    int fd = ac_accept(l, (struct sockaddr *)&peer, &plen);
    cr_assert_geq(fd, 0, "got %d", fd);
    cr_assert_eq(plen, sizeof(struct sockaddr_in));
    const struct sockaddr_in *p = (const struct sockaddr_in *)&peer;
    cr_assert_eq(p->sin_family, AF_INET);
    cr_assert_eq(p->sin_port, me.sin_port);
    cr_assert_eq(p->sin_addr.s_addr, me.sin_addr.s_addr);
    cr_assert(tk_cloexec(fd));
    cr_assert(tk_nonblocking(fd));
    cr_assert_null(ac_map_get(m, fd), "the accepted descriptor is the caller's");
    cr_assert_eq(write(cfd, "x", 1), 1);
    char b;
    cr_assert(tk_wait_fd(fd, POLLIN, 1000));
    cr_assert_eq(read(fd, &b, 1), 1);
    cr_assert_eq(b, 'x');
    cr_assert_eq(ac_accept(l, NULL, NULL), -EAGAIN, "one connection, one accept");
    cr_assert_str_empty(tk_trace);
    close(fd);
    close(cfd);
    tk_finish(m);
}

Test(socket_methods, accept_on_non_listening_socket_propagates, .timeout = 5,
     .description = "S9 W15: accept on a socket that does not listen fails with EINVAL, "
                    "no handler")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_accept(d, NULL, NULL), -EINVAL);
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
}

static bool one_accepted(void *arg)
{
    (void)arg;
    return n_accepted > 0;
}

static void check_accept_in_loop(int family)
{
    if (family == AF_INET6 && !tk_ipv6_ok())
        cr_skip_test("no IPv6 loopback");
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    make_listener(m, family, &ss, &len);
    int cfd = tk_connect_raw(&ss, len);
    cr_assert(tk_loop_until(m, one_accepted, NULL, 3.0));
    char want[32];
    snprintf(want, sizeof(want), "accepted:%d", family);
    cr_assert_str_eq(tk_trace, want);
    cr_assert_eq(n_accepted, 1);
    cr_assert_eq(write(accepted_fds[0], "ok", 2), 2);
    char buf[2];
    cr_assert_eq(tk_read_full(cfd, buf, 2, 1000), 2);
    cr_assert_eq(memcmp(buf, "ok", 2), 0);
    close(accepted_fds[0]);
    close(cfd);
    tk_finish(m);
}

Test(socket_methods, handle_accept_gives_fd_and_addr_inet, .timeout = 10,
     .description = "S9 D16 D17: a read event on a listener accepts once and passes fd and "
                    "address to handle_accepted (CPython test_handle_accepted)")
{
    check_accept_in_loop(AF_INET);
}

Test(socket_methods, handle_accept_gives_fd_and_addr_inet6, .timeout = 10,
     .description = "S9 D16: accept through the loop over IPv6")
{
    check_accept_in_loop(AF_INET6);
}

Test(socket_methods, handle_accept_gives_fd_and_addr_unix, .timeout = 10,
     .description = "S9 D16: accept through the loop over AF_UNIX")
{
    check_accept_in_loop(AF_UNIX);
}

/* ------------------------------------------------------------ S10 */

/* A dispatcher adopting one end of a socketpair (D4: connected). */
static ac_dispatcher *pair_dispatcher(ac_map *m, const ac_handlers *h, int sv[2])
{
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *d = tk_new(m, h, "d");
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    cr_assert(ac_is_connected(d));
    return d;
}

Test(socket_methods, send_returns_bytes_taken, .timeout = 5,
     .description = "S10: send returns the byte count the kernel took")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_dispatcher(m, &traced, sv);
    cr_assert_eq(ac_send(d, "hello", 5), 5);
    char buf[5];
    cr_assert_eq(tk_read_full(sv[1], buf, 5, 1000), 5);
    cr_assert_eq(memcmp(buf, "hello", 5), 0);
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
    close(sv[1]);
}

Test(socket_methods, send_would_block_returns_zero, .timeout = 5,
     .description = "S10: EAGAIN returns 0 and nothing else happens")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_dispatcher(m, &traced, sv);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    static char chunk[8192];
    size_t total = 0;
    ssize_t n;
    int zeros = 0;
    while (zeros < 3) {
        n = ac_send(d, chunk, sizeof(chunk));
        cr_assert_geq(n, 0);
        if (n == 0)
            zeros++;
        total += (size_t)n;
        cr_assert_lt(total, (size_t)64 << 20, "the socket never filled");
    }
    cr_assert_gt(total, 0);
    cr_assert_str_empty(tk_trace);
    cr_assert_not(ac_is_closed(d));
    cr_assert(ac_is_connected(d));
    cr_assert_eq(tk_drain(sv[1], NULL, 0), total);
    tk_finish(m);
    close(sv[1]);
}

Test(socket_methods, send_to_closed_peer_calls_handle_close, .timeout = 5,
     .description = "S10 L15 X12: EPIPE calls handle_close and returns 0; no SIGPIPE kills "
                    "the process")
{
    signal(SIGPIPE, SIG_DFL);
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_dispatcher(m, &traced, sv);
    close(sv[1]);
    cr_assert_eq(ac_send(d, "x", 1), 0);
    cr_assert_str_eq(tk_trace, "close");
    cr_assert(ac_is_closed(d));
    tk_finish(m);
}

Test(socket_methods, send_after_reset_calls_handle_close, .timeout = 5,
     .description = "S10 L15: a TCP reset (ECONNRESET/EPIPE) calls handle_close, returns 0")
{
    signal(SIGPIPE, SIG_DFL);
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = tk_listener(AF_INET, &ss, &len, 5);
    int cfd = tk_connect_raw(&ss, len);
    int s = accept(lfd, NULL, NULL);
    ac_dispatcher *d = tk_new(m, &traced, "d");
    cr_assert_eq(ac_attach(d, s), 0);
    struct linger lg = {1, 0};
    setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(cfd);
    cr_assert(tk_wait_fd(s, POLLIN, 1000));
    cr_assert_eq(ac_send(d, "x", 1), 0);
    cr_assert_str_eq(tk_trace, "close");
    tk_finish(m);
    close(lfd);
}

Test(socket_methods, send_other_failure_propagates, .timeout = 5,
     .description = "S10: an errno outside the disconnected set (EDESTADDRREQ) propagates, "
                    "no handler")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_DGRAM), 0);
    cr_assert_eq(ac_send(d, "x", 1), -EDESTADDRREQ);
    cr_assert_str_empty(tk_trace);
    cr_assert_not(ac_is_closed(d));
    tk_finish(m);
}

/* ------------------------------------------------------------ S11 */

Test(socket_methods, recv_returns_at_most_len, .timeout = 5,
     .description = "S11: one receive of at most len bytes")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_dispatcher(m, &traced, sv);
    cr_assert_eq(write(sv[1], "0123456789", 10), 10);
    char buf[16];
    cr_assert_eq(ac_recv(d, buf, 4), 4);
    cr_assert_eq(memcmp(buf, "0123", 4), 0);
    cr_assert_eq(ac_recv(d, buf, sizeof(buf)), 6);
    cr_assert_eq(memcmp(buf, "456789", 6), 0);
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
    close(sv[1]);
}

Test(socket_methods, recv_eof_calls_handle_close, .timeout = 5,
     .description = "S11: orderly EOF calls handle_close, then returns 0")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_dispatcher(m, &traced, sv);
    cr_assert_eq(write(sv[1], "ab", 2), 2);
    shutdown(sv[1], SHUT_WR);
    char buf[16];
    cr_assert_eq(ac_recv(d, buf, sizeof(buf)), 2);
    cr_assert_str_empty(tk_trace);
    cr_assert_eq(ac_recv(d, buf, sizeof(buf)), 0);
    cr_assert_str_eq(tk_trace, "close");
    cr_assert(ac_is_closed(d));
    tk_finish(m);
    close(sv[1]);
}

Test(socket_methods, recv_reset_calls_handle_close, .timeout = 5,
     .description = "S11 L15: ECONNRESET calls handle_close, then returns 0")
{
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = tk_listener(AF_INET, &ss, &len, 5);
    int cfd = tk_connect_raw(&ss, len);
    int s = accept(lfd, NULL, NULL);
    ac_dispatcher *d = tk_new(m, &traced, "d");
    cr_assert_eq(ac_attach(d, s), 0);
    struct linger lg = {1, 0};
    setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(cfd);
    cr_assert(tk_wait_fd(s, POLLIN, 1000));
    char buf[8];
    cr_assert_eq(ac_recv(d, buf, sizeof(buf)), 0);
    cr_assert_str_eq(tk_trace, "close");
    tk_finish(m);
    close(lfd);
}

Test(socket_methods, recv_would_block_propagates, .timeout = 5,
     .description = "S11 W9: EAGAIN is not handled by recv: -EAGAIN, no handler")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_dispatcher(m, &traced, sv);
    char buf[8];
    cr_assert_eq(ac_recv(d, buf, sizeof(buf)), -EAGAIN);
    cr_assert_str_empty(tk_trace);
    cr_assert_not(ac_is_closed(d));
    tk_finish(m);
    close(sv[1]);
}

/* Reads all there is, then once more: the second recv sees EAGAIN. */
static int h_read_twice(ac_dispatcher *d)
{
    char buf[64];
    ssize_t r = ac_recv(d, buf, sizeof(buf));
    tk_tr("read:%zd", r);
    if (r <= 0)
        return (int)r;
    r = ac_recv(d, buf, sizeof(buf));
    return r < 0 ? (int)r : 0;
}

Test(socket_methods, recv_would_block_in_handler_reaches_handle_error, .timeout = 5,
     .description = "S11 W9 L11 L14: an EAGAIN returned from handle_read goes to "
                    "handle_error (not in the disconnected set), whose default closes")
{
    static const ac_handlers h = {
        .handle_read = h_read_twice,
        .handle_write = h_write_quiet,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_dispatcher(m, &h, sv);
    struct tk_node *n = tk_node(d);
    cr_assert_eq(write(sv[1], "hello", 5), 5);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "read:5 error:EAGAIN:0 close");
    cr_assert_eq(n->finalized, 1);
    tk_finish(m);
    close(sv[1]);
}

Test(socket_methods, recv_zero_length_is_einval, .timeout = 5,
     .description = "S11 W21 (header deviation): len 0 returns -EINVAL without "
                    "handle_close")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_dispatcher(m, &traced, sv);
    char buf[1];
    cr_assert_eq(ac_recv(d, buf, 0), -EINVAL);
    cr_assert_str_empty(tk_trace);
    cr_assert_not(ac_is_closed(d));
    cr_assert_eq(write(sv[1], "z", 1), 1);
    cr_assert_eq(ac_recv(d, buf, 1), 1, "nothing was consumed");
    cr_assert_eq(buf[0], 'z');
    tk_finish(m);
    close(sv[1]);
}

/* -------------------------------------------------- sendto, recvfrom */

static int h_read_from(ac_dispatcher *d)
{
    struct tk_node *n = tk_node(d);
    char buf[64];
    struct sockaddr_storage from;
    socklen_t flen = sizeof(from);
    ssize_t r = ac_recvfrom(d, buf, sizeof(buf), (struct sockaddr *)&from, &flen);
    if (r < 0) {
        tk_tr("recvfrom:-%s", strerrorname_np((int)-r));
        return (int)r;
    }
    tk_tr("recvfrom:%.*s", (int)r, buf);
    n->reads++;
    if (n->buf && flen <= n->cap) {
        memcpy(n->buf, &from, flen);
        n->len = flen;
    }
    return 0;
}

static bool got_datagram(void *arg) { return tk_node(arg)->reads > 0; }

static void check_datagrams(int family)
{
    if (family == AF_INET6 && !tk_ipv6_ok())
        cr_skip_test("no IPv6 loopback");
    static const ac_handlers h = {
        .handle_read = h_read_from,
        .handle_write = h_write_quiet,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    ac_dispatcher *a = tk_new(m, &h, "a");
    ac_dispatcher *b = tk_new(m, &h, "b");
    struct sockaddr_storage sa, sb;
    socklen_t la, lb;
    cr_assert_eq(ac_create_socket(a, family, SOCK_DGRAM), 0);
    cr_assert_eq(ac_create_socket(b, family, SOCK_DGRAM), 0);
    if (family == AF_UNIX) {
        la = tk_unix_addr(&sa, "a");
        lb = tk_unix_addr(&sb, "b");
    } else {
        la = tk_loopback(family, &sa);
        lb = tk_loopback(family, &sb);
    }
    cr_assert_eq(ac_bind(a, (struct sockaddr *)&sa, la), 0);
    cr_assert_eq(ac_bind(b, (struct sockaddr *)&sb, lb), 0);
    if (family != AF_UNIX) {
        la = lb = sizeof(sa);
        cr_assert_eq(getsockname(ac_fd(a), (struct sockaddr *)&sa, &la), 0);
        cr_assert_eq(getsockname(ac_fd(b), (struct sockaddr *)&sb, &lb), 0);
    }
    char buf[8];
    cr_assert_eq(ac_recvfrom(b, buf, sizeof(buf), NULL, NULL), -EAGAIN);
    cr_assert_str_empty(tk_trace, "recvfrom's EAGAIN runs no handler");

    struct sockaddr_storage from;
    tk_node(b)->buf = (char *)&from;
    tk_node(b)->cap = sizeof(from);
    cr_assert_eq(ac_sendto(a, "ping", 4, (struct sockaddr *)&sb, lb), 4);
    cr_assert(tk_loop_until(m, got_datagram, b, 3.0));
    cr_assert_str_eq(tk_trace, "recvfrom:ping");
    cr_assert_eq(tk_node(b)->len, la);
    cr_assert_eq(memcmp(&from, &sa, la), 0, "recvfrom reports the sender's address");
    cr_assert_not(ac_is_connected(b), "datagram channels are neither connected ...");
    cr_assert_not(ac_is_connecting(b), "... nor connecting (D6: read goes to handle_read)");
    tk_finish(m);
}

Test(socket_methods, sendto_recvfrom_inet, .timeout = 10,
     .description = "S1 S11 D6: datagrams over AF_INET: sendto, a read event, recvfrom with "
                    "the sender's address; EAGAIN from recvfrom is -EAGAIN")
{
    check_datagrams(AF_INET);
}

Test(socket_methods, sendto_recvfrom_inet6, .timeout = 10,
     .description = "S1 D6: datagrams over AF_INET6")
{
    check_datagrams(AF_INET6);
}

Test(socket_methods, sendto_recvfrom_unix, .timeout = 10,
     .description = "S1 D6: datagrams over AF_UNIX")
{
    check_datagrams(AF_UNIX);
}

Test(socket_methods, sendto_recvfrom_failures_run_no_handler, .timeout = 5,
     .description = "S13 X3: sendto/recvfrom pass failures straight back as -errno, even "
                    "the disconnected set (EBADF on a closed channel): no handle_close")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_DGRAM), 0);
    cr_assert_eq(ac_sendto(d, "x", 1, NULL, 0), -EDESTADDRREQ);
    cr_assert_eq(ac_close(d), 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(AF_INET, &ss);
    cr_assert_eq(ac_sendto(d, "x", 1, (struct sockaddr *)&ss, len), -EBADF);
    char buf[4];
    cr_assert_eq(ac_recvfrom(d, buf, sizeof(buf), NULL, NULL), -EBADF);
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
}

/* ------------------------------------------------------------ S12 */

Test(socket_methods, close_clears_flags_keeps_addr_and_closing, .timeout = 5,
     .description = "S12 D5: close clears connected/accepting/connecting, keeps addr and "
                    "closing, leaves the map, closes the fd, runs no handler")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(AF_INET, &ss);
    cr_assert_eq(ac_bind(d, (struct sockaddr *)&ss, len), 0);
    cr_assert_eq(ac_listen(d, 5), 0);
    ac_set_connecting(d, true);
    ac_set_connected(d, true);
    ac_set_closing(d, true);
    int fd = ac_fd(d);

    cr_assert_eq(ac_close(d), 0);
    cr_assert_not(ac_is_connected(d));
    cr_assert_not(ac_is_accepting(d));
    cr_assert_not(ac_is_connecting(d));
    cr_assert(ac_is_closing(d), "S12: closing is the user's flag");
    cr_assert(ac_is_closed(d));
    socklen_t alen = 0;
    const struct sockaddr *a = ac_addr(d, &alen);
    cr_assert_not_null(a, "S12: addr is kept");
    cr_assert_eq(alen, len);
    cr_assert_eq(memcmp(a, &ss, len), 0);
    cr_assert_eq(ac_fd(d), -1);
    cr_assert_not(tk_fd_open(fd));
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_null(ac_map_get(m, fd));
    cr_assert_str_empty(tk_trace, "close runs no handler");
    cr_assert_eq(tk_finalized, 0, "X4: memory goes later, not inside close");
    tk_finish(m);
}

Test(socket_methods, close_twice_is_harmless, .timeout = 5,
     .description = "S12 X4: a second close returns 0 and does not close a descriptor that "
                    "reused the old number")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    int fd = ac_fd(d);
    cr_assert_eq(ac_close(d), 0);
    int again = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(again, fd, "the kernel hands out the lowest free number");
    cr_assert_eq(ac_close(d), 0);
    cr_assert(tk_fd_open(again), "the second close must not touch the reused number");
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_str_empty(tk_trace);
    close(again);
    tk_finish(m);
}

Test(socket_methods, close_without_socket, .timeout = 5,
     .description = "S12 X4: closing a dispatcher that never had a socket is fine and it "
                    "is finalized")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    cr_assert_eq(ac_close(d), 0);
    cr_assert(ac_is_closed(d));
    cr_assert_eq(ac_close(d), 0);
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
}

/* ------------------------------------------------------------ S13 */

Test(socket_methods, closed_dispatcher_send_recv_go_to_handle_close, .timeout = 5,
     .description = "S13 L15: on a closed channel send/recv fail with EBADF, which calls "
                    "handle_close again and returns 0")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_dispatcher(m, &traced, sv);
    cr_assert_eq(ac_close(d), 0);
    cr_assert_eq(ac_send(d, "x", 1), 0);
    cr_assert_str_eq(tk_trace, "close");
    char buf[4];
    cr_assert_eq(ac_recv(d, buf, sizeof(buf)), 0);
    cr_assert_str_eq(tk_trace, "close close");
    cr_assert(ac_is_closed(d));
    cr_assert_eq(tk_finalized, 0);
    tk_finish(m);
    close(sv[1]);
}

Test(socket_methods, closed_dispatcher_other_calls_fail_with_ebadf, .timeout = 5,
     .description = "S13 X4: other socket calls on a closed channel return -EBADF; "
                    "create_socket is refused (header deviation)")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &traced, "d");
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_close(d), 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(AF_INET, &ss);
    cr_assert_eq(ac_bind(d, (struct sockaddr *)&ss, len), -EBADF);
    cr_assert_eq(ac_listen(d, 1), -EBADF);
    cr_assert_eq(ac_accept(d, NULL, NULL), -EBADF);
    cr_assert_eq(ac_connect(d, (struct sockaddr *)&ss, len), -EBADF);
    cr_assert_eq(ac_shutdown(d, SHUT_RDWR), -EBADF);
    cr_assert_eq(ac_socket_error(d), -EBADF);
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), -EBADF);
    cr_assert_eq(ac_set_socket(d, 0), -EBADF);
    cr_assert_eq(ac_fd(d), -1);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
}

static int h_read_closes(ac_dispatcher *d)
{
    tk_tr("read");
    return ac_close(d);
}

static int h_write_sends(ac_dispatcher *d)
{
    tk_tr("write");
    ssize_t n = ac_send(d, "x", 1);
    return n < 0 ? (int)n : 0;
}

Test(socket_methods, closed_in_step_one_later_steps_still_run, .timeout = 5,
     .description = "S13 L13 W7: poll-style steps run on with no re-check: handle_write on "
                    "the closed channel sends (EBADF -> handle_close), then POLLHUP's "
                    "handle_close")
{
    static const ac_handlers h = {
        .handle_read = h_read_closes,
        .handle_write = h_write_sends,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_dispatcher(m, &h, sv);
    cr_assert_eq(ac_readwrite(d, POLLIN | POLLOUT | POLLHUP), 0);
    cr_assert_str_eq(tk_trace, "read write close close");
    cr_assert(ac_is_closed(d));
    /* select-style single dispatches on the closed channel. */
    tk_trace_clear();
    cr_assert_eq(ac_write(d), 0);
    cr_assert_str_eq(tk_trace, "write close");
    tk_finish(m);
    close(sv[1]);
}

/* ------------------------------------ CPython BaseTestAPI scenarios */

/* A small server: a listening dispatcher whose handle_accepted adopts the
 * connection with `conn_h` (BaseServer of test_asyncore.py). */
static const ac_handlers *conn_handlers;
static ac_dispatcher *last_conn;

static int h_accepted_adopt(ac_dispatcher *d, int fd, const struct sockaddr *addr,
                            socklen_t alen)
{
    (void)addr;
    (void)alen;
    ac_dispatcher *c = tk_new(ac_map_of(d), conn_handlers, "conn");
    cr_assert_eq(ac_attach(c, fd), 0);
    last_conn = c;
    socklen_t l = 0;
    tk_tr("accepted:c%da%d", ac_is_connected(c), ac_addr(c, &l) != NULL);
    return 0;
}

static const ac_handlers server_h = {
    .handle_accepted = h_accepted_adopt,
    .handle_close = h_close,
    .handle_error = h_error,
    .finalize = tk_finalize,
};

static socklen_t start_server(ac_map *m, int family, const ac_handlers *conn,
                              struct sockaddr_storage *ss)
{
    conn_handlers = conn;
    ac_dispatcher *srv = tk_new(m, &server_h, "srv");
    cr_assert_eq(ac_create_socket(srv, family, SOCK_STREAM), 0);
    ac_set_reuse_addr(srv);
    socklen_t len = family == AF_UNIX ? tk_unix_addr(ss, "srv") : tk_loopback(family, ss);
    cr_assert_eq(ac_bind(srv, (struct sockaddr *)ss, len), 0);
    cr_assert_eq(ac_listen(srv, 5), 0);
    if (family != AF_UNIX) {
        len = sizeof(*ss);
        cr_assert_eq(getsockname(ac_fd(srv), (struct sockaddr *)ss, &len), 0);
    }
    return len;
}

static bool flag_closes(void *arg) { return ((struct tk_node *)arg)->closes > 0; }

/* The server side closes every connection as soon as it has it. */
static int h_accepted_close(ac_dispatcher *d, int fd, const struct sockaddr *a, socklen_t l)
{
    (void)d;
    (void)a;
    (void)l;
    close(fd);
    return 0;
}

static void check_handle_close(int family)
{
    if (family == AF_INET6 && !tk_ipv6_ok())
        cr_skip_test("no IPv6 loopback");
    static const ac_handlers srv = {
        .handle_accepted = h_accepted_close,
        .handle_error = h_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    ac_dispatcher *l = tk_new(m, &srv, "srv");
    cr_assert_eq(ac_create_socket(l, family, SOCK_STREAM), 0);
    struct sockaddr_storage ss;
    socklen_t len = family == AF_UNIX ? tk_unix_addr(&ss, "srv") : tk_loopback(family, &ss);
    cr_assert_eq(ac_bind(l, (struct sockaddr *)&ss, len), 0);
    cr_assert_eq(ac_listen(l, 5), 0);
    if (family != AF_UNIX) {
        len = sizeof(ss);
        cr_assert_eq(getsockname(ac_fd(l), (struct sockaddr *)&ss, &len), 0);
    }
    ac_dispatcher *c = tk_new(m, &traced, "c");
    struct tk_node *n = tk_node(c);
    cr_assert_eq(ac_create_socket(c, family, SOCK_STREAM), 0);
    int rc = ac_connect(c, (struct sockaddr *)&ss, len);
    cr_assert_eq(rc, 0);
    cr_assert(tk_loop_until(m, flag_closes, n, 5.0));
    cr_assert_not_null(strstr(tk_trace, "close read:0"), "trace: %s", tk_trace);
    cr_assert_eq(n->errors, 0);
    tk_finish(m);
}

Test(socket_methods, peer_close_reaches_handle_close_inet, .timeout = 10,
     .description = "S11 D18: the server closes at once; the client's recv sees EOF and "
                    "handle_close runs (CPython test_handle_close)")
{
    check_handle_close(AF_INET);
}

Test(socket_methods, peer_close_reaches_handle_close_inet6, .timeout = 10,
     .description = "S11: test_handle_close over IPv6")
{
    check_handle_close(AF_INET6);
}

Test(socket_methods, peer_close_reaches_handle_close_unix, .timeout = 10,
     .description = "S11: test_handle_close over AF_UNIX")
{
    check_handle_close(AF_UNIX);
}

static int h_write_128(ac_dispatcher *d)
{
    static const char data[128];
    ssize_t n = ac_send(d, data, sizeof(data));
    return n < 0 ? (int)n : 0;
}

static int h_read_128_close(ac_dispatcher *d)
{
    char buf[128];
    (void)ac_recv(d, buf, sizeof(buf));
    return ac_close(d);
}

static void check_conn_broken(int family)
{
    if (family == AF_INET6 && !tk_ipv6_ok())
        cr_skip_test("no IPv6 loopback");
    signal(SIGPIPE, SIG_DFL);
    static const ac_handlers client = {
        .handle_write = h_write_128,
        .handle_connect = h_connect,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = tk_finalize,
    };
    static const ac_handlers conn = {
        .writable = never,
        .handle_read = h_read_128_close,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len = start_server(m, family, &conn, &ss);
    ac_dispatcher *c = tk_new(m, &client, "c");
    struct tk_node *n = tk_node(c);
    cr_assert_eq(ac_create_socket(c, family, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
    cr_assert(tk_loop_until(m, flag_closes, n, 5.0), "trace: %s", tk_trace);
    cr_assert_eq(n->errors, 0, "EPIPE/ECONNRESET are disconnections, not errors: %s",
                 tk_trace);
    tk_finish(m);
}

Test(socket_methods, broken_connection_reaches_handle_close_inet, .timeout = 10,
     .description = "S10 L15 X12: the client keeps sending after the server closed; "
                    "EPIPE/ECONNRESET end in handle_close, never handle_error, no SIGPIPE "
                    "(CPython test_handle_close_after_conn_broken)")
{
    check_conn_broken(AF_INET);
}

Test(socket_methods, broken_connection_reaches_handle_close_inet6, .timeout = 10,
     .description = "S10 L15: test_handle_close_after_conn_broken over IPv6")
{
    check_conn_broken(AF_INET6);
}

Test(socket_methods, broken_connection_reaches_handle_close_unix, .timeout = 10,
     .description = "S10 L15: test_handle_close_after_conn_broken over AF_UNIX")
{
    check_conn_broken(AF_UNIX);
}

static int h_conn_read(ac_dispatcher *d)
{
    char buf[64];
    ssize_t r = ac_recv(d, buf, sizeof(buf));
    tk_tr("read:%s", r > 0 ? "data" : r == 0 ? "0" : strerrorname_np((int)-r));
    return r < 0 ? (int)r : 0;
}

static int h_conn_write(ac_dispatcher *d)
{
    (void)d;
    tk_tr("write");
    return 0;
}

static bool conn_finalized(void *arg)
{
    (void)arg;
    return last_conn && tk_finalized >= 1;
}

static void check_quick_connect(int family)
{
    if (family == AF_INET6 && !tk_ipv6_ok())
        cr_skip_test("no IPv6 loopback");
    static const ac_handlers conn = {
        .handle_read = h_conn_read,
        .handle_write = h_conn_write,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len = start_server(m, family, &conn, &ss);
    int c = tk_connect_raw(&ss, len);
    struct linger lg = {1, 0};
    cr_assert_eq(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(c); /* reset while waiting in the accept queue */
    usleep(50 * 1000);
    cr_assert(tk_loop_until(m, conn_finalized, NULL, 5.0), "trace: %s", tk_trace);
    /* D4: getpeername fails with ENOTCONN: not connected, no addr.  Its
     * first read reports the reset (S11: handle_close).  Poll-style then
     * runs the write step on the closed channel and POLLHUP's handle_close
     * (L13, W7). */
    if (tk_is_select(m))
        cr_assert_str_eq(tk_trace, "accepted:c0a0 close read:0");
    else
        cr_assert_str_eq(tk_trace, "accepted:c0a0 close read:0 write close");
    tk_finish(m);
}

Test(socket_methods, reset_in_accept_queue_inet, .timeout = 10,
     .description = "S9 D4 S11 L13: a connection reset while in the accept queue is still "
                    "accepted; adopted, it is not connected and has no addr; its first "
                    "read reports the reset (CPython test_quick_connect)")
{
    check_quick_connect(AF_INET);
}

Test(socket_methods, reset_in_accept_queue_inet6, .timeout = 10,
     .description = "S9 D4 S11 L13: test_quick_connect over IPv6")
{
    check_quick_connect(AF_INET6);
}

static int h_read_flag(ac_dispatcher *d)
{
    tk_node(d)->reads++;
    char buf[2048];
    ssize_t r = ac_recv(d, buf, sizeof(buf));
    return r < 0 && r != -EAGAIN ? (int)r : 0;
}

static bool flag_reads(void *arg) { return ((struct tk_node *)arg)->reads > 0; }

static int h_accepted_send(ac_dispatcher *d, int fd, const struct sockaddr *a, socklen_t l)
{
    (void)a;
    (void)l;
    static const char x[1024];
    ac_dispatcher *c = tk_new(ac_map_of(d), &traced, "conn");
    cr_assert_eq(ac_attach(c, fd), 0);
    cr_assert_eq(ac_send(c, x, sizeof(x)), 1024);
    return 0;
}

static void check_handle_read(int family)
{
    if (family == AF_INET6 && !tk_ipv6_ok())
        cr_skip_test("no IPv6 loopback");
    static const ac_handlers srv = {
        .handle_accepted = h_accepted_send,
        .handle_error = h_error,
        .finalize = tk_finalize,
    };
    static const ac_handlers client = {
        .handle_read = h_read_flag,
        .handle_write = h_write_quiet,
        .handle_connect = h_connect,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    ac_dispatcher *l = tk_new(m, &srv, "srv");
    cr_assert_eq(ac_create_socket(l, family, SOCK_STREAM), 0);
    struct sockaddr_storage ss;
    socklen_t len = family == AF_UNIX ? tk_unix_addr(&ss, "srv") : tk_loopback(family, &ss);
    cr_assert_eq(ac_bind(l, (struct sockaddr *)&ss, len), 0);
    cr_assert_eq(ac_listen(l, 5), 0);
    if (family != AF_UNIX) {
        len = sizeof(ss);
        cr_assert_eq(getsockname(ac_fd(l), (struct sockaddr *)&ss, &len), 0);
    }
    ac_dispatcher *c = tk_new(m, &client, "c");
    cr_assert_eq(ac_create_socket(c, family, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
    cr_assert(tk_loop_until(m, flag_reads, tk_node(c), 5.0));
    cr_assert_eq(tk_node(c)->errors, 0);
    tk_finish(m);
}

Test(socket_methods, data_reaches_handle_read_inet, .timeout = 10,
     .description = "S10 S11: the accepted side sends 1024 bytes; the client's handle_read "
                    "runs (CPython test_handle_read)")
{
    check_handle_read(AF_INET);
}

Test(socket_methods, data_reaches_handle_read_inet6, .timeout = 10,
     .description = "S10 S11: test_handle_read over IPv6")
{
    check_handle_read(AF_INET6);
}

Test(socket_methods, data_reaches_handle_read_unix, .timeout = 10,
     .description = "S10 S11: test_handle_read over AF_UNIX")
{
    check_handle_read(AF_UNIX);
}
