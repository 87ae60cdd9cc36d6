/* Unit: the idle timeout (header ac_set_idle_timeout): handle_timeout after
 * a period without a byte received or sent, not before; activity postpones
 * it; the default is handle_close. */
#include "ac_testkit.h"

static double t_set, t_timeout, t_last_activity;
static int timeouts;

static int h_timeout(ac_dispatcher *d)
{
    timeouts++;
    t_timeout = tk_clock();
    tk_tr("timeout");
    return ac_close(d);
}

static int h_close(ac_dispatcher *d)
{
    tk_tr("close");
    return ac_close(d);
}

static int h_read(ac_dispatcher *d)
{
    char buf[64];
    ssize_t r = ac_recv(d, buf, sizeof(buf));
    if (r > 0) {
        t_last_activity = tk_clock();
        tk_tr("read");
    }
    return r < 0 ? (int)r : 0;
}

static const ac_handlers idle_h = {
    .writable = tk_never,
    .handle_read = h_read,
    .handle_timeout = h_timeout,
    .handle_close = h_close,
    .finalize = tk_finalize,
};

static ac_dispatcher *idle_pair(ac_map *m, const ac_handlers *h, int *raw)
{
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *d = tk_new(m, h, "d");
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    *raw = sv[1];
    return d;
}

Test(idle, timeout_after_inactivity_not_before, .timeout = 5,
     .description = "header ac_set_idle_timeout: handle_timeout runs once the channel has "
                    "been idle for the period, not before")
{
    ac_map *m = tk_map();
    int raw;
    ac_dispatcher *d = idle_pair(m, &idle_h, &raw);
    t_set = tk_clock();
    cr_assert_eq(ac_set_idle_timeout(d, 0.2), 0);
    cr_assert_eq(ac_loop(m, 5.0, AC_FOREVER), 0, "the timeout closed the only channel");
    cr_assert_eq(timeouts, 1);
    cr_assert_geq(t_timeout - t_set, 0.2, "fired after %.3f s", t_timeout - t_set);
    cr_assert_lt(t_timeout - t_set, 0.6);
    cr_assert_str_eq(tk_trace, "timeout");
    tk_finish(m);
    close(raw);
}

static double feed(ac_timer *t, void *arg)
{
    (void)t;
    int *raw = arg;
    static int n;
    if (n++ >= 6)
        return -1;
    cr_assert_eq(write(*raw, "x", 1), 1);
    return 0.1;
}

Test(idle, activity_postpones_the_timeout, .timeout = 10,
     .description = "header ac_set_idle_timeout: bytes received every 100 ms keep a 300 ms "
                    "idle timeout from firing; it fires 300 ms after the last one")
{
    ac_map *m = tk_map();
    static int raw;
    ac_dispatcher *d = idle_pair(m, &idle_h, &raw);
    ac_timer *t = ac_timer_new(m, feed, &raw);
    t_set = tk_clock();
    cr_assert_eq(ac_set_idle_timeout(d, 0.3), 0);
    cr_assert_eq(ac_timer_start(t, 0.1), 0);
    cr_assert_eq(ac_loop(m, 5.0, AC_FOREVER), 0);
    cr_assert_eq(timeouts, 1);
    cr_assert_str_eq(tk_trace, "read read read read read read timeout");
    cr_assert_geq(t_timeout - t_last_activity, 0.29, "fired %.3f s after the last read",
                  t_timeout - t_last_activity);
    cr_assert_lt(t_timeout - t_last_activity, 0.7);
    cr_assert_geq(t_timeout - t_set, 0.85);
    ac_timer_free(t);
    tk_finish(m);
    close(raw);
}

static ac_dispatcher *sender_d;

static double send_tick(ac_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    static int n;
    if (n++ >= 5)
        return -1;
    cr_assert_eq(ac_send(sender_d, "y", 1), 1);
    t_last_activity = tk_clock();
    return 0.1;
}

