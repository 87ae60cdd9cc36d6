/* Unit: the thread-safe wake-up (DESIGN decision 8, X20):
 * ac_call_soon_threadsafe and ac_wakeup from other threads. */
#include "ac_testkit.h"

#include <pthread.h>

static pthread_t loop_thread;
static int wrong_thread;

static void stop_call(ac_map *m, void *arg)
{
    (void)arg;
    if (!pthread_equal(pthread_self(), loop_thread))
        wrong_thread++;
    tk_tr("call");
    ac_loop_stop(m);
}

static void *call_later(void *arg)
{
    usleep(100 * 1000);
    cr_assert_eq(ac_call_soon_threadsafe(arg, stop_call, NULL), 0);
    return NULL;
}

Test(wakeup, call_from_thread_wakes_blocked_loop, .timeout = 5,
     .description = "DESIGN-8 X20: ac_call_soon_threadsafe from another thread wakes a loop "
                    "blocked with a 5 s timeout; the call runs in the loop thread")
{
    ac_map *m = tk_map();
    tk_anchor(m);
    loop_thread = pthread_self();
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, call_later, m), 0);
    double t0 = tk_clock();
    cr_assert_eq(ac_loop(m, 5.0, AC_FOREVER), AC_EXIT_NOW);
    double el = tk_clock() - t0;
    pthread_join(t, NULL);
    cr_assert_geq(el, 0.05);
    cr_assert_lt(el, 1.5, "took %.3f s", el);
    cr_assert_str_eq(tk_trace, "call");
    cr_assert_eq(wrong_thread, 0);
    tk_anchor_finish(m);
}

static void *wake_later(void *arg)
{
    usleep(100 * 1000);
    ac_wakeup(arg);
    return NULL;
}

Test(wakeup, wakeup_from_thread_ends_the_wait, .timeout = 5,
     .description = "DESIGN-8: ac_wakeup from another thread makes a 5 s wait return; the "
                    "iteration counts (L4) and dispatches nothing")
{
    ac_map *m = tk_map();
    tk_anchor(m);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, wake_later, m), 0);
    double t0 = tk_clock();
    cr_assert_eq(ac_loop(m, 5.0, 1), 0);
    double el = tk_clock() - t0;
    pthread_join(t, NULL);
    cr_assert_lt(el, 1.5, "took %.3f s", el);
    cr_assert_str_empty(tk_trace);
    tk_anchor_finish(m);
}

#define NCALLS 20000
#define NTHREADS 4

static int seen[NTHREADS];
static int disorder;
static int total_calls;

struct producer {
    ac_map *m;
    int id;
};

static void ordered_call(ac_map *m, void *arg)
{
    intptr_t v = (intptr_t)arg;
    int id = (int)(v / NCALLS), seq = (int)(v % NCALLS);
    if (seq != seen[id])
        disorder++;
    seen[id] = seq + 1;
    if (!pthread_equal(pthread_self(), loop_thread))
        wrong_thread++;
    if (++total_calls == NCALLS * NTHREADS)
        ac_loop_stop(m);
}

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (int i = 0; i < NCALLS; i++) {
        cr_assert_eq(
            ac_call_soon_threadsafe(p->m, ordered_call, (void *)(intptr_t)(p->id * NCALLS + i)), 0);
        if (i % 1000 == 0)
            sched_yield();
    }
    return NULL;
}

Test(wakeup, many_calls_keep_their_order, .timeout = 30,
     .description = "DESIGN-8: 4 threads queue 20000 calls each while the loop runs; every "
                    "call runs once, in the loop thread, each thread's calls in order")
{
    ac_map *m = tk_map();
    tk_anchor(m);
    loop_thread = pthread_self();
    pthread_t t[NTHREADS];
    struct producer p[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        p[i] = (struct producer){m, i};
        cr_assert_eq(pthread_create(&t[i], NULL, produce, &p[i]), 0);
    }
    cr_assert_eq(ac_loop(m, 5.0, AC_FOREVER), AC_EXIT_NOW);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(total_calls, NCALLS * NTHREADS);
    cr_assert_eq(disorder, 0);
    for (int i = 0; i < NTHREADS; i++)
        cr_assert_eq(seen[i], NCALLS);
    cr_assert_eq(wrong_thread, 0);
    tk_anchor_finish(m);
}

static void trace_call(ac_map *m, void *arg)
{
    (void)m;
    tk_tr("%d", (int)(intptr_t)arg);
}

Test(wakeup, calls_queued_before_the_loop_run_in_order_in_its_first_iteration, .timeout = 5,
     .description = "DESIGN-8: calls queued before the loop starts run in its first "
                    "iteration, in the order queued, without waiting the timeout")
{
    ac_map *m = tk_map();
    tk_anchor(m);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ac_call_soon_threadsafe(m, trace_call, (void *)(intptr_t)i), 0);
    double t0 = tk_clock();
    cr_assert_eq(ac_poll(m, 5.0), 0);
    cr_assert_lt(tk_clock() - t0, 1.0);
    cr_assert_str_eq(tk_trace, "0 1 2 3 4");
    cr_assert_eq(ac_call_soon_threadsafe(m, NULL, NULL), -EINVAL);
    tk_anchor_finish(m);
}

Test(wakeup, pending_calls_when_the_map_is_freed, .timeout = 5,
     .description = "DESIGN-8 X4: calls still queued when the map is freed are released "
                    "(ASan: no leak)")
{
    ac_map *m = tk_map();
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ac_call_soon_threadsafe(m, trace_call, (void *)(intptr_t)i), 0);
    tk_finish(m);
}
