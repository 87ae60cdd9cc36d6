/* Conformance: how an iteration dispatches (spec L10-L18): the order of
 * events select-style and poll-style, failures in the loop and where they
 * go, the exit request from a handler, failures outside the guard, wait
 * failures and descriptors closed behind the library's back, and the
 * poll-style steps driven directly; CPython's test_readwrite and
 * test_readwriteexc.
 *
 * Expected traces were checked against Python 3.11's asyncore on Linux
 * where a kernel is involved.  The binary runs once per poller
 * (AC_POLLER); expectations that differ between the select-style and the
 * poll-style iteration look at ac_map_poller_name() through
 * tk_is_select().  epoll must always give the poll-style answer (L20).
 * The rig and the trace tokens are tests/support/loop_rig.h. */
#include "loop_rig.h"

/* =========================================== L10 / L13: dispatch order */

Test(loop, select_dispatches_by_phase_poll_by_descriptor, .timeout = 5,
     .description = "L10 L13 L20 L2: two channels with data, urgent data and room to write: "
                    "select runs every read, then every write, then every expt; poll/epoll "
                    "run read, write, expt for one descriptor, then the next")
{
    ac_map *m = tk_map();
    int ma, pa, mb, pb;
    tk_tcp_pair(&pa, &ma);
    tk_tcp_pair(&pb, &mb);
    mk(m, &ph, "a", ma, true, true);
    mk(m, &ph, "b", mb, true, true);
    cr_assert_eq(send(pa, "abc", 3, 0), 3);
    cr_assert_eq(send(pb, "def", 3, 0), 3);
    send_oob(pa, ma);
    send_oob(pb, mb);
    cr_assert_eq(ac_loop(m, 1.0, 1), 0);
    static const char *const evs[] = {"read:3", "write", "expt:1"};
    assert_grouped(evs, 3, 2, tk_is_select(m));
    tk_finish(m);
    close(pa);
    close(pb);
}

/* ====================================== L11 / L14: failures in the loop */

Test(loop, failing_reads_select_continues_poll_skips_the_rest, .timeout = 5,
     .description = "L11 L14 L10 L13: both channels' handle_read raise EPROTO; each "
                    "handle_error runs and the iteration goes on; select still runs both "
                    "writes in phase 2, poll/epoll skip the write step of a failed "
                    "descriptor")
{
    ac_map *m = tk_map();
    int sv[2], sw[2];
    tk_socketpair(SOCK_STREAM, sv);
    tk_socketpair(SOCK_STREAM, sw);
    ac_dispatcher *a = mk(m, &ph, "a", sv[0], true, true);
    ac_dispatcher *b = mk(m, &ph, "b", sw[0], true, true);
    lp(a)->read_ret = lp(b)->read_ret = EPROTO;
    cr_assert_eq(write(sv[1], "x", 1), 1);
    cr_assert_eq(write(sw[1], "y", 1), 1);
    cr_assert_eq(ac_loop(m, 1.0, 1), 0);
    if (tk_is_select(m)) {
        /* phase 1: read+error per channel; phase 2: writes. */
        struct tok t[16];
        int n = split_trace(t, 16);
        cr_assert_eq(n, 6, "trace: %s", tk_trace);
        for (int i = 0; i < 4; i += 2) {
            cr_assert_str_eq(t[i].ev, "read", "trace: %s", tk_trace);
            cr_assert_str_eq(t[i + 1].ev, "error:EPROTO", "trace: %s", tk_trace);
            cr_assert_str_eq(t[i].name, t[i + 1].name);
        }
        cr_assert_str_neq(t[0].name, t[2].name);
        cr_assert_str_eq(t[4].ev, "write");
        cr_assert_str_eq(t[5].ev, "write");
        cr_assert_str_neq(t[4].name, t[5].name);
    } else {
        static const char *const evs[] = {"read", "error:EPROTO"};
        assert_grouped(evs, 2, 2, false);
    }
    cr_assert_eq(tk_node(a)->last_err, EPROTO);
    cr_assert_eq(ac_map_count(m), 2, "handle_error did not close");
    tk_finish(m);
    close(sv[1]);
    close(sw[1]);
}

