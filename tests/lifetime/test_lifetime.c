/* Lifetime (spec X4, DESIGN decision 3, STYLE "Ownership"): a dispatcher
 * may be closed from any handler, by itself or by another, in any order;
 * its descriptor goes at once, its memory after the current dispatch, right
 * after finalize, which runs exactly once.  These tests close in every
 * order and must stay silent under ASan.
 *
 * Every handler checks that it was not called on a dispatcher that another
 * one closed earlier (such a dispatcher must receive nothing more, L10,
 * L19); a dispatcher that closed *itself* may still see the remaining
 * poll-style steps of the same descriptor (L13, W7) and the tests say so
 * per poller.  Finalizers write "x:finalize" into the trace. */
#include "ac_testkit.h"

#include <signal.h>

static void lt_init(void) { tk_fin_in_trace = true; }

/* Set when a handler runs on a dispatcher closed by someone else. */
static int violations;

struct lt_state {
    bool closed_by_other;
};

static struct lt_state *st(ac_dispatcher *d)
{
    struct tk_node *n = tk_node(d);
    if (!n->extra)
        n->extra = calloc(1, sizeof(struct lt_state));
    return n->extra;
}

static void check_alive(ac_dispatcher *d, const char *what)
{
    if (st(d)->closed_by_other) {
        violations++;
        tk_tr("%s:%s-after-close!", tk_name(d), what);
    }
}

/* Close x on behalf of `by` (NULL: not from a handler of a dispatcher). */
static void lt_close(ac_dispatcher *x, ac_dispatcher *by)
{
    if (x != by && !ac_is_closed(x))
        st(x)->closed_by_other = true;
    cr_assert_eq(ac_close(x), 0);
}

static void lt_finalize(ac_dispatcher *d)
{
    struct tk_node *n = tk_node(d);
    free(n->extra);
    n->extra = NULL;
    tk_finalize(d);
}

/* Nodes (tk_nodes) outlive their dispatchers: tk_finish checks that each
 * was finalized exactly once, then frees them. */
static ac_dispatcher *lt_new(ac_map *m, const ac_handlers *h, const char *name, int fd)
{
    ac_dispatcher *d = tk_new(m, h, name);
    if (fd >= 0)
        cr_assert_eq(ac_attach(d, fd), 0);
    return d;
}

static void lt_finish(ac_map *m)
{
    cr_assert_eq(violations, 0, "a closed dispatcher received events: %s", tk_trace);
    tk_finish(m);
}

/* A socketpair: *mine for a dispatcher, *raw for the test. */
static void pair(int *mine, int *raw)
{
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    *mine = sv[0];
    *raw = sv[1];
}

/* ------------------------------------------------------------ handlers */

static int drain_recv(ac_dispatcher *d)
{
    char buf[4096];
    ssize_t r = ac_recv(d, buf, sizeof(buf));
    return r < 0 && r != -EAGAIN ? (int)r : 0;
}

static int h_close(ac_dispatcher *d)
{
    check_alive(d, "close");
    tk_tr("%s:close", tk_name(d));
    return ac_close(d);
}

static int h_write_quiet(ac_dispatcher *d)
{
    check_alive(d, "write");
    return 0;
}

static int h_write_traced(ac_dispatcher *d)
{
    check_alive(d, "write");
    tk_tr("%s:write", tk_name(d));
    return 0;
}

static int h_error(ac_dispatcher *d, const ac_error *e)
{
    check_alive(d, "error");
    tk_tr("%s:error:%s", tk_name(d), strerrorname_np(e->err));
    return ac_default_handle_error(d, e);
}

/* ------------------------------------------------- self in handle_read */

static int h_read_close_self(ac_dispatcher *d)
{
    check_alive(d, "read");
    tk_tr("%s:read", tk_name(d));
    cr_assert_eq(drain_recv(d), 0);
    lt_close(d, d);
    /* Still a valid object for the rest of this dispatch. */
    cr_assert(ac_is_closed(d));
    cr_assert_eq(ac_fd(d), -1);
    cr_assert_eq(tk_node(d)->finalized, 0, "finalize must wait for the dispatch to end");
    return 0;
}

Test(lifetime, close_self_in_handle_read, .timeout = 5, .init = lt_init,
     .description = "X4 S12 L13 W7: a closes itself in handle_read; under poll/epoll the "
                    "write step still runs on the closed a; finalize once, after the "
                    "iteration")
{
    static const ac_handlers h = {
        .handle_read = h_read_close_self,
        .handle_write = h_write_traced,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = lt_finalize,
    };
    ac_map *m = tk_map();
    int fd, raw;
    pair(&fd, &raw);
    lt_new(m, &h, "a", fd);
    cr_assert_eq(write(raw, "x", 1), 1);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    if (tk_is_select(m))
        cr_assert_str_eq(tk_trace, "a:read a:finalize");
    else
        cr_assert_str_eq(tk_trace, "a:read a:write a:finalize");
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_not(tk_fd_open(fd));
    lt_finish(m);
    close(raw);
}

