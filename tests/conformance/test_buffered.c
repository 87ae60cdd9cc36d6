/* Conformance: the buffered sender, asyncore's dispatcher_with_send
 * (spec S14-S19), and the header's additions to it (chunk cap, water marks,
 * close_when_done, pending counts).  CPython's DispatcherWithSendTests
 * (test_send) is rewritten here, next to our own scenarios.
 *
 * Most tests use a socketpair: bytes a unix stream socket sent are at once
 * in the peer's receive queue (FIONREAD), so "one send attempt of at most
 * the chunk cap" can be checked exactly. */
#include "ac_testkit.h"

#include <pthread.h>
#include <signal.h>

static int h_close(ac_dispatcher *d)
{
    tk_node(d)->closes++;
    tk_tr("close");
    return ac_close(d);
}

static int h_error(ac_dispatcher *d, const ac_error *e)
{
    tk_node(d)->errors++;
    tk_tr("error:%s", strerrorname_np(e->err));
    return ac_default_handle_error(d, e);
}

static int h_connect(ac_dispatcher *d)
{
    tk_tr("connect:%d%d", ac_is_connected(d), ac_is_connecting(d));
    return 0;
}

/* S17 with a trace: handle_write is initiate_send. */
static int h_write_send(ac_dispatcher *d)
{
    tk_node(d)->writes++;
    tk_tr("write");
    return ac_initiate_send(d);
}

static int h_read(ac_dispatcher *d)
{
    char buf[4096];
    ssize_t r = ac_recv(d, buf, sizeof(buf));
    tk_tr("read:%zd", r);
    return r < 0 ? (int)r : 0;
}

static int h_high(ac_dispatcher *d)
{
    tk_tr("high");
    cr_assert_gt(ac_buffered_pending(d), 10000, "high water runs above the high mark");
    return 0;
}

static int h_low(ac_dispatcher *d)
{
    tk_tr("low");
    cr_assert_leq(ac_buffered_pending(d), 1000, "low water runs at or below the low mark");
    return 0;
}

static const ac_handlers sender = {
    .handle_write = h_write_send,
    .handle_read = h_read,
    .handle_connect = h_connect,
    .handle_close = h_close,
    .handle_error = h_error,
    .handle_high_water = h_high,
    .handle_low_water = h_low,
    .finalize = tk_finalize,
};

/* The buffered side on sv[0] (adopted: connected), raw peer on sv[1]. */
static ac_dispatcher *pair_sender(ac_map *m, const ac_handlers *h, int sv[2], int sndbuf)
{
    tk_socketpair(SOCK_STREAM, sv);
    if (sndbuf)
        cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    ac_dispatcher *d = tk_new_buffered(m, h, "d");
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    cr_assert(ac_is_connected(d));
    return d;
}

/* ------------------------------------------------------------ S14 */

Test(buffered, construction, .timeout = 5,
     .description = "S14 D3: a buffered dispatcher starts without socket, outside the map, "
                    "flags false, empty buffer")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new_buffered(m, &sender, "d");
    cr_assert_eq(ac_fd(d), -1);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_eq(ac_buffered_pending(d), 0);
    cr_assert_not(ac_is_connected(d));
    cr_assert_not(ac_is_accepting(d));
    cr_assert_not(ac_is_connecting(d));
    cr_assert_null(ac_addr(d, NULL));
    tk_finish(m);
}

Test(buffered, buffered_calls_refuse_plain_dispatchers, .timeout = 5,
     .description = "S14 X3: the buffered calls return -EINVAL on a plain dispatcher")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &sender, "plain");
    cr_assert_eq(ac_buffered_send(d, "x", 1), -EINVAL);
    cr_assert_eq(ac_initiate_send(d), -EINVAL);
    cr_assert_eq(ac_buffered_pending(d), 0);
    cr_assert_eq(ac_buffered_set_chunk(d, 10), -EINVAL);
    cr_assert_eq(ac_buffered_set_watermarks(d, 1, 2), -EINVAL);
    cr_assert_eq(ac_close_when_done(d), -EINVAL);
    ac_dispatcher *b = tk_new_buffered(m, &sender, "b");
    cr_assert_eq(ac_buffered_set_chunk(b, 0), -EINVAL);
    cr_assert_eq(ac_buffered_set_watermarks(b, 10, 5), -EINVAL, "low > high");
    cr_assert_eq(ac_buffered_set_watermarks(b, 10, 0), 0, "high 0 turns them off");
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
}

