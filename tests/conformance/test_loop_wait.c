/* Conformance: what one iteration waits for (spec L6-L9): interest
 * collection from readable() and writable() (CPython's test_handle_expt
 * for urgent data), nothing to wait for, the timeout, and waits
 * interrupted by signals.
 *
 * Expected traces were checked against Python 3.11's asyncore on Linux
 * where a kernel is involved.  The binary runs once per poller
 * (AC_POLLER); expectations that differ between the select-style and the
 * poll-style iteration look at ac_map_poller_name() through
 * tk_is_select().  epoll must always give the poll-style answer (L20).
 * The rig and the trace tokens are tests/support/loop_rig.h. */
#include "loop_rig.h"

/* ================================================ L6: interest collection */

Test(loop, predicates_asked_once_each_in_map_order, .timeout = 5,
     .description = "L6 L2: every iteration asks readable() then writable() of each "
                    "channel, in map order, once each, even when readable() was true or "
                    "the channel is accepting")
{
    ac_map *m = tk_map();
    int s1[2], s2[2], s3[2];
    tk_socketpair(SOCK_STREAM, s1);
    tk_socketpair(SOCK_STREAM, s2);
    tk_socketpair(SOCK_STREAM, s3);
    ac_dispatcher *a = mk(m, &ph, "a", s1[0], true, false);
    ac_dispatcher *b = mk(m, &ph, "b", s2[0], false, false);
    ac_dispatcher *c = mk(m, &ph, "c", s3[0], true, true);
    ac_set_accepting(c, true);
    lp(a)->trace_preds = lp(b)->trace_preds = lp(c)->trace_preds = true;
    cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_str_eq(tk_trace, "a:readable a:writable b:readable b:writable c:readable "
                               "c:writable");
    tk_trace_clear();
    cr_assert_eq(ac_loop(m, 0, 2), 0);
    cr_assert_str_eq(tk_trace, "a:readable a:writable b:readable b:writable c:readable "
                               "c:writable a:readable a:writable b:readable b:writable "
                               "c:readable c:writable");
    tk_finish(m);
    close(s1[1]);
    close(s2[1]);
    close(s3[1]);
}

Test(loop, reinsertion_moves_a_channel_to_the_end, .timeout = 5,
     .description = "L2 L6: del_channel + add_channel moves a channel to the end of the "
                    "map order, and predicates follow that order")
{
    ac_map *m = tk_map();
    int s1[2], s2[2], s3[2];
    tk_socketpair(SOCK_STREAM, s1);
    tk_socketpair(SOCK_STREAM, s2);
    tk_socketpair(SOCK_STREAM, s3);
    ac_dispatcher *a = mk(m, &ph, "a", s1[0], false, false);
    ac_dispatcher *b = mk(m, &ph, "b", s2[0], false, false);
    ac_dispatcher *c = mk(m, &ph, "c", s3[0], false, false);
    lp(a)->trace_preds = lp(b)->trace_preds = lp(c)->trace_preds = true;
    cr_assert_eq(ac_del_channel(a), 0);
    cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_str_eq(tk_trace, "b:readable b:writable c:readable c:writable");
    tk_trace_clear();
    cr_assert_eq(ac_add_channel(a), 0);
    cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_str_eq(tk_trace, "b:readable b:writable c:readable c:writable a:readable "
                               "a:writable");
    tk_finish(m);
    close(s1[1]);
    close(s2[1]);
    close(s3[1]);
}

Test(loop, predicates_installed_later_keep_map_order, .timeout = 5,
     .description = "L6 L2 X7: a channel that gets predicates through ac_set_handlers "
                    "after registration is still asked in map order (before a channel "
                    "registered after it)")
{
    ac_map *m = tk_map();
    int s1[2], s2[2];
    tk_socketpair(SOCK_STREAM, s1);
    tk_socketpair(SOCK_STREAM, s2);
    ac_dispatcher *a = mk(m, &nph, "a", s1[0], false, false);
    ac_dispatcher *b = mk(m, &ph, "b", s2[0], false, false);
    lp(a)->trace_preds = lp(b)->trace_preds = true;
    ac_set_handlers(a, &ph);
    cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_str_eq(tk_trace, "a:readable a:writable b:readable b:writable");
    tk_finish(m);
    close(s1[1]);
    close(s2[1]);
}

