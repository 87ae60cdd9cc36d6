/* Conformance: the default handlers (spec D12-D18): what handle_read,
 * handle_write, handle_expt, handle_connect, handle_accept,
 * handle_accepted and handle_close do when the user gives none; CPython's
 * test_unhandled and test_handle_close.  The rig is
 * tests/support/dispatch_rig.h. */
#include "dispatch_rig.h"

/* ============================================= D12-D18 (default handlers) */

Test(dispatch_defaults, unhandled_events_log_warnings, .timeout = 5,
     .description = "D12 D13 D14 D15 D22 (CPython test_unhandled): with ignore_log_types "
                    "emptied, the defaults log one warning each, in call order, and return 0")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &defaults_h, "d");
    ac_set_ignore_log_types(d, log_nothing_ignored);
    cr_assert_eq(ac_default_handle_expt(d), 0);
    cr_assert_eq(ac_default_handle_read(d), 0);
    cr_assert_eq(ac_default_handle_write(d), 0);
    cr_assert_eq(ac_default_handle_connect(d), 0);
    cr_assert_str_eq(tk_logbuf, "warning: unhandled incoming priority event\n"
                                "warning: unhandled read event\n"
                                "warning: unhandled write event\n"
                                "warning: unhandled connect event\n");
    cr_assert_eq(tk_log_lines, 4);
    cr_assert_str_eq(flags_of(d), "000");
    finish(m);
}

Test(dispatch_defaults, unhandled_events_silent_by_default, .timeout = 5,
     .description = "D12-D15 D18 D22: the defaults log at type warning, which every channel "
                    "ignores by default: nothing reaches the log")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &defaults_h, "d");
    cr_assert_eq(ac_default_handle_expt(d), 0);
    cr_assert_eq(ac_default_handle_read(d), 0);
    cr_assert_eq(ac_default_handle_write(d), 0);
    cr_assert_eq(ac_default_handle_connect(d), 0);
    cr_assert_eq(ac_default_handle_close(d), 0);
    cr_assert(ac_is_closed(d));
    cr_assert_eq(tk_log_lines, 0, "%s", tk_logbuf);
    finish(m);
}

Test(dispatch_defaults, null_entries_reach_the_defaults, .timeout = 5,
     .description = "D11 D12 D13 D14 D15 X1: with an empty table the event functions reach "
                    "the defaults: expt, read and write warnings; a connecting write event "
                    "logs the connect warning before the write warning")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &defaults_h, "d");
    ac_set_ignore_log_types(d, log_nothing_ignored);
    cr_assert_eq(ac_handle_expt_event(d), 0);
    cr_assert_eq(ac_handle_read_event(d), 0);
    cr_assert_eq(ac_handle_write_event(d), 0);
    set_state(d, ST_CONNECTING);
    cr_assert_eq(ac_handle_write_event(d), 0);
    set_state(d, ST_CONNECTING);
    cr_assert_eq(ac_handle_read_event(d), 0);
    cr_assert_str_eq(tk_logbuf, "warning: unhandled incoming priority event\n"
                                "warning: unhandled read event\n"
                                "warning: unhandled write event\n"
                                "warning: unhandled connect event\n"
                                "warning: unhandled write event\n"
                                "warning: unhandled connect event\n"
                                "warning: unhandled read event\n");
    cr_assert_str_eq(flags_of(d), "100");
    finish(m);
}

Test(dispatch_defaults, default_read_and_write_fire_every_iteration, .timeout = 10,
     .description = "D12 D13 W8 L6 (CPython test_basic): a default channel is readable and "
                    "writable; unread data keeps it readable, so each iteration logs one read "
                    "and one write warning")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &defaults_h, "d");
    ac_set_ignore_log_types(d, log_nothing_ignored);
    cr_assert_eq(write(last_peer(), "spam", 4), 4);
    cr_assert(tk_wait_fd(ac_fd(d), POLLIN, 1000));
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_logbuf, "warning: unhandled read event\n"
                                "warning: unhandled write event\n"
                                "warning: unhandled read event\n"
                                "warning: unhandled write event\n"
                                "warning: unhandled read event\n"
                                "warning: unhandled write event\n");
    cr_assert_eq(tk_inq(ac_fd(d)), 4, "the default handle_read reads nothing");
    finish(m);
}

