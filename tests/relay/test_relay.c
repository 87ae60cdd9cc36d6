/* The relay (asyncore_relay.h) at the library level: creation, counters,
 * clean transfers both ways in random chunks with random pauses, half-close,
 * ac_relay_push, ac_relay_abort, the map closing a running relay, the
 * connect and idle timeouts, and which path (splice or buffered) moved the
 * bytes.  Faults (backpressure, resets, large transfers) are in
 * test_relay_faults.c.  The rig is tests/support/relay_rig.h.  Every test
 * ends with the done callback run exactly once, every dispatcher finalized,
 * the map freed and no descriptor left open. */
#include "relay_rig.h"

/* ---------------------------------------------------------- basics */

Test(relay, end_names, .timeout = 5,
     .description = "ac_relay_end_name names every end, 'unknown' beyond")
{
    cr_assert_str_eq(ac_relay_end_name(AC_RELAY_RUNNING), "running");
    cr_assert_str_eq(ac_relay_end_name(AC_RELAY_CLEAN), "clean");
    cr_assert_str_eq(ac_relay_end_name(AC_RELAY_RESET), "reset");
    cr_assert_str_eq(ac_relay_end_name(AC_RELAY_ERROR), "error");
    cr_assert_str_eq(ac_relay_end_name(AC_RELAY_CONNECT_FAILED), "connect-failed");
    cr_assert_str_eq(ac_relay_end_name(AC_RELAY_CONNECT_TIMEOUT), "connect-timeout");
    cr_assert_str_eq(ac_relay_end_name(AC_RELAY_IDLE_TIMEOUT), "idle-timeout");
    cr_assert_str_eq(ac_relay_end_name(AC_RELAY_ABORTED), "aborted");
    cr_assert_str_eq(ac_relay_end_name((ac_relay_end)99), "unknown");
}

static int done_never_calls;
static void done_never(ac_relay *r, const ac_relay_stats *st, void *arg)
{
    (void)r;
    (void)st;
    (void)arg;
    done_never_calls++;
}

Test(relay, new_rejects_bad_arguments, .timeout = 10,
     .description = "ac_relay_new: -EINVAL for a negative, equal or closed descriptor and "
                    "negative timeouts; the descriptors stay the caller's, open; nothing is "
                    "registered; done never runs")
{
    rig_begin(true);
    int sa[2], sb[2];
    tk_socketpair(SOCK_STREAM, sa);
    tk_socketpair(SOCK_STREAM, sb);
    ac_relay *r = (ac_relay *)&r; /* must stay untouched */
    ac_relay *const sentinel = r;
    int closed = dup(sa[0]);
    cr_assert_geq(closed, 0);
    close(closed);
    cr_assert_eq(ac_relay_new(&r, R.m, -1, sb[0], NULL, done_never, NULL), -EINVAL);
    cr_assert_eq(ac_relay_new(&r, R.m, sa[0], -1, NULL, done_never, NULL), -EINVAL);
    cr_assert_eq(ac_relay_new(&r, R.m, sa[0], sa[0], NULL, done_never, NULL), -EINVAL);
    cr_assert_eq(ac_relay_new(&r, R.m, closed, sb[0], NULL, done_never, NULL), -EINVAL);
    cr_assert_eq(ac_relay_new(&r, R.m, sa[0], closed, NULL, done_never, NULL), -EINVAL);
    ac_relay_config bad = {.idle_timeout = -1};
    cr_assert_eq(ac_relay_new(&r, R.m, sa[0], sb[0], &bad, done_never, NULL), -EINVAL);
    bad = (ac_relay_config){.b_connecting = true, .connect_timeout = -0.5};
    cr_assert_eq(ac_relay_new(&r, R.m, sa[0], sb[0], &bad, done_never, NULL), -EINVAL);
    cr_assert_eq(r, sentinel, "*out untouched on failure");
    cr_assert_eq(ac_map_count(R.m), 0);
    cr_assert(tk_fd_open(sa[0]) && tk_fd_open(sb[0]));
    cr_assert_eq(ac_poll(R.m, 0), 0);
    cr_assert_eq(done_never_calls, 0);
    /* The descriptors still work as the caller's. */
    cr_assert_eq(write(sa[0], "ok", 2), 2);
    char buf[2];
    cr_assert_eq(read(sa[1], buf, 2), 2);
    for (int i = 0; i < 2; i++) {
        close(sa[i]);
        close(sb[i]);
    }
    R.dn.calls = 1; /* no relay in this test: rig_end's check does not apply */
    rig_end();
}