/* ------------------------------------------ the peer in handle_read */

/* The first of a/b to read closes the other, which has an event pending
 * in the same iteration. */
static int h_read_close_peer(ac_dispatcher *d)
{
    check_alive(d, "read");
    tk_tr("%s:read", tk_name(d));
    cr_assert_eq(drain_recv(d), 0);
    ac_dispatcher *peer = tk_node(d)->peer;
    if (peer && !ac_is_closed(peer)) {
        lt_close(peer, d);
        cr_assert_eq(tk_node(peer)->finalized, 0);
    }
    return 0;
}

static const ac_handlers peer_closer = {
    .handle_read = h_read_close_peer,
    .handle_write = h_write_quiet,
    .handle_close = h_close,
    .handle_error = h_error,
    .finalize = lt_finalize,
};

Test(lifetime, close_peer_with_pending_event_in_handle_read, .timeout = 5, .init = lt_init,
     .description = "X4 L10 L13 L19: a and b both have data; whichever reads first closes "
                    "the other, which then receives nothing (read, write, close) in that "
                    "iteration; finalize after it")
{
    ac_map *m = tk_map();
    int fa, ra, fb, rb;
    pair(&fa, &ra);
    pair(&fb, &rb);
    ac_dispatcher *a = lt_new(m, &peer_closer, "a", fa);
    ac_dispatcher *b = lt_new(m, &peer_closer, "b", fb);
    tk_node(a)->peer = b;
    tk_node(b)->peer = a;
    cr_assert_eq(write(ra, "x", 1), 1);
    cr_assert_eq(write(rb, "y", 1), 1);
    cr_assert(tk_wait_fd(fa, POLLIN, 1000) && tk_wait_fd(fb, POLLIN, 1000));
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert(strcmp(tk_trace, "a:read b:finalize") == 0 ||
                  strcmp(tk_trace, "b:read a:finalize") == 0,
              "trace: %s", tk_trace);
    cr_assert_eq(ac_map_count(m), 1);
    lt_finish(m);
    close(ra);
    close(rb);
}

/* a closes b and, in the same handler, creates c on the number b just
 * freed; c must not get b's pending events (L19, X5). */
static ac_map *the_map;
static int b_old_fd = -1;
static int c_raw = -1;

static int h_read_c(ac_dispatcher *d)
{
    check_alive(d, "read");
    tk_tr("%s:read", tk_name(d));
    return drain_recv(d);
}

static const ac_handlers c_handlers = {
    .handle_read = h_read_c,
    .handle_write = h_write_traced,
    .handle_close = h_close,
    .handle_error = h_error,
    .finalize = lt_finalize,
};

static int h_read_close_peer_and_reuse(ac_dispatcher *d)
{
    check_alive(d, "read");
    tk_tr("%s:read", tk_name(d));
    cr_assert_eq(drain_recv(d), 0);
    ac_dispatcher *peer = tk_node(d)->peer;
    if (peer && !ac_is_closed(peer)) {
        b_old_fd = ac_fd(peer);
        lt_close(peer, d);
        int sv[2];
        tk_socketpair(SOCK_STREAM, sv);
        cr_assert_eq(sv[0], b_old_fd, "the kernel reuses the lowest free number");
        ac_dispatcher *c = lt_new(the_map, &c_handlers, "c", sv[0]);
        cr_assert_eq(ac_map_get(the_map, b_old_fd), c);
        c_raw = sv[1];
    }
    return 0;
}

Test(lifetime, new_dispatcher_reuses_closed_number_same_iteration, .timeout = 5, .init = lt_init,
     .description = "L19 X5 X4: a channel created under a number freed in this iteration "
                    "does not get the old channel's read or write event")
{
    static const ac_handlers h = {
        .handle_read = h_read_close_peer_and_reuse,
        .handle_write = h_write_quiet,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = lt_finalize,
    };
    ac_map *m = tk_map();
    the_map = m;
    int fa, ra, fb, rb;
    pair(&fa, &ra);
    pair(&fb, &rb);
    ac_dispatcher *a = lt_new(m, &h, "a", fa);
    ac_dispatcher *b = lt_new(m, &h, "b", fb);
    tk_node(a)->peer = b;
    tk_node(b)->peer = a;
    cr_assert_eq(write(ra, "x", 1), 1);
    cr_assert_eq(write(rb, "y", 1), 1);
    cr_assert(tk_wait_fd(fa, POLLIN, 1000) && tk_wait_fd(fb, POLLIN, 1000));
    cr_assert_eq(ac_poll(m, 1.0), 0);
    /* b was readable and writable; c (writable, no data) gets neither. */
    cr_assert(strcmp(tk_trace, "a:read b:finalize") == 0 ||
                  strcmp(tk_trace, "b:read a:finalize") == 0,
              "trace: %s", tk_trace);
    cr_assert_geq(b_old_fd, 0);
    tk_trace_clear();
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "c:write", "next iteration: c's own event only");
    lt_finish(m);
    close(ra);
    close(rb);
    close(c_raw);
}