Test(idle, sending_is_activity_too, .timeout = 10,
     .description = "header ac_set_idle_timeout: bytes sent count as activity")
{
    ac_map *m = tk_map();
    int raw;
    sender_d = idle_pair(m, &idle_h, &raw);
    ac_timer *t = ac_timer_new(m, send_tick, NULL);
    t_set = tk_clock();
    cr_assert_eq(ac_set_idle_timeout(sender_d, 0.3), 0);
    cr_assert_eq(ac_timer_start(t, 0.1), 0);
    cr_assert_eq(ac_loop(m, 5.0, AC_FOREVER), 0);
    cr_assert_eq(timeouts, 1);
    cr_assert_geq(t_timeout - t_set, 0.75, "fired after %.3f s", t_timeout - t_set);
    cr_assert_geq(t_timeout - t_last_activity, 0.29);
    ac_timer_free(t);
    tk_finish(m);
    close(raw);
}

Test(idle, default_handle_timeout_is_handle_close, .timeout = 5,
     .description = "header ac_handlers.handle_timeout: the default calls handle_close")
{
    static const ac_handlers h = {
        .writable = tk_never,
        .handle_close = h_close,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    int raw;
    ac_dispatcher *d = idle_pair(m, &h, &raw);
    cr_assert_eq(ac_set_idle_timeout(d, 0.05), 0);
    cr_assert_eq(ac_loop(m, 5.0, AC_FOREVER), 0);
    cr_assert_str_eq(tk_trace, "close");
    tk_finish(m);
    close(raw);
}

Test(idle, zero_turns_it_off, .timeout = 5,
     .description = "header ac_set_idle_timeout: 0 turns the timeout off")
{
    ac_map *m = tk_map();
    int raw;
    ac_dispatcher *d = idle_pair(m, &idle_h, &raw);
    cr_assert_eq(ac_set_idle_timeout(d, 0.05), 0);
    cr_assert_eq(ac_set_idle_timeout(d, 0), 0);
    cr_assert_eq(ac_loop(m, 0.05, 5), 0);
    cr_assert_eq(timeouts, 0);
    cr_assert_eq(ac_map_count(m), 1);
    tk_finish(m);
    close(raw);
}

Test(idle, closed_before_the_timeout, .timeout = 5,
     .description = "header ac_set_idle_timeout X4: a channel closed before its idle timeout "
                    "never gets handle_timeout; finalize once")
{
    ac_map *m = tk_map();
    int raw, raw2;
    ac_dispatcher *d = idle_pair(m, &idle_h, &raw);
    idle_pair(m, &idle_h, &raw2); /* keeps the loop going */
    cr_assert_eq(ac_set_idle_timeout(d, 0.05), 0);
    cr_assert_eq(ac_close(d), 0);
    cr_assert_eq(ac_loop(m, 0.05, 5), 0);
    cr_assert_eq(timeouts, 0);
    tk_finish(m);
    close(raw);
    close(raw2);
}

Test(idle, activity_outside_the_loop_counts_from_when_it_happened, .timeout = 5,
     .description = "header ac_set_idle_timeout: a byte sent between loop calls postpones "
                    "the timeout by a full period from that moment")
{
    ac_map *m = tk_map();
    int raw;
    ac_dispatcher *d = idle_pair(m, &idle_h, &raw);
    cr_assert_eq(ac_poll(m, 0), 0); /* one iteration: the map's clock is now */
    t_set = tk_clock();
    cr_assert_eq(ac_set_idle_timeout(d, 0.5), 0);
    usleep(400 * 1000);
    cr_assert_eq(ac_send(d, "z", 1), 1);
    t_last_activity = tk_clock();
    cr_assert_eq(ac_loop(m, 5.0, AC_FOREVER), 0);
    cr_assert_eq(timeouts, 1);
    cr_assert_geq(t_timeout - t_last_activity, 0.49,
                  "fired %.3f s after the send (%.3f s after set): the send was not counted "
                  "as activity at the time it happened",
                  t_timeout - t_last_activity, t_timeout - t_set);
    tk_finish(m);
    close(raw);
}
