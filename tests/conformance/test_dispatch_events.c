/* Conformance: event translation (spec D6-D11): which handler a read,
 * write, urgent, hang-up or error event reaches in each state, cell by cell
 * of D11's table, with a chosen state and a known SO_ERROR; connect
 * completion (D8); urgent data (D9, D14: CPython's test_handle_expt).  The
 * tests drive ac_handle_*_event, ac_read, ac_write, ac_exception and
 * ac_readwrite directly (CPython's test_readwrite and test_readwriteexc);
 * the loop tests branch on ac_map_poller_name() where select and
 * poll/epoll legitimately differ.  The rig is tests/support/dispatch_rig.h. */
#include "dispatch_rig.h"

/* ====================================================== D6-D11 (events) */

enum ev { EV_READ, EV_WRITE, EV_EXPT, EV_HUP, EV_ERR, EV_NVAL, EV_N };
static const char *const ev_name[EV_N] = {"read",    "write",   "expt",
                                          "POLLHUP", "POLLERR", "POLLNVAL"};

static int fire(ac_dispatcher *d, enum ev e)
{
    switch (e) {
    case EV_READ: return ac_handle_read_event(d);
    case EV_WRITE: return ac_handle_write_event(d);
    case EV_EXPT: return ac_handle_expt_event(d);
    case EV_HUP: return ac_readwrite(d, POLLHUP);
    case EV_ERR: return ac_readwrite(d, POLLERR);
    default: return ac_readwrite(d, POLLNVAL);
    }
}

Test(dispatch_events, translation_table_so_error_clear, .timeout = 10,
     .description = "D6 D7 D9 D10 D11: every cell of D11's table with SO_ERROR = 0: read, "
                    "write, exceptional and poll close events in each of the four states reach "
                    "exactly the listed handlers; flags change only through D8")
{
    /* [event][state] -> trace */
    static const char *const want[EV_N][ST_N] = {
        [EV_READ] = {"accept", "connect:01 read", "read", "read"},
        [EV_WRITE] = {"", "connect:01 write", "write", "write"},
        [EV_EXPT] = {"expt", "expt", "expt", "expt"},
        [EV_HUP] = {"close", "close", "close", "close"},
        [EV_ERR] = {"close", "close", "close", "close"},
        [EV_NVAL] = {"close", "close", "close", "close"},
    };
    ac_map *m = tk_map();
    for (int e = 0; e < EV_N; e++) {
        for (int s = 0; s < ST_N; s++) {
            ac_dispatcher *d = pair_d(m, &keep_h, "d");
            set_state(d, (enum state)s);
            tk_trace_clear();
            int rc = fire(d, (enum ev)e);
            cr_assert_eq(rc, 0, "%s event, %s: rc %d", ev_name[e], state_name[s], rc);
            cr_assert_str_eq(tk_trace, want[e][s], "%s event, %s: trace '%s'", ev_name[e],
                             state_name[s], tk_trace);
            /* D8 succeeded -> connected, not connecting; otherwise unchanged. */
            const char *f = (s == ST_CONNECTING && (e == EV_READ || e == EV_WRITE))
                                ? "100"
                                : flags_for((enum state)s);
            cr_assert_str_eq(flags_of(d), f, "%s event, %s: flags %s", ev_name[e], state_name[s],
                             flags_of(d));
            cr_assert_not(ac_is_closed(d));
            cr_assert_eq(tk_node(d)->errors, 0);
        }
    }
    cr_assert_eq(tk_log_lines, 0);
    finish(m);
}

