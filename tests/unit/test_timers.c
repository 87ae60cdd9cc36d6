/* Unit: timers (header "timers, idle, signals"; W4, X10).  Timers keep no
 * loop alive by themselves (L4/L5: the loop runs while the map is not
 * empty), so each test registers an anchor (tk_anchor in ac_testkit.h)
 * that waits for reading on a quiet socketpair. */
#include "ac_testkit.h"

/* --------------------------------------------------- ordering property */

#define NT 200
static int fired[NT];
static int nfired;
static ac_map *cur_map;

static double record(ac_timer *t, void *arg)
{
    (void)t;
    fired[nfired++] = (int)(intptr_t)arg;
    if (nfired == NT)
        ac_loop_stop(cur_map);
    return -1;
}

Test(timers, fire_in_deadline_order_property, .timeout = 30,
     .description = "W4 X10: many timers with random delays (5 ms steps) fire in deadline "
                    "order, ties in start order; several seeds")
{
    for (uint32_t seed = 1; seed <= 5; seed++) {
        ac_map *m = tk_map();
        cur_map = m;
        tk_anchor(m);
        uint32_t s = seed * 7919u;
        int delay_steps[NT];
        ac_timer *t[NT];
        nfired = 0;
        for (int i = 0; i < NT; i++) {
            delay_steps[i] = (int)(tk_rand(&s) % 30); /* 0..145 ms */
            t[i] = ac_timer_new(m, record, (void *)(intptr_t)i);
            cr_assert_not_null(t[i]);
            cr_assert_not(ac_timer_is_active(t[i]));
            cr_assert_eq(ac_timer_start(t[i], delay_steps[i] * 0.005), 0);
            cr_assert(ac_timer_is_active(t[i]));
        }
        cr_assert_eq(ac_loop(m, 5.0, AC_FOREVER), AC_EXIT_NOW);
        cr_assert_eq(nfired, NT);
        /* Expected: stable sort of the indices by delay. */
        int want[NT];
        int k = 0;
        for (int step = 0; step < 30; step++)
            for (int i = 0; i < NT; i++)
                if (delay_steps[i] == step)
                    want[k++] = i;
        for (int i = 0; i < NT; i++)
            cr_assert_eq(fired[i], want[i], "seed %u: position %d fired %d, want %d", seed, i,
                         fired[i], want[i]);
        for (int i = 0; i < NT; i++) {
            cr_assert_not(ac_timer_is_active(t[i]));
            ac_timer_free(t[i]);
        }
        tk_anchor_finish(m);
    }
}

/* ------------------------------------------------------------- timing */

static double t_started, t_fired;
static int nrun;

static double stamp(ac_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    t_fired = tk_clock();
    nrun++;
    return -1;
}

Test(timers, never_fires_early, .timeout = 5,
     .description = "W4: a timer runs no earlier than its delay")
{
    ac_map *m = tk_map();
    tk_anchor(m);
    ac_timer *t = ac_timer_new(m, stamp, NULL);
    t_started = tk_clock();
    cr_assert_eq(ac_timer_start(t, 0.1), 0);
    while (!nrun)
        cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_eq(nrun, 1);
    cr_assert_geq(t_fired - t_started, 0.1, "fired after %.4f s", t_fired - t_started);
    cr_assert_lt(t_fired - t_started, 0.5);
    ac_timer_free(t);
    tk_anchor_finish(m);
}

Test(timers, loop_timeout_honours_next_timer, .timeout = 5,
     .description = "L8 W4 (header): a 5 s wait is cut short by a 50 ms timer; the iteration "
                    "returns right after it ran")
{
    ac_map *m = tk_map();
    tk_anchor(m);
    ac_timer *t = ac_timer_new(m, stamp, NULL);
    cr_assert_eq(ac_timer_start(t, 0.05), 0);
    double t0 = tk_clock();
    cr_assert_eq(ac_poll(m, 5.0), 0);
    double el = tk_clock() - t0;
    cr_assert_eq(nrun, 1, "the timer ran in that one iteration");
    cr_assert_geq(el, 0.045);
    cr_assert_lt(el, 1.0, "ac_poll(5.0) took %.3f s", el);
    ac_timer_free(t);
    tk_anchor_finish(m);
}