Test(loop, peer_reset_trace, .timeout = 5,
     .description = "L13 L11 W7 L20 S11: a peer reset on a readable and writable channel: "
                    "select reads (ECONNRESET -> handle_close) and nothing more; poll/epoll "
                    "(POLLIN|POLLOUT|POLLERR|POLLHUP) go on with handle_write on the closed "
                    "channel and a second handle_close")
{
    ac_map *m = tk_map();
    int mine, peer;
    tk_tcp_pair(&peer, &mine);
    struct tk_node *nc = tk_node(mk(m, &ph, "c", mine, true, true));
    reset_peer(peer, mine);
    cr_assert_eq(ac_loop(m, 1.0, 1), 0);
    if (tk_is_select(m))
        cr_assert_str_eq(tk_trace, "c:close c:read:0");
    else
        cr_assert_str_eq(tk_trace, "c:close c:read:0 c:write c:close");
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_eq(nc->errors, 0);
    tk_finish(m);
}

Test(loop, peer_reset_on_a_write_only_channel, .timeout = 5,
     .description = "L13 L6 D10 L20: a reset seen by a writable, not readable channel: "
                    "select gives handle_write only (no close event, the channel stays); "
                    "poll/epoll give handle_write then handle_close (POLLERR|POLLHUP)")
{
    ac_map *m = tk_map();
    int mine, peer;
    tk_tcp_pair(&peer, &mine);
    mk(m, &ph, "c", mine, false, true);
    reset_peer(peer, mine);
    cr_assert_eq(ac_loop(m, 1.0, 1), 0);
    if (tk_is_select(m)) {
        cr_assert_str_eq(tk_trace, "c:write");
        cr_assert_eq(ac_map_count(m), 1);
    } else {
        cr_assert_str_eq(tk_trace, "c:write c:close");
        cr_assert_eq(ac_map_count(m), 0);
    }
    tk_finish(m);
}

/* ================================================= L16: the exit request */

Test(loop, exit_request_abandons_the_iteration, .timeout = 5,
     .description = "L16 L4 (test_readwriteexc's ExitNow): the first handle_read returns "
                    "AC_EXIT_NOW: ac_loop returns it, nobody else is dispatched (no read of "
                    "the other, no write), handle_error never runs, channels stay; the "
                    "next loop carries on")
{
    ac_map *m = tk_map();
    int sv[2], sw[2];
    tk_socketpair(SOCK_STREAM, sv);
    tk_socketpair(SOCK_STREAM, sw);
    ac_dispatcher *a = mk(m, &ph, "a", sv[0], true, true);
    ac_dispatcher *b = mk(m, &ph, "b", sw[0], true, true);
    lp(a)->read_ret = lp(b)->read_ret = AC_EXIT_NOW;
    cr_assert_eq(write(sv[1], "x", 1), 1);
    cr_assert_eq(write(sw[1], "y", 1), 1);
    cr_assert_eq(ac_loop(m, 1.0, 5), AC_EXIT_NOW);
    cr_assert(!strcmp(tk_trace, "a:read") || !strcmp(tk_trace, "b:read"), "trace: %s", tk_trace);
    cr_assert_eq(lp(a)->rcalls, 1, "one iteration only");
    cr_assert_eq(ac_map_count(m), 2);
    cr_assert_eq(tk_node(a)->errors + tk_node(b)->errors, 0);

    /* Carry on: 2 more iterations without the exit request. */
    tk_trace_clear();
    lp(a)->read_ret = lp(b)->read_ret = 0;
    cr_assert_eq(ac_loop(m, 1.0, 2), 0);
    cr_assert_eq(lp(a)->rcalls, 3);
    cr_assert_eq(count_tokens("read:1"), 2, "both reads come: %s", tk_trace);
    cr_assert_eq(count_tokens("write"), 4, "trace: %s", tk_trace);
    tk_finish(m);
    close(sv[1]);
    close(sw[1]);
}