Test(dispatch_events, translation_table_so_error_pending, .timeout = 10,
     .description = "D6 D7 D8 D9 D10 D11 D25: with SO_ERROR = ECONNREFUSED pending: only "
                    "connect completion (connecting) and expt-dispatch (any state) read it; "
                    "D8 fails with it leaving the flags; D9 calls handle_close; accept, "
                    "read, write and poll close events leave it pending")
{
    static const char *const want[EV_N][ST_N] = {
        [EV_READ] = {"accept", "", "read", "read"},
        [EV_WRITE] = {"", "", "write", "write"},
        [EV_EXPT] = {"close", "close", "close", "close"},
        [EV_HUP] = {"close", "close", "close", "close"},
        [EV_ERR] = {"close", "close", "close", "close"},
        [EV_NVAL] = {"close", "close", "close", "close"},
    };
    ac_map *m = tk_map();
    int holder;
    struct sockaddr_storage ss;
    socklen_t len = tk_refusing_addr(AF_INET, &ss, &holder);
    for (int e = 0; e < EV_N; e++) {
        for (int s = 0; s < ST_N; s++) {
            ac_dispatcher *d = refused_d(m, &keep_h, "d", &ss, len);
            set_state(d, (enum state)s);
            tk_trace_clear();
            int rc = fire(d, (enum ev)e);
            bool d8 = s == ST_CONNECTING && (e == EV_READ || e == EV_WRITE);
            bool reads_so_error = d8 || e == EV_EXPT;
            cr_assert_eq(rc, d8 ? -ECONNREFUSED : 0, "%s event, %s: rc %d", ev_name[e],
                         state_name[s], rc);
            cr_assert_str_eq(tk_trace, want[e][s], "%s event, %s: trace '%s'", ev_name[e],
                             state_name[s], tk_trace);
            cr_assert_str_eq(flags_of(d), flags_for((enum state)s), "%s event, %s: flags %s",
                             ev_name[e], state_name[s], flags_of(d));
            if (d8) {
                const ac_error *err = ac_current_error(d);
                cr_assert_eq(err->err, ECONNREFUSED);
                cr_assert_eq(tk_node(d)->connects, 0, "D8: no handle_connect on failure");
            }
            int pending = ac_socket_error(d);
            cr_assert_eq(pending, reads_so_error ? 0 : ECONNREFUSED,
                         "%s event, %s: SO_ERROR afterwards %d", ev_name[e], state_name[s],
                         pending);
            cr_assert_eq(tk_node(d)->errors, 0, "no guard here: nothing routed");
        }
    }
    close(holder);
    finish(m);
}

Test(dispatch_events, connect_completion_failure_through_the_guards, .timeout = 10,
     .description = "D8 D11 L11 L14 D19 D25: D8's ECONNREFUSED reaches handle_error through "
                    "the select guard and the poll guard alike; its default line carries the "
                    "errno name and strerror text, then handle_close closes")
{
    static const ac_handlers h = {
        .handle_read = t_read,
        .handle_write = t_write,
        .handle_connect = t_connect,
        .handle_close = t_close,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    int holder;
    struct sockaddr_storage ss;
    socklen_t len = tk_refusing_addr(AF_INET, &ss, &holder);
    for (int via = 0; via < 3; via++) {
        ac_dispatcher *d = refused_d(m, &h, "d", &ss, len);
        ac_set_connecting(d, true);
        tk_logbuf[0] = '\0';
        tk_trace_clear();
        int rc = via == 0 ? ac_read(d) : via == 1 ? ac_write(d) : ac_readwrite(d, POLLIN | POLLOUT);
        cr_assert_eq(rc, 0);
        cr_assert_str_eq(tk_trace, "close", "via %d: %s", via, tk_trace);
        cr_assert(ac_is_closed(d));
        cr_assert_eq(strncmp(tk_logbuf, "error: ", 7), 0, "%s", tk_logbuf);
        cr_assert_not_null(strstr(tk_logbuf, "closing channel"), "%s", tk_logbuf);
        cr_assert_not_null(strstr(tk_logbuf, "ECONNREFUSED"), "%s", tk_logbuf);
        cr_assert_not_null(strstr(tk_logbuf, strerror(ECONNREFUSED)), "%s", tk_logbuf);
        cr_assert_eq(tk_log_lines, 1, "one line: %s", tk_logbuf);
        tk_log_lines = 0;
    }
    close(holder);
    finish(m);
}

Test(dispatch_events, connect_completion_handler_failure, .timeout = 5,
     .description = "D8 D6 D7: a failing handle_connect stops the event: no handle_read / "
                    "handle_write, flags not updated, its failure is returned")
{
    ac_map *m = tk_map();
    for (int e = 0; e < 2; e++) {
        ac_dispatcher *d = pair_d(m, &keep_h, "d");
        set_state(d, ST_CONNECTING);
        tk_trace_clear();
        g_mode = M_EPROTO;
        int rc = e == 0 ? ac_handle_read_event(d) : ac_handle_write_event(d);
        g_mode = M_OK;
        cr_assert_eq(rc, -EPROTO);
        cr_assert_str_eq(tk_trace, "connect:01");
        cr_assert_str_eq(flags_of(d), "001");
    }
    finish(m);
}

Test(dispatch_events, connected_and_connecting_skips_completion, .timeout = 5,
     .description = "D6 D7: D8 runs only when not connected and connecting; connected with "
                    "connecting set goes straight to handle_read / handle_write")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &keep_h, "d");
    ac_set_connecting(d, true);
    cr_assert_eq(ac_handle_read_event(d), 0);
    cr_assert_eq(ac_handle_write_event(d), 0);
    cr_assert_str_eq(tk_trace, "read write");
    cr_assert_str_eq(flags_of(d), "101");
    finish(m);
}