/* ------------------------------------------------------------ S15 */

Test(buffered, send_returns_zero_and_delivers, .timeout = 5,
     .description = "S15: send appends and attempts once; returns 0, not a byte count")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_sender(m, &sender, sv, 0);
    cr_assert_eq(ac_buffered_send(d, "hello", 5), 0);
    cr_assert_eq(ac_buffered_pending(d), 0);
    cr_assert_eq(tk_inq(sv[1]), 5);
    char buf[5];
    cr_assert_eq(read(sv[1], buf, 5), 5);
    cr_assert_eq(memcmp(buf, "hello", 5), 0);
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
    close(sv[1]);
}

Test(buffered, debug_logs_sending_line, .timeout = 5,
     .description = "S15 D23: with debug on, send logs one 'sending ...' line of type info; "
                    "without debug nothing is logged")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_sender(m, &sender, sv, 0);
    cr_assert_eq(ac_buffered_send(d, "quiet", 5), 0);
    cr_assert_eq(tk_log_lines, 0);
    ac_set_debug(d, true);
    cr_assert_eq(ac_buffered_send(d, "hello", 5), 0);
    cr_assert_eq(tk_log_lines, 1, "log: %s", tk_logbuf);
    cr_assert_eq(strncmp(tk_logbuf, "info: sending ", 14), 0, "log: %s", tk_logbuf);
    cr_assert_not_null(strstr(tk_logbuf, "hello"), "the line shows the data: %s", tk_logbuf);
    ac_set_debug(d, false);
    cr_assert_eq(ac_buffered_send(d, "again", 5), 0);
    cr_assert_eq(tk_log_lines, 1);
    char buf[15];
    cr_assert_eq(tk_read_full(sv[1], buf, 15, 1000), 15);
    cr_assert_eq(memcmp(buf, "quiethelloagain", 15), 0);
    tk_finish(m);
    close(sv[1]);
}

/* ------------------------------------------------------------ S16 */

Test(buffered, one_attempt_per_call_capped_at_65536, .timeout = 5,
     .description = "S16 X16: each send/initiate_send makes one attempt of at most 65536 "
                    "bytes from the front of the buffer")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_sender(m, &sender, sv, 4 << 20);
    static char data[200000];
    tk_fill(data, sizeof(data), 7);
    cr_assert_eq(ac_buffered_send(d, data, sizeof(data)), 0);
    cr_assert_eq(tk_inq(sv[1]), 65536);
    cr_assert_eq(ac_buffered_pending(d), 200000 - 65536);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(tk_inq(sv[1]), 2 * 65536);
    cr_assert_eq(ac_buffered_pending(d), 200000 - 2 * 65536);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(tk_inq(sv[1]), 3 * 65536);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(tk_inq(sv[1]), 200000);
    cr_assert_eq(ac_buffered_pending(d), 0);
    cr_assert_eq(ac_initiate_send(d), 0, "an empty buffer: a zero-length attempt");
    cr_assert_eq(tk_inq(sv[1]), 200000);
    static char got[200000];
    cr_assert_eq(tk_read_full(sv[1], got, sizeof(got), 2000), sizeof(got));
    cr_assert_eq(memcmp(got, data, sizeof(data)), 0);
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
    close(sv[1]);
}