Test(loop, loop_stop_from_a_handler, .timeout = 5,
     .description = "L16 X3: ac_loop_stop in handle_read: the handler returns 0, the rest of "
                    "the iteration is abandoned (no write step, no other channel) and "
                    "ac_loop returns AC_EXIT_NOW")
{
    ac_map *m = tk_map();
    int sv[2], sw[2];
    tk_socketpair(SOCK_STREAM, sv);
    tk_socketpair(SOCK_STREAM, sw);
    ac_dispatcher *a = mk(m, &ph, "a", sv[0], true, true);
    ac_dispatcher *b = mk(m, &ph, "b", sw[0], true, true);
    lp(a)->stop_in_read = lp(b)->stop_in_read = true;
    cr_assert_eq(write(sv[1], "x", 1), 1);
    cr_assert_eq(write(sw[1], "y", 1), 1);
    cr_assert_eq(ac_loop(m, 1.0, AC_FOREVER), AC_EXIT_NOW);
    cr_assert(!strcmp(tk_trace, "a:read:1") || !strcmp(tk_trace, "b:read:1"), "trace: %s",
              tk_trace);
    cr_assert_eq(ac_map_count(m), 2);
    tk_trace_clear();
    lp(a)->stop_in_read = lp(b)->stop_in_read = false;
    lp(a)->w = lp(b)->w = false;
    cr_assert_eq(ac_loop(m, 1.0, 1), 0, "the stop request does not outlive its loop");
    cr_assert_eq(count_tokens("read:1"), 1, "the other read: %s", tk_trace);
    tk_finish(m);
    close(sv[1]);
    close(sw[1]);
}

Test(loop, exit_request_in_the_middle_of_a_count, .timeout = 5,
     .description = "L16 L4: with count=5, an exit request in iteration 2 returns "
                    "AC_EXIT_NOW after 2 iterations")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *a = mk(m, &ph, "a", sv[0], false, true);
    lp(a)->exit_at_write = 2;
    cr_assert_eq(ac_loop(m, 1.0, 5), AC_EXIT_NOW);
    cr_assert_eq(lp(a)->rcalls, 2);
    cr_assert_str_eq(tk_trace, "a:write a:write");
    tk_trace_clear();
    cr_assert_eq(ac_loop(m, 1.0, 2), 0, "a later loop carries on");
    cr_assert_eq(lp(a)->rcalls, 4);
    cr_assert_str_eq(tk_trace, "a:write a:write");
    tk_finish(m);
    close(sv[1]);
}

/* =============================================== L17: outside the guard */

Test(loop, failing_handle_error_leaves_the_loop, .timeout = 5,
     .description = "L17 X3: handle_error re-raises (returns -EPROTO): ac_loop returns "
                    "-EPROTO at once, the rest of the iteration is abandoned, channels stay "
                    "and a later loop carries on")
{
    ac_map *m = tk_map();
    int sv[2], sw[2];
    tk_socketpair(SOCK_STREAM, sv);
    tk_socketpair(SOCK_STREAM, sw);
    ac_dispatcher *a = mk(m, &ph, "a", sv[0], true, true);
    ac_dispatcher *b = mk(m, &ph, "b", sw[0], true, true);
    lp(a)->read_ret = lp(b)->read_ret = EPROTO;
    lp(a)->error_ret = lp(b)->error_ret = -EPROTO;
    cr_assert_eq(write(sv[1], "x", 1), 1);
    cr_assert_eq(write(sw[1], "y", 1), 1);
    cr_assert_eq(ac_loop(m, 1.0, 5), -EPROTO);
    cr_assert(!strcmp(tk_trace, "a:read a:error:EPROTO") ||
                  !strcmp(tk_trace, "b:read b:error:EPROTO"),
              "trace: %s", tk_trace);
    cr_assert_eq(lp(a)->rcalls, 1);
    cr_assert_eq(ac_map_count(m), 2);
    tk_trace_clear();
    cr_assert_eq(ac_loop(m, 1.0, 5), -EPROTO, "the next loop meets the next failure");
    cr_assert_eq(lp(a)->rcalls, 2);
    tk_finish(m);
    close(sv[1]);
    close(sw[1]);
}