Test(dispatch_events, events_on_a_closed_channel, .timeout = 5,
     .description = "D6 D7 D9 S13 L11 L14: a closed channel is neither connected nor "
                    "connecting: read and write events reach handle_read / handle_write; "
                    "expt-dispatch fails reading SO_ERROR with EBADF -> handle_error under the "
                    "select guard, handle_close under the poll guard")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &keep_h, "d");
    cr_assert_eq(ac_close(d), 0);
    cr_assert_eq(ac_handle_read_event(d), 0);
    cr_assert_eq(ac_handle_write_event(d), 0);
    cr_assert_str_eq(tk_trace, "read write");
    tk_trace_clear();
    cr_assert_eq(ac_handle_expt_event(d), -EBADF);
    cr_assert_str_empty(tk_trace);
    cr_assert_eq(ac_exception(d), 0);
    cr_assert_str_eq(tk_trace, "error:EBADF");
    tk_trace_clear();
    cr_assert_eq(ac_readwrite(d, POLLPRI), 0);
    cr_assert_str_eq(tk_trace, "close");
    finish(m);
}

Test(dispatch_events, readwrite_one_flag_one_handler, .timeout = 5,
     .description = "L13 D6 D7 D9 D10 (CPython test_readwrite): each poll flag alone reaches "
                    "exactly its handler on a connected channel")
{
    static const short flag[6] = {POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL};
    static const char *const want[6] = {"read", "expt", "write", "close", "close", "close"};
    ac_map *m = tk_map();
    for (int i = 0; i < 6; i++) {
        ac_dispatcher *d = pair_d(m, &keep_h, "d");
        tk_trace_clear();
        cr_assert_eq(ac_readwrite(d, flag[i]), 0);
        cr_assert_str_eq(tk_trace, want[i], "flag %#x: %s", (unsigned)flag[i], tk_trace);
        struct tk_node *n = tk_node(d);
        cr_assert_eq(n->reads + n->writes + n->expts + n->closes, 1);
        cr_assert_eq(n->errors, 0);
    }
    /* Ignored flags reach nothing. */
    ac_dispatcher *d = pair_d(m, &keep_h, "d");
    tk_trace_clear();
    cr_assert_eq(ac_readwrite(d, POLLRDHUP | POLLRDNORM | POLLWRNORM), 0);
    cr_assert_str_empty(tk_trace);
    finish(m);
}