Test(relay, live_stats_and_accessors, .timeout = 10,
     .description = "a new relay: stats RUNNING, side -1, first_eof -1, no bytes, start = "
                    "ac_now; ac_relay_side gives the two dispatchers over fd_a and fd_b (in "
                    "the map, left blocking as given: no fcntl until a direction splices); "
                    "ac_relay_arg; TCP_NODELAY on by default, off with nagle")
{
    rig_begin(true);
    rig_links(LINK_TCP, 0, 1, 0, 0);
    cr_assert_eq(sockopt_int(R.rfd[0], IPPROTO_TCP, TCP_NODELAY), 0);
    rig_relay(NULL);
    ac_relay_stats st;
    ac_relay_stats_get(R.r, &st);
    cr_assert_eq(st.how, AC_RELAY_RUNNING);
    cr_assert_eq(st.side, -1);
    cr_assert_eq(st.first_eof, -1);
    cr_assert_eq(st.err, 0);
    cr_assert_eq(st.bytes[0], 0);
    cr_assert_eq(st.bytes[1], 0);
    cr_assert_eq(st.end, 0.0);
    cr_assert_eq(st.start, ac_now(R.m));
    cr_assert(!st.spliced[0] && !st.spliced[1] && !st.buffered[0] && !st.buffered[1]);
    ac_dispatcher *da = ac_relay_side(R.r, AC_RELAY_A), *db = ac_relay_side(R.r, AC_RELAY_B);
    cr_assert_not_null(da);
    cr_assert_not_null(db);
    cr_assert_null(ac_relay_side(R.r, 2));
    cr_assert_null(ac_relay_side(R.r, -1));
    cr_assert_eq(ac_fd(da), R.rfd[0]);
    cr_assert_eq(ac_fd(db), R.rfd[1]);
    cr_assert_eq(ac_map_get(R.m, R.rfd[0]), da);
    cr_assert_eq(ac_map_get(R.m, R.rfd[1]), db);
    cr_assert_eq(ac_map_count(R.m), 2);
    cr_assert(!tk_nonblocking(R.rfd[0]) && !tk_nonblocking(R.rfd[1]));
    cr_assert_eq(ac_relay_arg(R.r), &R.dn);
    cr_assert_eq(sockopt_int(R.rfd[0], IPPROTO_TCP, TCP_NODELAY), 1);
    cr_assert_eq(sockopt_int(R.rfd[1], IPPROTO_TCP, TCP_NODELAY), 1);
    ac_relay_abort(R.r, false);
    check_done(&R.dn, AC_RELAY_ABORTED);
    rig_end();

    rig_begin(true);
    rig_links(LINK_TCP, 0, 1, 0, 0);
    ac_relay_config cfg = {.nagle = true};
    rig_relay(&cfg);
    cr_assert_eq(sockopt_int(R.rfd[0], IPPROTO_TCP, TCP_NODELAY), 0);
    cr_assert_eq(sockopt_int(R.rfd[1], IPPROTO_TCP, TCP_NODELAY), 0);
    ac_relay_abort(R.r, false);
    check_done(&R.dn, AC_RELAY_ABORTED);
    rig_end();
}

/* ------------------------------------------------- clean transfers */

/* One relay, random sizes, chunks, pauses and buffer size from seed. */
static void random_transfer(enum link k, uint64_t seed, bool splice)
{
    rig_begin(true);
    uint32_t s = (uint32_t)seed * 2654435761u + 1;
    uint64_t a_tx = tk_rand(&s) % (384 * 1024), b_tx = tk_rand(&s) % (384 * 1024);
    if (seed % 4 == 0)
        b_tx = 0; /* one way only */
    rig_links(k, 0, seed, a_tx, b_tx);
    static const size_t caps[] = {1, 1000, 4096, 65536, 0};
    ac_relay_config cfg = {
        .buffer_size = caps[tk_rand(&s) % 5], .no_splice = !splice, .splice_always = splice};
    if (cfg.buffer_size == 1) { /* a byte per iteration: keep it short */
        R.a.tx_total %= 20000;
        R.b.tx_total %= 20000;
    }
    R.a.max_chunk = 1 + tk_rand(&s) % 70000;
    R.b.max_chunk = 1 + tk_rand(&s) % 70000;
    R.a.pause_pct = R.b.pause_pct = 3;
    R.a.pause_ms = R.b.pause_ms = 15;
    rig_relay(&cfg);
    cr_assert(rig_run(cond_all_over, 60), "seed %llu: not over (done %d, a %llu/%llu b %llu/%llu)",
              (unsigned long long)seed, R.dn.calls, (unsigned long long)R.a.rx_got,
              (unsigned long long)b_tx, (unsigned long long)R.b.rx_got, (unsigned long long)a_tx);
    check_clean();
    const ac_relay_stats *st = &R.dn.st;
    cr_assert(st->first_eof == AC_RELAY_A || st->first_eof == AC_RELAY_B);
    for (int i = 0; i < 2; i++) {
        bool moved = st->bytes[i] > 0;
        if (k == LINK_TCP || !splice) {
            cr_assert_eq(st->spliced[i], moved && splice, "seed %llu dir %d spliced",
                         (unsigned long long)seed, i);
            cr_assert_eq(st->buffered[i], moved && !splice, "seed %llu dir %d buffered",
                         (unsigned long long)seed, i);
        }
    }
    rig_end();
}

Test(relay, tcp_random_chunks_both_ways_splice, .timeout = 120,
     .description = "loopback TCP, SIGPIPE ignored: 8 seeds of random sizes (0-384 KiB each "
                    "way), chunk sizes, pauses and buffer sizes (1 byte to default); every "
                    "byte arrives in order, checksums and stats.bytes match, CLEAN, spliced")
{
    for (uint64_t seed = 1; seed <= 8; seed++)
        random_transfer(LINK_TCP, seed, true);
}

Test(relay, tcp_random_chunks_both_ways_buffered, .timeout = 120,
     .description = "as the splice test with no_splice: every byte, CLEAN, buffered only")
{
    for (uint64_t seed = 11; seed <= 18; seed++)
        random_transfer(LINK_TCP, seed, false);
}

Test(relay, socketpair_random_chunks_both_ways, .timeout = 120,
     .description = "AF_UNIX stream socketpairs, splice allowed and not: every byte, CLEAN")
{
    for (uint64_t seed = 21; seed <= 26; seed++)
        random_transfer(LINK_UNIX, seed, seed % 2 == 0);
}

Test(relay, empty_both_ways, .timeout = 10,
     .description = "both peers shut at once without a byte: CLEAN, no bytes, no path used, "
                    "first_eof a or b")
{
    rig_begin(true);
    rig_links(LINK_TCP, 0, 3, 0, 0);
    rig_relay(NULL);
    cr_assert(rig_run(cond_all_over, 20));
    check_clean();
    const ac_relay_stats *st = &R.dn.st;
    cr_assert(st->first_eof == AC_RELAY_A || st->first_eof == AC_RELAY_B);
    cr_assert(!st->spliced[0] && !st->spliced[1] && !st->buffered[0] && !st->buffered[1]);
    rig_end();
}

/* ------------------------------------------------------ half-close */

static bool cond_b_eof(void) { return R.b.eof || R.b.rx_err; }
static bool cond_a_eof(void) { return R.a.eof || R.a.rx_err; }

