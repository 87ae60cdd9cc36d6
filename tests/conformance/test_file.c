/* Conformance: file_wrapper / file_dispatcher (spec F1-F9).
 *
 * CPython's FileWrapperTest (test_recv, test_send, test_dispatcher,
 * test_close_twice) rewritten in C, plus pipes under each poller: F9's
 * readiness differs between select (EOF through recv) and poll/epoll
 * (POLLHUP straight to handle_close, L13), and the tests say so. */
#include "ac_testkit.h"

#include <signal.h>

static const char content[] = "It's not dead, it's sleeping!"; /* 29 bytes */

static int h_close(ac_dispatcher *d)
{
    tk_node(d)->closes++;
    tk_tr("close");
    return ac_close(d);
}

static int h_error(ac_dispatcher *d, const ac_error *e)
{
    tk_tr("error:%s", strerrorname_np(e->err));
    return ac_default_handle_error(d, e);
}

/* Reads node->chunk bytes (29 by default, as CPython's test does). */
static int h_read(ac_dispatcher *d)
{
    struct tk_node *n = tk_node(d);
    char buf[256];
    size_t want = n->chunk ? n->chunk : 29;
    ssize_t r = ac_recv(d, buf, want);
    if (r > 0 && n->buf && n->len + (size_t)r <= n->cap) {
        memcpy(n->buf + n->len, buf, (size_t)r);
        n->len += (size_t)r;
    }
    if (r >= 0)
        tk_tr("read:%zd", r);
    else
        tk_tr("read:-%s", strerrorname_np((int)-r));
    return r < 0 ? (int)r : 0;
}

static int h_write(ac_dispatcher *d)
{
    tk_node(d)->writes++;
    tk_tr("write");
    return 0;
}

static int h_expt(ac_dispatcher *d)
{
    (void)d;
    tk_tr("expt");
    return 0;
}

static const ac_handlers reader = {
    .handle_read = h_read,
    .handle_write = h_write,
    .handle_expt = h_expt,
    .handle_close = h_close,
    .handle_error = h_error,
    .finalize = tk_finalize,
};

/* Regular-file read events without reading: only counted. */
static int h_read_count(ac_dispatcher *d)
{
    tk_node(d)->reads++;
    return 0;
}

/* A regular file holding `content`. */
static const char *make_file(void)
{
    const char *path = tk_path("file");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, content, 29), 29);
    close(fd);
    return path;
}

static void make_pipe(int p[2]) { cr_assert_eq(pipe2(p, O_CLOEXEC), 0); }

/* ------------------------------------------------------- F1 F2 F5 */