Test(loop, failing_handle_close_of_the_poll_guard_leaves_the_loop, .timeout = 5,
     .description = "L17 L14 L11: handle_read raises ECONNRESET and handle_close fails with "
                    "EIO: poll/epoll route to handle_close, whose failure leaves the loop "
                    "(-EIO); select routes to handle_error (no close)")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *a = mk(m, &ph, "a", sv[0], true, false);
    lp(a)->read_ret = ECONNRESET;
    lp(a)->close_ret = EIO;
    cr_assert_eq(write(sv[1], "x", 1), 1);
    int rc = ac_loop(m, 1.0, 3);
    if (tk_is_select(m)) {
        cr_assert_eq(rc, 0);
        cr_assert_str_eq(tk_trace, "a:read a:error:ECONNRESET a:read a:error:ECONNRESET "
                                   "a:read a:error:ECONNRESET");
    } else {
        cr_assert_eq(rc, -EIO);
        cr_assert_str_eq(tk_trace, "a:read a:close");
    }
    cr_assert_eq(ac_map_count(m), 1);
    lp(a)->close_ret = 0;
    tk_finish(m);
    close(sv[1]);
}

/* =================================== L12 / L18: wait failures, lost fds */

Test(loop, descriptor_closed_behind_the_librarys_back, .timeout = 5,
     .description = "L12 L18 X8: the channel's fd is closed with close(2): select's wait "
                    "fails, -EBADF leaves the loop, no handler, map unchanged; poll reports "
                    "POLLNVAL -> handle_close; epoll forgets the fd silently")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *a = mk(m, &ph, "a", sv[0], true, true);
    struct tk_node *na = tk_node(a);
    /* One iteration first, so that every poller knows the descriptor. */
    cr_assert_eq(ac_loop(m, 1.0, 1), 0);
    cr_assert_str_eq(tk_trace, "a:write");
    tk_trace_clear();
    lp(a)->rcalls = 0;
    cr_assert_eq(close(sv[0]), 0);
    int rc = ac_loop(m, 0.05, 3);
    const char *p = ac_map_poller_name(m);
    if (!strcmp(p, "select")) {
        cr_assert_eq(rc, -EBADF);
        cr_assert_str_empty(tk_trace);
        cr_assert_eq(ac_map_count(m), 1);
        cr_assert_eq(ac_map_get(m, sv[0]), a);
        cr_assert_eq(lp(a)->rcalls, 1, "the first wait failed");
        cr_assert_eq(ac_loop(m, 0.05, 1), -EBADF, "and fails again");
    } else if (!strcmp(p, "poll")) {
        cr_assert_eq(rc, 0);
        cr_assert_str_eq(tk_trace, "a:close");
        cr_assert_eq(ac_map_count(m), 0);
    } else {
        cr_assert_eq(rc, 0, "rc %d", rc);
        cr_assert_str_empty(tk_trace);
        cr_assert_eq(lp(a)->rcalls, 3);
        cr_assert_eq(ac_map_count(m), 1);
    }
    cr_assert_eq(na->errors, 0);
    tk_finish(m);
    close(sv[1]);
}

Test(loop, descriptor_beyond_fd_setsize, .timeout = 5,
     .description = "L12 X9 (deviation in the header, issue 8 item 3): a descriptor >= "
                    "FD_SETSIZE is refused when it is attached to a select map (-EMFILE, an "
                    "error log line, no handler, map unchanged), so the wait never fails for "
                    "it; poll/epoll dispatch it normally")
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    const int big = FD_SETSIZE + 100;
    if (rl.rlim_cur <= (rlim_t)big) {
        if (rl.rlim_max <= (rlim_t)big)
            cr_skip_test("RLIMIT_NOFILE too low");
        rl.rlim_cur = (rlim_t)big + 1;
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    cr_assert_eq(dup2(sv[0], big), big);
    close(sv[0]);
    ac_dispatcher *a = mk(m, &ph, "a", -1, true, false);
    cr_assert_eq(write(sv[1], "hello", 5), 5);
    int rc = ac_attach(a, big);
    if (tk_is_select(m)) {
        cr_assert_eq(rc, -EMFILE);
        cr_assert_eq(ac_map_count(m), 0);
        cr_assert_not_null(strstr(tk_logbuf, "error: descriptor "), "log: %s", tk_logbuf);
        cr_assert_eq(ac_loop(m, 0.05, 3), 0, "the map is empty");
        cr_assert_str_empty(tk_trace);
        cr_assert_eq(tk_inq(big), 5);
        close(big); /* still ours */
    } else {
        cr_assert_eq(rc, 0);
        cr_assert_eq(ac_loop(m, 0.05, 1), 0);
        cr_assert_str_eq(tk_trace, "a:read:5");
    }
    tk_finish(m);
    close(sv[1]);
}