static int h_read_close_self_and_reuse(ac_dispatcher *d)
{
    check_alive(d, "read");
    tk_tr("%s:read", tk_name(d));
    cr_assert_eq(drain_recv(d), 0);
    int old = ac_fd(d);
    lt_close(d, d);
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    cr_assert_eq(sv[0], old);
    lt_new(the_map, &c_handlers, "c", sv[0]);
    c_raw = sv[1];
    return 0;
}

Test(lifetime, reuse_own_number_same_iteration, .timeout = 5, .init = lt_init,
     .description = "L19 X5 L13: a closes itself and c takes its number in the same "
                    "handler; the remaining steps of the event belong to a, never to c")
{
    static const ac_handlers h = {
        .handle_read = h_read_close_self_and_reuse,
        .handle_write = h_write_traced,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = lt_finalize,
    };
    ac_map *m = tk_map();
    the_map = m;
    int fa, ra;
    pair(&fa, &ra);
    lt_new(m, &h, "a", fa);
    cr_assert_eq(write(ra, "x", 1), 1);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    if (tk_is_select(m))
        cr_assert_str_eq(tk_trace, "a:read a:finalize");
    else
        cr_assert_str_eq(tk_trace, "a:read a:write a:finalize");
    tk_trace_clear();
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "c:write");
    lt_finish(m);
    close(ra);
    close(c_raw);
}

/* --------------------------------------- both in handle_close (forwarder) */

static int h_read_forward(ac_dispatcher *d)
{
    check_alive(d, "read");
    char buf[4096];
    ssize_t r = ac_recv(d, buf, sizeof(buf));
    if (r > 0 && tk_node(d)->peer && !ac_is_closed(tk_node(d)->peer))
        (void)ac_send(tk_node(d)->peer, buf, (size_t)r);
    return r < 0 && r != -EAGAIN ? (int)r : 0;
}

/* The forwarder: close yourself, then your peer. */
static int h_close_both(ac_dispatcher *d)
{
    check_alive(d, "close");
    tk_tr("%s:close", tk_name(d));
    lt_close(d, d);
    ac_dispatcher *peer = tk_node(d)->peer;
    if (peer)
        lt_close(peer, d);
    return 0;
}

static const ac_handlers forwarder = {
    .writable = tk_never,
    .handle_read = h_read_forward,
    .handle_write = h_write_quiet,
    .handle_close = h_close_both,
    .handle_error = h_error,
    .finalize = lt_finalize,
};

static void forwarder_pair(ac_map *m, int *ra, int *rb)
{
    int fa, fb;
    pair(&fa, ra);
    pair(&fb, rb);
    ac_dispatcher *a = lt_new(m, &forwarder, "a", fa);
    ac_dispatcher *b = lt_new(m, &forwarder, "b", fb);
    tk_node(a)->peer = b;
    tk_node(b)->peer = a;
}

Test(lifetime, forwarder_closes_peer_in_handle_close, .timeout = 5, .init = lt_init,
     .description = "X4 DESIGN-3 S11: a reads EOF, its handle_close closes a then b; b "
                    "receives nothing more; finalize runs once each, after the dispatch")
{
    ac_map *m = tk_map();
    int ra, rb;
    forwarder_pair(m, &ra, &rb);
    cr_assert_eq(write(ra, "hello", 5), 5);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    char buf[8];
    cr_assert_eq(tk_read_full(rb, buf, 5, 1000), 5, "forwarded a -> b");
    cr_assert_str_empty(tk_trace);
    shutdown(ra, SHUT_WR); /* a reads EOF */
    cr_assert_eq(ac_loop(m, 1.0, AC_FOREVER), 0, "the map empties");
    cr_assert_str_eq(tk_trace, "a:close b:finalize a:finalize");
    lt_finish(m);
    close(ra);
    close(rb);
}