static double stop_loop(ac_timer *t, void *arg)
{
    (void)t;
    ac_loop_stop(arg);
    nrun++;
    return -1;
}

Test(timers, loop_forever_returns_when_timer_stops_it, .timeout = 5,
     .description = "L16 W4: ac_loop(5 s, forever) returns AC_EXIT_NOW ~50 ms later when a "
                    "timer calls ac_loop_stop")
{
    ac_map *m = tk_map();
    tk_anchor(m);
    ac_timer *t = ac_timer_new(m, stop_loop, m);
    cr_assert_eq(ac_timer_start(t, 0.05), 0);
    double t0 = tk_clock();
    cr_assert_eq(ac_loop(m, 5.0, AC_FOREVER), AC_EXIT_NOW);
    cr_assert_lt(tk_clock() - t0, 1.0);
    cr_assert_eq(ac_map_count(m), 1, "L16: channels stay in the map");
    ac_timer_free(t);
    tk_anchor_finish(m);
}

/* ------------------------------------------------------- stop/restart */

Test(timers, stop_and_restart, .timeout = 5,
     .description = "W4: a stopped timer does not run; restarting replaces the deadline; it "
                    "runs once")
{
    ac_map *m = tk_map();
    tk_anchor(m);
    ac_timer *t = ac_timer_new(m, stamp, NULL);
    cr_assert_eq(ac_timer_start(t, 0.02), 0);
    ac_timer_stop(t);
    cr_assert_not(ac_timer_is_active(t));
    ac_timer_stop(t); /* twice: harmless */
    cr_assert_eq(ac_loop(m, 0.05, 3), 0);
    cr_assert_eq(nrun, 0);

    cr_assert_eq(ac_timer_start(t, 1.0), 0);
    cr_assert_eq(ac_timer_start(t, 0.02), 0); /* replaces the 1 s deadline */
    t_started = tk_clock();
    while (!nrun)
        cr_assert_eq(ac_poll(m, 2.0), 0);
    cr_assert_lt(t_fired - t_started, 0.5);
    cr_assert_not(ac_timer_is_active(t));
    cr_assert_eq(ac_loop(m, 0.05, 3), 0);
    cr_assert_eq(nrun, 1, "one start, one run");
    ac_timer_free(t);
    tk_anchor_finish(m);
}

/* ------------------------------------------------ repeat and free */

static double repeat5(ac_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    return ++nrun < 5 ? 0.01 : -1;
}

Test(timers, repeat_by_return_value, .timeout = 5,
     .description = "W4 (header): the callback's return value is the next delay; negative "
                    "stops")
{
    ac_map *m = tk_map();
    tk_anchor(m);
    ac_timer *t = ac_timer_new(m, repeat5, NULL);
    cr_assert_eq(ac_timer_start(t, 0.01), 0);
    double end = tk_clock() + 1.0;
    while (tk_clock() < end)
        cr_assert_eq(ac_poll(m, 0.05), 0);
    cr_assert_eq(nrun, 5);
    cr_assert_not(ac_timer_is_active(t));
    ac_timer_free(t);
    tk_anchor_finish(m);
}

static double again_now(ac_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    nrun++;
    return 0;
}

Test(timers, zero_delay_runs_once_per_iteration, .timeout = 5,
     .description = "W4 (header): delay 0 means the next iteration; a timer re-armed with 0 "
                    "runs once per iteration and never makes the loop wait")
{
    ac_map *m = tk_map();
    tk_anchor(m);
    ac_timer *t = ac_timer_new(m, again_now, NULL);
    cr_assert_eq(ac_timer_start(t, 0), 0);
    double t0 = tk_clock();
    cr_assert_eq(ac_loop(m, 2.0, 5), 0);
    cr_assert_eq(nrun, 5);
    cr_assert_lt(tk_clock() - t0, 1.0);
    ac_timer_free(t);
    tk_anchor_finish(m);
}

