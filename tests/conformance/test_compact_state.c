/* Conformance: what the compact dispatcher keeps (issue 10, idle memory).
 * The address is held in the dispatcher when it fits (IPv4) and on its own
 * otherwise (IPv6, AF_UNIX); either way it is D1's addr, kept after close.
 * The buffered sender's queue comes and goes with its bytes; the chunk cap
 * and the water marks stay. */
#include "ac_testkit.h"

static const ac_handlers quiet = {
    .finalize = tk_finalize,
};

static void check_addr(ac_dispatcher *d, const struct sockaddr_storage *want, socklen_t wlen)
{
    socklen_t len = 0;
    const struct sockaddr *a = ac_addr(d, &len);
    cr_assert_not_null(a);
    cr_assert_eq(len, wlen);
    cr_assert_eq(memcmp(a, want, wlen), 0);
}

/* A TCP connection of the family: the peer's address of *server. */
static void family_pair(int family, int *client, int *server, struct sockaddr_storage *peer,
                        socklen_t *plen)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int l = tk_listener(family, &ss, &len, 1);
    *client = tk_connect_raw(&ss, len);
    *plen = sizeof(*peer);
    *server = accept4(l, (struct sockaddr *)peer, plen, SOCK_CLOEXEC);
    cr_assert_geq(*server, 0);
    close(l);
}

static void attach_keeps_peer(int family)
{
    ac_map *m = tk_map();
    int c, s;
    struct sockaddr_storage peer;
    socklen_t plen;
    family_pair(family, &c, &s, &peer, &plen);
    ac_dispatcher *d = tk_new_buffered(m, &quiet, "d");
    cr_assert_eq(ac_attach(d, s), 0);
    check_addr(d, &peer, plen);
    cr_assert_eq(ac_close(d), 0);
    check_addr(d, &peer, plen); /* D1: kept after close */
    close(c);
    tk_finish(m);
}

Test(compact, ipv4_peer_address_in_place, .timeout = 5,
     .description = "D1 D4: an IPv4 peer address (kept inside the dispatcher) is addr, also "
                    "after close")
{
    attach_keeps_peer(AF_INET);
}

Test(compact, ipv6_peer_address_out_of_line, .timeout = 5,
     .description = "D1 D4: an IPv6 peer address (28 bytes, kept apart) is addr, also after close")
{
    if (!tk_ipv6_ok())
        cr_skip_test("no IPv6 loopback");
    attach_keeps_peer(AF_INET6);
}

Test(compact, bind_replaces_address_of_either_size, .timeout = 5,
     .description = "S6: bind sets addr; a long address replaces a short one and back")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &quiet, "d");
    cr_assert_eq(ac_create_socket(d, AF_UNIX, SOCK_STREAM), 0);
    cr_assert_eq(ac_family(d), AF_UNIX);
    cr_assert_eq(ac_socktype(d), SOCK_STREAM);
    struct sockaddr_storage un;
    socklen_t ulen = tk_unix_addr(&un, "compact");
    cr_assert_gt(ulen, 16);
    cr_assert_eq(ac_bind(d, (struct sockaddr *)&un, ulen), 0);
    check_addr(d, &un, ulen);
    /* a short one now: bind fails (already bound), addr is set first (S6) */
    struct sockaddr_storage in;
    socklen_t ilen = tk_loopback(AF_INET, &in);
    cr_assert_lt(ac_bind(d, (struct sockaddr *)&in, ilen), 0);
    check_addr(d, &in, ilen);
    cr_assert_lt(ac_bind(d, (struct sockaddr *)&un, ulen), 0);
    check_addr(d, &un, ulen);
    tk_finish(m);
}

Test(compact, no_address_and_no_family_by_default, .timeout = 5,
     .description = "D3: a new dispatcher has no addr, family and type 0")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &quiet, "d");
    socklen_t len = 7;
    cr_assert_null(ac_addr(d, &len));
    cr_assert_eq(len, 0);
    cr_assert_eq(ac_family(d), 0);
    cr_assert_eq(ac_socktype(d), 0);
    tk_finish(m);
}

Test(compact, chunk_cap_survives_an_emptied_queue, .timeout = 5,
     .description = "S16: the chunk cap holds before, while and after bytes are queued")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *d = tk_new_buffered(m, &quiet, "d");
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    cr_assert_eq(ac_buffered_set_chunk(d, 3), 0);
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(ac_buffered_send(d, "abcdefg", 7), 0); /* 3 go now */
        cr_assert_eq(ac_buffered_pending(d), 4);
        cr_assert_eq(ac_initiate_send(d), 0);
        cr_assert_eq(ac_buffered_pending(d), 1);
        cr_assert_eq(ac_initiate_send(d), 0);
        cr_assert_eq(ac_buffered_pending(d), 0); /* the queue is gone, the cap is not */
        char buf[16];
        cr_assert_eq(tk_read_full(sv[1], buf, 7, 1000), 7);
        cr_assert_eq(memcmp(buf, "abcdefg", 7), 0);
    }
    close(sv[1]);
    tk_finish(m);
}

static int highs, lows;
static int on_high(ac_dispatcher *d)
{
    (void)d;
    highs++;
    return 0;
}
static int on_low(ac_dispatcher *d)
{
    (void)d;
    lows++;
    return 0;
}