Test(dispatch_events, readwrite_all_flags_in_order, .timeout = 5,
     .description = "L13 D6 D7 D9 D10: all flags at once: read, write, expt, then close, in "
                    "that order; a connecting channel completes once, in the read step")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &keep_h, "d");
    cr_assert_eq(ac_readwrite(d, POLLIN | POLLOUT | POLLPRI | POLLHUP | POLLERR), 0);
    cr_assert_str_eq(tk_trace, "read write expt close");
    tk_trace_clear();
    d = pair_d(m, &keep_h, "d2");
    set_state(d, ST_CONNECTING);
    cr_assert_eq(ac_readwrite(d, POLLIN | POLLOUT | POLLPRI), 0);
    cr_assert_str_eq(tk_trace, "connect:01 read write expt");
    cr_assert_str_eq(flags_of(d), "100");
    finish(m);
}

Test(dispatch_events, guards_route_exit_and_failures, .timeout = 5,
     .description = "L11 L14 L16 D19 (CPython test_readwriteexc, test_readwrite): the exit "
                    "request leaves every guarded dispatch untouched; another failure reaches "
                    "handle_error; a disconnected errno reaches handle_error under select, "
                    "handle_close under poll")
{
    static const short flag[6] = {POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL};
    static const char *const step[6] = {"read", "expt", "write", "close", "close", "close"};
    ac_map *m = tk_map();
    /* select-style single dispatches */
    int (*guard[3])(ac_dispatcher *) = {ac_read, ac_write, ac_exception};
    static const char *const gstep[3] = {"read", "write", "expt"};
    for (int g = 0; g < 3; g++) {
        ac_dispatcher *d = pair_d(m, &keep_h, "d");
        char want[64];
        g_mode = M_EXIT;
        tk_trace_clear();
        cr_assert_eq(guard[g](d), AC_EXIT_NOW);
        cr_assert_str_eq(tk_trace, gstep[g]);
        g_mode = M_EPROTO;
        tk_trace_clear();
        cr_assert_eq(guard[g](d), 0);
        snprintf(want, sizeof(want), "%s error:EPROTO", gstep[g]);
        cr_assert_str_eq(tk_trace, want);
        g_mode = M_ECONNRESET;
        tk_trace_clear();
        cr_assert_eq(guard[g](d), 0);
        snprintf(want, sizeof(want), "%s error:ECONNRESET", gstep[g]);
        cr_assert_str_eq(tk_trace, want, "L11: select routes every failure to handle_error");
        g_mode = M_OK;
    }
    /* poll-style */
    for (int i = 0; i < 6; i++) {
        ac_dispatcher *d = pair_d(m, &keep_h, "d");
        char want[64];
        g_mode = M_EXIT;
        tk_trace_clear();
        cr_assert_eq(ac_readwrite(d, flag[i]), AC_EXIT_NOW);
        cr_assert_str_eq(tk_trace, step[i]);
        g_mode = M_EPROTO;
        tk_trace_clear();
        cr_assert_eq(ac_readwrite(d, flag[i]), 0);
        snprintf(want, sizeof(want), "%s error:EPROTO", step[i]);
        cr_assert_str_eq(tk_trace, want);
        g_mode = M_OK;
        if (i < 3) {
            /* ECONNRESET from a handler: handle_close, no handle_error. */
            g_mode = M_ECONNRESET;
            tk_trace_clear();
            int rc = ac_readwrite(d, flag[i]);
            g_mode = M_OK;
            cr_assert_eq(rc, 0);
            snprintf(want, sizeof(want), "%s close", step[i]);
            cr_assert_str_eq(tk_trace, want, "L14: %s", tk_trace);
        }
    }
    /* The first failing step skips the rest. */
    ac_dispatcher *d = pair_d(m, &keep_h, "d");
    g_mode = M_EPROTO;
    tk_trace_clear();
    cr_assert_eq(ac_readwrite(d, POLLIN | POLLOUT | POLLPRI | POLLHUP), 0);
    g_mode = M_OK;
    cr_assert_str_eq(tk_trace, "read error:EPROTO");
    finish(m);
}

/* ------------------------------------------------ urgent data (D9, D14) */