Test(file, duplicate_outlives_the_original, .timeout = 5,
     .description = "F1 F2 F5 F8: the dispatcher works on a close-on-exec duplicate; the "
                    "caller may close the original at once (CPython test_recv)")
{
    ac_map *m = tk_map();
    int fd = open(make_file(), O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    ac_dispatcher *d = tk_new_file(m, &reader, "f", fd);
    int dup = ac_fd(d);
    cr_assert_geq(dup, 0);
    cr_assert_neq(dup, fd);
    cr_assert(tk_cloexec(dup));
    close(fd);

    char buf[16];
    cr_assert_eq(ac_recv(d, buf, 13), 13);
    cr_assert_eq(memcmp(buf, "It's not dead", 13), 0);
    cr_assert_eq(ac_recv(d, buf, 6), 6);
    cr_assert_eq(memcmp(buf, ", it's", 6), 0);
    cr_assert_str_empty(tk_trace);

    cr_assert_eq(ac_close(d), 0);
    cr_assert_eq(ac_fd(d), -1, "F5: fileno is -1 once closed");
    cr_assert_not(tk_fd_open(dup));
    cr_assert_eq(ac_recv(d, buf, 1), 0, "S13: reading a closed one is EBADF -> handle_close");
    cr_assert_str_eq(tk_trace, "close");
    tk_finish(m);
}

Test(file, send_writes_to_the_duplicate, .timeout = 5,
     .description = "F2 F8: send writes through the duplicate (CPython test_send)")
{
    ac_map *m = tk_map();
    const char *path = make_file();
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    ac_dispatcher *d = tk_new_file(m, &reader, "f", fd);
    close(fd);
    cr_assert_eq(ac_send(d, "Come again?", 11), 11);
    cr_assert_eq(ac_send(d, "I want to buy some cheese.", 26), 26);
    cr_assert_eq(ac_close(d), 0);
    char buf[128];
    int r = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = read(r, buf, sizeof(buf));
    close(r);
    const char *want = "It's not dead, it's sleeping!Come again?I want to buy some cheese.";
    cr_assert_eq(n, (ssize_t)strlen(want));
    cr_assert_eq(memcmp(buf, want, (size_t)n), 0);
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
}

/* ------------------------------------------------------------- F7 */

Test(file, dispatcher_state_and_nonblocking_original, .timeout = 5,
     .description = "F7 W17: connected, not accepting/connecting, no addr; the duplicate is "
                    "what the map holds; the original (and its open file description) "
                    "becomes non-blocking")
{
    ac_map *m = tk_map();
    int p[2];
    make_pipe(p);
    int other = dup(p[0]); /* shares the open file description */
    cr_assert_not(tk_nonblocking(p[0]));
    ac_dispatcher *d = tk_new_file(m, &reader, "f", p[0]);
    int fd = ac_fd(d);
    cr_assert(ac_is_connected(d));
    cr_assert_not(ac_is_accepting(d));
    cr_assert_not(ac_is_connecting(d));
    cr_assert_null(ac_addr(d, NULL));
    cr_assert_eq(ac_map_count(m), 1);
    cr_assert_eq(ac_map_get(m, fd), d);
    cr_assert_null(ac_map_get(m, p[0]));
    cr_assert(tk_nonblocking(p[0]), "F7: the original is made non-blocking");
    cr_assert(tk_nonblocking(fd));
    cr_assert(tk_nonblocking(other), "W17: so is everyone sharing the description");
    cr_assert_eq(ac_socket_error(d), 0, "F3");
    close(other);
    close(p[0]);
    close(p[1]);
    tk_finish(m);
}

Test(file, set_file_changes_no_flag_and_no_mode, .timeout = 5,
     .description = "F1 F7: set_file on a plain dispatcher registers a duplicate; connected "
                    "and the blocking mode stay as they were")
{
    ac_map *m = tk_map();
    int p[2];
    make_pipe(p);
    ac_dispatcher *d = tk_new(m, &reader, "f");
    cr_assert_eq(ac_set_file(d, p[0]), 0);
    int fd = ac_fd(d);
    cr_assert_neq(fd, p[0]);
    cr_assert(tk_cloexec(fd));
    cr_assert_eq(ac_map_get(m, fd), d);
    cr_assert_not(ac_is_connected(d));
    cr_assert_not(tk_nonblocking(p[0]));
    cr_assert_eq(ac_socket_error(d), 0, "F3: SO_ERROR is 0 for files");
    cr_assert_eq(write(p[1], "abc", 3), 3);
    char buf[8];
    cr_assert_eq(ac_recv(d, buf, sizeof(buf)), 3);
    cr_assert_eq(memcmp(buf, "abc", 3), 0);
    close(p[0]);
    close(p[1]);
    tk_finish(m);
}

Test(file, buffered_file_dispatcher, .timeout = 5,
     .description = "F1 F8 S15: set_file on a buffered dispatcher: the buffered sender writes "
                    "to the pipe")
{
    ac_map *m = tk_map();
    int p[2];
    make_pipe(p);
    ac_dispatcher *d = tk_new_buffered(m, &reader, "f");
    cr_assert_eq(ac_set_file(d, p[1]), 0);
    cr_assert_eq(ac_buffered_send(d, "hello", 5), 0);
    cr_assert_eq(ac_buffered_pending(d), 0);
    char buf[8];
    cr_assert_eq(read(p[0], buf, sizeof(buf)), 5);
    cr_assert_eq(memcmp(buf, "hello", 5), 0);
    close(p[0]);
    close(p[1]);
    tk_finish(m);
}

Test(file, bad_descriptor, .timeout = 5,
     .description = "F1 X3: a descriptor that cannot be duplicated gives -EBADF, nothing stays "
                    "in the map, and no finalize runs for a dispatcher the caller never got")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = (ac_dispatcher *)0x1;
    int rc = ac_file_dispatcher_new(&d, m, &reader, NULL, 987);
    cr_assert_eq(rc, -EBADF);
    cr_assert_eq(d, (ac_dispatcher *)0x1, "*out untouched on failure");
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_eq(ac_loop(m, 0, 1), 0); /* an empty map: returns at once, after reaping */
    cr_assert_eq(tk_finalized, 0,
                 "finalize ran for the dispatcher of a failed "
                 "ac_file_dispatcher_new (a call that fails never invokes "
                 "its callback)");
    ac_dispatcher *e = tk_new(m, &reader, "e");
    cr_assert_eq(ac_set_file(e, 987), -EBADF);
    cr_assert_eq(ac_fd(e), -1);
    tk_finish(m); /* finalized == created: the failed constructor's object is not ours */
}

