/* Conformance: setting a dispatcher's socket up (spec S1-S6):
 * create_socket, set_socket, add_channel and del_channel,
 * set_reuse_addr, listen and bind; CPython's test_create_socket, test_bind,
 * test_set_reuse_addr and test_connection_attributes.
 * Backend-specific expectations look at ac_map_poller_name().  The rig is
 * tests/support/socket_rig.h. */
#include "socket_rig.h"

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
