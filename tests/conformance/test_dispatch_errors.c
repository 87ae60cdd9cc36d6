/* Conformance: handle_error and error text (spec D19, D20, D25): the
 * default handle_error's line, the failure and its location as
 * handle_error sees them, and the errno names; CPython's test_handle_error,
 * test_compact_traceback (the ac_error location) and test_strerror.  The
 * rig is tests/support/dispatch_rig.h. */
#include "dispatch_rig.h"

/* ===================================================== D19-D25 (logging) */

static int raise_line;

static int write_raises(ac_dispatcher *d)
{
    tk_tr("write");
    raise_line = __LINE__ + 1;
    return AC_RAISE(d, EPROTO, "parse");
}

Test(dispatch_log, default_handle_error_line, .timeout = 5,
     .description = "D19 D20 D24 D25: the default handle_error logs one line of type error "
                    "naming 'closing channel', the description, the errno's name and strerror "
                    "text and the [file|function|line] of the raise; then handle_close, "
                    "whose warning follows it")
{
    static const ac_handlers h = {
        .handle_write = write_raises,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    for (int via = 0; via < 2; via++) {
        ac_dispatcher *d = pair_d(m, &h, "d");
        ac_set_ignore_log_types(d, log_nothing_ignored);
        char desc[256];
        snprintf(desc, sizeof(desc), "%s", describe(d));
        tk_logbuf[0] = '\0';
        tk_log_lines = 0;
        cr_assert_eq(via ? ac_readwrite(d, POLLOUT) : ac_write(d), 0);
        cr_assert(ac_is_closed(d), "the default handle_error ends in handle_close");
        cr_assert_eq(tk_log_lines, 2, "%s", tk_logbuf);
        char *nl = strchr(tk_logbuf, '\n');
        cr_assert_not_null(nl);
        *nl = '\0';
        const char *line = tk_logbuf;
        cr_assert_eq(strncmp(line, "error: ", 7), 0, "%s", line);
        char want[512];
        snprintf(want, sizeof(want), "closing channel %s (", desc);
        cr_assert_not_null(strstr(line, want), "'%s' not in '%s'", want, line);
        cr_assert_not_null(strstr(line, "EPROTO"), "%s", line);
        cr_assert_not_null(strstr(line, strerror(EPROTO)), "%s", line);
        snprintf(want, sizeof(want), "[test_dispatch_errors.c|write_raises|%d]", raise_line);
        cr_assert_not_null(strstr(line, want), "'%s' not in '%s'", want, line);
        cr_assert_eq(line[strlen(line) - 1], ')', "%s", line);
        cr_assert_str_eq(nl + 1, "warning: unhandled close event\n");
    }
    finish(m);
}

Test(dispatch_log, default_handle_error_default_types, .timeout = 5,
     .description = "D19 D22: with the default ignore_log_types the error line is shown and "
                    "handle_close's warning is not")
{
    static const ac_handlers h = {
        .handle_write = write_raises,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &h, "d");
    cr_assert_eq(ac_write(d), 0);
    cr_assert_eq(tk_log_lines, 1, "%s", tk_logbuf);
    cr_assert_eq(strncmp(tk_logbuf, "error: ", 7), 0, "%s", tk_logbuf);
    cr_assert(ac_is_closed(d));
    finish(m);
}

/* handle_error of CPython's test_handle_error: the failure is the current
 * one and is the one raised in handle_write. */
static int error_checks(ac_dispatcher *d, const ac_error *e)
{
    tk_node(d)->errors++;
    tk_tr("error:%s", strerrorname_np(e->err));
    const ac_error *cur = ac_current_error(d);
    cr_assert_eq(cur->err, e->err);
    cr_assert_eq(cur->line, e->line);
    cr_assert_eq(e->err, EPROTO);
    cr_assert_str_eq(e->op, "parse");
    cr_assert_str_eq(basename_of(e->file), "test_dispatch_errors.c");
    cr_assert_str_eq(e->func, "write_raises");
    cr_assert_eq(e->line, raise_line);
    return ac_close(d);
}

Test(dispatch_log, handle_error_sees_the_current_failure, .timeout = 10,
     .description = "D19 D20 D8 L11 L14 (CPython test_handle_error, test_compact_traceback): "
                    "a client whose handle_write raises: through the loop, handle_error gets "
                    "that failure with its location while it is still the current one")
{
    static const ac_handlers h = {
        .handle_connect = t_connect,
        .handle_write = write_raises,
        .handle_read = t_read,
        .handle_error = error_checks,
        .handle_close = t_close,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int l = tk_listener(AF_INET, &ss, &len, 5);
    ac_dispatcher *c = tk_new(m, &h, "c");
    struct tk_node *n = tk_node(c); /* c itself is freed after the iteration */
    cr_assert_eq(ac_create_socket(c, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
    cr_assert(tk_wait_fd(ac_fd(c), POLLOUT, 2000));
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "connect:01 write error:EPROTO");
    cr_assert_eq(n->errors, 1);
    cr_assert_eq(n->finalized, 1);
    cr_assert_eq(ac_map_count(m), 0);
    finish(m);
    close(l);
}

static int read_recv_propagates(ac_dispatcher *d)
{
    char b[8];
    ssize_t r = ac_recv(d, b, sizeof(b));
    tk_tr("read:%zd", r);
    return r < 0 ? (int)r : 0;
}

static int error_location(ac_dispatcher *d, const ac_error *e)
{
    tk_tr("error:%s:%s", strerrorname_np(e->err), e->op ? e->op : "(null)");
    tk_node(d)->errors++;
    cr_assert_not_null(e->file, "a library failure records where it arose");
    cr_assert_not_null(e->func);
    cr_assert_gt(e->line, 0);
    cr_assert_eq(ac_current_error(d)->err, e->err);
    return 0;
}

Test(dispatch_log, library_failure_has_a_location, .timeout = 5,
     .description = "D19 D20 X3 S11: a failure raised inside the library (recv's EAGAIN) "
                    "reaches handle_error with the operation and a file/function/line")
{
    static const ac_handlers h = {
        .handle_read = read_recv_propagates,
        .handle_error = error_location,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &h, "d");
    cr_assert_eq(ac_read(d), 0);
    char want[64];
    snprintf(want, sizeof(want), "read:%d error:EAGAIN:recv", -EAGAIN);
    cr_assert_str_eq(tk_trace, want);
    finish(m);
}

Test(dispatch_log, current_error_slot, .timeout = 5,
     .description = "D20 X3: before any failure the current error is empty (err 0); "
                    "AC_RAISE records errno, operation and location and returns -errno")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &tr_h, "d");
    cr_assert_eq(ac_current_error(d)->err, 0);
    int line = __LINE__ + 1;
    int rc = AC_RAISE(d, EMSGSIZE, "frame");
    cr_assert_eq(rc, -EMSGSIZE);
    const ac_error *e = ac_current_error(d);
    cr_assert_eq(e->err, EMSGSIZE);
    cr_assert_str_eq(e->op, "frame");
    cr_assert_str_eq(basename_of(e->file), "test_dispatch_errors.c");
    cr_assert_str_eq(e->func, "dispatch_log_current_error_slot_impl");
    cr_assert_eq(e->line, line);
    finish(m);
}

/* A handler that fails with a bare negative errno, without AC_RAISE. */
static int read_bare_eproto(ac_dispatcher *d)
{
    tk_tr("read");
    (void)d;
    return -EPROTO;
}

static int error_not_stale(ac_dispatcher *d, const ac_error *e)
{
    tk_node(d)->errors++;
    tk_tr("error:%s:%s:%d", strerrorname_np(e->err), e->func ? e->func : "-", e->line);
    return 0;
}

Test(dispatch_log, location_of_an_earlier_failure_is_not_reused, .timeout = 5,
     .description = "D19 D20: handle_error describes the failure being handled: after a "
                    "raise at a known place was handled, a later failure with the same errno "
                    "that did not come from there must not be reported at that place")
{
    static const ac_handlers h = {
        .handle_read = read_bare_eproto,
        .handle_write = write_raises,
        .handle_error = error_not_stale,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &h, "d");
    cr_assert_eq(ac_write(d), 0);
    char want[128];
    snprintf(want, sizeof(want), "write error:EPROTO:write_raises:%d", raise_line);
    cr_assert_str_eq(tk_trace, want);
    tk_trace_clear();
    cr_assert_eq(ac_read(d), 0);
    cr_assert_eq(strncmp(tk_trace, "read error:EPROTO:", 18), 0, "%s", tk_trace);
    cr_assert_null(strstr(tk_trace, "write_raises"),
                   "the read failure is reported at the earlier raise in write_raises: %s",
                   tk_trace);
    finish(m);
}

static int write_raises_4242(ac_dispatcher *d) { return AC_RAISE(d, 4242, "odd"); }

Test(dispatch_log, strerror_of_errnos, .timeout = 5,
     .description = "D25 (CPython test_strerror): a known errno gives its symbolic name and "
                    "strerror text; an unknown one has no name and its text is 'Unknown "
                    "error N', also in the handle_error line")
{
    static const ac_handlers h = {
        .handle_write = write_raises_4242,
        .finalize = tk_finalize,
    };
    cr_assert_str_eq(ac_errno_name(EPERM), "EPERM");
    cr_assert_str_eq(ac_errno_name(ECONNRESET), "ECONNRESET");
    cr_assert_str_eq(ac_errno_name(EAGAIN), "EAGAIN");
    cr_assert_null(ac_errno_name(4242));
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &h, "d");
    cr_assert_eq(ac_write(d), 0);
    cr_assert_not_null(strstr(tk_logbuf, "Unknown error 4242"), "%s", tk_logbuf);
    cr_assert(ac_is_closed(d));
    finish(m);
}