/* ------------------------------------------------------------- F8 */

Test(file, pipe_eof_calls_handle_close, .timeout = 5,
     .description = "F8 S11: EOF on a pipe calls handle_close, recv returns 0")
{
    ac_map *m = tk_map();
    int p[2];
    make_pipe(p);
    ac_dispatcher *d = tk_new_file(m, &reader, "f", p[0]);
    close(p[0]);
    cr_assert_eq(write(p[1], "ab", 2), 2);
    close(p[1]);
    char buf[8];
    cr_assert_eq(ac_recv(d, buf, sizeof(buf)), 2);
    cr_assert_str_empty(tk_trace);
    cr_assert_eq(ac_recv(d, buf, sizeof(buf)), 0);
    cr_assert_str_eq(tk_trace, "close");
    cr_assert(ac_is_closed(d));
    tk_finish(m);
}

Test(file, pipe_read_would_block_fails, .timeout = 5,
     .description = "F8 S11: EAGAIN on an empty pipe is -EAGAIN, no handler")
{
    ac_map *m = tk_map();
    int p[2];
    make_pipe(p);
    ac_dispatcher *d = tk_new_file(m, &reader, "f", p[0]);
    char buf[8];
    cr_assert_eq(ac_recv(d, buf, sizeof(buf)), -EAGAIN);
    cr_assert_str_empty(tk_trace);
    cr_assert_not(ac_is_closed(d));
    close(p[0]);
    close(p[1]);
    tk_finish(m);
}

Test(file, pipe_write_epipe_calls_handle_close, .timeout = 5,
     .description = "F8 S10 X12: EPIPE writing to a pipe without reader calls handle_close "
                    "(SIGPIPE ignored, as the header requires of the program)")
{
    signal(SIGPIPE, SIG_IGN);
    ac_map *m = tk_map();
    int p[2];
    make_pipe(p);
    ac_dispatcher *d = tk_new_file(m, &reader, "f", p[1]);
    close(p[1]);
    close(p[0]);
    cr_assert_eq(ac_send(d, "x", 1), 0);
    cr_assert_str_eq(tk_trace, "close");
    tk_finish(m);
}

Test(file, pipe_write_would_block_returns_zero, .timeout = 5,
     .description = "F8 S10: a full pipe makes send return 0, no handler")
{
    ac_map *m = tk_map();
    int p[2];
    make_pipe(p);
    ac_dispatcher *d = tk_new_file(m, &reader, "f", p[1]);
    static char junk[65536];
    size_t total = 0;
    ssize_t n;
    while ((n = ac_send(d, junk, sizeof(junk))) > 0)
        total += (size_t)n;
    cr_assert_eq(n, 0);
    cr_assert_gt(total, 0);
    cr_assert_str_empty(tk_trace);
    cr_assert_eq(tk_drain(p[0], NULL, 0), total);
    close(p[0]);
    close(p[1]);
    tk_finish(m);
}

/* ------------------------------------------------------------- F3 */

