/* Unit: signals delivered inside the loop (header ac_signal_watch). */
#include "ac_testkit.h"

#include <pthread.h>
#include <signal.h>

static int calls;
static int inside_rc;
static int last_signo;
static int exit_after = 1;

static int on_signal(ac_map *m, int signo, void *arg)
{
    cr_assert_eq(arg, (void *)&calls);
    calls++;
    last_signo = signo;
    tk_tr("sig:%d", signo);
    inside_rc = ac_loop(m, 0, 1); /* -EBUSY proves we run inside the loop (X19) */
    return calls >= exit_after ? AC_EXIT_NOW : 0;
}

Test(signals, raise_runs_handler_inside_the_loop, .timeout = 5,
     .description = "header ac_signal_watch: a raised SIGUSR1 runs the handler inside the "
                    "loop; AC_EXIT_NOW from it stops the loop (L16)")
{
    ac_map *m = tk_map();
    tk_anchor(m);
    cr_assert_eq(ac_signal_watch(m, SIGUSR1, on_signal, &calls), 0);
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    cr_assert(sigismember(&cur, SIGUSR1), "the signal is blocked in the calling thread");
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert_eq(calls, 0, "not delivered outside the loop");
    double t0 = tk_clock();
    cr_assert_eq(ac_loop(m, 5.0, AC_FOREVER), AC_EXIT_NOW);
    cr_assert_lt(tk_clock() - t0, 1.0);
    cr_assert_eq(calls, 1);
    cr_assert_eq(last_signo, SIGUSR1);
    cr_assert_eq(inside_rc, -EBUSY);
    cr_assert_eq(ac_map_count(m), 1);
    tk_anchor_finish(m);
}

static void *kill_later(void *arg)
{
    (void)arg;
    usleep(100 * 1000);
    kill(getpid(), SIGUSR1);
    return NULL;
}

Test(signals, kill_from_another_thread_wakes_a_blocked_loop, .timeout = 5,
     .description = "header ac_signal_watch: kill() to the process while the loop waits "
                    "with a 5 s timeout: the handler runs promptly in the loop thread")
{
    ac_map *m = tk_map();
    tk_anchor(m);
    cr_assert_eq(ac_signal_watch(m, SIGUSR1, on_signal, &calls), 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, kill_later, NULL), 0); /* inherits the mask */
    double t0 = tk_clock();
    cr_assert_eq(ac_loop(m, 5.0, AC_FOREVER), AC_EXIT_NOW);
    double el = tk_clock() - t0;
    pthread_join(t, NULL);
    cr_assert_geq(el, 0.05);
    cr_assert_lt(el, 1.5, "took %.3f s", el);
    cr_assert_eq(calls, 1);
    tk_anchor_finish(m);
}

Test(signals, handler_returning_zero_keeps_looping, .timeout = 5,
     .description = "header ac_signal_watch: a handler returning 0 lets the loop go on; each "
                    "delivery runs it once")
{
    ac_map *m = tk_map();
    tk_anchor(m);
    exit_after = 3;
    cr_assert_eq(ac_signal_watch(m, SIGUSR1, on_signal, &calls), 0);
    for (int i = 1; i <= 2; i++) {
        cr_assert_eq(raise(SIGUSR1), 0);
        cr_assert_eq(ac_poll(m, 1.0), 0);
        cr_assert_eq(calls, i);
    }
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert_eq(ac_poll(m, 1.0), AC_EXIT_NOW);
    cr_assert_str_eq(tk_trace, "sig:10 sig:10 sig:10");
    tk_anchor_finish(m);
}

static int on_any(ac_map *m, int signo, void *arg)
{
    (void)m;
    (void)arg;
    tk_tr("sig:%d", signo);
    return 0;
}

Test(signals, two_signals_two_handlers, .timeout = 5,
     .description = "header ac_signal_watch: SIGUSR1 and SIGUSR2 watched on one map each "
                    "reach their handler with their number")
{
    ac_map *m = tk_map();
    tk_anchor(m);
    cr_assert_eq(ac_signal_watch(m, SIGUSR1, on_any, NULL), 0);
    cr_assert_eq(ac_signal_watch(m, SIGUSR2, on_any, NULL), 0);
    cr_assert_eq(raise(SIGUSR2), 0);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "sig:12");
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "sig:12 sig:10");
    tk_anchor_finish(m);
}

Test(signals, unwatch_unblocks, .timeout = 5,
     .description = "header ac_signal_unwatch: the handler is gone and the signal unblocked; "
                    "unknown or invalid signals are -EINVAL")
{
    ac_map *m = tk_map();
    tk_anchor(m);
    cr_assert_eq(ac_signal_watch(m, 0, on_any, NULL), -EINVAL);
    cr_assert_eq(ac_signal_watch(m, SIGUSR1, NULL, NULL), -EINVAL);
    cr_assert_eq(ac_signal_unwatch(m, SIGUSR2), -EINVAL);
    cr_assert_eq(ac_signal_watch(m, SIGUSR1, on_any, NULL), 0);
    cr_assert_eq(ac_signal_unwatch(m, SIGUSR1), 0);
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    cr_assert_not(sigismember(&cur, SIGUSR1));
    signal(SIGUSR1, SIG_IGN);
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert_eq(ac_poll(m, 0.05), 0);
    cr_assert_str_empty(tk_trace);
    tk_anchor_finish(m);
}
