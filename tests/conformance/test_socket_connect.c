/* Conformance: connecting and accepting (spec S7-S9): connect in
 * progress, at once and failing at once, the asynchronous connect failure,
 * and accept; CPython's test_handle_connect and test_handle_accepted.
 * Backend-specific expectations look at ac_map_poller_name().  The rig is
 * tests/support/socket_rig.h. */
#include "socket_rig.h"

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
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0,
                 "loopback refusal starts "
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

Test(socket_methods, readable_only_connecting_learns_completion_on_read, .timeout = 10,
     .description = "S8 D6: a connecting channel that is not writable learns of the "
                    "completion at its first read event: handle_connect, then handle_read")
{
    static const ac_handlers h = {
        .writable = tk_never,
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