Test(buffered, one_attempt_with_data_already_queued, .timeout = 5,
     .description = "S15 S16: appending to a non-empty buffer sends from the front, still "
                    "one attempt of at most the cap")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_sender(m, &sender, sv, 4 << 20);
    cr_assert_eq(ac_buffered_set_chunk(d, 1000), 0);
    static char a[1500], b[700];
    memset(a, 'a', sizeof(a));
    memset(b, 'b', sizeof(b));
    cr_assert_eq(ac_buffered_send(d, a, sizeof(a)), 0);
    cr_assert_eq(tk_inq(sv[1]), 1000);
    cr_assert_eq(ac_buffered_pending(d), 500);
    cr_assert_eq(ac_buffered_send(d, b, sizeof(b)), 0);
    cr_assert_eq(tk_inq(sv[1]), 2000, "500 'a' and 500 'b' in one attempt");
    cr_assert_eq(ac_buffered_pending(d), 200);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(ac_buffered_pending(d), 0);
    char got[2200];
    cr_assert_eq(tk_read_full(sv[1], got, sizeof(got), 1000), sizeof(got));
    cr_assert_eq(memcmp(got, a, 1500), 0);
    cr_assert_eq(memcmp(got + 1500, b, 700), 0);
    tk_finish(m);
    close(sv[1]);
}

Test(buffered, empty_buffer_still_attempts_a_send, .timeout = 5,
     .description = "S16 S13: initiate_send attempts a (zero-length) send even with an empty "
                    "buffer: on a closed channel that is EBADF, hence handle_close")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_sender(m, &sender, sv, 0);
    cr_assert_eq(ac_close(d), 0);
    cr_assert_str_empty(tk_trace);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_str_eq(tk_trace, "close");
    tk_finish(m);
    close(sv[1]);
}

Test(buffered, propagated_failure_keeps_the_data, .timeout = 5,
     .description = "S15 S16: a failure send propagates (EDESTADDRREQ) is returned and the "
                    "buffer keeps the appended data")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new_buffered(m, &sender, "d");
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_DGRAM), 0);
    cr_assert_eq(ac_buffered_send(d, "abc", 3), -EDESTADDRREQ);
    cr_assert_eq(ac_buffered_pending(d), 3, "S15: append first, then the attempt fails");
    cr_assert_eq(ac_initiate_send(d), -EDESTADDRREQ);
    cr_assert_eq(ac_buffered_pending(d), 3, "S16: a propagated failure leaves the buffer");
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
}

Test(buffered, send_on_closed_channel, .timeout = 5,
     .description = "S15 S13: send on a closed buffered channel appends, the attempt fails "
                    "with EBADF, handle_close runs, 0 is returned")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_sender(m, &sender, sv, 0);
    cr_assert_eq(ac_close(d), 0);
    cr_assert_eq(ac_buffered_send(d, "abc", 3), 0);
    cr_assert_str_eq(tk_trace, "close");
    cr_assert_eq(ac_buffered_pending(d), 3);
    tk_finish(m);
    close(sv[1]);
}

/* ------------------------------------------------------- S17, S18 */

Test(buffered, one_chunk_per_write_event_until_empty, .timeout = 5,
     .description = "S16 S17 S18: every write event sends one chunk; a connected channel "
                    "with an empty buffer gets no write event")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_sender(m, &sender, sv, 4 << 20);
    cr_assert_eq(ac_buffered_set_chunk(d, 1000), 0);
    cr_assert_eq(ac_poll(m, 0.02), 0);
    cr_assert_str_empty(tk_trace, "S18: connected and empty: not writable");

    static char data[5000];
    tk_fill(data, sizeof(data), 3);
    cr_assert_eq(ac_buffered_send(d, data, sizeof(data)), 0);
    cr_assert_eq(ac_buffered_pending(d), 4000);
    for (int i = 3; i >= 0; i--) {
        cr_assert_eq(ac_poll(m, 1.0), 0);
        cr_assert_eq(ac_buffered_pending(d), (size_t)i * 1000);
    }
    cr_assert_str_eq(tk_trace, "write write write write");
    cr_assert_eq(ac_poll(m, 0.02), 0);
    cr_assert_eq(ac_poll(m, 0.02), 0);
    cr_assert_str_eq(tk_trace, "write write write write", "empty again: no write event");

    cr_assert_eq(ac_buffered_send(d, data, 2500), 0);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_eq(ac_poll(m, 0.02), 0);
    cr_assert_str_eq(tk_trace, "write write write write write write");
    cr_assert_eq(tk_inq(sv[1]), 7500);
    tk_finish(m);
    close(sv[1]);
}