/* `first` sends req bytes then SHUT_WR; the other answers ans bytes only
 * after it has read EOF, then shuts too. */
enum path { BUFFERED, SPLICED, AUTO };

static void half_close(int first, uint64_t req, uint64_t ans, enum path path)
{
    bool splice = path != BUFFERED;
    rig_begin(true);
    rig_links(LINK_TCP, 0, 40 + (uint64_t)first, first == AC_RELAY_A ? req : ans,
              first == AC_RELAY_A ? ans : req);
    struct peer *asker = first == AC_RELAY_A ? &R.a : &R.b;
    struct peer *answerer = first == AC_RELAY_A ? &R.b : &R.a;
    answerer->answer_after_eof = true;
    asker->max_chunk = 3000;
    answerer->max_chunk = 50000;
    ac_relay_config cfg = {
        .no_splice = !splice, .splice_always = path == SPLICED, .buffer_size = 32768};
    rig_relay(&cfg);
    /* The question and its EOF go through; the relay keeps running. */
    cr_assert(rig_run(first == AC_RELAY_A ? cond_b_eof : cond_a_eof, 20), "EOF passed on");
    cr_assert_eq(answerer->rx_err, 0);
    cr_assert_eq(answerer->rx_at_eof, req, "every byte before the EOF (%llu of %llu)",
                 (unsigned long long)answerer->rx_at_eof, (unsigned long long)req);
    cr_assert_eq(answerer->rx_bad, 0);
    ac_relay_stats st;
    ac_relay_stats_get(R.r, &st);
    cr_assert_eq(st.how, AC_RELAY_RUNNING, "half-closed: still running");
    cr_assert_eq(st.first_eof, first);
    cr_assert_eq(R.dn.calls, 0);
    /* The answer: all of it reaches the asker, which only receives now. */
    cr_assert(rig_run(cond_all_over, 30), "answer delivered (%llu of %llu)",
              (unsigned long long)asker->rx_got, (unsigned long long)ans);
    check_clean();
    cr_assert_eq(R.dn.st.first_eof, first);
    rig_end();
}

Test(relay, half_close_a_first_answer_after_eof, .timeout = 60,
     .description = "a sends 100000 bytes then SHUT_WR; b reads all of them, then EOF (the "
                    "relay is still running, first_eof a), then answers 1 MiB and shuts; a "
                    "gets the whole answer; CLEAN, first_eof a (splice and buffered)")
{
    half_close(AC_RELAY_A, 100000, 1 << 20, SPLICED);
    half_close(AC_RELAY_A, 100000, 1 << 20, BUFFERED);
    half_close(AC_RELAY_A, 100000, 1 << 20, AUTO);
    cr_assert(R.dn.st.spliced[AC_RELAY_BA], "auto: the 1 MiB answer switched to splice");
}

Test(relay, half_close_b_first_answer_after_eof, .timeout = 60,
     .description = "the mirror: b asks and shuts first, a answers after EOF; CLEAN, "
                    "first_eof b (splice, buffered, and auto: starts buffered, switches)")
{
    half_close(AC_RELAY_B, 5000, 700000, SPLICED);
    half_close(AC_RELAY_B, 1, 1, BUFFERED);
    half_close(AC_RELAY_B, 5000, 700000, AUTO);
    cr_assert(!R.dn.st.spliced[AC_RELAY_BA], "auto: 5000 bytes in 3000-byte chunks: buffered");
    cr_assert(R.dn.st.buffered[AC_RELAY_AB] && R.dn.st.spliced[AC_RELAY_AB],
              "auto: the answer started buffered and switched");
}

/* ------------------------------------------------------ auto splice */

static void auto_case(uint64_t seed, size_t cap)
{
    rig_begin(true);
    rig_links(LINK_TCP, 0, seed, 1 << 20, 3000);
    R.a.max_chunk = 65536; /* bulk: reads of 16 KiB or a full ring */
    R.b.max_chunk = 64;    /* small messages, apart */
    R.b.pause_pct = 50;
    R.b.pause_ms = 2;
    ac_relay_config cfg = {.buffer_size = cap};
    rig_relay(&cfg);
    cr_assert(!tk_nonblocking(R.rfd[0]) && !tk_nonblocking(R.rfd[1]), "nothing spliced yet");
    cr_assert(rig_run(cond_all_over, 30));
    check_clean(); /* every byte, in order, across the switch; EOF both ways */
    const ac_relay_stats *st = &R.dn.st;
    cr_assert(st->buffered[AC_RELAY_AB] && st->spliced[AC_RELAY_AB],
              "cap %zu: the bulk direction started buffered and switched", cap);
    cr_assert(st->buffered[AC_RELAY_BA] && !st->spliced[AC_RELAY_BA],
              "cap %zu: the small messages stayed buffered", cap);
    rig_end();
}

Test(relay, auto_splice_switch, .timeout = 60,
     .description = "default config, SIGPIPE ignored: a sends 1 MiB in chunks up to 64 KiB, b "
                    "3000 bytes in chunks up to 64 with pauses; a->b starts buffered and "
                    "switches to splice (a read of AC_RELAY_SPLICE_AFTER, or one filling a "
                    "4 KiB ring: a message larger than the buffer), b->a never does; every "
                    "byte intact across the switch, CLEAN; the sockets stay blocking as given "
                    "until the switch")
{
    auto_case(130, 0);
    auto_case(131, 4096);
    auto_case(132, 32768);
}

static bool cond_b_half(void) { return R.b.rx_got > (1 << 19); }

Test(relay, auto_splice_sigpipe_default, .timeout = 30,
     .description = "default config, SIGPIPE at its default: the bulk direction never "
                    "switches (splice would raise SIGPIPE): buffered only, every byte, CLEAN")
{
    rig_begin(false);
    rig_links(LINK_TCP, 0, 133, 1 << 20, 1 << 20);
    rig_relay(NULL);
    cr_assert(rig_run(cond_b_half, 30));
    cr_assert(!tk_nonblocking(R.rfd[0]) && !tk_nonblocking(R.rfd[1]), "no fcntl");
    cr_assert(rig_run(cond_all_over, 30));
    check_clean();
    for (int i = 0; i < 2; i++)
        cr_assert(R.dn.st.buffered[i] && !R.dn.st.spliced[i], "dir %d", i);
    rig_end();
}

