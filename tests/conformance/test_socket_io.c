/* Conformance: a dispatcher's socket I/O and its end (spec S10-S13): send,
 * recv, sendto and recvfrom, close, and using a closed channel.
 * Backend-specific expectations look at ac_map_poller_name().  The rig is
 * tests/support/socket_rig.h. */
#include "socket_rig.h"

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