Test(lifetime, forwarder_both_sides_hang_up_at_once, .timeout = 5, .init = lt_init,
     .description = "X4 L10 L19: both raw ends shut down; whichever side sees EOF first "
                    "closes both; the other's pending event is dropped")
{
    ac_map *m = tk_map();
    int ra, rb;
    forwarder_pair(m, &ra, &rb);
    shutdown(ra, SHUT_WR);
    shutdown(rb, SHUT_WR);
    cr_assert_eq(ac_loop(m, 1.0, AC_FOREVER), 0);
    cr_assert(strcmp(tk_trace, "a:close b:finalize a:finalize") == 0 ||
                  strcmp(tk_trace, "b:close a:finalize b:finalize") == 0,
              "trace: %s", tk_trace);
    lt_finish(m);
    close(ra);
    close(rb);
}

Test(lifetime, forwarder_full_hangup_close_runs_twice_under_poll, .timeout = 5, .init = lt_init,
     .description = "X4 L13 W7: a's raw end closed: POLLIN|POLLHUP under poll/epoll gives "
                    "handle_close after the read step closed a (twice in all); select once")
{
    ac_map *m = tk_map();
    int ra, rb;
    forwarder_pair(m, &ra, &rb);
    close(ra);
    cr_assert_eq(ac_loop(m, 1.0, AC_FOREVER), 0);
    if (tk_is_select(m))
        cr_assert_str_eq(tk_trace, "a:close b:finalize a:finalize");
    else
        cr_assert_str_eq(tk_trace, "a:close a:close b:finalize a:finalize");
    lt_finish(m);
    close(rb);
}

/* ----------------------------------------- ac_close_all from a handler */

static int h_read_close_all(ac_dispatcher *d)
{
    check_alive(d, "read");
    tk_tr("%s:read", tk_name(d));
    cr_assert_eq(drain_recv(d), 0);
    for (int i = 0; i < tk_nnodes; i++)
        if (tk_nodes[i]->d && tk_nodes[i]->d != d && !ac_is_closed(tk_nodes[i]->d))
            st(tk_nodes[i]->d)->closed_by_other = true;
    cr_assert_eq(ac_close_all(ac_map_of(d), false), 0);
    cr_assert_eq(ac_map_count(ac_map_of(d)), 0);
    cr_assert_eq(ac_map_free(ac_map_of(d)), -EBUSY, "not from inside the loop");
    cr_assert_eq(ac_loop(ac_map_of(d), 0, 1), -EBUSY, "X19: no nested loop");
    return 0;
}

Test(lifetime, close_all_from_a_handler, .timeout = 5, .init = lt_init,
     .description = "X4 L21 X19: close_all inside handle_read closes everyone, including "
                    "channels with pending events and one without socket; all finalized "
                    "after the dispatch in reverse close order")
{
    static const ac_handlers h = {
        .handle_read = h_read_close_all,
        .handle_write = h_write_quiet,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = lt_finalize,
    };
    ac_map *m = tk_map();
    int fa, ra, fb, rb, fc, rc;
    pair(&fa, &ra);
    pair(&fb, &rb);
    pair(&fc, &rc);
    lt_new(m, &h, "a", fa);
    lt_new(m, &h, "b", fb);
    lt_new(m, &h, "c", fc);
    lt_new(m, &h, "n", -1); /* never got a socket */
    cr_assert_eq(write(ra, "1", 1), 1);
    cr_assert_eq(write(rb, "2", 1), 1);
    cr_assert_eq(write(rc, "3", 1), 1);
    cr_assert(tk_wait_fd(fc, POLLIN, 1000));
    cr_assert_eq(ac_loop(m, 1.0, AC_FOREVER), 0);
    /* One of a, b, c read first (L2); close_all went through the map in
     * order a, b, c, n; finalizers run in reverse close order. */
    const char *first = tk_trace[0] == 'a' ? "a" : tk_trace[0] == 'b' ? "b" : "c";
    char want[128];
    snprintf(want, sizeof(want), "%s:read n:finalize c:finalize b:finalize a:finalize", first);
    cr_assert_str_eq(tk_trace, want);
    lt_finish(m);
    close(ra);
    close(rb);
    close(rc);
}

/* ------------------------------------------------ from handle_error */

static int h_read_raise(ac_dispatcher *d)
{
    check_alive(d, "read");
    tk_tr("%s:read", tk_name(d));
    cr_assert_eq(drain_recv(d), 0);
    return AC_RAISE(d, EPROTO, "parse");
}

static int h_error_close_both(ac_dispatcher *d, const ac_error *e)
{
    check_alive(d, "error");
    tk_tr("%s:error:%s", tk_name(d), strerrorname_np(e->err));
    lt_close(d, d);
    if (tk_node(d)->peer)
        lt_close(tk_node(d)->peer, d);
    return 0;
}

