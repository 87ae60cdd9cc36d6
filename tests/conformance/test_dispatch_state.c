/* Conformance: dispatcher state (spec D1-D5): the fields of a new
 * dispatcher, flags that change independently, construction without and
 * with a socket (D4: a connected socket is connected) and the state
 * changes of bind, listen, connect, accept and close; CPython's test_basic
 * and test_connection_attributes (the D4 angle).  The rig is
 * tests/support/dispatch_rig.h. */
#include "dispatch_rig.h"

/* ================================================================ D1-D5 */

Test(dispatch, fields_of_a_new_dispatcher, .timeout = 5,
     .description = "D1 D3 D22: a new dispatcher: no socket, no descriptor, not in the map, "
                    "four flags false, addr none, no (family, type), its map, ignore_log_types "
                    "= {warning}; create_socket remembers (family, type) and changes no flag")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &tr_h, "d");
    cr_assert_eq(ac_fd(d), -1);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_not(ac_is_connected(d));
    cr_assert_not(ac_is_accepting(d));
    cr_assert_not(ac_is_connecting(d));
    cr_assert_not(ac_is_closing(d));
    cr_assert_not(ac_is_closed(d));
    socklen_t alen = 77;
    cr_assert_null(ac_addr(d, &alen));
    cr_assert_eq(alen, 0);
    cr_assert_eq(ac_family(d), 0);
    cr_assert_eq(ac_socktype(d), 0);
    cr_assert_eq(ac_map_of(d), m);
    cr_assert_eq(ac_handlers_of(d), &tr_h);
    cr_assert_eq(ac_user(d), tk_nodes[0]);

    /* ignore_log_types defaults to {"warning"}: nothing else is dropped. */
    ac_log_info(d, "dropped", "warning");
    ac_log_info(d, "kept", "info");
    ac_log_info(d, "kept too", "error");
    cr_assert_str_eq(tk_logbuf, "info: kept\nerror: kept too\n");

    cr_assert_eq(ac_create_socket(d, AF_INET6, SOCK_DGRAM), 0);
    cr_assert_eq(ac_family(d), AF_INET6);
    cr_assert_eq(ac_socktype(d), SOCK_DGRAM);
    cr_assert_str_eq(flags_of(d), "000");
    cr_assert_not(ac_is_closing(d));
    cr_assert_null(ac_addr(d, NULL));
    cr_assert_eq(ac_map_get(m, ac_fd(d)), d);
    cr_assert_str_empty(tk_trace);
    finish(m);
}

Test(dispatch, default_map_when_none_is_given, .timeout = 5,
     .description = "D1 L1: a channel constructed without a map belongs to the default map "
                    "and enters it when it gets a socket")
{
    ac_set_log_hook(tk_log_hook, NULL);
    struct tk_node *n = tk_node_new("d");
    ac_dispatcher *d = ac_dispatcher_new(NULL, &tr_h, n);
    cr_assert_not_null(d);
    n->d = d;
    tk_created++;
    ac_map *dm = ac_default_map();
    cr_assert_not_null(dm);
    cr_assert_eq(ac_map_of(d), dm);
    size_t before = ac_map_count(dm);
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_map_count(dm), before + 1);
    cr_assert_eq(ac_map_get(NULL, ac_fd(d)), d);
    finish(dm);
}

Test(dispatch, flags_are_independent, .timeout = 5,
     .description = "D2: the four flags are separate booleans: setting one changes no other, "
                    "any combination can exist")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &tr_h, "d");
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    void (*set[4])(ac_dispatcher *, bool) = {ac_set_connected, ac_set_accepting, ac_set_connecting,
                                             ac_set_closing};
    bool (*get[4])(const ac_dispatcher *) = {ac_is_connected, ac_is_accepting, ac_is_connecting,
                                             ac_is_closing};
    for (unsigned bits = 0; bits < 16; bits++) {
        for (int i = 0; i < 4; i++)
            set[i](d, (bits >> i) & 1u);
        for (int i = 0; i < 4; i++)
            cr_assert_eq(get[i](d), (bool)((bits >> i) & 1u), "combination %u, flag %d", bits, i);
        /* Toggle each one alone and back. */
        for (int i = 0; i < 4; i++) {
            set[i](d, !((bits >> i) & 1u));
            for (int j = 0; j < 4; j++) {
                bool want = (bool)((bits >> j) & 1u);
                if (j == i)
                    want = !want;
                cr_assert_eq(get[j](d), want, "combination %u, toggled %d, flag %d", bits, i, j);
            }
            set[i](d, (bits >> i) & 1u);
        }
    }
    cr_assert_str_empty(tk_trace);
    finish(m);
}

Test(dispatch, accepting_and_connecting_together, .timeout = 5,
     .description = "D2 D6 D7 D11: accepting-and-connecting is a valid state; accepting "
                    "wins: read -> handle_accept only, write dropped, no connect completion")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &tr_h, "d");
    ac_set_connected(d, false);
    ac_set_accepting(d, true);
    ac_set_connecting(d, true);
    cr_assert_eq(ac_handle_read_event(d), 0);
    cr_assert_eq(ac_handle_write_event(d), 0);
    cr_assert_str_eq(tk_trace, "accept");
    cr_assert_str_eq(flags_of(d), "011");
    finish(m);
}

