/* Conformance: the socket map and loop() (spec L1-L5, L21): the map, the
 * default map, the poller a map uses and switching it, counting
 * iterations, the empty map, and close_all; CPython's test_closeall,
 * test_closeall_default and its loop count handling.
 *
 * Expected traces were checked against Python 3.11's asyncore on Linux
 * where a kernel is involved.  The binary runs once per poller
 * (AC_POLLER); expectations that differ between the select-style and the
 * poll-style iteration look at ac_map_poller_name() through
 * tk_is_select().  epoll must always give the poll-style answer (L20).
 * The rig and the trace tokens are tests/support/loop_rig.h. */
#include "loop_rig.h"

/* =========================================================== L1: the map */

Test(loop, channel_enters_its_map_with_a_socket_and_leaves_on_close, .timeout = 5,
     .description = "L1: a channel belongs to the map it was made with; it is entered "
                    "under its descriptor when it gets a socket, not before, and leaves on "
                    "close; a private map does not see another map's channels")
{
    ac_map *m = tk_map();
    ac_map *other = NULL;
    cr_assert_eq(ac_map_new(&other, AC_POLLER_DEFAULT), 0);
    ac_dispatcher *d = mk(m, &ph, "d", -1, false, false);
    ac_dispatcher *o = mk(other, &ph, "o", -1, false, false);
    cr_assert_eq(ac_map_of(d), m);
    cr_assert_eq(ac_map_of(o), other);
    cr_assert_eq(ac_map_count(m), 0, "no socket yet: not in the map (D3)");

    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    int fd = ac_fd(d);
    cr_assert_eq(ac_map_count(m), 1);
    cr_assert_eq(ac_map_get(m, fd), d);
    cr_assert_eq(ac_map_count(other), 0);
    cr_assert_null(ac_map_get(other, fd));

    cr_assert_eq(ac_create_socket(o, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_map_count(other), 1);
    cr_assert_eq(ac_map_count(m), 1);
    cr_assert_null(ac_map_get(m, ac_fd(o)));

    cr_assert_eq(ac_close(d), 0);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_null(ac_map_get(m, fd));
    cr_assert_eq(ac_map_count(other), 1, "closing d leaves the other map alone");
    cr_assert_str_empty(tk_trace);
    free_other_map(other);
    tk_finish(m);
}

Test(loop, same_descriptor_replaces_the_entry, .timeout = 5,
     .description = "L1 S3 W16: registering a second channel under a descriptor already in "
                    "the map silently replaces the entry; only the new one gets events; "
                    "add_channel puts the first one back")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *a = mk(m, &ph, "a", sv[0], true, false);
    ac_dispatcher *b = mk(m, &ph, "b", -1, true, false);
    cr_assert_eq(ac_set_socket(b, sv[0]), 0);
    cr_assert_eq(ac_map_count(m), 1);
    cr_assert_eq(ac_map_get(m, sv[0]), b);
    cr_assert_eq(ac_fd(a), sv[0], "the replaced channel keeps its descriptor");
    cr_assert_not(ac_is_closed(a));

    cr_assert_eq(write(sv[1], "xy", 2), 2);
    lp(b)->no_recv = true;
    cr_assert_eq(ac_loop(m, 1.0, 1), 0);
    cr_assert_str_eq(tk_trace, "b:read");
    cr_assert_eq(lp(a)->rcalls, 0, "a is not in the map: not asked (L6)");
    cr_assert_eq(lp(b)->rcalls, 1);

    tk_trace_clear();
    cr_assert_eq(ac_add_channel(a), 0);
    cr_assert_eq(ac_map_get(m, sv[0]), a);
    cr_assert_eq(ac_map_count(m), 1);
    cr_assert_eq(ac_loop(m, 1.0, 1), 0);
    cr_assert_str_eq(tk_trace, "a:read:2");
    cr_assert_eq(lp(b)->rcalls, 1);
    /* b still holds the number (W16): a closes it, b's close meets EBADF. */
    cr_assert_eq(ac_close(a), 0);
    tk_finish(m);
    close(sv[1]);
}

/* ============================================ L1, L3, L21: the default map */