/* ------------------------------------------------------------ push */

static const unsigned char greet_b[] = "220 hello b, from the relay\r\n";
static const unsigned char greet_a[] = "HTTP/1.1 200 Connection established\r\n\r\n";

Test(relay, push_before_traffic, .timeout = 30,
     .description = "ac_relay_push to both sides before anything moved, while the peers' "
                    "bytes already wait in the sockets: each side gets the pushed bytes "
                    "first, then the stream; stats.bytes count them; the pushed bytes take "
                    "the ring, the rest splice")
{
    rig_begin(true);
    rig_links(LINK_TCP, 0, 50, 200000, 150000);
    /* Bytes waiting before the relay exists. */
    double now = tk_clock();
    for (int i = 0; i < 3; i++) {
        peer_step(&R.a, now);
        peer_step(&R.b, now);
    }
    cr_assert_gt(R.a.tx_sent, 0);
    cr_assert_gt(R.b.tx_sent, 0);
    rig_relay(NULL);
    R.b.prefix = greet_b;
    R.b.prefix_len = sizeof(greet_b) - 1;
    R.a.prefix = greet_a;
    R.a.prefix_len = sizeof(greet_a) - 1;
    cr_assert_eq(ac_relay_push(R.r, AC_RELAY_B, greet_b, 10), 0);
    cr_assert_eq(ac_relay_push(R.r, AC_RELAY_B, greet_b + 10, sizeof(greet_b) - 11), 0);
    cr_assert_eq(ac_relay_push(R.r, AC_RELAY_A, greet_a, sizeof(greet_a) - 1), 0);
    cr_assert_eq(ac_relay_push(R.r, AC_RELAY_A, "", 0), 0);
    cr_assert(rig_run(cond_all_over, 30));
    check_clean();
    cr_assert(R.dn.st.buffered[0] && R.dn.st.buffered[1], "the pushed bytes: the ring");
    cr_assert(R.dn.st.spliced[0] && R.dn.st.spliced[1], "the stream: splice");
    rig_end();
}

/* a -> b: all of a's stream is in (after the prefix). */
static bool cond_b_got_all_a(void) { return R.b.rx_got == R.b.prefix_len + R.a.tx_total; }

static bool cond_a_moved(void)
{
    ac_relay_stats st;
    ac_relay_stats_get(R.r, &st);
    return st.bytes[AC_RELAY_AB] > 0;
}

Test(relay, push_limits, .timeout = 30,
     .description = "ac_relay_push: -EINVAL for a bad side; -ENOBUFS beyond buffer_size in "
                    "all (exact boundary); -EBUSY once the direction has read bytes, while "
                    "the other direction still takes pushes; -EBUSY after its EOF; -EPIPE "
                    "once ended; what was accepted arrives, in order")
{
    rig_begin(true);
    rig_links(LINK_TCP, 0, 60, 3000, 0);
    R.b.shut_after = false;
    R.a.shut_after = false;
    ac_relay_config cfg = {.buffer_size = 1024};
    rig_relay(&cfg);
    static unsigned char pre[1024];
    tk_fill((char *)pre, sizeof(pre), 9);
    cr_assert_eq(ac_relay_push(R.r, 2, pre, 1), -EINVAL);
    cr_assert_eq(ac_relay_push(R.r, -1, pre, 1), -EINVAL);
    cr_assert_eq(ac_relay_push(R.r, AC_RELAY_B, pre, 1025), -ENOBUFS);
    cr_assert_eq(ac_relay_push(R.r, AC_RELAY_B, pre, 1000), 0);
    cr_assert_eq(ac_relay_push(R.r, AC_RELAY_B, pre + 1000, 25), -ENOBUFS);
    cr_assert_eq(ac_relay_push(R.r, AC_RELAY_B, pre + 1000, 24), 0);
    cr_assert_eq(ac_relay_push(R.r, AC_RELAY_B, pre, 1), -ENOBUFS);
    cr_assert_eq(ac_relay_push(R.r, AC_RELAY_B, pre, 0), 0);
    R.b.prefix = pre;
    R.b.prefix_len = 1024;
    /* a's bytes flow: direction a->b has read, pushing to b is refused. */
    cr_assert(rig_run(cond_a_moved, 10));
    cr_assert(rig_run(cond_b_got_all_a, 10));
    cr_assert_eq(ac_relay_push(R.r, AC_RELAY_B, "x", 1), -EBUSY);
    /* b has sent nothing: a push to a still works. */
    cr_assert_eq(ac_relay_push(R.r, AC_RELAY_A, "abc", 3), 0);
    R.a.prefix = (const unsigned char *)"abc";
    R.a.prefix_len = 3;
    /* b shuts without a byte: direction b->a saw EOF, pushes are refused. */
    cr_assert_eq(shutdown(R.b.fd, SHUT_WR), 0);
    R.b.shut_done = true;
    cr_assert(rig_run(cond_a_eof, 10));
    cr_assert_eq(ac_relay_push(R.r, AC_RELAY_A, "y", 1), -EBUSY);
    R.a.shut_after = true;
    cr_assert(rig_run(cond_all_over, 10));
    check_clean(); /* includes push -> -EPIPE during done */
    cr_assert_eq(R.dn.st.bytes[AC_RELAY_AB], 1024 + 3000);
    cr_assert_eq(R.dn.st.bytes[AC_RELAY_BA], 3);
    rig_end();
}

static bool cond_ab_stalled_partial(void)
{
    ac_relay_stats st;
    ac_relay_stats_get(R.r, &st);
    return st.bytes[AC_RELAY_AB] > 0 && !tk_wait_fd(R.rfd[1], POLLOUT, 0);
}