Test(file, exceptional_event_goes_to_handle_expt, .timeout = 5,
     .description = "F3 F8 D9: SO_ERROR is always 0 for files, so expt-dispatch calls "
                    "handle_expt; connect logic never applies")
{
    ac_map *m = tk_map();
    int p[2];
    make_pipe(p);
    ac_dispatcher *d = tk_new_file(m, &reader, "f", p[0]);
    cr_assert_eq(ac_socket_error(d), 0);
    cr_assert_eq(ac_handle_expt_event(d), 0);
    cr_assert_eq(ac_exception(d), 0);
    cr_assert_str_eq(tk_trace, "expt expt");
    ac_set_connecting(d, true);
    ac_set_connected(d, false);
    tk_trace_clear();
    cr_assert_eq(write(p[1], "z", 1), 1);
    cr_assert_eq(ac_handle_read_event(d), 0);
    /* D6 -> D8 with SO_ERROR 0: handle_connect (default, silent), then read. */
    cr_assert_str_eq(tk_trace, "read:1");
    cr_assert(ac_is_connected(d));
    close(p[0]);
    close(p[1]);
    tk_finish(m);
}

Test(file, closed_file_dispatcher_so_error_is_still_zero, .timeout = 5,
     .description = "F3 S13 L13: SO_ERROR is 0 for a file even after close (Python's "
                    "file_wrapper.getsockopt never looks at the descriptor), so expt-dispatch "
                    "on a closed file dispatcher reaches handle_expt, not handle_close")
{
    ac_map *m = tk_map();
    int p[2];
    make_pipe(p);
    ac_dispatcher *d = tk_new_file(m, &reader, "f", p[0]);
    cr_assert_eq(ac_close(d), 0);
    cr_assert_eq(ac_socket_error(d), 0);
    cr_assert_eq(ac_handle_expt_event(d), 0);
    cr_assert_eq(ac_readwrite(d, POLLPRI), 0);
    cr_assert_str_eq(tk_trace, "expt expt");
    close(p[0]);
    close(p[1]);
    tk_finish(m);
}

/* ------------------------------------------------------------- F4 */

Test(file, close_after_duplicate_closed_behind_our_back, .timeout = 5,
     .description = "F4 S12: the duplicate closed behind the library's back: close ignores "
                    "EBADF, fileno becomes -1, a second close is a no-op (CPython "
                    "test_close_twice)")
{
    ac_map *m = tk_map();
    int fd = open(make_file(), O_RDONLY | O_CLOEXEC);
    ac_dispatcher *d = tk_new_file(m, &reader, "f", fd);
    close(fd);
    close(ac_fd(d));
    cr_assert_eq(ac_close(d), 0);
    cr_assert_eq(ac_fd(d), -1);
    int again = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert_eq(ac_close(d), 0);
    cr_assert(tk_fd_open(again));
    close(again);
    cr_assert_str_empty(tk_trace);
    tk_finish(m);
}

Test(file, close_all_closes_the_duplicate, .timeout = 5,
     .description = "F6 X4: the owning channel closes the duplicate; finalize runs once")
{
    ac_map *m = tk_map();
    int p[2];
    make_pipe(p);
    ac_dispatcher *d = tk_new_file(m, &reader, "f", p[0]);
    int dup = ac_fd(d);
    cr_assert_eq(ac_close_all(m, false), 0);
    cr_assert_not(tk_fd_open(dup));
    cr_assert(tk_fd_open(p[0]), "the caller's descriptor is the caller's");
    close(p[0]);
    close(p[1]);
    tk_finish(m);
}

/* ------------------------------------------------------------- F9 */

Test(file, regular_file_read_through_the_loop, .timeout = 5,
     .description = "F9 L13 W7: a regular file is ready for every poller (epoll too, X8): "
                    "read, write (default writable), then EOF closes; poll-style runs the "
                    "write step on the closed channel (CPython test_dispatcher)")
{
    ac_map *m = tk_map();
    int fd = open(make_file(), O_RDONLY | O_CLOEXEC);
    ac_dispatcher *d = tk_new_file(m, &reader, "f", fd);
    close(fd);
    char data[64];
    struct tk_node *n = tk_node(d);
    n->buf = data;
    n->cap = sizeof(data);
    cr_assert_eq(ac_loop(m, 0.01, 2), 0);
    cr_assert_eq(n->len, 29);
    cr_assert_eq(memcmp(data, content, 29), 0);
    if (tk_is_select(m))
        cr_assert_str_eq(tk_trace, "read:29 write close read:0");
    else
        cr_assert_str_eq(tk_trace, "read:29 write close read:0 write");
    cr_assert_eq(ac_map_count(m), 0);
    tk_finish(m);
}