Test(buffered, not_connected_is_writable, .timeout = 5,
     .description = "S18: a channel that is not connected is writable even with an empty "
                    "buffer")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new_buffered(m, &sender, "d");
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_DGRAM), 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(AF_INET, &ss);
    cr_assert_eq(ac_bind(d, (struct sockaddr *)&ss, len), 0);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    /* Each write event's initiate_send is a zero-length send: on an
     * unconnected datagram socket that fails with EDESTADDRREQ, which the
     * guard routes to handle_error (default: close).  So one event. */
    cr_assert_str_eq(tk_trace, "write error:EDESTADDRREQ close");
    tk_finish(m);
}

Test(buffered, not_connected_flag_is_writable, .timeout = 5,
     .description = "S18: writable() follows the connected flag, not the kernel: a socket "
                    "connected behind set_socket's back is still 'not connected', so every "
                    "iteration brings a write event (a zero-length send each)")
{
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(AF_INET, &ss);
    int holder = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(bind(holder, (struct sockaddr *)&ss, len), 0);
    len = sizeof(ss);
    cr_assert_eq(getsockname(holder, (struct sockaddr *)&ss, &len), 0);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&ss, len), 0);
    ac_dispatcher *d = tk_new_buffered(m, &sender, "d");
    cr_assert_eq(ac_set_socket(d, fd), 0);
    cr_assert_not(ac_is_connected(d));
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "write write write");
    ac_set_connected(d, true);
    cr_assert_eq(ac_poll(m, 0.02), 0);
    cr_assert_str_eq(tk_trace, "write write write", "connected and empty: not writable");
    cr_assert_eq(ac_buffered_send(d, "", 0), 0);
    tk_finish(m);
    close(holder);
}

static bool no_read(ac_dispatcher *d)
{
    (void)d;
    return false;
}

static int h_connect_quiet(ac_dispatcher *d)
{
    (void)d;
    return 0;
}

struct capture {
    int lfd;
    char buf[256];
    size_t len;
};

/* CPython's capture_server: accept one client, read until EOF. */
static void *capture_server(void *arg)
{
    struct capture *c = arg;
    int s = accept(c->lfd, NULL, NULL);
    if (s < 0)
        return NULL;
    for (;;) {
        ssize_t n = read(s, c->buf + c->len, sizeof(c->buf) - c->len);
        if (n <= 0)
            break;
        c->len += (size_t)n;
    }
    close(s);
    return NULL;
}

Test(buffered, send_with_reading_disabled, .timeout = 10,
     .description = "S15 S17 S18: CPython test_send: a buffered client whose readable() is "
                    "false sends data twice and a newline; the server gets them in order")
{
    static const ac_handlers noread = {
        .readable = no_read,
        .handle_connect = h_connect_quiet,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    struct capture cap = {0};
    struct sockaddr_storage ss;
    socklen_t len;
    cap.lfd = tk_listener(AF_INET, &ss, &len, 5);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, capture_server, &cap), 0);

    const char *data = "Suppose there isn't a 16-ton weight?";
    ac_dispatcher *d = tk_new_buffered(m, &noread, "d");
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(d, (struct sockaddr *)&ss, len), 0);
    usleep(100 * 1000);
    cr_assert_eq(ac_buffered_send(d, data, strlen(data)), 0);
    cr_assert_eq(ac_buffered_send(d, data, strlen(data)), 0);
    cr_assert_eq(ac_buffered_send(d, "\n", 1), 0);
    for (int n = 1000; ac_buffered_pending(d) && n > 0; n--)
        cr_assert_eq(ac_poll(m, 0.01), 0);
    cr_assert_eq(ac_buffered_pending(d), 0);
    cr_assert_eq(ac_close(d), 0);
    pthread_join(t, NULL);
    char want[256];
    snprintf(want, sizeof(want), "%s%s\n", data, data);
    cr_assert_eq(cap.len, strlen(want));
    cr_assert_eq(memcmp(cap.buf, want, cap.len), 0);
    tk_finish(m);
    close(cap.lfd);
}