Test(loop, default_map_is_used_when_none_is_given, .timeout = 5,
     .description = "L1 L3 L21: NULL means the process-wide default map for channels, "
                    "ac_loop, ac_poll and ac_close_all (CPython's test_closeall_default)")
{
    ac_set_log_hook(tk_log_hook, NULL);
    ac_map *m = tk_map();
    ac_map *dm = ac_default_map();
    cr_assert_not_null(dm);
    cr_assert_eq(ac_default_map(), dm, "one default map");
    cr_assert_neq(dm, m);
    const char *env = getenv("AC_POLLER");
    cr_assert_str_eq(ac_map_poller_name(dm), env && *env ? env : "epoll");

    int sv[2], sw[2];
    tk_socketpair(SOCK_STREAM, sv);
    tk_socketpair(SOCK_STREAM, sw);
    ac_dispatcher *d = mk(NULL, &ph, "d", sv[0], true, false);
    ac_dispatcher *e = mk(NULL, &ph, "e", sw[0], true, false);
    ac_dispatcher *p = mk(m, &ph, "p", -1, true, false);
    cr_assert_eq(ac_map_of(d), dm);
    cr_assert_eq(ac_map_count(dm), 2);
    cr_assert_eq(ac_map_get(NULL, sv[0]), d);
    cr_assert_eq(ac_map_count(m), 0);

    cr_assert_eq(write(sv[1], "abc", 3), 3);
    cr_assert_eq(ac_loop(NULL, 1.0, 1), 0);
    cr_assert_str_eq(tk_trace, "d:read:3");
    tk_trace_clear();
    cr_assert_eq(write(sw[1], "z", 1), 1);
    cr_assert_eq(ac_poll(NULL, 1.0), 0);
    cr_assert_str_eq(tk_trace, "e:read:1");
    cr_assert_eq(lp(p)->rcalls, 0);

    tk_trace_clear();
    cr_assert_eq(ac_close_all(NULL, false), 0);
    cr_assert_eq(ac_map_count(dm), 0);
    cr_assert(ac_is_closed(d) && ac_is_closed(e));
    cr_assert_not(tk_fd_open(sv[0]));
    cr_assert_not(tk_fd_open(sw[0]));
    cr_assert_not(ac_is_closed(p), "close_all(NULL) leaves private maps alone");
    cr_assert_str_empty(tk_trace, "close_all runs no handler (L21)");
    cr_assert_eq(ac_map_free(NULL), 0);
    tk_finish(m);
    close(sv[1]);
    close(sw[1]);
}

/* ========================================================= L3: the poller */

static bool wait_read_on(ac_map *m, int peer, const char *expect)
{
    tk_trace_clear();
    cr_assert_eq(write(peer, "q", 1), 1);
    cr_assert_eq(ac_loop(m, 1.0, 1), 0);
    return strcmp(tk_trace, expect) == 0;
}

Test(loop, poller_is_chosen_per_map_and_can_be_switched, .timeout = 5,
     .description = "L3 L20: the backend is a property of the map (use_poll=False is "
                    "select, True is poll, plus epoll); every one dispatches the same read; "
                    "ac_map_set_poller switches a map with live channels")
{
    static const struct {
        ac_poller_kind kind;
        const char *name;
    } kinds[] = {
        {AC_POLLER_EPOLL, "epoll"}, {AC_POLLER_POLL, "poll"}, {AC_POLLER_SELECT, "select"}};
    ac_map *m = tk_map();
    for (size_t i = 0; i < 3; i++) {
        ac_map *x = NULL;
        cr_assert_eq(ac_map_new(&x, kinds[i].kind), 0);
        cr_assert_str_eq(ac_map_poller_name(x), kinds[i].name);
        int sv[2];
        tk_socketpair(SOCK_STREAM, sv);
        mk(x, &ph, "x", sv[0], true, false);
        cr_assert(wait_read_on(x, sv[1], "x:read:1"), "%s: %s", kinds[i].name, tk_trace);
        free_other_map(x);
        close(sv[1]);
    }

    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *d = mk(m, &ph, "d", sv[0], true, false);
    int sw[2];
    tk_socketpair(SOCK_STREAM, sw);
    ac_dispatcher *nd = mk(m, &nph, "n", sw[0], true, true); /* interest kept by state */
    ac_set_reading(nd, false);
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < 3; i++) {
            cr_assert_eq(ac_map_set_poller(m, kinds[i].kind), 0);
            cr_assert_str_eq(ac_map_poller_name(m), kinds[i].name);
            tk_trace_clear();
            cr_assert_eq(write(sv[1], "q", 1), 1);
            cr_assert_eq(ac_loop(m, 1.0, 1), 0);
            /* d reads; n (paused reading, writable) writes. */
            cr_assert(!strcmp(tk_trace, "d:read:1 n:write") ||
                          !strcmp(tk_trace, "n:write d:read:1"),
                      "%s: %s", kinds[i].name, tk_trace);
        }
    }
    cr_assert_eq(ac_map_set_poller(m, (ac_poller_kind)42), -EINVAL);
    cr_assert_eq(ac_map_count(m), 2);
    (void)d;
    tk_finish(m);
    close(sv[1]);
    close(sw[1]);
}