/* ============================ L13 / L14: poll-style steps, driven directly */

/* A connected channel on a socketpair for the direct entry points. */
static ac_dispatcher *pair_channel(ac_map *m, const char *name, int sv[2])
{
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *d = mk(m, &ph, name, sv[0], true, true);
    cr_assert(ac_is_connected(d));
    lp(d)->no_recv = true;
    lp(d)->keep_open = true;
    return d;
}

Test(loop_dispatch, readwrite_calls_the_handler_of_each_flag, .timeout = 5,
     .description = "L13 D10 (test_readwrite): each poll flag alone reaches exactly its "
                    "handler: POLLIN read, POLLPRI expt, POLLOUT write, POLLERR/POLLHUP/"
                    "POLLNVAL close; other flags and 0 reach nothing")
{
    static const struct {
        short flag;
        const char *trace;
    } cases[] = {
        {POLLIN, "d:read"},   {POLLPRI, "d:expt"},   {POLLOUT, "d:write"}, {POLLERR, "d:close"},
        {POLLHUP, "d:close"}, {POLLNVAL, "d:close"}, {POLLRDHUP, ""},      {POLLRDNORM, ""},
        {POLLWRNORM, ""},     {POLLRDBAND, ""},      {POLLWRBAND, ""},     {0, ""},
    };
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_channel(m, "d", sv);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tk_trace_clear();
        cr_assert_eq(ac_readwrite(d, cases[i].flag), 0);
        cr_assert_str_eq(tk_trace, cases[i].trace, "flag %#x", (unsigned)cases[i].flag);
        cr_assert_eq(tk_node(d)->errors, 0);
    }
    tk_finish(m);
    close(sv[1]);
}

Test(loop_dispatch, readwrite_runs_the_steps_in_order, .timeout = 5,
     .description = "L13: all flags at once run read, write, expt, then one handle_close "
                    "for any of POLLHUP/POLLERR/POLLNVAL; the select-style single dispatches "
                    "reach read, write and expt")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_channel(m, "d", sv);
    lp(d)->expt_ret = 0;
    cr_assert_eq(
        ac_readwrite(d, POLLIN | POLLOUT | POLLPRI | POLLHUP | POLLERR | POLLNVAL | POLLRDHUP), 0);
    cr_assert_str_eq(tk_trace, "d:read d:write d:expt d:close");
    tk_trace_clear();
    cr_assert_eq(ac_readwrite(d, POLLHUP | POLLOUT | POLLIN), 0);
    cr_assert_str_eq(tk_trace, "d:read d:write d:close", "order of steps, not of bits");
    tk_trace_clear();
    cr_assert_eq(ac_read(d), 0);
    cr_assert_eq(ac_write(d), 0);
    cr_assert_eq(ac_exception(d), 0);
    cr_assert_str_eq(tk_trace, "d:read d:write d:expt");
    cr_assert_eq(tk_node(d)->errors, 0);
    tk_finish(m);
    close(sv[1]);
}