/* ------------------------------------------------------------ S19 */

/* Fill sv[0] until the kernel takes nothing more; returns what it took. */
static size_t fill_kernel(ac_dispatcher *d, int peer)
{
    static char junk[65536];
    memset(junk, 'k', sizeof(junk));
    for (int i = 0; i < 1000 && ac_buffered_pending(d) == 0; i++)
        cr_assert_eq(ac_buffered_send(d, junk, sizeof(junk)), 0);
    cr_assert_gt(ac_buffered_pending(d), 0, "the kernel never filled up");
    return (size_t)tk_inq(peer);
}

Test(buffered, close_drops_the_buffer, .timeout = 5,
     .description = "S19: close does not flush: the peer gets what the kernel took, then EOF")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_sender(m, &sender, sv, 8192);
    size_t in_kernel = fill_kernel(d, sv[1]);
    size_t pending = ac_buffered_pending(d);
    cr_assert_gt(pending, 0);
    cr_assert_eq(ac_close(d), 0);
    cr_assert_str_empty(tk_trace);
    cr_assert_eq(tk_drain(sv[1], NULL, 0), in_kernel);
    char c;
    cr_assert_eq(read(sv[1], &c, 1), 0, "EOF after the kernel's bytes");
    tk_finish(m);
    close(sv[1]);
}

Test(buffered, peer_eof_drops_the_buffer, .timeout = 5,
     .description = "S19 S11 W12: EOF from the peer closes the channel; buffered bytes are "
                    "dropped")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_sender(m, &sender, sv, 8192);
    struct tk_node *n = tk_node(d);
    size_t in_kernel = fill_kernel(d, sv[1]);
    shutdown(sv[1], SHUT_WR);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "close read:0");
    cr_assert_eq(n->finalized, 1);
    cr_assert_eq(tk_drain(sv[1], NULL, 0), in_kernel);
    tk_finish(m);
    close(sv[1]);
}

Test(buffered, never_connected_tcp_send_closes, .timeout = 5,
     .description = "S19 S10: sending on a TCP socket that never connected fails with EPIPE: "
                    "handle_close, and the data stays in the dead buffer")
{
    signal(SIGPIPE, SIG_DFL);
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new_buffered(m, &sender, "d");
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_buffered_send(d, "x", 1), 0);
    cr_assert_str_eq(tk_trace, "close");
    cr_assert(ac_is_closed(d));
    cr_assert_eq(ac_buffered_pending(d), 1);
    tk_finish(m);
}

static bool peer_has(void *arg)
{
    int *fd = arg;
    return tk_wait_fd(*fd, POLLIN, 0);
}

Test(buffered, data_queued_during_handshake_leaves_after_connect, .timeout = 15,
     .description = "S19 S7 D7 D8: data sent while the handshake is pending is buffered "
                    "(EAGAIN) and leaves at the first write event after handle_connect")
{
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = tk_listener(AF_INET, &ss, &len, 0);
    int filler = tk_connect_raw(&ss, len); /* accept queue full: our SYN waits */
    ac_dispatcher *d = tk_new_buffered(m, &sender, "d");
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(d, (struct sockaddr *)&ss, len), 0);
    cr_assert_eq(ac_buffered_send(d, "hello", 5), 0);
    cr_assert_eq(ac_buffered_pending(d), 5, "the handshake is pending: nothing sent");
    cr_assert_str_empty(tk_trace);

    int f = accept(lfd, NULL, NULL); /* room again: the SYN retransmit gets through */
    cr_assert_geq(f, 0);
    close(f);
    close(filler);
    double end = tk_clock() + 8.0;
    while (ac_buffered_pending(d) && tk_clock() < end)
        cr_assert_eq(ac_poll(m, 0.1), 0);
    cr_assert_eq(ac_buffered_pending(d), 0);
    cr_assert_str_eq(tk_trace, "connect:01 write");
    int s = accept(lfd, NULL, NULL);
    cr_assert_geq(s, 0);
    cr_assert(tk_loop_until(m, peer_has, &s, 2.0));
    char buf[8];
    cr_assert_eq(read(s, buf, sizeof(buf)), 5);
    cr_assert_eq(memcmp(buf, "hello", 5), 0);
    cr_assert_eq(ac_poll(m, 0.05), 0);
    cr_assert_eq(ac_poll(m, 0.05), 0);
    cr_assert_str_eq(tk_trace, "connect:01 write",
                     "S18: connected and drained: no more "
                     "write events");
    close(s);
    tk_finish(m);
    close(lfd);
}