Test(file, regular_file_is_always_ready, .timeout = 10,
     .description = "F9 X8: a regular file never makes the loop wait, under every poller "
                    "(epoll keeps it in an always-ready list)")
{
    static const ac_handlers h = {
        .writable = tk_never,
        .handle_read = h_read_count,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    int fd = open(make_file(), O_RDONLY | O_CLOEXEC);
    ac_dispatcher *d = tk_new_file(m, &h, "f", fd);
    close(fd);
    double t0 = tk_clock();
    cr_assert_eq(ac_loop(m, 5.0, 5), 0);
    cr_assert_lt(tk_clock() - t0, 1.0, "waited for a regular file");
    cr_assert_eq(tk_node(d)->reads, 5);
    tk_finish(m);
}

Test(file, pipe_without_writer_empty, .timeout = 5,
     .description = "F9 L13 D10: an empty pipe whose writer has gone: select reads EOF -> "
                    "handle_close; poll and epoll see POLLHUP alone -> handle_close directly")
{
    ac_map *m = tk_map();
    int p[2];
    make_pipe(p);
    tk_new_file(m, &reader, "f", p[0]);
    close(p[0]);
    close(p[1]);
    cr_assert_eq(ac_loop(m, 1.0, 5), 0);
    if (tk_is_select(m))
        cr_assert_str_eq(tk_trace, "close read:0");
    else
        cr_assert_str_eq(tk_trace, "close");
    cr_assert_eq(ac_map_count(m), 0);
    tk_finish(m);
}

Test(file, pipe_without_writer_with_data, .timeout = 5,
     .description = "F9 L13 W7: writer gone with 10 bytes left: select reads them all then "
                    "EOF; poll and epoll get POLLIN|POLLHUP: one read, then handle_close with "
                    "bytes unread")
{
    ac_map *m = tk_map();
    int p[2];
    make_pipe(p);
    ac_dispatcher *d = tk_new_file(m, &reader, "f", p[0]);
    tk_node(d)->chunk = 4;
    close(p[0]);
    cr_assert_eq(write(p[1], "0123456789", 10), 10);
    close(p[1]);
    cr_assert_eq(ac_loop(m, 1.0, 10), 0);
    if (tk_is_select(m))
        cr_assert_str_eq(tk_trace, "read:4 read:4 read:2 close read:0");
    else
        cr_assert_str_eq(tk_trace, "read:4 close");
    tk_finish(m);
}

Test(file, pipe_with_live_writer_waits, .timeout = 5,
     .description = "F9 L7: an empty pipe with a live writer is not ready: the loop waits "
                    "the timeout and dispatches nothing, then data makes it readable")
{
    ac_map *m = tk_map();
    int p[2];
    make_pipe(p);
    tk_new_file(m, &reader, "f", p[0]);
    double t0 = tk_clock();
    cr_assert_eq(ac_poll(m, 0.2), 0);
    cr_assert_geq(tk_clock() - t0, 0.15);
    cr_assert_str_empty(tk_trace, "a pipe's read end is never writable");
    cr_assert_eq(write(p[1], "hey", 3), 3);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "read:3");
    close(p[0]);
    close(p[1]);
    tk_finish(m);
}

static int h_write_sends(ac_dispatcher *d)
{
    tk_tr("write");
    ssize_t n = ac_send(d, "x", 1);
    tk_tr("sent:%zd", n);
    return n < 0 ? (int)n : 0;
}

Test(file, pipe_without_reader, .timeout = 5,
     .description = "F8 F9 L13: a pipe whose reader has gone: select gives a write event "
                    "whose send sees EPIPE -> handle_close; poll and epoll add POLLERR, so "
                    "handle_close runs again directly")
{
    static const ac_handlers h = {
        .readable = tk_never,
        .handle_write = h_write_sends,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = tk_finalize,
    };
    signal(SIGPIPE, SIG_IGN);
    ac_map *m = tk_map();
    int p[2];
    make_pipe(p);
    tk_new_file(m, &h, "f", p[1]);
    close(p[1]);
    close(p[0]);
    cr_assert_eq(ac_loop(m, 1.0, 3), 0);
    if (tk_is_select(m))
        cr_assert_str_eq(tk_trace, "write close sent:0");
    else
        cr_assert_str_eq(tk_trace, "write close sent:0 close");
    tk_finish(m);
}