Test(compact, huge_marks_count_as_the_largest, .timeout = 5,
     .description = "W3: marks above 2 GiB - 1 are accepted and never reached by small queues")
{
    static const ac_handlers h = {
        .handle_high_water = on_high, .handle_low_water = on_low, .finalize = tk_finalize};
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *d = tk_new_buffered(m, &h, "d");
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    cr_assert_eq(ac_buffered_set_watermarks(d, SIZE_MAX, 1), -EINVAL, "low > high");
    cr_assert_eq(ac_buffered_set_watermarks(d, SIZE_MAX - 1, SIZE_MAX), 0);
    cr_assert_eq(ac_buffered_set_chunk(d, 1), 0);
    cr_assert_eq(ac_buffered_send(d, "0123456789", 10), 0);
    cr_assert_eq(highs + lows, 0);
    /* and small marks still work after large ones */
    cr_assert_eq(ac_buffered_set_watermarks(d, 2, 5), 0);
    cr_assert_eq(ac_buffered_send(d, "x", 1), 0);
    cr_assert_eq(highs, 1);
    close(sv[1]);
    tk_finish(m);
}

/* ------------------------------------------- attaching what was accepted */

static int spare_fd = -1; /* a blocking socket attached inside handle_accepted */

static int accepted_attach(ac_dispatcher *l, int fd, const struct sockaddr *addr, socklen_t len)
{
    ac_dispatcher *c = tk_new_buffered(ac_map_of(l), &quiet, "c");
    cr_assert_eq(ac_attach(c, fd), 0);
    cr_assert(tk_nonblocking(fd));
    cr_assert(ac_is_connected(c));
    socklen_t alen;
    const struct sockaddr *a = ac_addr(c, &alen);
    cr_assert_not_null(a);
    cr_assert_eq(alen, len);
    cr_assert_eq(memcmp(a, addr, len), 0, "D4: addr is the accepted peer address");
    if (spare_fd >= 0) { /* another descriptor, in the same call: made non-blocking */
        cr_assert_not(tk_nonblocking(spare_fd));
        ac_dispatcher *s = tk_new(ac_map_of(l), &quiet, "s");
        cr_assert_eq(ac_attach(s, spare_fd), 0);
        cr_assert(tk_nonblocking(spare_fd));
        spare_fd = -1;
    }
    tk_tr("accepted");
    return 0;
}

static void accept_then_attach(bool with_spare)
{
    static const ac_handlers lh = {.handle_accepted = accepted_attach, .finalize = tk_finalize};
    ac_map *m = tk_map();
    int sv[2] = {-1, -1};
    if (with_spare) {
        tk_socketpair(SOCK_STREAM, sv);
        spare_fd = sv[0];
    }
    ac_dispatcher *l = tk_new(m, &lh, "l");
    cr_assert_eq(ac_create_socket(l, AF_INET, SOCK_STREAM), 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(AF_INET, &ss);
    cr_assert_eq(ac_bind(l, (struct sockaddr *)&ss, len), 0);
    cr_assert_eq(ac_listen(l, 5), 0);
    len = sizeof(ss);
    cr_assert_eq(getsockname(ac_fd(l), (struct sockaddr *)&ss, &len), 0);
    int c = tk_connect_raw(&ss, len);
    for (int i = 0; i < 20 && !strstr(tk_trace, "accepted"); i++)
        cr_assert_eq(ac_poll(m, 0.1), 0);
    cr_assert_str_eq(tk_trace, "accepted");
    cr_assert_eq(spare_fd, -1);
    close(c);
    if (with_spare)
        close(sv[1]);
    tk_finish(m);
}

Test(compact, attach_in_handle_accepted, .timeout = 10,
     .description = "D4 S9 D16: the descriptor handed to handle_accepted, attached there, is "
                    "non-blocking, connected, with the accepted address")
{
    accept_then_attach(false);
}

Test(compact, attach_another_blocking_fd_in_handle_accepted, .timeout = 10,
     .description = "D4: only the accepted descriptor skips the fcntl; another one attached in "
                    "the same handle_accepted is still made non-blocking")
{
    accept_then_attach(true);
}

Test(compact, attach_blocking_fd_outside_accept, .timeout = 5,
     .description = "D4: ac_attach makes a blocking descriptor non-blocking, and leaves a "
                    "non-blocking one so")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    cr_assert_not(tk_nonblocking(sv[0]));
    ac_dispatcher *a = tk_new(m, &quiet, "a");
    cr_assert_eq(ac_attach(a, sv[0]), 0);
    cr_assert(tk_nonblocking(sv[0]));
    tk_set_nonblocking(sv[1]);
    ac_dispatcher *b = tk_new(m, &quiet, "b");
    cr_assert_eq(ac_attach(b, sv[1]), 0);
    cr_assert(tk_nonblocking(sv[1]));
    cr_assert(ac_is_connected(a) && ac_is_connected(b));
    tk_finish(m);
}

/* ----------------------------------------- D8 without reading SO_ERROR */

static int on_connect(ac_dispatcher *d)
{
    (void)d;
    tk_tr("connect");
    return 0;
}

Test(compact, connect_completion_under_every_poller, .timeout = 10,
     .description = "D8: a connect that succeeds runs handle_connect once, then connected "
                    "(SO_ERROR is not read when the event said writable without error)")
{
    static const ac_handlers h = {.handle_connect = on_connect, .finalize = tk_finalize};
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = tk_listener(AF_INET, &ss, &len, 5);
    ac_dispatcher *c = tk_new_buffered(m, &h, "c");
    cr_assert_eq(ac_create_socket(c, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
    for (int i = 0; i < 20 && !ac_is_connected(c); i++)
        cr_assert_eq(ac_poll(m, 0.1), 0);
    cr_assert_str_eq(tk_trace, "connect");
    cr_assert(ac_is_connected(c));
    cr_assert_not(ac_is_connecting(c));
    close(lfd);
    tk_finish(m);
}