Test(loop, unknown_poller_is_refused, .timeout = 5,
     .description = "L3 (header): an unknown kind or AC_POLLER value makes ac_map_new fail "
                    "with -EINVAL; explicit kinds still work")
{
    ac_map *m = NULL;
    cr_assert_eq(ac_map_new(&m, (ac_poller_kind)42), -EINVAL);
    setenv("AC_POLLER", "kqueue", 1);
    cr_assert_eq(ac_map_new(&m, AC_POLLER_DEFAULT), -EINVAL);
    cr_assert_eq(ac_map_new(&m, AC_POLLER_POLL), 0);
    cr_assert_str_eq(ac_map_poller_name(m), "poll");
    cr_assert_eq(ac_map_free(m), 0);
}

static int set_poller_rc = 1;

static int h_write_switches_poller(ac_dispatcher *d)
{
    set_poller_rc = ac_map_set_poller(ac_map_of(d), AC_POLLER_POLL);
    tk_tr("%s:write", tk_name(d));
    return 0;
}

Test(loop, poller_switch_refused_inside_the_loop, .timeout = 5,
     .description = "L3 (header): ac_map_set_poller from a handler returns -EBUSY and the "
                    "map keeps its poller")
{
    static const ac_handlers h = {
        .handle_write = h_write_switches_poller,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    const char *before = ac_map_poller_name(m);
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    mk(m, &h, "d", sv[0], true, true);
    cr_assert_eq(ac_loop(m, 1.0, 1), 0);
    cr_assert_str_eq(tk_trace, "d:write");
    cr_assert_eq(set_poller_rc, -EBUSY);
    cr_assert_str_eq(ac_map_poller_name(m), before);
    tk_finish(m);
    close(sv[1]);
}

/* ========================================================= L4: counting */

Test(loop, count_n_runs_exactly_n_iterations, .timeout = 5,
     .description = "L4 L6 L7: loop(count=N) runs N iterations, whether they dispatch (b "
                    "writes every time) or wait for nothing (a wants nothing): each "
                    "predicate is asked N times; returns 0")
{
    ac_map *m = tk_map();
    int sv[2], sw[2];
    tk_socketpair(SOCK_STREAM, sv);
    tk_socketpair(SOCK_STREAM, sw);
    ac_dispatcher *a = mk(m, &ph, "a", sv[0], false, false);
    ac_dispatcher *b = mk(m, &ph, "b", sw[0], false, true);
    cr_assert_eq(ac_loop(m, 0, 3), 0);
    cr_assert_eq(lp(a)->rcalls, 3);
    cr_assert_eq(lp(a)->wcalls, 3);
    cr_assert_eq(lp(b)->rcalls, 3);
    cr_assert_eq(lp(b)->wcalls, 3);
    cr_assert_str_eq(tk_trace, "b:write b:write b:write");
    cr_assert_eq(ac_loop(m, 0, 1), 0);
    cr_assert_eq(lp(a)->rcalls, 4);
    cr_assert_eq(tk_node(b)->writes, 4);
    cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_eq(lp(a)->rcalls, 5, "ac_poll is one iteration");

    /* Only a: nothing to wait for; still one iteration per count. */
    cr_assert_eq(ac_close(b), 0);
    cr_assert_eq(ac_loop(m, 0, 7), 0);
    cr_assert_eq(lp(a)->rcalls, 12);
    cr_assert_eq(lp(a)->wcalls, 12);
    cr_assert_eq(ac_map_count(m), 1);
    tk_finish(m);
    close(sv[1]);
    close(sw[1]);
}

Test(loop, count_zero_or_negative_runs_nothing, .timeout = 5,
     .description = "L4: count <= 0 performs no iteration: no predicate, no handler, no "
                    "wait (a 5 s timeout returns at once)")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *a = mk(m, &ph, "a", sv[0], true, true);
    cr_assert_eq(write(sv[1], "data", 4), 4);
    static const long counts[] = {0, -1, -1000, -2147483647L};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        double t0 = tk_clock();
        cr_assert_eq(ac_loop(m, 5.0, counts[i]), 0);
        cr_assert_lt(tk_clock() - t0, 0.5, "count %ld waited", counts[i]);
    }
    cr_assert_eq(lp(a)->rcalls, 0);
    cr_assert_eq(lp(a)->wcalls, 0);
    cr_assert_str_empty(tk_trace);
    cr_assert_eq(tk_inq(sv[0]), 4, "nothing was read");
    tk_finish(m);
    close(sv[1]);
}