Test(relay, push_again_after_partial_delivery, .timeout = 30,
     .description = "push 64 KiB to b while b does not read: part of it is delivered, the "
                    "rest waits in the ring; a second push (nothing read from a yet) is "
                    "queued after the rest, not over it; b gets both pushes then a's "
                    "stream, byte for byte")
{
    rig_begin(true);
    int lb[2], la[2];
    make_link(LINK_TCP, la, 0);
    make_link(LINK_TCP, lb, 4096);
    R.rfd[0] = la[1];
    R.rfd[1] = lb[0];
    peer_init(&R.a, "a", la[0], 70, 1070, 5000, 3);
    peer_init(&R.b, "b", lb[1], 1070, 70, 0, 4);
    R.a.shut_after = R.b.shut_after = true;
    R.a.answer_after_eof = true; /* a sends only once b's side is over */
    R.b.no_read = true;
    ac_relay_config cfg = {.buffer_size = 65536};
    rig_relay(&cfg);
    static unsigned char pre[65536 + 1000];
    tk_fill((char *)pre, sizeof(pre), 77);
    cr_assert_eq(ac_relay_push(R.r, AC_RELAY_B, pre, 65536), 0);
    cr_assert(rig_run(cond_ab_stalled_partial, 10), "b's socket fills");
    ac_relay_stats st;
    ac_relay_stats_get(R.r, &st);
    cr_assert_lt(st.bytes[AC_RELAY_AB], 65536 - 1000,
                 "part is still in the ring (%llu out, sndbuf %d rcvbuf %d)",
                 (unsigned long long)st.bytes[AC_RELAY_AB],
                 sockopt_int(R.rfd[1], SOL_SOCKET, SO_SNDBUF),
                 sockopt_int(R.b.fd, SOL_SOCKET, SO_RCVBUF));
    size_t free_ = (size_t)st.bytes[AC_RELAY_AB]; /* the ring had 64 KiB: this is its room */
    size_t room = free_ < 1000 ? free_ : 1000;
    cr_assert_eq(ac_relay_push(R.r, AC_RELAY_B, pre, free_ + 1), -ENOBUFS);
    cr_assert_eq(ac_relay_push(R.r, AC_RELAY_B, pre + 65536, room), 0);
    R.b.prefix = pre;
    R.b.prefix_len = 65536 + room;
    R.b.no_read = false;
    cr_assert(rig_run(cond_all_over, 20));
    check_clean();
    rig_end();
}

/* ----------------------------------------------------------- abort */

static bool cond_traffic(void) { return R.a.rx_got > 100000 && R.b.rx_got > 100000; }

Test(relay, abort_rst_during_traffic, .timeout = 30,
     .description = "ac_relay_abort(rst) in the middle of a transfer both ways: done runs "
                    "once, ABORTED, side -1, err 0, before abort returns; a second abort "
                    "does nothing; both peers see a reset")
{
    rig_begin(true);
    rig_links(LINK_TCP, 0, 80, 64 << 20, 64 << 20);
    rig_relay(NULL);
    cr_assert(rig_run(cond_traffic, 20));
    ac_relay_abort(R.r, true);
    check_done(&R.dn, AC_RELAY_ABORTED);
    cr_assert_eq(R.dn.st.side, -1);
    cr_assert_eq(R.dn.st.err, 0);
    ac_relay_abort(R.r, true); /* ended: nothing; r lives until the next iteration */
    ac_relay_abort(R.r, false);
    cr_assert_eq(R.dn.calls, 1);
    cr_assert(rig_run(cond_all_over, 10));
    cr_assert(peer_saw_reset(&R.a), "a: rx %s tx %s", strerror(R.a.rx_err), strerror(R.a.tx_err));
    cr_assert(peer_saw_reset(&R.b), "b: rx %s tx %s", strerror(R.b.rx_err), strerror(R.b.tx_err));
    cr_assert_eq(R.a.rx_bad, 0);
    cr_assert_eq(R.b.rx_bad, 0);
    rig_end();
}

static bool cond_quiet(void) { return R.a.rx_got == 7000 && R.b.rx_got == 9000; }

Test(relay, abort_plain_when_quiet, .timeout = 30,
     .description = "ac_relay_abort(false) once everything sent has been delivered: both "
                    "peers see a plain EOF, no reset; ABORTED; stats.bytes exact")
{
    rig_begin(true);
    rig_links(LINK_TCP, 0, 90, 9000, 7000);
    R.a.shut_after = R.b.shut_after = false;
    rig_relay(NULL);
    cr_assert(rig_run(cond_quiet, 20));
    rig_run_for(0.05);
    ac_relay_abort(R.r, false);
    check_done(&R.dn, AC_RELAY_ABORTED);
    cr_assert_eq(R.dn.st.bytes[AC_RELAY_AB], 9000);
    cr_assert_eq(R.dn.st.bytes[AC_RELAY_BA], 7000);
    cr_assert_eq(R.dn.st.first_eof, -1);
    cr_assert(rig_run(cond_all_over, 10));
    cr_assert(R.a.eof && R.b.eof);
    cr_assert_eq(R.a.rx_err, 0);
    cr_assert_eq(R.b.rx_err, 0);
    rig_end();
}

/* Abort from inside the loop: a timer of the same map. */
static int calls_at_return = -1;
static double abort_from_timer(ac_timer *t, void *arg)
{
    (void)arg;
    ac_relay_abort(R.r, true);
    calls_at_return = R.dn.calls;
    ac_timer_free(t);
    return -1;
}