Test(dispatch_defaults, default_connect_through_the_loop, .timeout = 10,
     .description = "D15 D8 D7 D13: a client with the default handlers: the first write "
                    "event completes the connect (connect warning), then the write warning; "
                    "it is connected afterwards")
{
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int l = tk_listener(AF_INET, &ss, &len, 5);
    ac_dispatcher *c = tk_new(m, &defaults_h, "c");
    ac_set_ignore_log_types(c, log_nothing_ignored);
    cr_assert_eq(ac_create_socket(c, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
    cr_assert(tk_wait_fd(ac_fd(c), POLLOUT, 2000));
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_logbuf, "warning: unhandled connect event\n"
                                "warning: unhandled write event\n");
    cr_assert_str_eq(flags_of(c), "100");
    finish(m);
    close(l);
}

/* A log hook that also notes what the channel looks like at the moment the
 * line is logged. */
static int probe_fd = -1;

static void probe_hook(ac_dispatcher *d, const char *type, const char *msg, void *ctx)
{
    tk_log_hook(d, type, msg, ctx);
    if (strstr(msg, "unhandled close event"))
        tk_tr("log:closed=%d", ac_is_closed(d));
    if (strstr(msg, "unhandled accepted event")) {
        char b;
        ssize_t r = recv(probe_fd, &b, 1, MSG_DONTWAIT);
        tk_tr("log:peer=%s", r == 0 ? "eof" : "open");
    }
}

Test(dispatch_defaults, default_handle_close_logs_then_closes, .timeout = 5,
     .description = "D18 S12: the default handle_close logs 'unhandled close event' while the "
                    "channel is still open, then closes it (out of the map, descriptor "
                    "closed)")
{
    ac_map *m = tk_map();
    ac_set_log_hook(probe_hook, NULL);
    ac_dispatcher *d = pair_d(m, &defaults_h, "d");
    ac_set_ignore_log_types(d, log_nothing_ignored);
    int fd = ac_fd(d);
    cr_assert_eq(ac_default_handle_close(d), 0);
    cr_assert_str_eq(tk_logbuf, "warning: unhandled close event\n");
    cr_assert_str_eq(tk_trace, "log:closed=0");
    cr_assert(ac_is_closed(d));
    cr_assert_eq(ac_fd(d), -1);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_not(tk_fd_open(fd), "the descriptor is closed");
    finish(m);
}

Test(dispatch_defaults, eof_reaches_default_handle_close, .timeout = 10,
     .description = "D18 S11 (CPython test_handle_close): the peer closes; recv in "
                    "handle_read sees EOF and the default handle_close logs and closes")
{
    static const ac_handlers h = {
        .writable = tk_never,
        .handle_read = read_some,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &h, "d");
    ac_set_ignore_log_types(d, log_nothing_ignored);
    close(last_peer());
    npeers--;
    cr_assert_eq(ac_poll(m, 1.0), 0);
    /* poll/epoll report POLLIN|POLLHUP for the dead socketpair: the close
     * step runs again on the closed channel (L13, W7). */
    if (tk_is_select(m)) {
        cr_assert_str_eq(tk_logbuf, "warning: unhandled close event\n");
    } else {
        cr_assert_str_eq(tk_logbuf, "warning: unhandled close event\n"
                                    "warning: unhandled close event\n");
    }
    cr_assert_str_eq(tk_trace, "read:0");
    cr_assert_eq(ac_map_count(m), 0);
    finish(m);
}

Test(dispatch_defaults, default_handle_accept_nothing_pending, .timeout = 5,
     .description = "D16 S9: a read event on a listener with nothing to accept: the default "
                    "handle_accept does nothing (no handle_accepted, no log line)")
{
    ac_map *m = tk_map();
    ac_dispatcher *l = tk_new(m, &defaults_h, "l");
    ac_set_ignore_log_types(l, log_nothing_ignored);
    cr_assert_eq(ac_create_socket(l, AF_INET, SOCK_STREAM), 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(AF_INET, &ss);
    cr_assert_eq(ac_bind(l, (struct sockaddr *)&ss, len), 0);
    cr_assert_eq(ac_listen(l, 5), 0);
    cr_assert_eq(ac_handle_read_event(l), 0);
    cr_assert_eq(ac_read(l), 0);
    cr_assert_eq(ac_readwrite(l, POLLIN), 0);
    cr_assert_str_empty(tk_logbuf);
    cr_assert_not(ac_is_closed(l));
    finish(m);
}

static int accepted_count(ac_dispatcher *d, int fd, const struct sockaddr *a, socklen_t alen)
{
    (void)a;
    (void)alen;
    tk_node(d)->accepts++;
    tk_tr("accepted");
    close(fd);
    return 0;
}

Test(dispatch_defaults, default_handle_accept_accepts_once, .timeout = 5,
     .description = "D16: the default handle_accept calls accept once per read event: two "
                    "pending connections take two events")
{
    static const ac_handlers h = {
        .handle_accepted = accepted_count,
        .handle_error = t_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    ac_dispatcher *l = tk_new(m, &h, "l");
    cr_assert_eq(ac_create_socket(l, AF_INET, SOCK_STREAM), 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(AF_INET, &ss);
    cr_assert_eq(ac_bind(l, (struct sockaddr *)&ss, len), 0);
    cr_assert_eq(ac_listen(l, 5), 0);
    len = sizeof(ss);
    cr_assert_eq(getsockname(ac_fd(l), (struct sockaddr *)&ss, &len), 0);
    int c1 = tk_connect_raw(&ss, len);
    int c2 = tk_connect_raw(&ss, len);
    cr_assert_eq(ac_handle_read_event(l), 0);
    cr_assert_str_eq(tk_trace, "accepted");
    cr_assert_eq(ac_handle_read_event(l), 0);
    cr_assert_eq(ac_handle_read_event(l), 0);
    cr_assert_str_eq(tk_trace, "accepted accepted");
    close(c1);
    close(c2);
    finish(m);
}

Test(dispatch_defaults, default_handle_accept_failure_propagates, .timeout = 5,
     .description = "D16 S9 W15 L11: accepting set on a socket that does not listen: accept "
                    "fails with EINVAL, the event returns it and the guard gives it to "
                    "handle_error")
{
    static const ac_handlers h = {
        .handle_accepted = accepted_count,
        .handle_error = t_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    ac_dispatcher *l = tk_new(m, &h, "l");
    cr_assert_eq(ac_create_socket(l, AF_INET, SOCK_STREAM), 0);
    ac_set_accepting(l, true);
    cr_assert_eq(ac_handle_read_event(l), -EINVAL);
    cr_assert_str_empty(tk_trace);
    cr_assert_eq(ac_read(l), 0);
    cr_assert_str_eq(tk_trace, "error:EINVAL");
    tk_trace_clear();
    cr_assert_eq(ac_readwrite(l, POLLIN), 0);
    cr_assert_str_eq(tk_trace, "error:EINVAL");
    finish(m);
}

Test(dispatch_defaults, default_handle_accepted_closes_then_logs, .timeout = 5,
     .description = "D16 D17: the default handle_accepted closes the connection first (the "
                    "client already sees EOF when the line is logged), then logs 'unhandled "
                    "accepted event'")
{
    ac_map *m = tk_map();
    ac_set_log_hook(probe_hook, NULL);
    ac_dispatcher *l = tk_new(m, &defaults_h, "l");
    ac_set_ignore_log_types(l, log_nothing_ignored);
    cr_assert_eq(ac_create_socket(l, AF_UNIX, SOCK_STREAM), 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_unix_addr(&ss, "l");
    cr_assert_eq(ac_bind(l, (struct sockaddr *)&ss, len), 0);
    cr_assert_eq(ac_listen(l, 5), 0);
    probe_fd = tk_connect_raw(&ss, len);
    cr_assert_eq(ac_handle_read_event(l), 0);
    cr_assert_str_eq(tk_logbuf, "warning: unhandled accepted event\n");
    cr_assert_str_eq(tk_trace, "log:peer=eof");
    cr_assert_not(ac_is_closed(l));
    cr_assert_eq(ac_map_count(m), 1, "only the listener is in the map");
    close(probe_fd);
    finish(m);
}