Test(loop_dispatch, exit_request_is_never_handle_error, .timeout = 5,
     .description = "L16 L11 L14 (test_readwriteexc, test_readwrite's exitingdummy): every "
                    "handler returns AC_EXIT_NOW: ac_read, ac_write, ac_exception and "
                    "ac_readwrite for each flag return it; handle_error never runs")
{
    static const short flags[] = {POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL};
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_channel(m, "d", sv);
    struct lp *s = lp(d);
    s->read_ret = s->write_ret = s->expt_ret = s->close_ret = AC_EXIT_NOW;
    cr_assert_eq(ac_read(d), AC_EXIT_NOW);
    cr_assert_eq(ac_write(d), AC_EXIT_NOW);
    cr_assert_eq(ac_exception(d), AC_EXIT_NOW);
    cr_assert_str_eq(tk_trace, "d:read d:write d:expt");
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
        cr_assert_eq(ac_readwrite(d, flags[i]), AC_EXIT_NOW, "flag %#x", (unsigned)flags[i]);
    tk_trace_clear();
    cr_assert_eq(ac_readwrite(d, POLLIN | POLLOUT | POLLPRI | POLLHUP), AC_EXIT_NOW);
    cr_assert_str_eq(tk_trace, "d:read", "no further step after the exit request");
    cr_assert_eq(tk_node(d)->errors, 0);
    s->close_ret = 0;
    tk_finish(m);
    close(sv[1]);
}

Test(loop_dispatch, other_failures_reach_handle_error, .timeout = 5,
     .description = "L11 L14 (test_readwriteexc, test_readwrite's crashingdummy): every "
                    "handler raises EINVAL (not in the disconnected set): each select-style "
                    "dispatch and each flag of ac_readwrite calls handle_error once, and "
                    "returns 0")
{
    static const struct {
        short flag;
        const char *trace;
    } cases[] = {
        {POLLIN, "d:read d:error:EINVAL"},   {POLLPRI, "d:expt d:error:EINVAL"},
        {POLLOUT, "d:write d:error:EINVAL"}, {POLLERR, "d:close d:error:EINVAL"},
        {POLLHUP, "d:close d:error:EINVAL"}, {POLLNVAL, "d:close d:error:EINVAL"},
    };
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_channel(m, "d", sv);
    struct lp *s = lp(d);
    s->read_ret = s->write_ret = s->expt_ret = s->close_ret = EINVAL;
    cr_assert_eq(ac_read(d), 0);
    cr_assert_eq(ac_write(d), 0);
    cr_assert_eq(ac_exception(d), 0);
    cr_assert_str_eq(tk_trace, "d:read d:error:EINVAL d:write d:error:EINVAL d:expt "
                               "d:error:EINVAL");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tk_trace_clear();
        cr_assert_eq(ac_readwrite(d, cases[i].flag), 0);
        cr_assert_str_eq(tk_trace, cases[i].trace, "flag %#x", (unsigned)cases[i].flag);
    }
    cr_assert_eq(tk_node(d)->errors, 9);
    s->close_ret = 0;
    tk_finish(m);
    close(sv[1]);
}

Test(loop_dispatch, disconnected_set_select_errors_poll_closes, .timeout = 5,
     .description = "L11 L14 L15 W10: a handler raising an errno of the disconnected set "
                    "(ECONNRESET ENOTCONN ESHUTDOWN ECONNABORTED EPIPE EBADF) goes to "
                    "handle_error from ac_read/ac_write/ac_exception but to handle_close "
                    "(no handle_error) from ac_readwrite; EAGAIN, EPROTO, ETIMEDOUT, "
                    "ECONNREFUSED go to handle_error from both")
{
    static const int disc[] = {ECONNRESET, ENOTCONN, ESHUTDOWN, ECONNABORTED, EPIPE, EBADF};
    static const int other[] = {EAGAIN, EPROTO, ETIMEDOUT, ECONNREFUSED, EINTR};
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_channel(m, "d", sv);
    struct lp *s = lp(d);
    char want[256];
    for (int k = 0; k < 2; k++) {
        const int *errs = k == 0 ? disc : other;
        size_t n = k == 0 ? 6 : 5;
        for (size_t i = 0; i < n; i++) {
            const char *name = strerrorname_np(errs[i]);
            s->read_ret = s->write_ret = s->expt_ret = errs[i];
            tk_trace_clear();
            cr_assert_eq(ac_read(d), 0);
            cr_assert_eq(ac_write(d), 0);
            cr_assert_eq(ac_exception(d), 0);
            snprintf(want, sizeof(want), "d:read d:error:%s d:write d:error:%s d:expt d:error:%s",
                     name, name, name);
            cr_assert_str_eq(tk_trace, want);
            tk_trace_clear();
            cr_assert_eq(ac_readwrite(d, POLLIN), 0);
            cr_assert_eq(ac_readwrite(d, POLLOUT), 0);
            cr_assert_eq(ac_readwrite(d, POLLPRI), 0);
            if (k == 0)
                snprintf(want, sizeof(want), "d:read d:close d:write d:close d:expt d:close");
            else
                snprintf(want, sizeof(want),
                         "d:read d:error:%s d:write d:error:%s d:expt d:error:%s", name, name,
                         name);
            cr_assert_str_eq(tk_trace, want, "%s", name);
        }
    }
    tk_finish(m);
    close(sv[1]);
}