Test(loop, channel_closing_itself_in_readable, .timeout = 5,
     .description = "L6 L19 X4: readable() closes its own channel (close works from "
                    "anywhere): writable() is still asked, the closed channel gets no "
                    "event, the map is empty and the loop ends; poll-style returns 0 "
                    "(Python's poll2 too), select-style 0 or -EBADF (Python's select "
                    "fails on the closed number)")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *a = mk(m, &ph, "a", sv[0], true, true);
    struct tk_node *na = tk_node(a);
    lp(a)->trace_preds = true;
    lp(a)->close_in_r = true;
    cr_assert_eq(write(sv[1], "x", 1), 1);
    int rc = ac_loop(m, 0.05, 3);
    if (tk_is_select(m))
        cr_assert(rc == 0 || rc == -EBADF, "rc %d", rc);
    else
        cr_assert_eq(rc, 0, "rc %d", rc);
    cr_assert_str_eq(tk_trace, "a:readable a:writable");
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_eq(na->finalized, 1);
    tk_finish(m);
    close(sv[1]);
}

/* A socketpair end is always writable: write interest would end a wait at
 * once, so a full wait proves there was none. */
static double timed_poll(ac_map *m, double timeout)
{
    double t0 = tk_clock();
    cr_assert_eq(ac_poll(m, timeout), 0);
    return tk_clock() - t0;
}

Test(loop, accepting_channel_gets_no_write_interest, .timeout = 5,
     .description = "L6 D7: writable() true but accepting: no write interest, so the wait "
                    "on an always-writable socket runs its full timeout and handle_write "
                    "never runs")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *a = mk(m, &ph, "a", sv[0], false, true);
    ac_set_accepting(a, true);
    double dt = timed_poll(m, 0.2);
    cr_assert_geq(dt, 0.19, "returned after %.3f s: write interest was registered", dt);
    cr_assert_str_empty(tk_trace);
    cr_assert_eq(lp(a)->wcalls, 1);
    /* The same channel, no longer accepting: the write comes at once. */
    ac_set_accepting(a, false);
    dt = timed_poll(m, 2.0);
    cr_assert_lt(dt, 1.0);
    cr_assert_str_eq(tk_trace, "a:write");
    tk_finish(m);
    close(sv[1]);
}

Test(loop, accepting_is_read_after_writable_ran, .timeout = 5,
     .description = "L6: the accepting test uses the flag as writable() left it: set "
                    "inside writable() -> no write interest this iteration; cleared inside "
                    "writable() -> write event this iteration")
{
    ac_map *m = tk_map();
    int sv[2], sw[2];
    tk_socketpair(SOCK_STREAM, sv);
    tk_socketpair(SOCK_STREAM, sw);
    ac_dispatcher *a = mk(m, &ph, "a", sv[0], false, true);
    lp(a)->set_acc_in_w = true;
    double dt = timed_poll(m, 0.2);
    cr_assert_geq(dt, 0.19, "returned after %.3f s", dt);
    cr_assert_str_empty(tk_trace);
    cr_assert(ac_is_accepting(a));
    cr_assert_eq(ac_close(a), 0);

    ac_dispatcher *b = mk(m, &ph, "b", sw[0], false, true);
    ac_set_accepting(b, true);
    lp(b)->clear_acc_in_w = true;
    dt = timed_poll(m, 2.0);
    cr_assert_lt(dt, 1.0);
    cr_assert_str_eq(tk_trace, "b:write");
    tk_finish(m);
    close(sv[1]);
    close(sw[1]);
}

/* Urgent data on a TCP channel with readable/writable as given; the trace
 * of one iteration.  Linux reports a lone urgent byte as an exceptional
 * condition (select) / POLLPRI only, not as readable. */
static void oob_case(bool r, bool w, bool with_data, const char *sel, const char *pol)
{
    ac_map *m = tk_map();
    int mine, peer;
    tk_tcp_pair(&peer, &mine);
    mk(m, &ph, "c", mine, r, w);
    if (with_data) {
        cr_assert_eq(send(peer, "abc", 3, 0), 3);
    }
    send_oob(peer, mine);
    if (with_data)
        cr_assert_eq(tk_inq(mine), 3);
    cr_assert_eq(ac_loop(m, 1.0, 1), 0);
    cr_assert_str_eq(tk_trace, tk_is_select(m) ? sel : pol, "%s r=%d w=%d", ac_map_poller_name(m),
                     r, w);
    tk_finish(m);
    close(peer);
}