Test(loop, count_stops_early_when_the_map_empties, .timeout = 5,
     .description = "L4: with count=10, a channel that closes itself at its 3rd write "
                    "empties the map: the loop stops after 3 iterations and returns 0")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *a = mk(m, &ph, "a", sv[0], false, true);
    struct lp *s = lp(a);
    struct tk_node *na = tk_node(a);
    s->close_at_write = 3;
    cr_assert_eq(ac_loop(m, 1.0, 10), 0);
    cr_assert_str_eq(tk_trace, "a:write a:write a:write");
    cr_assert_eq(s->rcalls, 3);
    cr_assert_eq(s->wcalls, 3);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_eq(na->finalized, 1, "finalized when the loop returned");
    tk_finish(m);
    close(sv[1]);
}

Test(loop, no_count_runs_until_the_map_is_empty, .timeout = 5,
     .description = "L4: AC_FOREVER (count=None) iterates while the map is non-empty: two "
                    "channels closing at their 2nd and 5th write give 5 iterations")
{
    ac_map *m = tk_map();
    int sv[2], sw[2];
    tk_socketpair(SOCK_STREAM, sv);
    tk_socketpair(SOCK_STREAM, sw);
    ac_dispatcher *a = mk(m, &ph, "a", sv[0], false, true);
    ac_dispatcher *b = mk(m, &ph, "b", sw[0], false, true);
    lp(a)->close_at_write = 2;
    lp(b)->close_at_write = 5;
    struct lp *sb = lp(b);
    cr_assert_eq(ac_loop(m, 1.0, AC_FOREVER), 0);
    cr_assert_eq(count_tokens("write"), 7, "trace: %s", tk_trace);
    cr_assert_eq(sb->rcalls, 5);
    cr_assert_eq(ac_map_count(m), 0);
    tk_finish(m);
    close(sv[1]);
    close(sw[1]);
}

/* ======================================================== L5: empty map */

Test(loop, empty_map_returns_at_once, .timeout = 5,
     .description = "L5 L4: with nothing in the map, ac_loop and ac_poll return 0 at once "
                    "whatever the timeout (5 s, infinite) and count; channels without a "
                    "socket are not in the map and are never asked")
{
    ac_map *m = tk_map();
    ac_dispatcher *a = mk(m, &ph, "a", -1, true, true);
    double t0 = tk_clock();
    cr_assert_eq(ac_loop(m, 5.0, AC_FOREVER), 0);
    cr_assert_eq(ac_loop(m, -1.0, AC_FOREVER), 0);
    cr_assert_eq(ac_loop(m, 5.0, 100), 0);
    cr_assert_eq(ac_poll(m, 5.0), 0);
    cr_assert_eq(ac_poll(m, -1.0), 0);
    cr_assert_lt(tk_clock() - t0, 0.5);
    cr_assert_eq(lp(a)->rcalls, 0);
    cr_assert_eq(lp(a)->wcalls, 0);

    /* A map that was emptied behaves the same. */
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *b = mk(m, &ph, "b", sv[0], false, false);
    struct lp *sb = lp(b);
    cr_assert_eq(ac_close(b), 0);
    t0 = tk_clock();
    cr_assert_eq(ac_loop(m, 5.0, AC_FOREVER), 0);
    cr_assert_eq(ac_poll(m, 5.0), 0);
    cr_assert_lt(tk_clock() - t0, 0.5);
    cr_assert_eq(sb->rcalls, 0);
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
    close(sv[1]);
}

/* ========================================================= L21: close_all */