static double free_self(ac_timer *t, void *arg)
{
    (void)arg;
    nrun++;
    ac_timer_free(t);
    return 0.01; /* would repeat: must not, it is freed */
}

Test(timers, free_inside_own_callback, .timeout = 5,
     .description = "W4 (header): ac_timer_free inside its own callback is safe and ends it")
{
    ac_map *m = tk_map();
    tk_anchor(m);
    ac_timer *t = ac_timer_new(m, free_self, NULL);
    cr_assert_eq(ac_timer_start(t, 0.01), 0);
    cr_assert_eq(ac_loop(m, 0.05, 6), 0);
    cr_assert_eq(nrun, 1);
    tk_anchor_finish(m);
}

static ac_timer *victim;

static double free_other(ac_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    tk_tr("killer");
    ac_timer_free(victim);
    victim = NULL;
    return -1;
}

static double victim_cb(ac_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    tk_tr("victim");
    return -1;
}

Test(timers, free_another_due_timer_from_a_callback, .timeout = 5,
     .description = "W4: a callback freeing another timer that is due in the same run: the "
                    "freed one never runs")
{
    ac_map *m = tk_map();
    tk_anchor(m);
    ac_timer *killer = ac_timer_new(m, free_other, NULL);
    victim = ac_timer_new(m, victim_cb, NULL);
    cr_assert_eq(ac_timer_start(killer, 0.01), 0);
    cr_assert_eq(ac_timer_start(victim, 0.01), 0); /* same delay, started later */
    usleep(30 * 1000);
    cr_assert_eq(ac_poll(m, 0.1), 0);
    cr_assert_eq(ac_loop(m, 0.02, 3), 0);
    cr_assert_str_eq(tk_trace, "killer");
    ac_timer_free(killer);
    tk_anchor_finish(m);
}

Test(timers, outlive_their_map, .timeout = 5,
     .description = "W4 (header): timers are the user's: after ac_map_free an active timer "
                    "is stopped and can still be freed")
{
    ac_map *m = tk_map();
    tk_anchor(m);
    ac_timer *t = ac_timer_new(m, stamp, NULL);
    cr_assert_eq(ac_timer_start(t, 10.0), 0);
    tk_anchor_finish(m);
    cr_assert_not(ac_timer_is_active(t));
    ac_timer_stop(t);
    ac_timer_free(t);
    ac_timer_free(NULL);
    cr_assert_eq(nrun, 0);
}

Test(timers, stopped_timers_outlive_their_map, .timeout = 5,
     .description = "W4 (header): a timer that was stopped (or never started) when its map was "
                    "freed cannot be started on the freed map: -EINVAL, and it never runs")
{
    ac_map *m = tk_map();
    tk_anchor(m);
    ac_timer *never = ac_timer_new(m, stamp, NULL);
    ac_timer *stopped = ac_timer_new(m, stamp, NULL);
    ac_timer *gone = ac_timer_new(m, stamp, NULL);
    cr_assert_eq(ac_timer_start(stopped, 10.0), 0);
    ac_timer_stop(stopped);
    ac_timer_free(gone); /* unlinked before the map goes */
    tk_anchor_finish(m);
    cr_assert_eq(ac_timer_start(never, 0.0), -EINVAL);
    cr_assert_eq(ac_timer_start(stopped, 0.0), -EINVAL);
    cr_assert_not(ac_timer_is_active(stopped));
    ac_timer_free(never);
    ac_timer_free(stopped);
    cr_assert_eq(nrun, 0);
}

Test(timers, new_with_null_callback, .timeout = 5,
     .description = "X3: ac_timer_new without a callback returns NULL")
{
    ac_map *m = tk_map();
    cr_assert_null(ac_timer_new(m, NULL, NULL));
    tk_finish(m);
}
