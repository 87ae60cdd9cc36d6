/* Conformance: CPython test_asyncore.py's BaseTestAPI scenarios over a
 * real server and client (spec S9-S11, D4, D18, L13, L15, X12):
 * test_handle_close, test_handle_close_after_conn_broken,
 * test_quick_connect and test_handle_read, for each address family.
 * Backend-specific expectations look at ac_map_poller_name().  The rig is
 * tests/support/socket_rig.h. */
#include "socket_rig.h"

/* ------------------------------------ CPython BaseTestAPI scenarios */

/* A small server: a listening dispatcher whose handle_accepted adopts the
 * connection with `conn_h` (BaseServer of test_asyncore.py). */
static const ac_handlers *conn_handlers;
static ac_dispatcher *last_conn;

static int h_accepted_adopt(ac_dispatcher *d, int fd, const struct sockaddr *addr, socklen_t alen)
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
        .writable = tk_never,
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
    cr_assert_eq(n->errors, 0, "EPIPE/ECONNRESET are disconnections, not errors: %s", tk_trace);
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