Test(loop, close_all_closes_every_channel_without_handlers, .timeout = 5,
     .description = "L21 L1 (test_closeall): close_all closes all ten channels (and the "
                    "socketless ones of the map), runs no handler, empties the map and "
                    "leaves other maps alone; each channel is finalized once")
{
    ac_map *m = tk_map();
    ac_map *other = NULL;
    cr_assert_eq(ac_map_new(&other, AC_POLLER_DEFAULT), 0);
    int fds[10], peers[10];
    ac_dispatcher *ds[10];
    for (int i = 0; i < 10; i++) {
        int sv[2];
        tk_socketpair(SOCK_STREAM, sv);
        fds[i] = sv[0];
        peers[i] = sv[1];
        ds[i] = mk(m, &ph, "c", sv[0], true, true);
    }
    ac_dispatcher *bare = mk(m, &ph, "bare", -1, true, true);
    int so[2];
    tk_socketpair(SOCK_STREAM, so);
    ac_dispatcher *o = mk(other, &ph, "o", so[0], true, true);
    cr_assert_eq(ac_map_count(m), 10);

    cr_assert_eq(ac_close_all(m, false), 0);
    cr_assert_eq(ac_map_count(m), 0);
    for (int i = 0; i < 10; i++) {
        cr_assert(ac_is_closed(ds[i]));
        cr_assert_not(ac_is_connected(ds[i]));
        cr_assert_null(ac_map_get(m, fds[i]));
        cr_assert_not(tk_fd_open(fds[i]), "fd %d still open", fds[i]);
    }
    cr_assert(ac_is_closed(bare));
    cr_assert_str_empty(tk_trace, "no handle_close (L21)");
    cr_assert_eq(tk_finalized, 0, "memory goes later (X4)");
    cr_assert_not(ac_is_closed(o));
    cr_assert_eq(ac_map_count(other), 1);
    cr_assert(tk_fd_open(so[0]));

    cr_assert_eq(ac_close_all(m, false), 0, "again on an empty map");
    cr_assert_eq(ac_loop(m, 1.0, AC_FOREVER), 0, "empty map: returns at once");
    cr_assert_eq(tk_finalized, 11);
    free_other_map(other);
    tk_finish(m);
    for (int i = 0; i < 10; i++)
        close(peers[i]);
    close(so[1]);
}

Test(loop, close_all_ignores_ebadf, .timeout = 5,
     .description = "L21: channels whose descriptors were closed behind the library's back "
                    "(close fails with EBADF) are closed and dropped without error, with or "
                    "without ignore_all")
{
    ac_map *m = tk_map();
    int sv[2], sw[2];
    tk_socketpair(SOCK_STREAM, sv);
    tk_socketpair(SOCK_STREAM, sw);
    ac_dispatcher *a = mk(m, &ph, "a", sv[0], true, true);
    ac_dispatcher *b = mk(m, &ph, "b", sw[0], true, true);
    close(sv[0]);
    cr_assert_eq(ac_close_all(m, false), 0);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert(ac_is_closed(a) && ac_is_closed(b));
    cr_assert_not(tk_fd_open(sw[0]));
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
    close(sv[1]);
    close(sw[1]);
}

static ac_map *cl_map;

static int h_read_close_all(ac_dispatcher *d)
{
    tk_tr("%s:read", tk_name(d));
    cr_assert_eq(ac_close_all(cl_map, false), 0);
    return 0;
}

Test(loop, close_all_in_a_handler_ends_the_iteration_for_everyone, .timeout = 5,
     .description = "L21 L10 L13 L4: close_all from the first handle_read: no other channel "
                    "gets anything in that iteration (poll-style: the closer's own later "
                    "steps still run), and the loop returns 0 as the map is empty")
{
    static const ac_handlers h = {
        .readable = h_readable,
        .writable = h_writable,
        .handle_read = h_read_close_all,
        .handle_write = h_write,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    cl_map = m;
    int sv[2], sw[2];
    tk_socketpair(SOCK_STREAM, sv);
    tk_socketpair(SOCK_STREAM, sw);
    mk(m, &h, "a", sv[0], true, true);
    mk(m, &h, "b", sw[0], true, true);
    cr_assert_eq(write(sv[1], "x", 1), 1);
    cr_assert_eq(write(sw[1], "y", 1), 1);
    cr_assert_eq(ac_loop(m, 1.0, AC_FOREVER), 0);
    if (tk_is_select(m))
        cr_assert(!strcmp(tk_trace, "a:read") || !strcmp(tk_trace, "b:read"), "trace: %s",
                  tk_trace);
    else
        cr_assert(!strcmp(tk_trace, "a:read a:write") || !strcmp(tk_trace, "b:read b:write"),
                  "trace: %s", tk_trace);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_eq(tk_finalized, 2);
    tk_finish(m);
    close(sv[1]);
    close(sw[1]);
}