Test(loop, urgent_data_readable_and_writable, .timeout = 5,
     .description = "L6 L10 L13 L20 D9 (test_handle_expt): urgent data reaches handle_expt "
                    "under every poller when the channel is readable; write first")
{
    oob_case(true, true, false, "c:write c:expt:1", "c:write c:expt:1");
}

Test(loop, urgent_data_writable_only, .timeout = 5,
     .description = "L6 D14 L20: a writable, not readable channel is watched for urgent data "
                    "under select (exceptional set) but not under poll/epoll (POLLPRI comes "
                    "with read interest only)")
{
    oob_case(false, true, false, "c:write c:expt:1", "c:write");
}

Test(loop, urgent_data_readable_only, .timeout = 5,
     .description = "L6 L20 D9: a readable, not writable channel gets handle_expt for "
                    "urgent data under every poller")
{
    oob_case(true, false, false, "c:expt:1", "c:expt:1");
}

Test(loop, urgent_and_normal_data_in_one_iteration, .timeout = 5,
     .description = "L10 L13 L20: normal and urgent data plus writability: read, then "
                    "write, then expt, under every poller")
{
    oob_case(true, true, true, "c:read:3 c:write c:expt:1", "c:read:3 c:write c:expt:1");
}

/* ================================================= L7: nothing to wait for */

Test(loop, nothing_wanted_sleeps_the_timeout_and_dispatches_nothing, .timeout = 5,
     .description = "L7 L6: when no channel wants anything the iteration waits for the "
                    "timeout and runs no handler, even with data pending and the peer gone "
                    "(poll-style: the fd is not registered, so no POLLHUP either)")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *a = mk(m, &ph, "a", sv[0], false, false);
    cr_assert_eq(write(sv[1], "12345", 5), 5);
    close(sv[1]);
    double dt = timed_poll(m, 0.15);
    cr_assert_geq(dt, 0.14, "returned after %.3f s", dt);
    cr_assert_lt(dt, 1.0);
    cr_assert_str_empty(tk_trace);
    cr_assert_eq(lp(a)->rcalls, 1);
    cr_assert_eq(ac_map_count(m), 1);
    cr_assert_eq(tk_inq(sv[0]), 5);
    /* And once it wants to read, everything is there. */
    lp(a)->r = true;
    cr_assert_eq(ac_poll(m, 1.0), 0);
    if (tk_is_select(m))
        cr_assert_str_eq(tk_trace, "a:read:5");
    else
        cr_assert_str_eq(tk_trace, "a:read:5 a:close", "POLLIN|POLLHUP (L13)");
    tk_finish(m);
}

/* ============================================================ L8: timeout */

Test(loop, timeout_zero_does_not_block, .timeout = 5,
     .description = "L8: timeout 0 polls without blocking: 50 idle iterations take well "
                    "under a second")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *a = mk(m, &ph, "a", sv[0], true, false);
    double t0 = tk_clock();
    cr_assert_eq(ac_loop(m, 0, 50), 0);
    cr_assert_lt(tk_clock() - t0, 0.5);
    cr_assert_eq(lp(a)->rcalls, 50);
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
    close(sv[1]);
}

Test(loop, fractional_timeout_is_honoured, .timeout = 5,
     .description = "L8: a 0.15 s timeout with nothing ready waits about 0.15 s, no handler")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    mk(m, &ph, "a", sv[0], true, false);
    double dt = timed_poll(m, 0.15);
    cr_assert_geq(dt, 0.149, "%.4f s", dt);
    cr_assert_lt(dt, 0.6, "%.4f s", dt);
    dt = tk_clock();
    cr_assert_eq(ac_loop(m, 0.05, 3), 0);
    dt = tk_clock() - dt;
    cr_assert_geq(dt, 0.149, "3 x 0.05 s: %.4f s", dt);
    cr_assert_lt(dt, 0.6);
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
    close(sv[1]);
}

struct delayed {
    int fd;
    int ms;
};

static void *delayed_write(void *arg)
{
    struct delayed *w = arg;
    struct timespec ts = {w->ms / 1000, (long)(w->ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    if (write(w->fd, "x", 1) != 1)
        abort();
    return NULL;
}

Test(loop, negative_timeout_waits_until_an_event, .timeout = 5,
     .description = "L8 X10: a negative timeout waits without limit: the iteration ends "
                    "when data arrives 150 ms later and dispatches it")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    mk(m, &ph, "a", sv[0], true, false);
    struct delayed w = {sv[1], 150};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, delayed_write, &w), 0);
    double dt = timed_poll(m, -1.0);
    pthread_join(th, NULL);
    cr_assert_geq(dt, 0.14, "%.3f s", dt);
    cr_assert_str_eq(tk_trace, "a:read:1");
    tk_finish(m);
    close(sv[1]);
}