Test(relay, abort_from_a_timer_in_the_loop, .timeout = 30,
     .description = "ac_relay_abort called by a timer callback while bytes flow: done has "
                    "run once when abort returns; the relay's dispatchers are finalized "
                    "after the dispatch; nothing leaks")
{
    rig_begin(true);
    rig_links(LINK_TCP, 0, 95, 8 << 20, 8 << 20);
    rig_relay(NULL);
    cr_assert(rig_run(cond_traffic, 20));
    ac_timer *t = ac_timer_new(R.m, abort_from_timer, NULL);
    cr_assert_not_null(t);
    cr_assert_eq(ac_timer_start(t, 0), 0);
    cr_assert(rig_run(cond_done, 10));
    cr_assert_eq(calls_at_return, 1);
    check_done(&R.dn, AC_RELAY_ABORTED);
    cr_assert(rig_run(cond_all_over, 10));
    cr_assert_eq(ac_map_count(R.m), 0);
    rig_end();
}

static bool cond_some_traffic(void) { return R.a.rx_got > 0 && R.b.rx_got > 0; }

Test(relay, close_all_aborts_a_running_relay, .timeout = 30,
     .description = "ac_close_all on a map with a running relay (with its idle timer): done "
                    "runs once with ABORTED when the sides are finalized; freeing the map "
                    "is clean")
{
    rig_begin(true);
    rig_links(LINK_TCP, 0, 96, 100000, 100000);
    ac_relay_config cfg = {.idle_timeout = 30};
    rig_relay(&cfg);
    cr_assert(rig_run(cond_some_traffic, 20));
    cr_assert_eq(R.dn.calls, 0);
    cr_assert_eq(ac_close_all(R.m, true), 0);
    cr_assert_eq(ac_map_count(R.m), 0);
    cr_assert_eq(ac_poll(R.m, 0), 0); /* the finalizers run */
    check_done(&R.dn, AC_RELAY_ABORTED);
    cr_assert_eq(R.dn.st.side, -1);
    rig_end();
}

/* ------------------------------------------------------- timeouts */

Test(relay, idle_timeout_without_traffic, .timeout = 30,
     .description = "idle_timeout 0.3 s and no byte: IDLE_TIMEOUT, side -1, err 0, not "
                    "before 0.3 s; both peers see a plain EOF")
{
    rig_begin(true);
    rig_links(LINK_TCP, 0, 100, 0, 0);
    R.a.shut_after = R.b.shut_after = false;
    ac_relay_config cfg = {.idle_timeout = 0.3};
    double t0 = tk_clock();
    rig_relay(&cfg);
    cr_assert(rig_run(cond_all_over, 20));
    check_done(&R.dn, AC_RELAY_IDLE_TIMEOUT);
    cr_assert_eq(R.dn.st.side, -1);
    cr_assert_eq(R.dn.st.err, 0);
    cr_assert_geq(R.dn.at - t0, 0.29, "ended after %.3f s", R.dn.at - t0);
    cr_assert_geq(R.dn.st.end - R.dn.st.start, 0.29);
    cr_assert(R.a.eof && R.b.eof && !R.a.rx_err && !R.b.rx_err);
    rig_end();
}

/* Traffic every 0.1 s, alternating directions, for 2.5 s. */
static double last_tick;
static int ticks;
static bool cond_ticks(void)
{
    double now = tk_clock();
    if (now - last_tick >= 0.1 && ticks < 25) {
        last_tick = now;
        struct peer *p = ticks % 2 ? &R.b : &R.a;
        p->tx_total++;
        ticks++;
    }
    return ticks == 25 && R.a.rx_got + R.b.rx_got == 25;
}

Test(relay, idle_timeout_rearmed_by_traffic, .timeout = 60,
     .description = "idle_timeout 1 s with a byte every 0.1 s (either way) for 2.5 s: still "
                    "running, every byte through; then quiet: IDLE_TIMEOUT, no sooner than "
                    "1 s after the last byte")
{
    rig_begin(true);
    rig_links(LINK_TCP, 0, 101, 0, 0);
    R.a.shut_after = R.b.shut_after = false;
    ac_relay_config cfg = {.idle_timeout = 1.0};
    rig_relay(&cfg);
    last_tick = tk_clock();
    cr_assert(rig_run(cond_ticks, 30));
    double last = tk_clock();
    cr_assert_eq(R.dn.calls, 0, "traffic kept it alive");
    cr_assert(rig_run(cond_done, 20));
    check_done(&R.dn, AC_RELAY_IDLE_TIMEOUT);
    cr_assert_geq(R.dn.at - last, 0.95, "ended %.3f s after the last byte", R.dn.at - last);
    cr_assert_geq(R.dn.st.end - R.dn.st.start, 3.4);
    cr_assert_eq(R.dn.st.bytes[0] + R.dn.st.bytes[1], 25);
    cr_assert_eq(R.a.rx_bad + R.b.rx_bad, 0);
    cr_assert(rig_run(cond_all_over, 10));
    rig_end();
}