/* ----------------------------------------------------- extensions */

Test(buffered, water_marks, .timeout = 5,
     .description = "header (W3): handle_high_water once when the buffer rises above high, "
                    "handle_low_water once when it drains to low; again on the next rise")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_sender(m, &sender, sv, 4 << 20);
    cr_assert_eq(ac_buffered_set_chunk(d, 1000), 0);
    cr_assert_eq(ac_buffered_set_watermarks(d, 1000, 10000), 0);
    static char data[20000];
    cr_assert_eq(ac_buffered_send(d, data, 5000), 0);
    cr_assert_eq(ac_buffered_pending(d), 4000);
    cr_assert_str_empty(tk_trace);
    cr_assert_eq(ac_buffered_send(d, data, 8000), 0);
    cr_assert_str_eq(tk_trace, "high");
    cr_assert_eq(ac_buffered_pending(d), 11000);
    cr_assert_eq(ac_buffered_send(d, data, 1000), 0);
    cr_assert_str_eq(tk_trace, "high", "once per rise");
    cr_assert_eq(ac_buffered_pending(d), 11000);
    while (ac_buffered_pending(d) > 1000)
        cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "high write write write write write write write write write "
                               "write low");
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_eq(ac_buffered_pending(d), 0);
    cr_assert_str_eq(tk_trace,
                     "high write write write write write write write write write "
                     "write low write",
                     "low fires once");
    tk_trace_clear();
    cr_assert_eq(ac_buffered_send(d, data, 20000), 0);
    cr_assert_str_eq(tk_trace, "high", "a new rise fires again");
    tk_trace_clear();
    cr_assert_eq(ac_buffered_set_watermarks(d, 0, 0), 0);
    while (ac_buffered_pending(d))
        cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_null(strstr(tk_trace, "low"), "turned off: %s", tk_trace);
    tk_finish(m);
    close(sv[1]);
}

Test(buffered, close_when_done_flushes_then_closes, .timeout = 5,
     .description = "header (C15 for the buffered sender, W12): close_when_done waits for the "
                    "buffer to drain, then handle_close; later sends get -EPIPE")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_sender(m, &sender, sv, 4 << 20);
    cr_assert_eq(ac_buffered_set_chunk(d, 1000), 0);
    static char data[5000];
    tk_fill(data, sizeof(data), 11);
    cr_assert_eq(ac_buffered_send(d, data, sizeof(data)), 0);
    cr_assert_eq(ac_close_when_done(d), 0);
    cr_assert_eq(ac_buffered_send(d, "late", 4), -EPIPE);
    cr_assert_eq(ac_buffered_pending(d), 4000);
    cr_assert_eq(ac_loop(m, 1.0, 10), 0);
    cr_assert_str_eq(tk_trace, "write write write write close");
    cr_assert_eq(ac_map_count(m), 0);
    char got[5001];
    cr_assert_eq(tk_read_full(sv[1], got, sizeof(got), 1000), 5000, "all of it, then EOF");
    cr_assert_eq(memcmp(got, data, 5000), 0);
    tk_finish(m);
    close(sv[1]);
}

Test(buffered, close_when_done_with_empty_buffer, .timeout = 5,
     .description = "header: close_when_done on an empty buffer closes at the next write "
                    "event")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_sender(m, &sender, sv, 0);
    struct tk_node *n = tk_node(d);
    cr_assert_eq(ac_close_when_done(d), 0);
    cr_assert_str_empty(tk_trace, "not inside close_when_done itself");
    cr_assert_not(ac_is_closed(d));
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "write close");
    cr_assert_eq(n->closes, 1);
    cr_assert_eq(n->finalized, 1, "closed in the iteration, finalized after it");
    char c;
    cr_assert_eq(read(sv[1], &c, 1), 0);
    tk_finish(m);
    close(sv[1]);
}