Test(loop_dispatch, failed_step_skips_the_remaining_steps, .timeout = 5,
     .description = "L14 L13: a failing step ends the steps for that fd: read failing "
                    "(EPROTO) -> handle_error only; write failing (EPIPE) -> handle_close "
                    "once, no expt, no step-4 close; expt failing -> no step 4")
{
    const short all = POLLIN | POLLOUT | POLLPRI | POLLHUP;
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_channel(m, "d", sv);
    struct lp *s = lp(d);

    s->read_ret = EPROTO;
    cr_assert_eq(ac_readwrite(d, all), 0);
    cr_assert_str_eq(tk_trace, "d:read d:error:EPROTO");

    tk_trace_clear();
    s->read_ret = 0;
    s->write_ret = EPIPE;
    cr_assert_eq(ac_readwrite(d, all), 0);
    cr_assert_str_eq(tk_trace, "d:read d:write d:close");

    tk_trace_clear();
    s->write_ret = 0;
    s->expt_ret = ETIMEDOUT;
    cr_assert_eq(ac_readwrite(d, all), 0);
    cr_assert_str_eq(tk_trace, "d:read d:write d:expt d:error:ETIMEDOUT");
    cr_assert_eq(tk_node(d)->errors, 2);
    tk_finish(m);
    close(sv[1]);
}

Test(loop_dispatch, failing_step_four_close_is_routed_too, .timeout = 5,
     .description = "L14 L13: the step-4 handle_close is guarded like the others: failing "
                    "with EBADF calls handle_close again, failing with EPROTO calls "
                    "handle_error")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_channel(m, "d", sv);
    struct lp *s = lp(d);
    s->close_ret = EBADF;
    s->close_ret_once = true;
    cr_assert_eq(ac_readwrite(d, POLLHUP), 0);
    cr_assert_str_eq(tk_trace, "d:close d:close");
    tk_trace_clear();
    s->close_ret = EPROTO;
    s->close_ret_once = true;
    cr_assert_eq(ac_readwrite(d, POLLERR), 0);
    cr_assert_str_eq(tk_trace, "d:close d:error:EPROTO");
    tk_finish(m);
    close(sv[1]);
}

Test(loop_dispatch, handle_error_result_is_returned, .timeout = 5,
     .description = "L17 X3: what a failing handle_error returns comes back from ac_read and "
                    "ac_readwrite (further steps skipped); handle_close's failure on the "
                    "disconnected route comes back from ac_readwrite")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = pair_channel(m, "d", sv);
    struct lp *s = lp(d);
    s->read_ret = EPROTO;
    s->error_ret = -EPROTO;
    cr_assert_eq(ac_read(d), -EPROTO);
    cr_assert_eq(ac_readwrite(d, POLLIN | POLLOUT | POLLHUP), -EPROTO);
    cr_assert_str_eq(tk_trace, "d:read d:error:EPROTO d:read d:error:EPROTO");
    tk_trace_clear();
    s->error_ret = AC_EXIT_NOW;
    cr_assert_eq(ac_write(d), 0);
    cr_assert_eq(ac_read(d), AC_EXIT_NOW);
    cr_assert_str_eq(tk_trace, "d:write d:read d:error:EPROTO");
    tk_trace_clear();
    s->error_ret = 0;
    s->read_ret = EPIPE;
    s->close_ret = EIO;
    cr_assert_eq(ac_readwrite(d, POLLIN | POLLOUT), -EIO);
    cr_assert_str_eq(tk_trace, "d:read d:close");
    s->close_ret = 0;
    tk_finish(m);
    close(sv[1]);
}