/* A non-blocking socket connecting to addr. */
Test(relay, connect_refused, .timeout = 30,
     .description = "b_connecting to a refusing port (with a connect timeout too): "
                    "CONNECT_FAILED, side b, ECONNREFUSED, done once (the timer never fires "
                    "later); a is closed plainly and sees EOF")
{
    rig_begin(true);
    int la[2], holder;
    make_link(LINK_TCP, la, 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_refusing_addr(AF_INET, &ss, &holder);
    R.rfd[0] = la[1];
    R.rfd[1] = rig_connecting(&ss, len);
    peer_init(&R.a, "a", la[0], 1, 2, 0, 1);
    ac_relay_config cfg = {.b_connecting = true, .connect_timeout = 0.5};
    rig_relay(&cfg);
    cr_assert(rig_run(cond_done, 10));
    check_done(&R.dn, AC_RELAY_CONNECT_FAILED);
    cr_assert_eq(R.dn.st.side, AC_RELAY_B);
    cr_assert_eq(R.dn.st.err, ECONNREFUSED, "err %s", strerror(R.dn.st.err));
    cr_assert_eq(R.dn.st.bytes[0] + R.dn.st.bytes[1], 0);
    cr_assert(rig_run(cond_a_eof, 10));
    cr_assert(R.a.eof, "a: plain close (rx %s)", strerror(R.a.rx_err));
    rig_run_for(0.7); /* past the connect timeout: no second done */
    cr_assert_eq(R.dn.calls, 1);
    close(holder);
    rig_end();
}

Test(relay, connect_completes_then_relays, .timeout = 30,
     .description = "b_connecting to a listener: what a sent before the connect completed "
                    "and a push to b, in order; bytes both ways; CLEAN; the connect timeout "
                    "never fires")
{
    rig_begin(true);
    int la[2];
    make_link(LINK_TCP, la, 0);
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = tk_listener(AF_INET, &ss, &len, 4);
    R.rfd[0] = la[1];
    R.rfd[1] = rig_connecting(&ss, len);
    peer_init(&R.a, "a", la[0], 110, 1110, 300000, 1);
    R.a.shut_after = true;
    ac_relay_config cfg = {.b_connecting = true, .connect_timeout = 0.5};
    rig_relay(&cfg);
    cr_assert_eq(ac_relay_push(R.r, AC_RELAY_B, "GREETING", 8), 0);
    double now = tk_clock();
    peer_step(&R.a, now); /* a's first bytes wait in the socket */
    int bfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(bfd, 0);
    close(lfd);
    peer_init(&R.b, "b", bfd, 1110, 110, 200000, 2);
    R.b.shut_after = true;
    R.b.prefix = (const unsigned char *)"GREETING";
    R.b.prefix_len = 8;
    cr_assert(rig_run(cond_all_over, 30));
    check_clean();
    rig_run_for(0.6);
    cr_assert_eq(R.dn.calls, 1);
    rig_end();
}

Test(relay, connect_timeout_backlog_full, .timeout = 30,
     .description = "b_connecting to a listener whose accept queue is full (SYNs dropped, "
                    "the connect stays in progress): CONNECT_TIMEOUT after connect_timeout "
                    "0.4 s, side b, ETIMEDOUT; a sees a plain EOF")
{
    rig_begin(true);
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = tk_listener(AF_INET, &ss, &len, 0);
    /* Backlog 0 takes one connection; then the queue is full. */
    int filler[4], nfill = 0, bfd = -1;
    for (int i = 0; i < 4 && bfd < 0; i++) {
        int fd = rig_connecting(&ss, len);
        if (tk_wait_fd(fd, POLLOUT, 300))
            filler[nfill++] = fd; /* got in */
        else
            bfd = fd; /* stuck in SYN_SENT */
    }
    if (bfd < 0) {
        for (int i = 0; i < nfill; i++)
            close(filler[i]);
        close(lfd);
        R.dn.calls = 1;
        rig_end();
        cr_skip_test("the kernel completed every connect to a full listener: no way to "
                     "hold a loopback connect in progress");
    }
    int la[2];
    make_link(LINK_TCP, la, 0);
    R.rfd[0] = la[1];
    R.rfd[1] = bfd;
    peer_init(&R.a, "a", la[0], 1, 2, 0, 1);
    ac_relay_config cfg = {.b_connecting = true, .connect_timeout = 0.4, .idle_timeout = 0.1};
    double t0 = tk_clock();
    rig_relay(&cfg);
    cr_assert(rig_run(cond_all_over, 15), "done %d how %s a eof %d err %d", R.dn.calls,
              ac_relay_end_name(R.dn.st.how), R.a.eof, R.a.rx_err);
    check_done(&R.dn, AC_RELAY_CONNECT_TIMEOUT);
    cr_assert_eq(R.dn.st.side, AC_RELAY_B);
    cr_assert_eq(R.dn.st.err, ETIMEDOUT);
    cr_assert_geq(R.dn.at - t0, 0.39, "after %.3f s (not the idle timeout)", R.dn.at - t0);
    cr_assert(R.a.eof && !R.a.rx_err);
    for (int i = 0; i < nfill; i++)
        close(filler[i]);
    close(lfd);
    rig_end();
}

/* ------------------------------------------------------------ paths */

static void path_case(bool ign, bool no_splice, bool want_splice)
{
    rig_begin(ign);
    rig_links(LINK_TCP, 0, 120, 50000, 60000);
    ac_relay_config cfg = {.no_splice = no_splice, .splice_always = !no_splice};
    rig_relay(&cfg);
    cr_assert(rig_run(cond_all_over, 20));
    check_clean();
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(R.dn.st.spliced[i], want_splice, "dir %d spliced", i);
        cr_assert_eq(R.dn.st.buffered[i], !want_splice, "dir %d buffered", i);
    }
    rig_end();
}

Test(relay, splice_path_and_buffered_path, .timeout = 30,
     .description = "stats.spliced / stats.buffered: SIGPIPE ignored -> splice both ways; "
                    "no_splice -> buffered; SIGPIPE at its default -> buffered (splice would "
                    "raise SIGPIPE)")
{
    path_case(true, false, true);
    path_case(true, true, false);
    path_case(false, false, false);
}

static void sigpipe_handler(int sig) { (void)sig; }