/* handle_expt that reads the urgent byte (CPython test_handle_expt). */
static int expt_consume(ac_dispatcher *d)
{
    tk_node(d)->expts++;
    unsigned char b = 0;
    ssize_t r = recv(ac_fd(d), &b, 1, MSG_OOB);
    if (r == 1)
        tk_tr("expt:%02x", b);
    else
        tk_tr("expt:-%s", strerrorname_np(errno));
    return 0;
}

static ac_dispatcher *oob_client(ac_map *m, const ac_handlers *h, int *srv, const char *data)
{
    int c;
    tk_tcp_pair(&c, srv);
    ac_dispatcher *d = tk_new(m, h, "c");
    cr_assert_eq(ac_attach(d, c), 0);
    if (data)
        cr_assert_eq(send(*srv, data, strlen(data), 0), (ssize_t)strlen(data));
    cr_assert_eq(send(*srv, "\xf4", 1, MSG_OOB), 1);
    cr_assert(tk_wait_fd(c, POLLPRI, 2000), "urgent data did not arrive");
    return d;
}

Test(dispatch_events, urgent_data_reaches_handle_expt, .timeout = 10,
     .description = "D9 D14 L6 (CPython test_handle_expt): an urgent byte reaches handle_expt "
                    "through the loop under every poller; once read, nothing fires again")
{
    static const ac_handlers h = {
        .writable = tk_never,
        .handle_read = read_some,
        .handle_expt = expt_consume,
        .handle_close = t_close,
        .handle_error = t_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    int s;
    oob_client(m, &h, &s, NULL);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ac_poll(m, 0.05), 0);
    cr_assert_str_eq(tk_trace, "expt:f4");
    finish(m);
    close(s);
}

Test(dispatch_events, data_then_urgent_byte_same_iteration, .timeout = 10,
     .description = "D6 D9 L10 L13: normal data then an urgent byte: one iteration gives "
                    "handle_read (the urgent byte is not in the stream) then handle_expt")
{
    static const ac_handlers h = {
        .writable = tk_never,
        .handle_read = read_some,
        .handle_expt = expt_consume,
        .handle_close = t_close,
        .handle_error = t_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    int s;
    oob_client(m, &h, &s, "ab");
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "read:2 expt:f4");
    finish(m);
    close(s);
}

Test(dispatch_events, default_handle_expt_repeats, .timeout = 10,
     .description = "D14 W8 D22: the default handle_expt consumes nothing: with warnings "
                    "shown, 'unhandled incoming priority event' is logged every iteration")
{
    static const ac_handlers h = {
        .writable = tk_never,
        .handle_read = read_some,
        .handle_close = t_close,
        .handle_error = t_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    int s;
    ac_dispatcher *d = oob_client(m, &h, &s, NULL);
    ac_set_ignore_log_types(d, log_nothing_ignored);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ac_poll(m, 0.05), 0);
    cr_assert_str_eq(tk_logbuf, "warning: unhandled incoming priority event\n"
                                "warning: unhandled incoming priority event\n"
                                "warning: unhandled incoming priority event\n");
    cr_assert_str_empty(tk_trace);
    finish(m);
    close(s);
}

Test(dispatch_events, writable_only_channel_urgent_data, .timeout = 10,
     .description = "L6 D9 D14: a channel writable but not readable is watched for urgent "
                    "data under select (handle_expt every iteration) but not under poll/epoll "
                    "(POLLPRI only with read interest)")
{
    static const ac_handlers h = {
        .readable = tk_never,
        .writable = always,
        .handle_read = t_read,
        .handle_write = t_write,
        .handle_expt = t_expt,
        .handle_close = t_close,
        .handle_error = t_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    int s;
    oob_client(m, &h, &s, NULL);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    if (tk_is_select(m))
        cr_assert_str_eq(tk_trace, "write expt write expt");
    else
        cr_assert_str_eq(tk_trace, "write write");
    finish(m);
    close(s);
}