Test(lifetime, close_from_handle_error, .timeout = 5, .init = lt_init,
     .description = "X4 L11 L14: handle_read raises, handle_error closes a and its peer b "
                    "(which has data pending); b gets nothing; finalize after")
{
    static const ac_handlers ha = {
        .handle_read = h_read_raise,
        .handle_write = h_write_quiet,
        .handle_close = h_close,
        .handle_error = h_error_close_both,
        .finalize = lt_finalize,
    };
    static const ac_handlers hb = {
        .readable = tk_never, /* so that a reads first; b still has a write event */
        .handle_write = h_write_traced,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = lt_finalize,
    };
    ac_map *m = tk_map();
    int fa, ra, fb, rb;
    pair(&fa, &ra);
    pair(&fb, &rb);
    ac_dispatcher *a = lt_new(m, &ha, "a", fa);
    ac_dispatcher *b = lt_new(m, &hb, "b", fb);
    tk_node(a)->peer = b;
    cr_assert_eq(write(ra, "x", 1), 1);
    cr_assert_eq(write(rb, "y", 1), 1);
    cr_assert(tk_wait_fd(fa, POLLIN, 1000));
    cr_assert_eq(ac_poll(m, 1.0), 0);
    /* b may have written before a's read (dispatch order between
     * descriptors is free, L2) but never after it was closed. */
    cr_assert(strcmp(tk_trace, "a:read a:error:EPROTO b:finalize a:finalize") == 0 ||
                  strcmp(tk_trace, "b:write a:read a:error:EPROTO b:finalize a:finalize") == 0,
              "trace: %s", tk_trace);
    lt_finish(m);
    close(ra);
    close(rb);
}

/* ------------------------------------------------- from a timer callback */

static ac_dispatcher *timer_victim;

static double timer_close(ac_timer *t, void *arg)
{
    (void)arg;
    tk_tr("timer");
    lt_close(timer_victim, NULL);
    ac_timer_free(t); /* its own callback: allowed */
    return -1;
}

static int h_read_traced(ac_dispatcher *d)
{
    check_alive(d, "read");
    tk_tr("%s:read", tk_name(d));
    return drain_recv(d);
}

Test(lifetime, close_from_timer_callback, .timeout = 5, .init = lt_init,
     .description = "X4 W4: a timer closes a dispatcher that is ready every iteration; "
                    "it gets nothing afterwards, finalize runs once after the callback")
{
    static const ac_handlers h = {
        .handle_read = h_read_traced,
        .handle_write = h_write_quiet,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = lt_finalize,
    };
    ac_map *m = tk_map();
    int fa, ra;
    pair(&fa, &ra);
    timer_victim = lt_new(m, &h, "a", fa);
    ac_timer *t = ac_timer_new(m, timer_close, NULL);
    cr_assert_not_null(t);
    cr_assert_eq(ac_timer_start(t, 0.05), 0);
    cr_assert_eq(ac_loop(m, 1.0, AC_FOREVER), 0, "the map empties when the timer closes a");
    cr_assert_str_eq(tk_trace, "timer a:finalize");
    lt_finish(m);
    close(ra);
}

/* --------------------------------------------- finalize, once, after */

Test(lifetime, close_outside_loop_finalizes_at_next_loop, .timeout = 5, .init = lt_init,
     .description = "X4 S12: a closed outside any loop is finalized when the next loop call "
                    "starts, before that iteration dispatches anything")
{
    static const ac_handlers h = {
        .handle_read = h_read_traced,
        .handle_write = h_write_quiet,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = lt_finalize,
    };
    ac_map *m = tk_map();
    int fa, ra, fb, rb;
    pair(&fa, &ra);
    pair(&fb, &rb);
    ac_dispatcher *a = lt_new(m, &h, "a", fa);
    lt_new(m, &h, "b", fb);
    cr_assert_eq(write(rb, "x", 1), 1);
    lt_close(a, NULL);
    cr_assert_eq(ac_close(a), 0, "twice: no-op");
    cr_assert_str_empty(tk_trace);
    cr_assert_eq(tk_nodes[0]->finalized, 0);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "a:finalize b:read");
    lt_finish(m);
    close(ra);
    close(rb);
}