Test(loop, sub_millisecond_timeout, .timeout = 10,
     .description = "L8: select waits with microsecond resolution (40 waits of 0.3 ms take "
                    "about 12 ms, well under 40 x 1 ms); poll/epoll round a sub-millisecond "
                    "remainder up to 1 ms (the header's allowed deviation, W18)")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    mk(m, &ph, "a", sv[0], true, false);
    const int n = 40;
    /* Best of three rounds, to be robust against a busy machine. */
    double best = 1e9;
    for (int round = 0; round < 3; round++) {
        double t0 = tk_clock();
        cr_assert_eq(ac_loop(m, 0.0003, n), 0);
        double dt = tk_clock() - t0;
        cr_assert_geq(dt, n * 0.0003, "waited less than asked: %.4f s", dt);
        if (!tk_is_select(m))
            cr_assert_geq(dt, n * 0.001, "%s should round 0.3 ms up to 1 ms: %.4f s",
                          ac_map_poller_name(m), dt);
        if (dt < best)
            best = dt;
    }
    if (tk_is_select(m))
        cr_assert_lt(best, n * 0.001, /* whole milliseconds could not go below this */
                     "select rounded 0.3 ms to whole milliseconds: %d waits took %.4f s", n, best);
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
    close(sv[1]);
}

/* ==================================================== L9: interrupted waits */

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

static void arm_alarm(long first_us, long interval_us)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the wait really sees EINTR */
    cr_assert_eq(sigaction(SIGALRM, &sa, NULL), 0);
    struct itimerval it = {{0, interval_us}, {0, first_us}};
    cr_assert_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
}

static void disarm_alarm(void)
{
    struct itimerval it;
    memset(&it, 0, sizeof(it));
    setitimer(ITIMER_REAL, &it, NULL);
    signal(SIGALRM, SIG_IGN);
}

Test(loop, signal_does_not_end_the_wait, .timeout = 5,
     .description = "L9: a signal 30 ms into a 0.25 s wait: the wait resumes and the "
                    "iteration ends at the timeout, returning 0 with no handler run")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *a = mk(m, &ph, "a", sv[0], true, false);
    arm_alarm(30000, 0);
    double dt = timed_poll(m, 0.25);
    disarm_alarm();
    cr_assert_eq(alarms, 1);
    cr_assert_geq(dt, 0.245, "ended early: %.3f s", dt);
    cr_assert_lt(dt, 0.6, "%.3f s", dt);
    cr_assert_str_empty(tk_trace);
    cr_assert_eq(lp(a)->rcalls, 1, "one iteration");
    tk_finish(m);
    close(sv[1]);
}

Test(loop, repeated_signals_resume_with_the_remaining_time, .timeout = 5,
     .description = "L9 X10: a signal every 10 ms during a 0.2 s wait: each resume uses the "
                    "remaining time, so the iteration still ends after about 0.2 s")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    mk(m, &ph, "a", sv[0], true, false);
    arm_alarm(10000, 10000);
    double dt = timed_poll(m, 0.2);
    disarm_alarm();
    cr_assert_geq(alarms, 10);
    cr_assert_geq(dt, 0.195, "ended early: %.3f s", dt);
    cr_assert_lt(dt, 0.5, "the timeout restarted on every signal: %.3f s", dt);
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
    close(sv[1]);
}

Test(loop, signals_during_an_unlimited_wait, .timeout = 5,
     .description = "L9 L8: signals during a wait without limit neither end it nor "
                    "dispatch; data arriving later ends it with exactly that read")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    mk(m, &ph, "a", sv[0], true, false);
    struct delayed w = {sv[1], 150};
    pthread_t th;
    /* Block SIGALRM in the writer thread so that it reaches the waiter. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    cr_assert_eq(pthread_create(&th, NULL, delayed_write, &w), 0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    arm_alarm(10000, 10000);
    double dt = timed_poll(m, -1.0);
    disarm_alarm();
    pthread_join(th, NULL);
    cr_assert_geq(alarms, 3);
    cr_assert_geq(dt, 0.14, "%.3f s", dt);
    cr_assert_str_eq(tk_trace, "a:read:1");
    tk_finish(m);
    close(sv[1]);
}