Test(dispatch, closing_is_never_touched_by_the_library, .timeout = 10,
     .description = "D2 D5 S12: closing is the user's flag: connect, its completion, listen "
                    "and close leave it as the user set it (true or false)")
{
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int l = tk_listener(AF_INET, &ss, &len, 5);
    for (int on = 0; on < 2; on++) {
        ac_dispatcher *c = tk_new(m, &tr_h, "c");
        ac_set_closing(c, on);
        cr_assert_eq(ac_create_socket(c, AF_INET, SOCK_STREAM), 0);
        cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
        cr_assert_eq(ac_is_closing(c), (bool)on);
        cr_assert(tk_loop_until(m, connected_now, c, 3.0));
        cr_assert_eq(ac_is_closing(c), (bool)on);
        cr_assert_eq(ac_close(c), 0);
        cr_assert_eq(ac_is_closing(c), (bool)on);

        ac_dispatcher *s = tk_new(m, &tr_h, "s");
        ac_set_closing(s, on);
        cr_assert_eq(ac_create_socket(s, AF_INET, SOCK_STREAM), 0);
        struct sockaddr_storage any;
        socklen_t alen = tk_loopback(AF_INET, &any);
        cr_assert_eq(ac_bind(s, (struct sockaddr *)&any, alen), 0);
        cr_assert_eq(ac_listen(s, 5), 0);
        cr_assert_eq(ac_is_closing(s), (bool)on);
        cr_assert_eq(ac_close(s), 0);
        cr_assert_eq(ac_is_closing(s), (bool)on);
        tk_trace_clear();
    }
    close(l);
    finish(m);
}

Test(dispatch, adopt_connected_tcp_socket, .timeout = 5,
     .description = "D4 D5 (CPython test_connection_attributes, adopted side): a connected "
                    "blocking socket becomes non-blocking, registered, connected, addr = peer "
                    "address; accepting and connecting stay false")
{
    ac_map *m = tk_map();
    int c, s;
    tk_tcp_pair(&c, &s);
    cr_assert_not(tk_nonblocking(s));
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    cr_assert_eq(getpeername(s, (struct sockaddr *)&peer, &plen), 0);
    ac_dispatcher *d = tk_new(m, &tr_h, "d");
    cr_assert_eq(ac_attach(d, s), 0);
    cr_assert(tk_nonblocking(s));
    cr_assert_eq(ac_fd(d), s);
    cr_assert_eq(ac_map_get(m, s), d);
    cr_assert_str_eq(flags_of(d), "100");
    socklen_t alen = 0;
    const struct sockaddr *a = ac_addr(d, &alen);
    cr_assert_not_null(a);
    cr_assert_eq(alen, plen);
    cr_assert_eq(memcmp(a, &peer, plen), 0);
    cr_assert_str_empty(tk_trace);
    finish(m);
    close(c);
}

Test(dispatch, adopt_unconnected_sockets, .timeout = 5,
     .description = "D4: getpeername failing with ENOTCONN (unconnected stream, datagram) "
                    "leaves connected false and addr none; construction succeeds")
{
    ac_map *m = tk_map();
    int types[2] = {SOCK_STREAM, SOCK_DGRAM};
    for (int i = 0; i < 2; i++) {
        int fd = socket(AF_INET, types[i] | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        ac_dispatcher *d = tk_new(m, &tr_h, "d");
        cr_assert_eq(ac_attach(d, fd), 0);
        cr_assert(tk_nonblocking(fd));
        cr_assert_eq(ac_map_get(m, fd), d);
        cr_assert_str_eq(flags_of(d), "000");
        cr_assert_null(ac_addr(d, NULL));
    }
    cr_assert_eq(ac_map_count(m), 2);
    finish(m);
}

Test(dispatch, adopt_non_socket_fails, .timeout = 5,
     .description = "D4 X3: a getpeername failure other than ENOTCONN/EINVAL (ENOTSOCK on a "
                    "pipe) makes construction fail: unregistered, the descriptor is the "
                    "caller's")
{
    ac_map *m = tk_map();
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    ac_dispatcher *d = tk_new(m, &tr_h, "d");
    int rc = ac_attach(d, p[0]);
    cr_assert_eq(rc, -ENOTSOCK, "got %d", rc);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_null(ac_map_get(m, p[0]));
    cr_assert_eq(ac_fd(d), -1);
    cr_assert(tk_fd_open(p[0]), "the caller keeps the descriptor");
    cr_assert_str_eq(flags_of(d), "000");
    cr_assert_null(ac_addr(d, NULL));
    cr_assert_str_empty(tk_trace);
    finish(m);
    close(p[0]);
    close(p[1]);
}

static int acc_close(ac_dispatcher *d)
{
    tk_node(d)->accepts++;
    int fd = ac_accept(d, NULL, NULL);
    tk_tr("accept:%s", fd >= 0 ? "fd" : strerrorname_np(-fd));
    if (fd >= 0)
        close(fd);
    return 0;
}

static int read_quiet(ac_dispatcher *d)
{
    tk_node(d)->reads++;
    tk_tr("read");
    return 0;
}

Test(dispatch, adopted_listener_is_not_accepting, .timeout = 10,
     .description = "D4 D6: an adopted listening socket is not connected, has no addr and is "
                    "not accepting: a pending connection reaches handle_read; once the user "
                    "sets accepting, handle_accept")
{
    static const ac_handlers h = {
        .handle_read = read_quiet,
        .handle_write = t_write,
        .handle_accept = acc_close,
        .handle_close = t_close,
        .handle_error = t_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = tk_listener(AF_INET, &ss, &len, 5);
    ac_dispatcher *l = tk_new(m, &h, "l");
    cr_assert_eq(ac_attach(l, lfd), 0);
    cr_assert_str_eq(flags_of(l), "000");
    cr_assert_null(ac_addr(l, NULL));

    int c1 = tk_connect_raw(&ss, len);
    cr_assert(tk_wait_fd(lfd, POLLIN, 2000));
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "read");

    tk_trace_clear();
    ac_set_accepting(l, true);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "accept:fd");
    close(c1);
    finish(m);
}