Test(buffered, partial_sends_account_for_every_byte, .timeout = 10,
     .description = "S16 X16: with a small SO_SNDBUF, pending + bytes the peer has seen == "
                    "bytes given, after every call")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_sender(m, &sender, sv, 4096);
    static char data[100000], got[100000];
    tk_fill(data, sizeof(data), 5);
    cr_assert_eq(ac_buffered_send(d, data, sizeof(data)), 0);
    size_t seen = (size_t)tk_inq(sv[1]);
    cr_assert_gt(ac_buffered_pending(d), 0, "the kernel cannot take 100000 bytes");
    cr_assert_eq(ac_buffered_pending(d) + seen, sizeof(data));
    size_t read_total = 0;
    tk_set_nonblocking(sv[1]);
    while (read_total < sizeof(data)) {
        ssize_t n = read(sv[1], got + read_total, 1500);
        if (n > 0)
            read_total += (size_t)n;
        cr_assert_eq(ac_initiate_send(d), 0);
        cr_assert_eq(ac_buffered_pending(d) + read_total + (size_t)tk_inq(sv[1]), sizeof(data));
    }
    cr_assert_eq(ac_buffered_pending(d), 0);
    cr_assert_eq(memcmp(got, data, sizeof(data)), 0);
    tk_finish(m);
    close(sv[1]);
}

/* The slow reader: at most node->chunk bytes per read event. */
static int h_slow_read(ac_dispatcher *d)
{
    struct tk_node *n = tk_node(d);
    char buf[4096];
    size_t want = n->chunk < sizeof(buf) ? n->chunk : sizeof(buf);
    ssize_t r = ac_recv(d, buf, want);
    if (r > 0) {
        cr_assert_leq(n->len + (size_t)r, n->cap);
        memcpy(n->buf + n->len, buf, (size_t)r);
        n->len += (size_t)r;
    }
    return r < 0 && r != -EAGAIN ? (int)r : 0;
}

static bool reader_done(void *arg)
{
    struct tk_node *n = arg;
    return n->len == n->cap;
}

Test(buffered, large_transfer_byte_exact, .timeout = 60,
     .description = "S15-S18 X16: 4 MiB in random chunks through a socketpair with a small "
                    "SO_SNDBUF to a slow reader in the same loop arrive byte-exact")
{
    static const ac_handlers reader = {
        .handle_read = h_slow_read,
        .handle_write = NULL,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = tk_finalize,
    };
    static const ac_handlers quiet_sender = {
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *w = pair_sender(m, &quiet_sender, sv, 16384);
    ac_dispatcher *r = tk_new(m, &reader, "r");
    cr_assert_eq(ac_attach(r, sv[1]), 0);
    const size_t total = 4u << 20;
    char *data = malloc(total);
    struct tk_node *rn = tk_node(r);
    rn->buf = malloc(total);
    rn->cap = total;
    rn->chunk = 3000;
    tk_fill(data, total, 12345);

    uint32_t seed = 99;
    size_t given = 0;
    while (given < total) {
        size_t n = 1 + tk_rand(&seed) % 100000;
        if (n > total - given)
            n = total - given;
        cr_assert_eq(ac_buffered_send(w, data + given, n), 0);
        given += n;
        for (int i = tk_rand(&seed) % 4; i > 0; i--)
            cr_assert_eq(ac_poll(m, 0), 0);
    }
    cr_assert(tk_loop_until(m, reader_done, rn, 45.0), "got %zu of %zu", rn->len, total);
    cr_assert_eq(ac_buffered_pending(w), 0);
    cr_assert_eq(memcmp(rn->buf, data, total), 0, "byte-exact");
    cr_assert_str_empty(tk_trace);
    free(data);
    free(rn->buf);
    tk_finish(m);
}