Test(relay, splice_with_sigpipe_handled, .timeout = 30,
     .description = "SIGPIPE handled (not ignored) or blocked also allow splice")
{
    ac_relay_config always = {.splice_always = true};
    signal(SIGPIPE, sigpipe_handler);
    memset(&R, 0, sizeof(R));
    R.fds0 = count_fds();
    R.m = tk_map();
    rig_links(LINK_TCP, 0, 121, 10000, 10000);
    rig_relay(&always);
    cr_assert(rig_run(cond_all_over, 20));
    check_clean();
    cr_assert(R.dn.st.spliced[0] && R.dn.st.spliced[1]);
    rig_end();

    signal(SIGPIPE, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    cr_assert_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
    memset(&R, 0, sizeof(R));
    rig_npeers = 0;
    R.fds0 = count_fds();
    R.m = tk_map();
    rig_links(LINK_TCP, 0, 122, 10000, 10000);
    rig_relay(&always);
    cr_assert(rig_run(cond_all_over, 20));
    check_clean();
    cr_assert(R.dn.st.spliced[0] && R.dn.st.spliced[1]);
    rig_end();
}

/* ------------------------------------------------------ many at once */

#define NREL 6
static struct done_rec many_dn[NREL];
static struct peer many_a[NREL], many_b[NREL];

static bool cond_many(void)
{
    for (int i = 0; i < NREL; i++)
        if (!many_dn[i].calls || !peer_rx_over(&many_a[i]) || !peer_rx_over(&many_b[i]))
            return false;
    return true;
}

Test(relay, six_relays_in_one_map, .timeout = 120,
     .description = "six relays at once in one map (mixed splice/buffered, socketpairs and "
                    "TCP, buffer sizes), random traffic: each CLEAN with every byte; the "
                    "thread cache of pipes and buffers is reused and given back")
{
    rig_begin(true);
    for (int i = 0; i < NREL; i++) {
        int la[2], lb[2];
        enum link k = i % 3 == 0 ? LINK_UNIX : LINK_TCP;
        make_link(k, la, 0);
        make_link(k, lb, 0);
        uint64_t s = 200 + (uint64_t)i;
        peer_init(&many_a[i], "a", la[0], s, s + 1000, 100000 + 37000 * (uint64_t)i, (uint32_t)s);
        peer_init(&many_b[i], "b", lb[1], s + 1000, s, 250000 - 30000 * (uint64_t)i,
                  (uint32_t)s * 3);
        many_a[i].shut_after = many_b[i].shut_after = true;
        many_a[i].pause_pct = many_b[i].pause_pct = 2;
        many_a[i].pause_ms = many_b[i].pause_ms = 10;
        many_a[i].max_chunk = 1000 + 9000 * (size_t)i;
        many_dn[i].fd[0] = la[1];
        many_dn[i].fd[1] = lb[0];
        ac_relay_config cfg = {.no_splice = i % 2 == 1, .buffer_size = 4096u << i};
        ac_relay *r;
        cr_assert_eq(ac_relay_new(&r, R.m, la[1], lb[0], &cfg, on_done, &many_dn[i]), 0);
    }
    cr_assert(rig_run(cond_many, 90));
    for (int i = 0; i < NREL; i++) {
        check_done(&many_dn[i], AC_RELAY_CLEAN);
        struct peer *a = &many_a[i], *b = &many_b[i];
        cr_assert_eq(b->rx_got, a->tx_total);
        cr_assert_eq(a->rx_got, b->tx_total);
        cr_assert_eq(a->rx_bad + b->rx_bad, 0);
        cr_assert_eq(b->rx_hash, a->tx_hash);
        cr_assert_eq(a->rx_hash, b->tx_hash);
        cr_assert_eq(many_dn[i].st.bytes[0], a->tx_total);
        cr_assert_eq(many_dn[i].st.bytes[1], b->tx_total);
    }
    R.dn.calls = 1; /* the six records were checked above */
    rig_end();
}

/* A connect that stays in progress: a listener with backlog 0 whose one
 * place is taken.  Returns the stuck socket, or -1 (fillers in fill[]). */
static int stuck_connect(int lfd, const struct sockaddr_storage *ss, socklen_t len, int fill[4],
                         int *nfill)
{
    (void)lfd;
    *nfill = 0;
    for (int i = 0; i < 4; i++) {
        int fd = rig_connecting(ss, len);
        if (!tk_wait_fd(fd, POLLOUT, 300))
            return fd;
        fill[(*nfill)++] = fd;
    }
    return -1;
}

Test(relay, idle_timeout_while_connecting_without_connect_timeout, .timeout = 30,
     .description = "b_connecting with connect_timeout 0 (no limit) and idle_timeout 0.5 s, "
                    "the connect stuck in progress: no CONNECT_TIMEOUT at once; the idle "
                    "timeout ends it, not before 0.5 s")
{
    rig_begin(true);
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = tk_listener(AF_INET, &ss, &len, 0);
    int fill[4], nfill;
    int bfd = stuck_connect(lfd, &ss, len, fill, &nfill);
    if (bfd < 0) {
        for (int i = 0; i < nfill; i++)
            close(fill[i]);
        close(lfd);
        R.dn.calls = 1;
        rig_end();
        cr_skip_test("the kernel completed every connect to a full listener");
    }
    int la[2];
    make_link(LINK_TCP, la, 0);
    R.rfd[0] = la[1];
    R.rfd[1] = bfd;
    peer_init(&R.a, "a", la[0], 1, 2, 0, 1);
    ac_relay_config cfg = {.b_connecting = true, .idle_timeout = 0.5};
    double t0 = tk_clock();
    rig_relay(&cfg);
    cr_assert(rig_run(cond_all_over, 15));
    check_done(&R.dn, AC_RELAY_IDLE_TIMEOUT);
    cr_assert_geq(R.dn.at - t0, 0.49, "ended after %.3f s", R.dn.at - t0);
    cr_assert(R.a.eof && !R.a.rx_err);
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    close(lfd);
    rig_end();
}

Test(relay, connect_then_idle_timeout_only, .timeout = 30,
     .description = "b_connecting to a listener with only an idle timeout (5 s): the connect "
                    "completes, bytes both ways, CLEAN")
{
    rig_begin(true);
    int la[2];
    make_link(LINK_TCP, la, 0);
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = tk_listener(AF_INET, &ss, &len, 4);
    R.rfd[0] = la[1];
    R.rfd[1] = rig_connecting(&ss, len);
    peer_init(&R.a, "a", la[0], 130, 1130, 100000, 1);
    ac_relay_config cfg = {.b_connecting = true, .idle_timeout = 5};
    rig_relay(&cfg);
    int bfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(bfd, 0);
    close(lfd);
    peer_init(&R.b, "b", bfd, 1130, 130, 100000, 2);
    R.a.shut_after = R.b.shut_after = true;
    cr_assert(rig_run(cond_all_over, 30));
    check_clean();
    rig_end();
}
