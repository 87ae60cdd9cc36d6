/* The relay under faults: a sink that never reads (backpressure, bounded
 * memory, no busy loop), resets from either side at fixed and at random
 * points, and large transfers both ways at once.  The rig is
 * tests/support/relay_rig.h. */
#include "relay_rig.h"

#include <sys/ioctl.h>

/* ---------------------------------------------------- backpressure */

/* Bytes a socket has sent but the peer has not acknowledged (SIOCOUTQ). */
static int outq(int fd)
{
    int n = 0;
    cr_assert_eq(ioctl(fd, TIOCOUTQ, &n), 0);
    return n;
}

static uint64_t ab_bytes(void)
{
    ac_relay_stats st;
    ac_relay_stats_get(R.r, &st);
    return st.bytes[AC_RELAY_AB];
}

static bool cond_a_got_b(void) { return R.a.eof; }

static void backpressure(bool splice)
{
    rig_begin(true);
    const int kbuf = 4096; /* SO_SNDBUF / SO_RCVBUF on every socket (the kernel doubles it) */
    const size_t cap = 65536;
    int la[2], lb[2];
    make_link(LINK_TCP, la, kbuf);
    make_link(LINK_TCP, lb, kbuf);
    R.rfd[0] = la[1];
    R.rfd[1] = lb[0];
    peer_init(&R.a, "a", la[0], 300, 1300, 2 << 20, 7);
    peer_init(&R.b, "b", lb[1], 1300, 300, 200000, 9);
    R.a.shut_after = R.b.shut_after = true;
    R.b.no_read = true; /* the sink of a -> b never reads (for now) */
    ac_relay_config cfg = {.buffer_size = cap, .no_splice = !splice, .splice_always = splice};
    rig_relay(&cfg);

    /* Run until a's writes have stopped going anywhere for 0.5 s. */
    double end = tk_clock() + 30, still_since = tk_clock();
    uint64_t seen = 0;
    while (tk_clock() - still_since < 0.5 || !R.a.eof) {
        cr_assert_lt(tk_clock(), end, "a's writes never blocked (sent %llu)",
                     (unsigned long long)R.a.tx_sent);
        rig_run_for(0.05);
        if (R.a.tx_sent != seen) {
            seen = R.a.tx_sent;
            still_since = tk_clock();
        }
    }
    cr_assert_eq(R.dn.calls, 0);
    /* The other direction was not held up: b -> a went through whole. */
    cr_assert_eq(R.a.rx_got, 200000);
    cr_assert_eq(R.a.rx_bad, 0);
    cr_assert(R.a.eof);

    /* The source sees its writes block. */
    cr_assert_lt(R.a.tx_sent, R.a.tx_total);
    cr_assert_not(tk_wait_fd(R.a.fd, POLLOUT, 0), "a's socket is not writable");
    ssize_t n = send(R.a.fd, "z", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    cr_assert(n < 0 && errno == EAGAIN, "a's send would block");
    /* The relay's reading from a is paused, with bytes waiting for it. */
    ac_dispatcher *da = ac_relay_side(R.r, AC_RELAY_A);
    cr_assert(!ac_is_reading(da), "reading side a is paused");
    cr_assert_gt(tk_inq(R.rfd[0]), 0, "a's bytes wait in the kernel, not in the relay");

    /* What left the source is bounded by the relay's buffer and the kernel's. */
    uint64_t kernel = (uint64_t)sockopt_int(R.a.fd, SOL_SOCKET, SO_SNDBUF) +
                      (uint64_t)sockopt_int(R.rfd[0], SOL_SOCKET, SO_RCVBUF) +
                      (uint64_t)sockopt_int(R.rfd[1], SOL_SOCKET, SO_SNDBUF) +
                      (uint64_t)sockopt_int(R.b.fd, SOL_SOCKET, SO_RCVBUF);
    uint64_t sent = R.a.tx_sent, out = ab_bytes();
    cr_assert_leq(sent, cap + kernel, "%llu bytes left a; relay %zu + kernel %llu",
                  (unsigned long long)sent, cap, (unsigned long long)kernel);
    /* Held in the relay: read from a's socket but not yet written to b's.
     * (A byte queued but not yet acknowledged may count twice: a lower
     * bound is all that can be said below.) */
    int64_t held = (int64_t)sent - outq(R.a.fd) - tk_inq(R.rfd[0]) - (int64_t)out;
    cr_assert_leq(held, (int64_t)cap, "the relay holds %lld > %zu", (long long)held, cap);
    cr_assert_gt(held, 0, "the relay holds what b's socket cannot take");
    if (!splice)
        cr_assert_eq(held, (int64_t)cap, "the ring is full: %lld", (long long)held);

    /* Nothing grows and nothing spins while it stays blocked. */
    int iters = 0;
    double t0 = tk_clock();
    while (tk_clock() - t0 < 0.5) {
        cr_assert_eq(ac_poll(R.m, 0.05), 0);
        iters++;
    }
    cr_assert_leq(iters, 40, "%d iterations in 0.5 s with a 50 ms timeout: busy loop", iters);
    rig_run_for(0.3);
    cr_assert_eq(R.a.tx_sent, sent, "the source stays blocked");
    cr_assert_eq(ab_bytes(), out, "nothing more left the relay");
    cr_assert(ac_relay_side(R.r, AC_RELAY_A) == da && !ac_is_reading(da));

    /* The sink reads: everything arrives, then the clean end. */
    R.b.no_read = false;
    cr_assert(rig_run(cond_all_over, 60), "b got %llu of %llu", (unsigned long long)R.b.rx_got,
              (unsigned long long)R.a.tx_total);
    check_clean();
    cr_assert_eq(R.dn.st.first_eof, AC_RELAY_B);
    rig_end();
}

Test(relay, backpressure_sink_never_reads_buffered, .timeout = 90,
     .description = "buffered path, small kernel buffers, b never reads: a's writes block, "
                    "reading a is paused, the relay holds exactly buffer_size, what left a "
                    "<= buffer_size + the four kernel buffers, b -> a still flows, no busy "
                    "loop, nothing grows; when b reads, every byte arrives, CLEAN")
{
    (void)cond_a_got_b;
    backpressure(false);
}

Test(relay, backpressure_sink_never_reads_splice, .timeout = 90,
     .description = "the same on the splice path: the pipe holds at most buffer_size")
{
    backpressure(true);
}

/* ---------------------------------------------------------- resets */

static bool cond_other_got(void) { return R.a.rx_got + R.b.rx_got == 10000; }

static void reset_from(int side, bool splice)
{
    rig_begin(true);
    rig_links(LINK_TCP, 0, 400 + (uint64_t)side, side == AC_RELAY_A ? 10000 : 0,
              side == AC_RELAY_B ? 10000 : 0);
    R.a.shut_after = R.b.shut_after = false;
    struct peer *rst = side == AC_RELAY_A ? &R.a : &R.b;
    struct peer *other = side == AC_RELAY_A ? &R.b : &R.a;
    ac_relay_config cfg = {.no_splice = !splice, .splice_always = splice};
    rig_relay(&cfg);
    cr_assert(rig_run(cond_other_got, 20));
    double t0 = tk_clock();
    peer_rst(rst);
    cr_assert(rig_run(cond_all_over, 20));
    check_done(&R.dn, AC_RELAY_RESET);
    cr_assert_eq(R.dn.st.side, side);
    cr_assert_eq(R.dn.st.err, ECONNRESET, "err %s", strerror(R.dn.st.err));
    cr_assert_lt(R.dn.at - t0, 5.0, "promptly (%.3f s)", R.dn.at - t0);
    cr_assert_eq(other->rx_err, ECONNRESET, "the other side sees a reset on read: %s (eof %d)",
                 strerror(other->rx_err), other->eof);
    cr_assert_eq(other->rx_got, 10000);
    cr_assert_eq(other->rx_bad, 0);
    cr_assert_eq(R.dn.st.bytes[side == AC_RELAY_A ? AC_RELAY_AB : AC_RELAY_BA], 10000);
    cr_assert_eq(R.dn.st.first_eof, -1);
    rig_end();
}

Test(relay, reset_from_a, .timeout = 60,
     .description = "a sends 10000 bytes (all delivered), then resets (SO_LINGER 0 close): "
                    "RESET, side a, ECONNRESET, promptly; b reads ECONNRESET (splice and "
                    "buffered)")
{
    reset_from(AC_RELAY_A, true);
    reset_from(AC_RELAY_A, false);
}

Test(relay, reset_from_b, .timeout = 60,
     .description = "the mirror: b resets, RESET side b, a reads ECONNRESET")
{
    reset_from(AC_RELAY_B, true);
    reset_from(AC_RELAY_B, false);
}

Test(relay, reset_while_relay_writes_to_it, .timeout = 60,
     .description = "b never reads and resets while the relay still has a's bytes for it: "
                    "RESET, side b (ECONNRESET or EPIPE from the write), a sees a reset")
{
    for (int splice = 0; splice < 2; splice++) {
        rig_begin(true);
        rig_links(LINK_TCP, 4096, 450, 4 << 20, 0);
        R.a.shut_after = R.b.shut_after = false;
        R.b.no_read = true;
        ac_relay_config cfg = {.no_splice = !splice, .splice_always = splice, .buffer_size = 16384};
        rig_relay(&cfg);
        rig_run_for(0.3);
        cr_assert_gt(R.a.tx_sent, 0);
        cr_assert_eq(R.dn.calls, 0);
        peer_rst(&R.b);
        cr_assert(rig_run(cond_all_over, 20));
        check_done(&R.dn, AC_RELAY_RESET);
        cr_assert_eq(R.dn.st.side, AC_RELAY_B);
        cr_assert(R.dn.st.err == ECONNRESET || R.dn.st.err == EPIPE, "err %s",
                  strerror(R.dn.st.err));
        cr_assert(peer_saw_reset(&R.a), "a: rx %s tx %s", strerror(R.a.rx_err),
                  strerror(R.a.tx_err));
        rig_end();
    }
}

Test(relay, resets_at_random_points, .timeout = 240,
     .description = "24 seeds: traffic both ways in random chunks and pauses, one random "
                    "peer resets after a random byte count (0 to all it sends); RESET, the "
                    "right side, ECONNRESET or EPIPE; the other peer sees a reset; every "
                    "byte received was the right one; the counters bound what arrived. "
                    "Splice, buffered, and SIGPIPE at its default (buffered, no SIGPIPE)")
{
    for (uint64_t seed = 1; seed <= 24; seed++) {
        uint32_t s = (uint32_t)seed * 2246822519u + 7;
        rig_begin(seed % 3 != 2);
        uint64_t a_tx = 1 + tk_rand(&s) % (512 * 1024), b_tx = 1 + tk_rand(&s) % (512 * 1024);
        rig_links(LINK_TCP, 0, 500 + seed, a_tx, b_tx);
        int side = (int)(tk_rand(&s) % 2);
        struct peer *rst = side == AC_RELAY_A ? &R.a : &R.b;
        struct peer *other = side == AC_RELAY_A ? &R.b : &R.a;
        rst->rst_armed = true;
        rst->rst_at = tk_rand(&s) % (rst->tx_total + 1);
        R.a.max_chunk = 1 + tk_rand(&s) % 65536;
        R.b.max_chunk = 1 + tk_rand(&s) % 65536;
        R.a.pause_pct = R.b.pause_pct = 3;
        R.a.pause_ms = R.b.pause_ms = 10;
        static const size_t caps[] = {512, 4096, 65536, 0};
        ac_relay_config cfg = {.no_splice = seed % 3 == 1, .buffer_size = caps[tk_rand(&s) % 4]};
        rig_relay(&cfg);
        cr_assert(rig_run(cond_all_over, 30), "seed %llu: not over", (unsigned long long)seed);
        check_done(&R.dn, AC_RELAY_RESET);
        const ac_relay_stats *st = &R.dn.st;
        cr_assert_eq(st->side, side, "seed %llu: side %d, reset came from %d",
                     (unsigned long long)seed, st->side, side);
        cr_assert(st->err == ECONNRESET || st->err == EPIPE, "seed %llu: err %s",
                  (unsigned long long)seed, strerror(st->err));
        cr_assert(rst->did_rst);
        cr_assert(peer_saw_reset(other), "seed %llu: %s: rx %s tx %s eof %d",
                  (unsigned long long)seed, other->name, strerror(other->rx_err),
                  strerror(other->tx_err), other->eof);
        struct peer *src[2] = {&R.a, &R.b}, *dst[2] = {&R.b, &R.a};
        for (int i = 0; i < 2; i++) {
            cr_assert_eq(dst[i]->rx_bad, 0, "seed %llu: %s byte %llu wrong",
                         (unsigned long long)seed, dst[i]->name,
                         (unsigned long long)dst[i]->rx_bad - 1);
            cr_assert_leq(st->bytes[i], src[i]->tx_sent);
            cr_assert_leq(dst[i]->rx_got, st->bytes[i]);
        }
        rig_end();
    }
}

/* ----------------------------------------------------------- large */

static void large(bool splice, uint64_t seed)
{
    rig_begin(true);
    const uint64_t size = 32u << 20;
    rig_links(LINK_TCP, 0, seed, size, size);
    R.a.burst = R.b.burst = 16;
    ac_relay_config cfg = {.no_splice = !splice, .splice_always = splice};
    rig_relay(&cfg);
    cr_assert(rig_run(cond_all_over, 200), "a got %llu, b got %llu", (unsigned long long)R.a.rx_got,
              (unsigned long long)R.b.rx_got);
    check_clean();
    cr_assert_eq(R.dn.st.bytes[0], size);
    cr_assert_eq(R.dn.st.bytes[1], size);
    /* The checksums against the streams computed on their own. */
    cr_assert_eq(R.b.rx_hash, stream_hash(seed, size), "a -> b checksum");
    cr_assert_eq(R.a.rx_hash, stream_hash(seed + 1000, size), "b -> a checksum");
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(R.dn.st.spliced[i], splice);
        cr_assert_eq(R.dn.st.buffered[i], !splice);
    }
    rig_end();
}

Test(relay, large_32mib_each_way_splice, .timeout = 240,
     .description = "32 MiB each way at once through splice: every byte, FNV-1a checksums "
                    "equal to the streams', stats.bytes exact, CLEAN")
{
    large(true, 600);
}

Test(relay, large_32mib_each_way_buffered, .timeout = 240,
     .description = "32 MiB each way at once through the ring: the same")
{
    large(false, 601);
}