Test(lifetime, map_free_runs_pending_finalizers, .timeout = 5, .init = lt_init,
     .description = "X4 STYLE-Ownership-5: ac_map_free runs the finalizers still pending, "
                    "also of a dispatcher that never had a socket")
{
    static const ac_handlers h = {.finalize = lt_finalize};
    ac_map *m = tk_map();
    int fa, ra;
    pair(&fa, &ra);
    ac_dispatcher *a = lt_new(m, &h, "a", fa);
    ac_dispatcher *b = lt_new(m, &h, "b", -1);
    lt_close(a, NULL);
    lt_close(b, NULL);
    cr_assert_str_empty(tk_trace);
    cr_assert_eq(ac_map_free(m), 0);
    cr_assert_str_eq(tk_trace, "b:finalize a:finalize");
    cr_assert_eq(tk_finalized, tk_created);
    tk_nodes_check_and_free();
    close(ra);
}

Test(lifetime, map_free_refuses_a_non_empty_map, .timeout = 5, .init = lt_init,
     .description = "X4 STYLE-Ownership-5: ac_map_free returns -EBUSY while a channel is "
                    "registered; the map stays usable; after close_all it frees")
{
    static const ac_handlers h = {
        .handle_read = h_read_traced,
        .handle_write = h_write_quiet,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = lt_finalize,
    };
    ac_map *m = tk_map();
    int fa, ra;
    pair(&fa, &ra);
    lt_new(m, &h, "a", fa);
    cr_assert_eq(ac_map_free(m), -EBUSY);
    cr_assert_eq(ac_map_count(m), 1);
    cr_assert_eq(write(ra, "x", 1), 1);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "a:read");
    cr_assert_eq(tk_finalized, 0);
    lt_finish(m);
    close(ra);
}

Test(lifetime, map_free_without_loop_and_never_closed_socketless, .timeout = 5, .init = lt_init,
     .description = "X4 D3: a dispatcher that never got a socket is not in the map: "
                    "ac_map_free frees it and runs its finalizer")
{
    static const ac_handlers h = {.finalize = lt_finalize};
    ac_map *m = tk_map();
    lt_new(m, &h, "n", -1);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_eq(ac_map_free(m), 0);
    cr_assert_str_eq(tk_trace, "n:finalize");
    tk_nodes_check_and_free();
}

/* A finalizer that closes another dispatcher: it is finalized in turn. */
static void fin_close_peer(ac_dispatcher *d)
{
    ac_dispatcher *peer = tk_node(d)->peer;
    lt_finalize(d);
    if (peer && !ac_is_closed(peer))
        cr_assert_eq(ac_close(peer), 0);
}

Test(lifetime, finalizer_closes_another, .timeout = 5, .init = lt_init,
     .description = "X4: a finalize that closes another dispatcher: that one is finalized "
                    "in the same round, exactly once")
{
    static const ac_handlers h = {
        .handle_read = h_read_close_self,
        .handle_write = h_write_quiet,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = fin_close_peer,
    };
    ac_map *m = tk_map();
    int fa, ra, fb, rb;
    pair(&fa, &ra);
    pair(&fb, &rb);
    ac_dispatcher *a = lt_new(m, &h, "a", fa);
    ac_dispatcher *b = lt_new(m, &h, "b", fb);
    tk_node(a)->peer = b;
    cr_assert_eq(write(ra, "x", 1), 1);
    cr_assert_eq(ac_loop(m, 1.0, AC_FOREVER), 0);
    cr_assert_str_eq(tk_trace, "a:read a:finalize b:finalize");
    lt_finish(m);
    close(ra);
    close(rb);
}

/* --------------------------------------------- handle_connect closes */

static int h_connect_close(ac_dispatcher *d)
{
    check_alive(d, "connect");
    tk_tr("%s:connect", tk_name(d));
    lt_close(d, d);
    return 0;
}

static int h_write_connected(ac_dispatcher *d)
{
    tk_tr("%s:write:%d", tk_name(d), ac_is_connected(d));
    return 0;
}

Test(lifetime, close_in_handle_connect, .timeout = 5, .init = lt_init,
     .description = "X4 D8 W11: handle_connect closes; D8 still sets connected and D7 "
                    "calls handle_write on the closed channel; finalize after")
{
    static const ac_handlers h = {
        .handle_connect = h_connect_close,
        .handle_write = h_write_connected,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = lt_finalize,
    };
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = tk_listener(AF_INET, &ss, &len, 5);
    ac_dispatcher *c = lt_new(m, &h, "c", -1);
    cr_assert_eq(ac_create_socket(c, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
    cr_assert_eq(ac_loop(m, 1.0, 10), 0);
    cr_assert_str_eq(tk_trace, "c:connect c:write:1 c:finalize");
    lt_finish(m);
    close(lfd);
}

/* ------------------------------------ buffered sender closing itself */

static int h_low_close(ac_dispatcher *d)
{
    tk_tr("%s:low", tk_name(d));
    lt_close(d, d);
    return 0;
}

static int h_high_trace(ac_dispatcher *d)
{
    tk_tr("%s:high", tk_name(d));
    return 0;
}

static int h_high_close(ac_dispatcher *d)
{
    tk_tr("%s:high", tk_name(d));
    lt_close(d, d);
    return 0;
}

Test(lifetime, buffered_closes_in_water_mark_callbacks, .timeout = 5, .init = lt_init,
     .description = "X4 S16: a buffered sender closing itself inside handle_high_water (in "
                    "ac_buffered_send, outside the loop) and inside handle_low_water (in a "
                    "write event's initiate_send)")
{
    static const ac_handlers hlo = {
        .handle_low_water = h_low_close,
        .handle_high_water = h_high_trace,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = lt_finalize,
    };
    static const ac_handlers hhi = {
        .handle_high_water = h_high_close,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = lt_finalize,
    };
    ac_map *m = tk_map();
    int sv[2], sw[2];
    tk_socketpair(SOCK_STREAM, sv);
    tk_socketpair(SOCK_STREAM, sw);
    ac_dispatcher *lo = tk_new_buffered(m, &hlo, "lo");
    cr_assert_eq(ac_attach(lo, sv[0]), 0);
    cr_assert_eq(ac_buffered_set_chunk(lo, 100), 0);
    cr_assert_eq(ac_buffered_set_watermarks(lo, 100, 200), 0);
    ac_dispatcher *hi = tk_new_buffered(m, &hhi, "hi");
    cr_assert_eq(ac_attach(hi, sw[0]), 0);
    cr_assert_eq(ac_buffered_set_chunk(hi, 100), 0);
    cr_assert_eq(ac_buffered_set_watermarks(hi, 100, 200), 0);

    static char data[1000];
    cr_assert_eq(ac_buffered_send(lo, data, 400), 0); /* 100 out, 300 left > 200 */
    cr_assert_eq(ac_buffered_send(hi, data, 400), 0); /* the same, and hi closes */
    cr_assert_str_eq(tk_trace, "lo:high hi:high");
    cr_assert(ac_is_closed(hi));
    cr_assert_not(ac_is_closed(lo));
    /* hi is finalized as the loop starts; lo drains 100 per write event
     * and closes itself when 100 are left. */
    cr_assert_eq(ac_loop(m, 0.1, 5), 0);
    cr_assert_str_eq(tk_trace, "lo:high hi:high hi:finalize lo:low lo:finalize");
    lt_finish(m);
    close(sv[1]);
    close(sw[1]);
}

/* -------------------------------------------- random close order */

#define NR 40
static uint32_t rseed;
static struct tk_node *rn[NR]; /* rn[i]->d is NULL once finalized */

static ac_dispatcher *random_live(void)
{
    ac_dispatcher *x = rn[tk_rand(&rseed) % NR]->d;
    return x && !ac_is_closed(x) ? x : NULL;
}

static int h_read_close_random(ac_dispatcher *d)
{
    check_alive(d, "read");
    cr_assert_eq(drain_recv(d), 0);
    for (int k = (int)(tk_rand(&rseed) % 3); k >= 0; k--) {
        ac_dispatcher *x = random_live();
        if (x)
            lt_close(x, d);
    }
    return 0;
}

static int h_write_close_random(ac_dispatcher *d)
{
    check_alive(d, "write");
    if (tk_rand(&rseed) % 4 == 0) {
        ac_dispatcher *x = random_live();
        if (x)
            lt_close(x, d);
    }
    return 0;
}

static int h_close_random(ac_dispatcher *d)
{
    check_alive(d, "close");
    return ac_close(d);
}

Test(lifetime, random_close_order_stress, .timeout = 30, .init = lt_init,
     .description = "X4 L10 L13 L19: 40 ready dispatchers close random others (and "
                    "themselves) from read and write handlers over many seeds; nobody closed "
                    "by another gets an event; each is finalized exactly once")
{
    static const ac_handlers h = {
        .handle_read = h_read_close_random,
        .handle_write = h_write_close_random,
        .handle_close = h_close_random,
        .handle_error = h_error,
        .finalize = lt_finalize,
    };
    tk_fin_in_trace = false;
    for (uint32_t seed = 1; seed <= 30; seed++) {
        rseed = seed * 2654435761u;
        tk_created = tk_finalized = 0;
        ac_map *m = tk_map();
        int raw[NR];
        for (int i = 0; i < NR; i++) {
            int fd;
            pair(&fd, &raw[i]);
            rn[i] = tk_node(lt_new(m, &h, "r", fd));
            cr_assert_eq(write(raw[i], "x", 1), 1);
        }
        for (int i = 0; i < 50 && ac_map_count(m); i++)
            cr_assert_eq(ac_poll(m, 0.01), 0);
        lt_finish(m);
        for (int i = 0; i < NR; i++)
            close(raw[i]);
    }
}

/* ------------------------------ from call_soon and signal callbacks */

static ac_dispatcher *cb_victim;

static void call_close(ac_map *m, void *arg)
{
    (void)m;
    (void)arg;
    tk_tr("call");
    lt_close(cb_victim, NULL);
}

Test(lifetime, close_from_call_soon_callback, .timeout = 5, .init = lt_init,
     .description = "X4 DESIGN-8: a queued call closes a ready dispatcher during the "
                    "iteration; it gets nothing afterwards; finalize after the iteration")
{
    static const ac_handlers h = {
        .handle_read = h_read_traced,
        .handle_write = h_write_quiet,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = lt_finalize,
    };
    ac_map *m = tk_map();
    int fa, ra;
    pair(&fa, &ra);
    cb_victim = lt_new(m, &h, "a", fa);
    cr_assert_eq(ac_call_soon_threadsafe(m, call_close, NULL), 0);
    cr_assert_eq(ac_loop(m, 1.0, AC_FOREVER), 0);
    /* a is writable every iteration: it may have had its write event
     * (untraced) before the call ran, never after. */
    cr_assert_str_eq(tk_trace, "call a:finalize");
    lt_finish(m);
    close(ra);
}

static int sig_close(ac_map *m, int signo, void *arg)
{
    (void)m;
    (void)arg;
    tk_tr("sig:%d", signo);
    lt_close(cb_victim, NULL);
    return 0;
}

Test(lifetime, close_from_signal_callback, .timeout = 5, .init = lt_init,
     .description = "X4: a signal callback closes a dispatcher with data pending; it gets "
                    "nothing afterwards; finalize after the iteration")
{
    static const ac_handlers h = {
        .handle_read = h_read_traced,
        .handle_write = h_write_quiet,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = lt_finalize,
    };
    ac_map *m = tk_map();
    int fa, ra;
    pair(&fa, &ra);
    cb_victim = lt_new(m, &h, "a", fa);
    cr_assert_eq(ac_signal_watch(m, SIGUSR1, sig_close, NULL), 0);
    cr_assert_eq(raise(SIGUSR1), 0);
    cr_assert_eq(ac_loop(m, 1.0, AC_FOREVER), 0);
    cr_assert_str_eq(tk_trace, "sig:10 a:finalize");
    lt_finish(m);
    close(ra);
}

/* ------------------------------ closed while an interest change is queued */

/* The dispatchers of the test below, NULL-terminated. */
static ac_dispatcher **queued_all;

/* a's read pauses reading on every dispatcher in the map (each change is
 * queued for the poller) and closes them all but the last. */
static int h_read_pause_all_close(ac_dispatcher *d)
{
    check_alive(d, "read");
    tk_tr("%s:read", tk_name(d));
    cr_assert_eq(drain_recv(d), 0);
    ac_dispatcher **all = queued_all;
    for (int i = 0; all[i]; i++)
        ac_set_reading(all[i], false);
    for (int i = 0; all[i + 1]; i++)
        lt_close(all[i], d);
    return 0;
}

Test(lifetime, close_with_queued_interest_change, .timeout = 5, .init = lt_init,
     .description = "X4 X7: channels closed while their interest change waits for the "
                    "poller are released once; the change of the one left still applies")
{
    static const ac_handlers h = {
        .handle_read = h_read_pause_all_close,
        .handle_write = h_write_quiet,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = lt_finalize,
    };
    ac_map *m = tk_map();
    enum { N = 5 };
    int mine[N], raw[N];
    ac_dispatcher *all[N + 1] = {0};
    static const char *const names[N] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < N; i++) {
        pair(&mine[i], &raw[i]);
        all[i] = lt_new(m, &h, names[i], mine[i]);
    }
    queued_all = all;
    cr_assert_eq(write(raw[0], "x", 1), 1);
    tk_iterate(m, 1);
    cr_assert_eq(write(raw[N - 1], "y", 1), 1); /* e is never read: its reading is paused */
    tk_iterate(m, 2);
    cr_assert_str_eq(tk_trace, "a:read d:finalize c:finalize b:finalize a:finalize");
    cr_assert_not(ac_is_reading(all[N - 1]));
    cr_assert_eq(ac_close(all[N - 1]), 0);
    lt_finish(m);
    for (int i = 0; i < N; i++)
        close(raw[i]);
}
