/* Conformance: the chat channel, asynchat's async_chat (spec section 6,
 * C1-C25; X17, X18) and the header's additions to it (bounded input,
 * output backpressure).  CPython's test_asynchat.py is rewritten at the end
 * (suite chat_cpython); the splitting matrix and the seeded property test
 * are in test_chat_split.c.
 *
 * Most tests use a socketpair: the chat channel adopts one end (connected),
 * the test writes and reads the other end raw.  A unix stream socket puts
 * what was sent into the peer's receive queue at once, so FIONREAD counts
 * exactly what one send handed to the kernel (C13, C16), and one recv takes
 * everything written before it (up to ac_in_buffer_size, C24).  Input tests
 * drive the read either with ac_chat_handle_read() (C5 itself, no guard) or
 * with single loop iterations (guard, interest).  Pushes are queued without
 * sending by clearing `connected` (C17). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <criterion/criterion.h>

#include "asynchat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ bytes */

struct bytes {
    char *p;
    size_t len, cap;
};

static void bytes_add(struct bytes *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        cr_assert_not_null(b->p);
        b->cap = cap;
    }
    if (len)
        memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
}

static void bytes_free(struct bytes *b)
{
    free(b->p);
    *b = (struct bytes){0};
}

/* -------------------------------------------------------- recorder */

/* What the handlers saw.  Criterion runs every test in its own process,
 * so one static recorder is enough. */
#define MAXRECS 64
static struct {
    char trace[16384];          /* space-separated tokens, in order */
    bool quiet;                 /* keep collected bytes out of the trace */
    struct bytes cur;           /* collected since the last found_terminator */
    struct bytes recs[MAXRECS]; /* one per found_terminator */
    int nrecs;
    int collects, founds, closes, errors, writes, connects, highs, lows;
    int created, finalized;
    int last_err;
    const char *last_op;
    bool keep_open; /* handle_error does not close */
    int (*on_found)(ac_dispatcher *d);
    char log[8192];
    int log_lines;
} R;

static void tr(const char *fmt, ...)
{
    size_t len = strlen(R.trace);
    if (len && len + 1 < sizeof(R.trace))
        R.trace[len++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(R.trace + len, sizeof(R.trace) - len, fmt, ap);
    va_end(ap);
}

static void trace_clear(void) { R.trace[0] = '\0'; }

/* Bytes as trace text: \r \n \0 \t escaped, other non-printables \xNN. */
static const char *esc(const void *data, size_t len)
{
    static char out[4096];
    const unsigned char *p = data;
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < sizeof(out); i++) {
        unsigned char ch = p[i];
        static const char special[] = "\r\n\t";
        const char *named = strchr(special, ch);
        if (ch == '\0')
            o += (size_t)sprintf(out + o, "\\0");
        else if (named)
            o += (size_t)sprintf(out + o, "\\%c", "rnt"[named - special]);
        else if (ch < 0x20 || ch >= 0x7f || ch == '\\')
            o += (size_t)sprintf(out + o, "\\x%02x", ch);
        else
            out[o++] = (char)ch;
    }
    out[o] = '\0';
    return out;
}

static void log_hook(ac_dispatcher *d, const char *type, const char *msg, void *ctx)
{
    (void)d;
    (void)ctx;
    size_t len = strlen(R.log);
    snprintf(R.log + len, sizeof(R.log) - len, "%s: %s\n", type ? type : "log", msg);
    R.log_lines++;
}

/* ---------------------------------------------------------- handlers */

static int h_collect(ac_dispatcher *d, const void *data, size_t len)
{
    (void)d;
    cr_assert_gt(len, 0, "C8: collect_incoming_data is never called with empty data");
    R.collects++;
    bytes_add(&R.cur, data, len);
    if (!R.quiet)
        tr("c:%s", esc(data, len));
    return 0;
}

static int h_found(ac_dispatcher *d)
{
    R.founds++;
    cr_assert_lt(R.nrecs, MAXRECS);
    bytes_add(&R.cur, "", 0); /* an empty record is "" too */
    R.recs[R.nrecs++] = R.cur;
    R.cur = (struct bytes){0};
    bytes_add(&R.cur, "", 0);
    tr("F");
    return R.on_found ? R.on_found(d) : 0;
}

static int h_close(ac_dispatcher *d)
{
    R.closes++;
    tr("close");
    return ac_chat_handle_close(d); /* C20 */
}

static int h_error(ac_dispatcher *d, const ac_error *e)
{
    R.errors++;
    R.last_err = e->err;
    R.last_op = e->op;
    tr("error:%s", ac_errno_name(e->err));
    return R.keep_open ? 0 : ac_default_handle_error(d, e);
}

static int h_write(ac_dispatcher *d)
{
    R.writes++;
    int rc = ac_initiate_send(d); /* C19 */
    tr("w%zu", ac_chat_pending(d));
    return rc;
}

static int h_connect(ac_dispatcher *d)
{
    R.connects++;
    tr("connect:%d%d", ac_is_connected(d), ac_is_connecting(d));
    return 0;
}

static int h_high(ac_dispatcher *d)
{
    R.highs++;
    tr("high:%zu", ac_chat_pending(d));
    return 0;
}

static int h_low(ac_dispatcher *d)
{
    R.lows++;
    tr("low:%zu", ac_chat_pending(d));
    return 0;
}

static void h_finalize(ac_dispatcher *d)
{
    (void)d;
    R.finalized++;
}

static const ac_handlers chat_h = {
    .collect_incoming_data = h_collect,
    .found_terminator = h_found,
    .handle_close = h_close,
    .handle_error = h_error,
    .finalize = h_finalize,
};

/* The same with a traced handle_write and the water-mark handlers. */
static const ac_handlers chat_w = {
    .collect_incoming_data = h_collect,
    .found_terminator = h_found,
    .handle_write = h_write,
    .handle_close = h_close,
    .handle_error = h_error,
    .handle_connect = h_connect,
    .handle_high_water = h_high,
    .handle_low_water = h_low,
    .finalize = h_finalize,
};

/* ------------------------------------------------------ plumbing */

static ac_map *map_new(void)
{
    memset(&R, 0, sizeof(R));
    ac_set_log_hook(log_hook, NULL);
    ac_map *m = NULL;
    int rc = ac_map_new(&m, AC_POLLER_DEFAULT);
    cr_assert_eq(rc, 0, "ac_map_new: %d (AC_POLLER=%s)", rc, getenv("AC_POLLER"));
    const char *env = getenv("AC_POLLER");
    if (env && *env)
        cr_assert_str_eq(ac_map_poller_name(m), env);
    return m;
}

static ac_dispatcher *chat_new(ac_map *m, const ac_handlers *h)
{
    ac_dispatcher *d = ac_chat_new(m, h, NULL);
    cr_assert_not_null(d);
    R.created++;
    return d;
}

/* A chat channel adopting one end of a socketpair (connected, D4); the
 * raw other end goes to *peer. */
static ac_dispatcher *chat_pair(ac_map *m, const ac_handlers *h, int *peer)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ac_dispatcher *d = chat_new(m, h);
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    cr_assert(ac_is_connected(d));
    *peer = sv[1];
    return d;
}

/* Close everything, free the map, and check that nothing leaked. */
static void finish(ac_map *m)
{
    cr_assert_eq(ac_close_all(m, true), 0);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_eq(ac_map_free(m), 0);
    cr_assert_eq(R.finalized, R.created, "finalized %d of %d channels", R.finalized, R.created);
    for (int i = 0; i < R.nrecs; i++)
        bytes_free(&R.recs[i]);
    bytes_free(&R.cur);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Single iterations until cond holds (the map may be empty by then). */
#define LOOP_UNTIL(m, cond, secs)                                                                  \
    do {                                                                                           \
        double end_ = now() + (secs);                                                              \
        while (!(cond)) {                                                                          \
            cr_assert(now() < end_, "timed out waiting for %s", #cond);                            \
            int rc_ = ac_poll((m), 0.01);                                                          \
            cr_assert(rc_ == 0, "ac_poll returned %d", rc_);                                       \
        }                                                                                          \
    } while (0)

static int inq(int fd)
{
    int n = -1;
    return ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

static void put(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        cr_assert(n > 0, "send: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

#define PUT(fd, lit) put((fd), (lit), sizeof(lit) - 1)

/* Everything queued on fd now (non-blocking). */
static void drain(int fd, struct bytes *out)
{
    char buf[65536];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n <= 0)
            return;
        bytes_add(out, buf, (size_t)n);
    }
}

/* Write to the peer, then one C5 read (no loop, no guard). */
static int feed(ac_dispatcher *d, int peer, const void *data, size_t len)
{
    put(peer, data, len);
    return ac_chat_handle_read(d);
}

#define FEED(d, peer, lit) feed((d), (peer), (lit), sizeof(lit) - 1)

static void set_term(ac_dispatcher *d, const char *t)
{
    cr_assert_eq(ac_chat_set_terminator(d, t, strlen(t)), 0);
}

/* ------------------------------------------------- scripted producer */

/* Hands out pieces[] in order (NULL or "" ends it: more() returns 0),
 * tracing every call; fail makes more() return that errno instead. */
struct script {
    const char *name;
    const char *const *pieces;
    size_t i;
    int mores, releases;
    int fail;
};

static ssize_t script_more(void *ctx, const void **data)
{
    struct script *s = ctx;
    s->mores++;
    if (s->fail) {
        tr("%s:fail", s->name);
        return -s->fail;
    }
    const char *p = s->pieces[s->i];
    if (p)
        s->i++;
    size_t n = p ? strlen(p) : 0;
    *data = p ? p : "";
    tr("%s:more:%zu", s->name, n);
    return (ssize_t)n;
}

static void script_release(void *ctx)
{
    struct script *s = ctx;
    s->releases++;
    tr("%s:release", s->name);
}

static const ac_producer_ops script_ops = {script_more, script_release};

static ac_producer *script_new(struct script *s)
{
    ac_producer *p = ac_producer_new(&script_ops, s);
    cr_assert_not_null(p);
    return p;
}

/* ===================================================== C1, C3, X17 */

Test(chat, construction, .timeout = 5,
     .description = "C1 C3 C4 D3: a new chat channel has no socket, is outside the map, flags "
                    "false, terminator unset, nothing queued")
{
    ac_map *m = map_new();
    ac_dispatcher *d = chat_new(m, &chat_h);
    cr_assert_eq(ac_fd(d), -1);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_not(ac_is_connected(d));
    cr_assert_not(ac_is_accepting(d));
    cr_assert_not(ac_is_connecting(d));
    const void *t = (void *)1;
    size_t len = 99;
    cr_assert_eq(ac_chat_get_terminator(d, &t, &len), AC_TERM_UNSET);
    cr_assert_eq(ac_chat_get_terminator(d, NULL, NULL), AC_TERM_UNSET);
    cr_assert_eq(ac_chat_pending(d), 0);
    size_t dl = 0;
    char *data = ac_chat_get_data(d, &dl);
    cr_assert_not_null(data);
    cr_assert_eq(dl, 0);
    cr_assert_str_empty(data);
    free(data);
    finish(m);
}

Test(chat, default_buffer_sizes_are_65536, .timeout = 10,
     .description = "C1 C24 C13 C5: ac_in_buffer_size and ac_out_buffer_size start at 65536: "
                    "70000 bytes are one 65536-byte recv plus the rest, and two entries")
{
    ac_map *m = map_new();
    int peer;
    int big = 1 << 20;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    setsockopt(peer, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(ac_fd(d), SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    R.quiet = true;
    cr_assert_eq(ac_chat_set_terminator_none(d), 0);
    char *data = calloc(1, 70000);
    put(peer, data, 70000);
    cr_assert_eq(ac_chat_handle_read(d), 0);
    cr_assert_eq(R.cur.len, 65536);
    cr_assert_eq(ac_chat_handle_read(d), 0);
    cr_assert_eq(R.cur.len, 70000);
    cr_assert_eq(R.collects, 2);

    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, data, 70000), 0);
    ac_set_connected(d, true);
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 0, 1 << 20), 0); /* entries stay as cut */
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 65536);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 70000);
    free(data);
    close(peer);
    finish(m);
}

Test(chat, terminator_kinds_round_trip, .timeout = 5,
     .description = "C3 X17: set/get_terminator for bytes with NUL bytes (copied), the empty "
                    "string, a count, count 0 and none; get reports which was set")
{
    ac_map *m = map_new();
    ac_dispatcher *d = chat_new(m, &chat_h);
    char term[] = {'\0', 'a', '\0'};
    cr_assert_eq(ac_chat_set_terminator(d, term, 3), 0);
    term[1] = 'X'; /* the channel holds a copy */
    const void *t = NULL;
    size_t len = 0;
    cr_assert_eq(ac_chat_get_terminator(d, &t, &len), AC_TERM_BYTES);
    cr_assert_eq(len, 3);
    cr_assert_eq(memcmp(t, "\0a\0", 3), 0);

    cr_assert_eq(ac_chat_set_terminator(d, "", 0), 0);
    cr_assert_eq(ac_chat_get_terminator(d, &t, &len), AC_TERM_BYTES);
    cr_assert_eq(len, 0, "the empty string is kept as a string of length 0");
    cr_assert_eq(ac_chat_set_terminator(d, NULL, 0), 0, "NULL with length 0 is the empty string");
    cr_assert_eq(ac_chat_get_terminator(d, NULL, &len), AC_TERM_BYTES);
    cr_assert_eq(len, 0);

    cr_assert_eq(ac_chat_set_terminator_count(d, 7), 0);
    cr_assert_eq(ac_chat_get_terminator(d, NULL, &len), AC_TERM_COUNT);
    cr_assert_eq(len, 7);
    cr_assert_eq(ac_chat_set_terminator_count(d, 0), 0);
    cr_assert_eq(ac_chat_get_terminator(d, NULL, &len), AC_TERM_COUNT);
    cr_assert_eq(len, 0);

    cr_assert_eq(ac_chat_set_terminator_none(d), 0);
    cr_assert_eq(ac_chat_get_terminator(d, NULL, NULL), AC_TERM_NONE);
    finish(m);
}

Test(chat, negative_count_rejected, .timeout = 5,
     .description = "C3 (CPython test_disallow_negative_terminator): a negative count is "
                    "-EINVAL and the terminator is unchanged")
{
    ac_map *m = map_new();
    ac_dispatcher *d = chat_new(m, &chat_h);
    cr_assert_eq(ac_chat_set_terminator_count(d, -1), -EINVAL);
    cr_assert_eq(ac_chat_get_terminator(d, NULL, NULL), AC_TERM_UNSET);
    set_term(d, "\r\n");
    cr_assert_eq(ac_chat_set_terminator_count(d, -5), -EINVAL);
    const void *t;
    size_t len;
    cr_assert_eq(ac_chat_get_terminator(d, &t, &len), AC_TERM_BYTES);
    cr_assert_eq(len, 2);
    cr_assert_eq(memcmp(t, "\r\n", 2), 0);
    cr_assert_eq(ac_chat_set_terminator(d, NULL, 3), -EINVAL, "NULL data with a length");
    cr_assert_eq(ac_chat_get_terminator(d, NULL, &len), AC_TERM_BYTES);
    cr_assert_eq(len, 2);
    finish(m);
}

Test(chat, chat_calls_refuse_other_dispatchers, .timeout = 5,
     .description = "C3 C13 C14 X3 X18: chat calls on a plain dispatcher return -EINVAL; "
                    "push_with_producer releases the producer it refuses")
{
    ac_map *m = map_new();
    ac_dispatcher *p = ac_dispatcher_new(m, &chat_h, NULL);
    R.created++;
    cr_assert_eq(ac_chat_set_terminator(p, "\n", 1), -EINVAL);
    cr_assert_eq(ac_chat_set_terminator_count(p, 3), -EINVAL);
    cr_assert_eq(ac_chat_set_terminator_none(p), -EINVAL);
    cr_assert_eq(ac_chat_get_terminator(p, NULL, NULL), AC_TERM_UNSET);
    cr_assert_eq(ac_chat_push(p, "x", 1), -EINVAL);
    cr_assert_eq(ac_chat_set_buffer_sizes(p, 10, 10), -EINVAL);
    cr_assert_eq(ac_chat_set_max_input(p, 10), -EINVAL);
    cr_assert_eq(ac_chat_set_watermarks(p, 1, 2), -EINVAL);
    cr_assert_eq(ac_chat_pending(p), 0);
    cr_assert_eq(ac_chat_handle_read(p), -EINVAL);
    cr_assert_eq(ac_chat_collect_incoming_data(p, "x", 1), -EINVAL);
    struct script s = {.name = "p", .pieces = (const char *const[]){"x", NULL}};
    cr_assert_eq(ac_chat_push_with_producer(p, script_new(&s)), -EINVAL);
    cr_assert_eq(s.releases, 1, "X18: the refused producer is released once");
    cr_assert_eq(s.mores, 0);

    ac_dispatcher *d = chat_new(m, &chat_h);
    cr_assert_eq(ac_chat_push(d, NULL, 5), -EINVAL, "C13: not bytes-like");
    cr_assert_eq(ac_chat_push_with_producer(d, NULL), -EINVAL);
    cr_assert_eq(ac_chat_pending(d), 0);
    cr_assert_eq(ac_chat_set_watermarks(d, 10, 5), -EINVAL, "low > high");
    finish(m);
}

/* ============================================================ C2 */

static const ac_handlers chat_defaults = {
    .handle_error = h_error,
    .finalize = h_finalize,
};

Test(chat, default_collector_is_not_implemented, .timeout = 5,
     .description = "C2 C25 D19 C20: without collect_incoming_data the default fails (ENOSYS), "
                    "the dispatcher's handle_error logs one error line and closes")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_defaults, &peer);
    set_term(d, "\n");
    PUT(peer, "abc\n");
    LOOP_UNTIL(m, R.finalized == 1, 2);
    cr_assert_str_eq(R.trace, "error:ENOSYS");
    cr_assert_str_eq(R.last_op, "collect_incoming_data");
    cr_assert_eq(R.log_lines, 1, "D19's line only; C20 adds none: %s", R.log);
    cr_assert(strncmp(R.log, "error: ", 7) == 0, "%s", R.log);
    cr_assert_not_null(strstr(R.log, "closing channel"), "%s", R.log);
    cr_assert_not_null(strstr(R.log, "ENOSYS"), "%s", R.log);
    close(peer);
    finish(m);
}

Test(chat, default_found_terminator_is_not_implemented, .timeout = 5,
     .description = "C2 C8 D19: an empty record calls found_terminator without a collect; its "
                    "default fails (ENOSYS) and the channel is closed")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_defaults, &peer);
    set_term(d, "\n");
    PUT(peer, "\n");
    LOOP_UNTIL(m, R.finalized == 1, 2);
    cr_assert_str_eq(R.trace, "error:ENOSYS");
    cr_assert_str_eq(R.last_op, "found_terminator");
    close(peer);
    finish(m);
}

static struct bytes got_data[8];
static int ngot;

static int found_get_data(ac_dispatcher *d)
{
    size_t len = 99;
    char *data = ac_chat_get_data(d, &len);
    cr_assert_not_null(data);
    cr_assert_eq(data[len], '\0', "get_data is NUL-terminated");
    cr_assert_lt(ngot, 8);
    got_data[ngot] = (struct bytes){0};
    bytes_add(&got_data[ngot++], data, len);
    tr("data:%s", esc(data, len));
    free(data);
    return 0;
}

static const ac_handlers chat_incoming = {
    .collect_incoming_data = ac_chat_collect_incoming_data,
    .found_terminator = found_get_data,
    .handle_error = h_error,
    .finalize = h_finalize,
};

Test(chat, opt_in_collector_and_get_data, .timeout = 5,
     .description = "C2 C8: ac_chat_collect_incoming_data appends to incoming, get_data returns "
                    "the concatenation (NUL bytes intact) and empties it")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_incoming, &peer);
    set_term(d, "\r\n");
    cr_assert_eq(FEED(d, peer, "hel"), 0);
    cr_assert_eq(FEED(d, peer, "lo\r"), 0);
    cr_assert_eq(FEED(d, peer, "\na\0b\r\n\r\nrest"), 0);
    cr_assert_str_eq(R.trace, "data:hello data:a\\0b data:");
    cr_assert_eq(got_data[1].len, 3);
    size_t len = 99;
    char *rest = ac_chat_get_data(d, &len);
    cr_assert_eq(len, 4);
    cr_assert_str_eq(rest, "rest");
    free(rest);
    rest = ac_chat_get_data(d, &len);
    cr_assert_eq(len, 0, "get_data empties incoming");
    free(rest);
    for (int i = 0; i < ngot; i++)
        bytes_free(&got_data[i]);
    close(peer);
    finish(m);
}

/* ============================================================ C4 */

Test(chat, unset_terminator_reaches_handle_error, .timeout = 5,
     .description = "C4 W14: data before any set_terminator fails the read dispatch; "
                    "handle_error runs (EINVAL) and by default closes; nothing is collected")
{
    ac_map *m = map_new();
    int peer;
    chat_pair(m, &chat_h, &peer);
    PUT(peer, "abc\n");
    LOOP_UNTIL(m, R.finalized == 1, 2);
    cr_assert_str_eq(R.trace, "error:EINVAL close");
    cr_assert_eq(R.collects, 0);
    close(peer);
    finish(m);
}

Test(chat, unset_terminator_keeps_the_input, .timeout = 5,
     .description = "C4 C6: the bytes that arrived before set_terminator stay in the input "
                    "buffer and are split with the next read")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.keep_open = true;
    PUT(peer, "ab");
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(R.trace, "error:EINVAL");
    set_term(d, "\n");
    PUT(peer, "c\nd");
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(R.trace, "error:EINVAL c:abc F c:d");
    close(peer);
    finish(m);
}

/* ============================================================ C5 */

Test(chat, read_would_block_is_silent, .timeout = 5,
     .description = "C5 (CPython test_blockingioerror): a read with nothing to read returns "
                    "quietly; no handler runs, under the guard neither")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "\n");
    cr_assert_eq(ac_chat_handle_read(d), 0);
    cr_assert_eq(ac_read(d), 0);
    cr_assert_eq(ac_readwrite(d, POLLIN), 0);
    cr_assert_str_empty(R.trace);
    cr_assert_not(ac_is_closed(d));
    close(peer);
    finish(m);
}

Test(chat, recv_failure_calls_handle_error_directly, .timeout = 5,
     .description = "C5: a recv failure other than EAGAIN calls handle_error itself and "
                    "returns 0, so the guard does not call it a second time")
{
    ac_map *m = map_new();
    int pfd[2];
    cr_assert_eq(pipe2(pfd, O_CLOEXEC | O_NONBLOCK), 0);
    ac_dispatcher *d = chat_new(m, &chat_h);
    cr_assert_eq(ac_set_socket(d, pfd[0]), 0); /* recv(2) on a pipe: ENOTSOCK */
    set_term(d, "\n");
    R.keep_open = true;
    cr_assert_eq(ac_chat_handle_read(d), 0);
    cr_assert_str_eq(R.trace, "error:ENOTSOCK");
    cr_assert_str_eq(R.last_op, "recv");
    cr_assert_eq(ac_read(d), 0);
    cr_assert_str_eq(R.trace, "error:ENOTSOCK error:ENOTSOCK", "one handle_error per read");
    close(pfd[1]);
    finish(m);
}

Test(chat, eof_closes_then_splits_the_leftover, .timeout = 5,
     .description = "C5 C10 C20 C11: at EOF recv calls handle_close, then the splitting loop "
                    "still runs over the leftover with the current terminator")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "\r\n");
    cr_assert_eq(FEED(d, peer, "abc\r"), 0);
    cr_assert_str_eq(R.trace, "c:abc");
    cr_assert_eq(ac_chat_set_terminator_none(d), 0);
    shutdown(peer, SHUT_WR);
    cr_assert_eq(ac_chat_handle_read(d), 0);
    cr_assert_str_eq(R.trace, "c:abc close c:\\r");
    cr_assert(ac_is_closed(d));
    close(peer);
    finish(m);
}

/* ======================================================== C6, C7 */

Test(chat, string_terminator_found_and_held, .timeout = 5,
     .description = "C6c C9 C12: first occurrence found, terminator bytes dropped, a possible "
                    "terminator start at the end is held back for the next read")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "\r\n");
    cr_assert_eq(FEED(d, peer, "ab\r"), 0);
    cr_assert_str_eq(R.trace, "c:ab");
    cr_assert_eq(FEED(d, peer, "\ncd\r\nef"), 0);
    cr_assert_str_eq(R.trace, "c:ab F c:cd F c:ef");
    cr_assert_eq(R.nrecs, 2);
    cr_assert_str_eq(R.recs[0].p, "ab");
    cr_assert_str_eq(R.recs[1].p, "cd");
    close(peer);
    finish(m);
}

Test(chat, whole_buffer_may_start_the_terminator, .timeout = 5,
     .description = "C6c (p == L) C12: a buffer that may entirely be the start of the "
                    "terminator is kept; a longer one passes on all but the prefix")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "abc");
    cr_assert_eq(FEED(d, peer, "ab"), 0);
    cr_assert_str_empty(R.trace);
    cr_assert_eq(FEED(d, peer, "a"), 0);
    cr_assert_str_eq(R.trace, "c:ab");
    cr_assert_eq(FEED(d, peer, "bc"), 0);
    cr_assert_str_eq(R.trace, "c:ab F");
    close(peer);
    finish(m);
}

static int found_sees_zero(ac_dispatcher *d)
{
    size_t left = 99;
    cr_assert_eq(ac_chat_get_terminator(d, NULL, &left), AC_TERM_COUNT);
    cr_assert_eq(left, 0, "C7: found_terminator observes get_terminator() == 0");
    tr("term0");
    return 0;
}

Test(chat, count_terminator_bookkeeping, .timeout = 5,
     .description = "C6b C7: the count is decremented in place, found_terminator sees 0, later "
                    "bytes are collected without another found_terminator")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.on_found = found_sees_zero;
    cr_assert_eq(ac_chat_set_terminator_count(d, 5), 0);
    cr_assert_eq(FEED(d, peer, "abc"), 0);
    size_t left;
    cr_assert_eq(ac_chat_get_terminator(d, NULL, &left), AC_TERM_COUNT);
    cr_assert_eq(left, 2, "C3: get_terminator returns the count still remaining");
    cr_assert_eq(FEED(d, peer, "defgh"), 0);
    cr_assert_str_eq(R.trace, "c:abc c:de F term0 c:fgh");
    cr_assert_eq(FEED(d, peer, "ijk"), 0);
    cr_assert_str_eq(R.trace, "c:abc c:de F term0 c:fgh c:ijk");
    cr_assert_eq(R.founds, 1);
    close(peer);
    finish(m);
}

Test(chat, count_spans_many_reads, .timeout = 10,
     .description = "C7 C8: a count of 1000 fed 7 bytes per read: 143 pieces, one "
                    "found_terminator after exactly 1000 bytes")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.quiet = true;
    cr_assert_eq(ac_chat_set_terminator_count(d, 1000), 0);
    char data[1001];
    for (int i = 0; i < 1000; i++)
        data[i] = (char)('a' + i % 26);
    for (int off = 0; off < 1000; off += 7) {
        cr_assert_eq(R.founds, 0);
        cr_assert_eq(feed(d, peer, data + off, off + 7 <= 1000 ? 7 : (size_t)(1000 - off)), 0);
    }
    cr_assert_eq(R.collects, 143);
    cr_assert_eq(R.founds, 1);
    cr_assert_eq(R.recs[0].len, 1000);
    cr_assert_eq(memcmp(R.recs[0].p, data, 1000), 0);
    close(peer);
    finish(m);
}

static size_t count_left(ac_dispatcher *d)
{
    size_t left = 0;
    return ac_chat_get_terminator(d, NULL, &left) == AC_TERM_COUNT ? left : 999;
}

static int collect_sees_count(ac_dispatcher *d, const void *data, size_t len)
{
    R.collects++;
    tr("c:%s@%zu", esc(data, len), count_left(d));
    /* The second part of the test: a new count set while collecting. */
    if (R.keep_open && len == 3 && memcmp(data, "abc", 3) == 0)
        cr_assert_eq(ac_chat_set_terminator_count(d, 2), 0);
    return 0;
}

static int found_sees_count(ac_dispatcher *d)
{
    R.founds++;
    tr("F@%zu", count_left(d));
    return 0;
}

Test(chat, count_is_stored_after_the_piece_is_passed_on, .timeout = 5,
     .description = "C6b C7 C11: the piece is passed on first, then n - L (or 0) is stored: "
                    "collect_incoming_data still sees the old count, and a count it sets is "
                    "overwritten (as CPython)")
{
    ac_map *m = map_new();
    static const ac_handlers h = {
        .collect_incoming_data = collect_sees_count,
        .found_terminator = found_sees_count,
        .handle_error = h_error,
        .finalize = h_finalize,
    };
    int peer;
    ac_dispatcher *d = chat_pair(m, &h, &peer);
    cr_assert_eq(ac_chat_set_terminator_count(d, 5), 0);
    cr_assert_eq(FEED(d, peer, "abc"), 0);
    cr_assert_eq(FEED(d, peer, "defgh"), 0);
    /* Python 3.11: [('c', b'abc', 5), ('c', b'de', 2), ('F', 0), ('c', b'fgh', 0)] */
    cr_assert_str_eq(R.trace, "c:abc@5 c:de@2 F@0 c:fgh@0");

    trace_clear();
    R.keep_open = true; /* collect sets count 2 when it gets "abc" */
    cr_assert_eq(ac_chat_set_terminator_count(d, 3), 0);
    cr_assert_eq(FEED(d, peer, "abcdefg"), 0);
    /* Python 3.11: [('c', b'abc', 3), ('F', 0), ('c', b'defg', 0)] */
    cr_assert_str_eq(R.trace, "c:abc@3 F@0 c:defg@0");
    close(peer);
    finish(m);
}

static int found_rearm3(ac_dispatcher *d) { return ac_chat_set_terminator_count(d, 3); }

Test(chat, count_rearmed_in_found_terminator, .timeout = 5,
     .description = "C7 C11: a new count set by found_terminator applies to the bytes already "
                    "buffered")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.on_found = found_rearm3;
    cr_assert_eq(ac_chat_set_terminator_count(d, 3), 0);
    cr_assert_eq(FEED(d, peer, "abcdefgh"), 0);
    cr_assert_str_eq(R.trace, "c:abc F c:def F c:gh");
    close(peer);
    finish(m);
}

Test(chat, no_terminator_forms_collect_everything, .timeout = 5,
     .description = "C6a C3 X17: none, the empty string and count 0 pass the whole buffer on "
                    "and never call found_terminator; get_terminator tells them apart")
{
    ac_map *m = map_new();
    for (int kind = 0; kind < 3; kind++) {
        int peer;
        ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
        int rc = kind == 0   ? ac_chat_set_terminator_none(d)
                 : kind == 1 ? ac_chat_set_terminator(d, "", 0)
                             : ac_chat_set_terminator_count(d, 0);
        cr_assert_eq(rc, 0);
        trace_clear();
        cr_assert_eq(FEED(d, peer, "abc\n\r\n"), 0);
        cr_assert_eq(FEED(d, peer, "\0"), 0);
        cr_assert_str_eq(R.trace, "c:abc\\n\\r\\n c:\\0", "kind %d", kind);
        cr_assert_eq(ac_chat_get_terminator(d, NULL, NULL), kind == 0   ? AC_TERM_NONE
                                                            : kind == 1 ? AC_TERM_BYTES
                                                                        : AC_TERM_COUNT);
        close(peer);
    }
    cr_assert_eq(R.founds, 0);
    finish(m);
}

/* ============================================================ C8 */

Test(chat, empty_records_and_unjoined_pieces, .timeout = 5,
     .description = "C8 (CPython test_empty_line): empty records call found_terminator with no "
                    "collect; pieces from different reads are never joined")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "\n");
    cr_assert_eq(FEED(d, peer, "\n\n"), 0);
    cr_assert_str_eq(R.trace, "F F");
    cr_assert_eq(FEED(d, peer, "ab"), 0);
    cr_assert_eq(FEED(d, peer, "cd"), 0);
    cr_assert_eq(FEED(d, peer, "\nx"), 0);
    cr_assert_str_eq(R.trace, "F F c:ab c:cd F c:x");
    cr_assert_eq(R.nrecs, 3);
    cr_assert_str_eq(R.recs[0].p, "");
    cr_assert_str_eq(R.recs[2].p, "abcd");
    close(peer);
    finish(m);
}

/* =========================================================== C10 */

Test(chat, leftover_never_delivered_at_eof, .timeout = 5,
     .description = "C10 W14: at EOF a trailing partial terminator is never collected and an "
                    "unterminated record never announced")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "\r\n");
    PUT(peer, "abc\r");
    shutdown(peer, SHUT_WR);
    LOOP_UNTIL(m, R.finalized == 1, 2);
    cr_assert_str_eq(R.trace, "c:abc close");
    close(peer);

    d = chat_pair(m, &chat_h, &peer);
    trace_clear();
    cr_assert_eq(ac_chat_set_terminator_count(d, 10), 0);
    PUT(peer, "abc");
    shutdown(peer, SHUT_WR);
    LOOP_UNTIL(m, R.finalized == 2, 2);
    cr_assert_str_eq(R.trace, "c:abc close");
    cr_assert_eq(R.founds, 0);
    close(peer);
    finish(m);
}

Test(chat, held_prefix_resplit_under_new_terminator, .timeout = 5,
     .description = "C6 C10 C3: a held terminator prefix is split again with the terminator "
                    "set before the next read")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "\r\n");
    cr_assert_eq(FEED(d, peer, "ab\r"), 0);
    set_term(d, "x");
    cr_assert_eq(FEED(d, peer, "yx"), 0);
    cr_assert_str_eq(R.trace, "c:ab c:\\ry F");
    close(peer);
    finish(m);
}

/* =========================================================== C11 */

static int found_http(ac_dispatcher *d)
{
    /* A header ends with \r\n\r\n and announces a 4-byte body. */
    if (ac_chat_get_terminator(d, NULL, NULL) == AC_TERM_BYTES)
        return ac_chat_set_terminator_count(d, 4);
    return ac_chat_set_terminator(d, "\r\n\r\n", 4);
}

Test(chat, found_terminator_changes_the_terminator, .timeout = 5,
     .description = "C11 C6 C7: terminators switched by found_terminator apply at once to the "
                    "rest of the same read")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.on_found = found_http;
    set_term(d, "\r\n\r\n");
    cr_assert_eq(FEED(d, peer, "GET\r\n\r\nbodyHEAD\r\n\r\n12"), 0);
    cr_assert_str_eq(R.trace, "c:GET F c:body F c:HEAD F c:12");
    cr_assert_eq(FEED(d, peer, "34\r\n\r"), 0);
    cr_assert_str_eq(R.trace, "c:GET F c:body F c:HEAD F c:12 c:34 F",
                     "\\r\\n\\r may start the new terminator: held whole");
    cr_assert_eq(FEED(d, peer, "x"), 0);
    cr_assert_str_eq(R.trace, "c:GET F c:body F c:HEAD F c:12 c:34 F c:\\r\\n\\rx");
    close(peer);
    finish(m);
}

static int found_none(ac_dispatcher *d) { return ac_chat_set_terminator_none(d); }

Test(chat, found_terminator_sets_none, .timeout = 5,
     .description = "C11 C6a: after found_terminator sets none, the rest of the buffer is one "
                    "piece")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.on_found = found_none;
    set_term(d, "\n");
    cr_assert_eq(FEED(d, peer, "a\nb\nc"), 0);
    cr_assert_str_eq(R.trace, "c:a F c:b\\nc");
    close(peer);
    finish(m);
}

static int found_close(ac_dispatcher *d)
{
    if (!ac_is_closed(d)) {
        tr("closing");
        return ac_close(d);
    }
    tr("closed");
    return 0;
}

Test(chat, close_in_found_terminator_continues_the_loop, .timeout = 5,
     .description = "C11 S13: after found_terminator closes the channel, the loop goes on over "
                    "the bytes already read; the channel is finalized once")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.on_found = found_close;
    set_term(d, "\n");
    PUT(peer, "a\nb\nc");
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(R.trace, "c:a F closing c:b F closed c:c");
    cr_assert_eq(R.finalized, 1);
    cr_assert_eq(ac_map_count(m), 0);
    close(peer);
    finish(m);
}

static int found_push_ack(ac_dispatcher *d) { return ac_chat_push(d, "ack\n", 4); }

Test(chat, push_in_found_terminator_continues_the_loop, .timeout = 5,
     .description = "C11 C13: a push from found_terminator sends at once and the loop goes on")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.on_found = found_push_ack;
    set_term(d, "\n");
    cr_assert_eq(FEED(d, peer, "a\nb\nc"), 0);
    cr_assert_str_eq(R.trace, "c:a F c:b F c:c");
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_str_eq(out.p, "ack\nack\n");
    bytes_free(&out);
    close(peer);
    finish(m);
}

static int found_discard(ac_dispatcher *d)
{
    ac_chat_discard_buffers(d);
    return 0;
}

Test(chat, discard_buffers_in_found_terminator_ends_the_loop, .timeout = 5,
     .description = "C11 C21: discard_buffers empties the input buffer, so the records after "
                    "it in the same read are dropped; the terminator stays")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.on_found = found_discard;
    set_term(d, "\n");
    cr_assert_eq(FEED(d, peer, "a\nb\nc\n"), 0);
    cr_assert_str_eq(R.trace, "c:a F");
    cr_assert_eq(FEED(d, peer, "d\ne"), 0);
    cr_assert_str_eq(R.trace, "c:a F c:d F");
    close(peer);
    finish(m);
}

static int found_exit_once(ac_dispatcher *d)
{
    (void)d;
    return R.founds == 1 ? AC_EXIT_NOW : 0;
}

Test(chat, exit_request_keeps_the_rest_for_the_next_read, .timeout = 5,
     .description = "C11 L16 X3: found_terminator asking to leave the loop ends the iteration; "
                    "the records still buffered are split at the next read (as CPython)")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.on_found = found_exit_once;
    set_term(d, "\n");
    PUT(peer, "a\nb\nc\n");
    cr_assert_eq(ac_poll(m, 1.0), AC_EXIT_NOW);
    cr_assert_str_eq(R.trace, "c:a F");
    PUT(peer, "d\n");
    cr_assert_eq(ac_poll(m, 1.0), 0);
    /* Python 3.11: a F exit b F c F d F */
    cr_assert_str_eq(R.trace, "c:a F c:b F c:c F c:d F");
    close(peer);
    finish(m);
}

/* =========================================================== C12 */

static size_t fpae(const char *h, size_t hl, const char *n, size_t nl)
{
    return ac_find_prefix_at_end(h, hl, n, nl);
}

#define FPAE(h, n) fpae((h), sizeof(h) - 1, (n), sizeof(n) - 1)

Test(chat, find_prefix_at_end_examples, .timeout = 5,
     .description = "C12 (CPython test_find_prefix_at_end): the longest proper prefix of the "
                    "needle the haystack ends with")
{
    cr_assert_eq(FPAE("qwerty\r", "\r\n"), 1);
    cr_assert_eq(FPAE("qwertydkjf", "\r\n"), 0);
    cr_assert_eq(FPAE("xqq", "qqq"), 2);
    cr_assert_eq(FPAE("q", "qqq"), 1);
    cr_assert_eq(FPAE("aba", "abab"), 3);
    cr_assert_eq(FPAE("ab", "abab"), 2);
    cr_assert_eq(FPAE("a", "a"), 0, "a one-byte needle always gives 0");
    cr_assert_eq(FPAE("xyz\n", "\n"), 0);
    cr_assert_eq(FPAE("abc", ""), 0);
    cr_assert_eq(FPAE("", "\r\n"), 0);
    cr_assert_eq(FPAE("qqq", "qqq"), 2, "proper prefixes only");
    cr_assert_eq(FPAE("x\0", "\0\1"), 1, "NUL bytes are bytes");
    cr_assert_eq(FPAE("\0\0", "\0\0\0"), 2);
    cr_assert_eq(FPAE("\r\n.\r", "\r\n.\r\n"), 4);
    cr_assert_eq(FPAE("\r\n.\r\n\r", "\r\n.\r\n"), 1);
}

/* ========================================================== C13 */

Test(chat, push_cuts_large_data_into_entries, .timeout = 5,
     .description = "C13 C16 C24: a push longer than ac_out_buffer_size is queued as slices of "
                    "exactly that size, one entry each (one send each, even after the size grows)")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 0, 10), 0);
    ac_set_connected(d, false); /* C17: queue only */
    char data[35];
    for (int i = 0; i < 35; i++)
        data[i] = (char)('A' + i % 26);
    cr_assert_eq(ac_chat_push(d, data, 35), 0);
    cr_assert_eq(inq(peer), 0);
    cr_assert_eq(ac_chat_pending(d), 35);
    ac_set_connected(d, true);
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 0, 100), 0); /* read each time it is used */
    static const int sent[] = {10, 20, 30, 35};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(ac_initiate_send(d), 0);
        cr_assert_eq(inq(peer), sent[i], "send %d", i);
        cr_assert_eq(ac_chat_pending(d), (size_t)(35 - sent[i]));
    }
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_eq(out.len, 35);
    cr_assert_eq(memcmp(out.p, data, 35), 0);
    bytes_free(&out);
    close(peer);
    finish(m);
}

Test(chat, push_short_data_is_one_entry_sliced_at_send, .timeout = 5,
     .description = "C13 C16.3 C24: a push no longer than the size is one entry; a smaller "
                    "size at send time sends it in chunks of that size")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, "0123456789abcdefghijklmnopqrstuvwxy", 35), 0);
    ac_set_connected(d, true);
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 0, 10), 0);
    static const int sent[] = {10, 20, 30, 35, 35};
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(ac_initiate_send(d), 0);
        cr_assert_eq(inq(peer), sent[i], "send %d", i);
    }
    close(peer);
    finish(m);
}

Test(chat, empty_entry_ends_initiate_send, .timeout = 5,
     .description = "C13 C16.2 X18: an empty push is one entry; initiate_send removes it and "
                    "sends nothing else in that call")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, "", 0), 0);
    cr_assert_eq(ac_chat_push(d, NULL, 0), 0);
    cr_assert_eq(ac_chat_push(d, "abc", 3), 0);
    ac_set_connected(d, true);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 0, "the first empty entry ends the call");
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 0, "so does the second");
    cr_assert_eq(ac_chat_pending(d), 3);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 3);
    close(peer);
    finish(m);
}

Test(chat, push_copies_the_data, .timeout = 5,
     .description = "C13 X18: push copies; changing the caller's buffer afterwards does not "
                    "change what is sent (CPython test_push: any bytes-like buffer)")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    ac_set_connected(d, false);
    char stack[] = "stack\n";
    char *heap = strdup("heap\n");
    const char big[] = "..slice\n..";
    cr_assert_eq(ac_chat_push(d, stack, 6), 0);
    cr_assert_eq(ac_chat_push(d, heap, 5), 0);
    cr_assert_eq(ac_chat_push(d, big + 2, 6), 0);
    memset(stack, 'X', 6);
    memset(heap, 'X', 5);
    free(heap);
    ac_set_connected(d, true);
    LOOP_UNTIL(m, ac_chat_pending(d) == 0, 2);
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_str_eq(out.p, "stack\nheap\nslice\n");
    bytes_free(&out);
    close(peer);
    finish(m);
}

Test(chat, push_large_buffer_through_the_loop, .timeout = 20,
     .description = "C13 C16 C19 C24: 1 MiB pushed at once is 16 entries of 65536 bytes; the "
                    "write events send them in order, at most one entry per send")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_w, &peer);
    const size_t n = 1 << 20;
    char *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)(i * 131 + i / 65536);
    cr_assert_eq(ac_chat_push(d, data, n), 0);
    cr_assert_leq(inq(peer), AC_CHAT_BUFFER_SIZE, "one send of at most one entry");
    struct bytes out = {0};
    double end = now() + 15;
    while (out.len < n) {
        cr_assert(now() < end, "received %zu of %zu", out.len, n);
        size_t before = out.len;
        cr_assert_eq(ac_poll(m, 0.01), 0);
        int q = inq(peer);
        drain(peer, &out);
        cr_assert_leq(out.len - before, AC_CHAT_BUFFER_SIZE, "C16: one send per write event");
        (void)q;
    }
    cr_assert_eq(out.len, n);
    cr_assert_eq(memcmp(out.p, data, n), 0);
    cr_assert_geq(R.writes, 15, "16 entries, the first sent by push itself");
    cr_assert_eq(ac_chat_pending(d), 0);
    free(data);
    bytes_free(&out);
    close(peer);
    finish(m);
}

/* ================================================== C14, C16 */

Test(chat, producer_pieces_in_odd_sizes, .timeout = 5,
     .description = "C14 C16.4 X18: a producer's pieces of 1, 7, 13, 64 and 3 bytes go out in "
                    "order; the producer is asked once per piece and once more, then released")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    static const char p64[] = "0123456789012345678901234567890123456789012345678901234567890123";
    struct script s = {
        .name = "p",
        .pieces = (const char *const[]){"a", "bcdefgh", "ijklmnopqrstu", p64, "xyz", NULL}};
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&s)), 0);
    LOOP_UNTIL(m, s.releases == 1, 2);
    struct bytes out = {0};
    drain(peer, &out);
    char want[128];
    snprintf(want, sizeof(want), "abcdefghijklmnopqrstu%sxyz", p64);
    cr_assert_str_eq(out.p, want);
    cr_assert_eq(s.mores, 6);
    cr_assert_str_eq(R.trace, "p:more:1 p:more:7 p:more:13 p:more:64 p:more:3 p:more:0 "
                              "p:release");
    bytes_free(&out);
    close(peer);
    finish(m);
}

Test(chat, producer_piece_sliced_and_asked_only_at_head, .timeout = 5,
     .description = "C14 C16.3 C16.4: a piece longer than ac_out_buffer_size goes out in "
                    "slices; more() is called only when the previous piece has gone entirely")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 0, 4), 0);
    struct script s = {.name = "p", .pieces = (const char *const[]){"abcdefgh", "ij", NULL}};
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&s)), 0);
    cr_assert_eq(inq(peer), 4);
    cr_assert_str_eq(R.trace, "p:more:8");
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 8);
    cr_assert_str_eq(R.trace, "p:more:8", "no more() while the piece is unsent");
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 10);
    cr_assert_str_eq(R.trace, "p:more:8 p:more:2");
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_str_eq(R.trace, "p:more:8 p:more:2 p:more:0 p:release");
    cr_assert_eq(inq(peer), 10);
    close(peer);
    finish(m);
}

Test(chat, producer_empty_once_is_finished, .timeout = 5,
     .description = "C16.4: a producer that returns nothing once is removed, even if it could "
                    "produce more later; the next entry follows")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    struct script s = {.name = "p", .pieces = (const char *const[]){"", "late", NULL}};
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&s)), 0);
    cr_assert_str_eq(R.trace, "p:more:0 p:release");
    cr_assert_eq(ac_chat_push(d, "next", 4), 0);
    cr_assert_eq(inq(peer), 4);
    cr_assert_eq(s.mores, 1);
    close(peer);
    finish(m);
}

Test(chat, string_producer_is_one_unsplit_entry, .timeout = 5,
     .description = "C14 C16.3 (CPython test_string_producer): a producer giving one long "
                    "string is one entry; it is sent in ac_out_buffer_size chunks")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 0, 5), 0);
    struct script s = {.name = "p", .pieces = (const char *const[]){"hello world", NULL}};
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&s)), 0);
    cr_assert_eq(ac_chat_push(d, "!", 1), 0);
    cr_assert_str_empty(R.trace, "not connected: the producer is not asked");
    ac_set_connected(d, true);
    static const int sent[] = {5, 10, 11, 12};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(ac_initiate_send(d), 0);
        cr_assert_eq(inq(peer), sent[i], "send %d", i);
    }
    cr_assert_str_eq(R.trace, "p:more:11 p:more:0 p:release");
    close(peer);
    finish(m);
}

Test(chat, entries_never_interleave, .timeout = 5,
     .description = "C16: two producers, a push between them: each entry's data goes out "
                    "whole before the next one's")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    ac_set_connected(d, false);
    struct script a = {.name = "a", .pieces = (const char *const[]){"a1", "a2", "a3", NULL}};
    struct script b = {.name = "b", .pieces = (const char *const[]){"b1", "b2", NULL}};
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&a)), 0);
    cr_assert_eq(ac_chat_push(d, "--", 2), 0);
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&b)), 0);
    ac_set_connected(d, true);
    LOOP_UNTIL(m, b.releases == 1, 2);
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_str_eq(out.p, "a1a2a3--b1b2");
    cr_assert_str_eq(R.trace, "a:more:2 a:more:2 a:more:2 a:more:0 a:release b:more:2 "
                              "b:more:2 b:more:0 b:release");
    bytes_free(&out);
    close(peer);
    finish(m);
}

Test(chat, producer_failure_propagates, .timeout = 5,
     .description = "C16.4 X3: a failing more() propagates: push_with_producer returns it; in "
                    "the loop the guard gives it to handle_error")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    struct script s = {.name = "p", .fail = EIO};
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&s)), -EIO);
    cr_assert_str_eq(R.trace, "p:fail");
    cr_assert_eq(R.errors, 0);
    LOOP_UNTIL(m, R.finalized == 1, 2);
    cr_assert_str_eq(R.trace, "p:fail p:fail error:EIO close p:release");
    close(peer);
    finish(m);
}

Test(chat, one_send_per_initiate_send, .timeout = 5,
     .description = "C16: at most one send per initiate_send call; the call after the queue is "
                    "empty does nothing")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, "aa", 2), 0);
    cr_assert_eq(ac_chat_push(d, "bb", 2), 0);
    cr_assert_eq(ac_chat_push(d, "cc", 2), 0);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 0, "C17: nothing while not connected");
    ac_set_connected(d, true);
    static const int sent[] = {2, 4, 6, 6};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(ac_initiate_send(d), 0);
        cr_assert_eq(inq(peer), sent[i], "call %d", i);
        cr_assert_eq(ac_chat_pending(d), (size_t)(6 - sent[i]));
    }
    close(peer);
    finish(m);
}

Test(chat, send_failure_reaches_handle_error, .timeout = 5,
     .description = "C16.3 S10: a send failing with an errno outside the disconnected set "
                    "calls handle_error; push returns what handle_error returned")
{
    ac_map *m = map_new();
    int pfd[2];
    cr_assert_eq(pipe2(pfd, O_CLOEXEC | O_NONBLOCK), 0);
    ac_dispatcher *d = chat_new(m, &chat_h);
    cr_assert_eq(ac_set_socket(d, pfd[1]), 0); /* sendmsg(2) on a pipe: ENOTSOCK */
    ac_set_connected(d, true);
    R.keep_open = true;
    cr_assert_eq(ac_chat_push(d, "x", 1), 0);
    cr_assert_str_eq(R.trace, "error:ENOTSOCK");
    cr_assert_str_eq(R.last_op, "send");
    cr_assert_eq(ac_chat_pending(d), 1, "the entry stays queued");
    close(pfd[0]);
    finish(m);
}

Test(chat, send_to_a_closed_peer_closes, .timeout = 5,
     .description = "C16 S10 L15 X12: EPIPE is in the disconnected set: handle_close runs, "
                    "push returns 0, and no SIGPIPE kills the process")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    close(peer);
    cr_assert_eq(ac_chat_push(d, "x", 1), 0);
    cr_assert_str_eq(R.trace, "close");
    cr_assert(ac_is_closed(d));
    finish(m);
}

/* ========================================================== C15 */

Test(chat, close_when_done_waits_for_initiate_send, .timeout = 5,
     .description = "C15 C18 C19: close_when_done does not call initiate_send; the queued "
                    "marker makes the channel writable and the next write event closes it")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_w, &peer);
    cr_assert_eq(ac_close_when_done(d), 0);
    cr_assert_str_empty(R.trace);
    cr_assert_not(ac_is_closed(d));
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(R.trace, "close w0");
    cr_assert_eq(R.finalized, 1);
    char c;
    cr_assert_eq(read(peer, &c, 1), 0, "the peer sees EOF");
    close(peer);
    finish(m);
}

Test(chat, close_when_done_with_producers_still_queued, .timeout = 5,
     .description = "C15 C16 X18: everything queued before the marker is sent, producers "
                    "included; entries after it are never sent nor asked, only released")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    ac_set_connected(d, false);
    struct script a = {.name = "a", .pieces = (const char *const[]){"b", "cd", NULL}};
    struct script z = {.name = "z", .pieces = (const char *const[]){"never", NULL}};
    cr_assert_eq(ac_chat_push(d, "a", 1), 0);
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&a)), 0);
    cr_assert_eq(ac_close_when_done(d), 0);
    cr_assert_eq(ac_chat_push(d, "after", 5), 0);
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&z)), 0);
    ac_set_connected(d, true);
    LOOP_UNTIL(m, R.finalized == 1, 2);
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_str_eq(out.p, "abcd");
    cr_assert_str_eq(R.trace, "a:more:1 a:more:2 a:more:0 a:release close z:release");
    cr_assert_eq(z.mores, 0);
    bytes_free(&out);
    close(peer);
    finish(m);
}

Test(chat, push_after_the_marker_closes, .timeout = 5,
     .description = "C15 C13: the push after close_when_done runs initiate_send, which meets "
                    "the marker first: the channel closes and the pushed data is not sent")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    cr_assert_eq(ac_close_when_done(d), 0);
    cr_assert_eq(ac_chat_push(d, "x", 1), 0);
    cr_assert_str_eq(R.trace, "close");
    cr_assert(ac_is_closed(d));
    char c;
    cr_assert_eq(read(peer, &c, 1), 0);
    close(peer);
    finish(m);
}

/* ================================================== C17, C23 */

Test(chat, pushes_before_connect_leave_after_it, .timeout = 10,
     .description = "C17 C23 D8 C19: pushes while connecting and inside handle_connect only "
                    "queue; the same write event's handle_write sends them")
{
    ac_map *m = map_new();
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, alen), 0);
    cr_assert_eq(listen(lfd, 4), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);

    ac_dispatcher *d = chat_new(m, &chat_w);
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    set_term(d, "\n");
    cr_assert_eq(ac_connect(d, (struct sockaddr *)&a, alen), 0);
    int srv = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(srv, 0);
    bool in_progress = R.connects == 0; /* the usual case for TCP, even on loopback */
    cr_assert_eq(ac_chat_push(d, "early\n", 6), 0);
    if (in_progress) {
        cr_assert(ac_is_connecting(d));
        cr_assert_not(ac_is_connected(d));
        cr_assert_eq(ac_chat_pending(d), 6, "C17: queued while connecting");
        LOOP_UNTIL(m, R.writes > 0, 5);
        cr_assert_str_eq(R.trace, "connect:01 w0", "handle_connect, then handle_write");
    } else {
        cr_assert_str_eq(R.trace, "connect:01", "completed inside ac_connect (S7)");
        cr_assert_eq(ac_chat_pending(d), 0, "connected: the push sent at once");
    }
    cr_assert_eq(R.connects, 1);
    cr_assert(ac_is_connected(d));
    struct bytes out = {0};
    double end = now() + 5;
    while (out.len < 6 && now() < end) {
        struct pollfd p = {.fd = srv, .events = POLLIN};
        poll(&p, 1, 50);
        drain(srv, &out);
    }
    cr_assert_str_eq(out.p, "early\n");
    bytes_free(&out);
    close(srv);
    close(lfd);
    finish(m);
}

static int connect_pushes(ac_dispatcher *d)
{
    tr("connect:%d%d", ac_is_connected(d), ac_is_connecting(d));
    cr_assert_eq(ac_chat_push(d, "hello\n", 6), 0);
    tr("pending:%zu", ac_chat_pending(d));
    return 0;
}

Test(chat, push_inside_handle_connect_queues, .timeout = 10,
     .description = "C23 D8 C17: handle_connect runs before connected is set, so its push "
                    "queues; handle_write of the same event sends it")
{
    ac_map *m = map_new();
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, alen), 0);
    cr_assert_eq(listen(lfd, 4), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    static const ac_handlers h = {
        .collect_incoming_data = h_collect,
        .found_terminator = h_found,
        .handle_write = h_write,
        .handle_connect = connect_pushes,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = h_finalize,
    };
    ac_dispatcher *d = chat_new(m, &h);
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    set_term(d, "\n");
    cr_assert_eq(ac_connect(d, (struct sockaddr *)&a, alen), 0);
    int srv = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(srv, 0);
    if (strstr(R.trace, "connect") == NULL) {
        LOOP_UNTIL(m, R.writes > 0, 5);
        cr_assert_str_eq(R.trace, "connect:01 pending:6 w0");
    } else {
        /* Completed inside ac_connect (D8 via S7): queued; the first write event sends. */
        cr_assert_str_eq(R.trace, "connect:01 pending:6");
        LOOP_UNTIL(m, R.writes > 0, 5);
        cr_assert_str_eq(R.trace, "connect:01 pending:6 w0");
    }
    struct bytes out = {0};
    double end = now() + 5;
    while (out.len < 6 && now() < end) {
        struct pollfd p = {.fd = srv, .events = POLLIN};
        poll(&p, 1, 50);
        drain(srv, &out);
    }
    cr_assert_str_eq(out.p, "hello\n");
    bytes_free(&out);
    close(srv);
    close(lfd);
    finish(m);
}

/* ========================================================== C18 */

Test(chat, interest_follows_queue_and_connection, .timeout = 5,
     .description = "C18 C19 X7: writable only when the queue is non-empty or not connected; "
                    "readable always (also with output queued)")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_w, &peer);
    set_term(d, "\n");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_eq(R.writes, 0, "connected, empty queue: not writable");
    ac_set_connected(d, false);
    cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_eq(R.writes, 1, "not connected: writable");
    cr_assert_eq(ac_chat_push(d, "abc", 3), 0);
    cr_assert_eq(inq(peer), 0);
    ac_set_connected(d, true);
    cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_eq(R.writes, 2);
    cr_assert_eq(inq(peer), 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_eq(R.writes, 2, "queue drained: not writable again");
    cr_assert_str_eq(R.trace, "w0 w0");

    /* Readable with output waiting: queue without sending, then data arrives. */
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, "q", 1), 0);
    PUT(peer, "x\n");
    cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_str_eq(R.trace, "w0 w0 c:x F w1");
    close(peer);
    finish(m);
}

/* ========================================================== C20 */

static int plain_read(ac_dispatcher *d)
{
    char buf[16];
    ssize_t n = ac_recv(d, buf, sizeof(buf));
    return n < 0 ? (int)n : 0;
}

Test(chat, handle_close_logs_nothing, .timeout = 5,
     .description = "C20 D18 D22: the chat channel's handle_close only closes: no 'unhandled "
                    "close event' line even with nothing ignored (a plain dispatcher logs one)")
{
    static const char *const nothing[] = {NULL};
    ac_map *m = map_new();
    static const ac_handlers bare = {
        .collect_incoming_data = h_collect,
        .found_terminator = h_found,
        .finalize = h_finalize,
    };
    int peer;
    ac_dispatcher *d = chat_pair(m, &bare, &peer);
    ac_set_ignore_log_types(d, nothing);
    set_term(d, "\n");
    PUT(peer, "a\nb");
    shutdown(peer, SHUT_WR);
    LOOP_UNTIL(m, R.finalized == 1, 2);
    cr_assert_str_eq(R.trace, "c:a F c:b");
    cr_assert_eq(R.log_lines, 0, "%s", R.log);
    close(peer);

    /* The contrast: asyncore's default handle_close (D18) does log. */
    static const ac_handlers plain = {.handle_read = plain_read, .finalize = h_finalize};
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ac_dispatcher *p = ac_dispatcher_new(m, &plain, NULL);
    R.created++;
    cr_assert_eq(ac_attach(p, sv[0]), 0);
    ac_set_ignore_log_types(p, nothing);
    close(sv[1]);
    LOOP_UNTIL(m, R.finalized == 2, 2);
    cr_assert(strncmp(R.log, "warning: unhandled close event\n", 31) == 0, "%s", R.log);
    finish(m);
}

Test(chat, chat_handle_close_is_callable, .timeout = 5,
     .description = "C20 X2: ac_chat_handle_close closes the channel, and again harmlessly")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    cr_assert_eq(ac_chat_handle_close(d), 0);
    cr_assert(ac_is_closed(d));
    cr_assert_eq(ac_fd(d), -1);
    cr_assert_eq(ac_chat_handle_close(d), 0);
    cr_assert_eq(R.log_lines, 0);
    close(peer);
    finish(m);
}

/* ========================================================== C21 */

Test(chat, discard_buffers_empties_everything, .timeout = 5,
     .description = "C21 X18: discard_buffers drops the held input, incoming, the queued "
                    "entries, producers and the close marker; terminator and state stay")
{
    ac_map *m = map_new();
    static const ac_handlers h = {
        .collect_incoming_data = ac_chat_collect_incoming_data,
        .found_terminator = h_found,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = h_finalize,
    };
    int peer;
    ac_dispatcher *d = chat_pair(m, &h, &peer);
    set_term(d, "\r\n");
    cr_assert_eq(FEED(d, peer, "ab\r"), 0); /* incoming "ab", "\r" held */
    ac_set_connected(d, false);
    struct script s = {.name = "p", .pieces = (const char *const[]){"never", NULL}};
    cr_assert_eq(ac_chat_push(d, "queued", 6), 0);
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&s)), 0);
    cr_assert_eq(ac_close_when_done(d), 0);
    ac_chat_discard_buffers(d);
    cr_assert_str_eq(R.trace, "p:release");
    cr_assert_eq(ac_chat_pending(d), 0);
    size_t len = 99;
    char *data = ac_chat_get_data(d, &len);
    cr_assert_eq(len, 0);
    free(data);
    cr_assert_not(ac_is_connected(d), "connection state untouched");
    ac_set_connected(d, true);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_not(ac_is_closed(d), "the close marker is gone");
    cr_assert_eq(inq(peer), 0);
    /* The held \r is gone: \n alone is no terminator now. */
    cr_assert_eq(FEED(d, peer, "\nx\r\n"), 0);
    cr_assert_str_eq(R.trace, "p:release F");
    data = ac_chat_get_data(d, &len);
    cr_assert_eq(len, 2);
    cr_assert_str_eq(data, "\nx", "with the \r still held this would be \"x\"");
    free(data);
    const void *t;
    cr_assert_eq(ac_chat_get_terminator(d, &t, &len), AC_TERM_BYTES);
    cr_assert_eq(len, 2);
    close(peer);
    finish(m);
}

Test(chat, discard_buffers_mid_stream, .timeout = 5,
     .description = "C21 C16 X18: discarding while a producer streams releases it at once; "
                    "later pushes go out normally")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 0, 2), 0);
    struct script s = {.name = "p", .pieces = (const char *const[]){"abcdef", "gh", NULL}};
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&s)), 0);
    cr_assert_eq(inq(peer), 2);
    ac_chat_discard_buffers(d);
    cr_assert_str_eq(R.trace, "p:more:6 p:release");
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 2);
    cr_assert_eq(ac_chat_push(d, "zz", 2), 0);
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_str_eq(out.p, "abzz");
    bytes_free(&out);
    close(peer);
    finish(m);
}

/* ========================================================== C22 */

static void expect_pieces(ac_producer *p, const char *const *want)
{
    for (int i = 0; want[i]; i++) {
        const void *data = NULL;
        ssize_t n = ac_producer_more(p, &data);
        cr_assert_eq(n, (ssize_t)strlen(want[i]), "piece %d", i);
        cr_assert_eq(memcmp(data, want[i], (size_t)n), 0, "piece %d", i);
    }
}

Test(chat, simple_producer_pieces, .timeout = 5,
     .description = "C22: buffer_size pieces while more than that remains, then the rest, then "
                    "empty forever; buffer_size 0 means 512; the data is copied")
{
    char src[] = "abcdefghij";
    ac_producer *p = ac_simple_producer_new(src, 10, 4);
    cr_assert_not_null(p);
    memset(src, 'X', 10);
    expect_pieces(p, (const char *const[]){"abcd", "efgh", "ij", "", "", NULL});
    ac_producer_free(p);

    p = ac_simple_producer_new("abcd", 4, 4);
    expect_pieces(p, (const char *const[]){"abcd", "", NULL});
    ac_producer_free(p);

    p = ac_simple_producer_new("", 0, 4);
    expect_pieces(p, (const char *const[]){"", NULL});
    ac_producer_free(p);

    char big[1000];
    memset(big, 'b', sizeof(big));
    p = ac_simple_producer_new(big, sizeof(big), 0);
    const void *data;
    cr_assert_eq(ac_producer_more(p, &data), 512);
    cr_assert_eq(ac_producer_more(p, &data), 488);
    cr_assert_eq(ac_producer_more(p, &data), 0);
    ac_producer_free(p);
    ac_producer_free(NULL);
}

Test(chat, simple_producer_through_a_channel, .timeout = 5,
     .description = "C22 C14 C16.4: a simple_producer of 8-byte pieces streams its data whole "
                    "through the channel")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    static const char text[] = "hello world\nI'm not dead yet!\n";
    cr_assert_eq(ac_chat_push_with_producer(d, ac_simple_producer_new(text, 30, 8)), 0);
    cr_assert_eq(inq(peer), 8, "one piece per send");
    LOOP_UNTIL(m, inq(peer) == 30, 2);
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_str_eq(out.p, text);
    bytes_free(&out);
    close(peer);
    finish(m);
}

/* ------------------------------------------------------ file producer */

static int temp_file(size_t n, char **content)
{
    char path[] = "/tmp/ac-chat-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    char *c = malloc(n);
    for (size_t i = 0; i < n; i++)
        c[i] = (char)(i % 251);
    cr_assert_eq(write(fd, c, n), (ssize_t)n);
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    *content = c;
    return fd;
}

Test(chat, file_producer_pieces, .timeout = 5,
     .description = "X18 C14: the file producer reads buffer_size pieces until EOF, then 0; "
                    "close_fd decides who closes the descriptor")
{
    char *content;
    int fd = temp_file(100003, &content);
    ac_producer *p = ac_file_producer_new(fd, 4096, true);
    cr_assert_not_null(p);
    size_t total = 0;
    int pieces = 0;
    for (;;) {
        const void *data;
        ssize_t n = ac_producer_more(p, &data);
        cr_assert_geq(n, 0);
        if (n == 0)
            break;
        cr_assert_eq(n, total + 4096 <= 100003 ? 4096 : 100003 % 4096);
        cr_assert_eq(memcmp(data, content + total, (size_t)n), 0);
        total += (size_t)n;
        pieces++;
    }
    cr_assert_eq(total, 100003);
    cr_assert_eq(pieces, 25);
    ac_producer_free(p);
    cr_assert_eq(fcntl(fd, F_GETFD), -1, "close_fd: closed on release");

    free(content);
    fd = temp_file(10, &content);
    p = ac_file_producer_new(fd, 0, false);
    const void *data;
    cr_assert_eq(ac_producer_more(p, &data), 10);
    ac_producer_free(p);
    cr_assert_neq(fcntl(fd, F_GETFD), -1, "not close_fd: still open");
    close(fd);
    free(content);
}

Test(chat, file_producer_through_a_channel, .timeout = 10,
     .description = "X18 C14 C16.4: a temp file streamed through a chat channel arrives whole; "
                    "the producer is released (its fd closed) when it is done")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    char *content;
    const size_t n = 300001;
    int fd = temp_file(n, &content);
    cr_assert_eq(ac_chat_push_with_producer(d, ac_file_producer_new(fd, 0, true)), 0);
    cr_assert_eq(ac_chat_push(d, "END", 3), 0);
    struct bytes out = {0};
    double end = now() + 8;
    while (out.len < n + 3) {
        cr_assert(now() < end, "received %zu", out.len);
        cr_assert_eq(ac_poll(m, 0.01), 0);
        drain(peer, &out);
    }
    cr_assert_eq(out.len, n + 3);
    cr_assert_eq(memcmp(out.p, content, n), 0);
    cr_assert_eq(memcmp(out.p + n, "END", 3), 0);
    cr_assert_eq(fcntl(fd, F_GETFD), -1);
    free(content);
    bytes_free(&out);
    close(peer);
    finish(m);
}

/* ========================================================== C24 */

Test(chat, in_buffer_size_bounds_each_recv, .timeout = 5,
     .description = "C24 C5 C8: ac_in_buffer_size bounds each recv: 12 bytes with size 5 are "
                    "three reads, three pieces, one per read event")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 5, 0), 0);
    cr_assert_eq(ac_chat_set_terminator_none(d), 0);
    PUT(peer, "abcdefghijkl");
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(R.trace, "c:abcde");
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(R.trace, "c:abcde c:fghij c:kl");
    cr_assert_eq(inq(ac_fd(d)), 0);
    close(peer);
    finish(m);
}

/* ======================================== extension: bounded input */

Test(chat_ext, max_input_bounds_a_record, .timeout = 5,
     .description = "W3 ext: max_input bytes may be collected for one record; one more is "
                    "EMSGSIZE (op max_input) to handle_error, whose default closes")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "\n");
    cr_assert_eq(ac_chat_set_max_input(d, 10), 0);
    PUT(peer, "0123456789\n0123456789A");
    LOOP_UNTIL(m, R.finalized == 1, 2);
    cr_assert_str_eq(R.trace, "c:0123456789 F error:EMSGSIZE close");
    cr_assert_str_eq(R.last_op, "max_input");
    cr_assert_eq(R.nrecs, 1);
    cr_assert_eq(R.cur.len, 0, "the piece over the bound is not collected");
    close(peer);
    finish(m);
}

Test(chat_ext, max_input_across_reads_stops_reading, .timeout = 5,
     .description = "W3 ext: the bound counts every piece since the last found_terminator; "
                    "past it the input is discarded and reading stops")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.keep_open = true;
    set_term(d, "\n");
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 4, 0), 0);
    cr_assert_eq(ac_chat_set_max_input(d, 10), 0);
    PUT(peer, "abcdefghijk\nzz\n");
    for (int i = 0; i < 6; i++)
        cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_str_eq(R.trace, "c:abcd c:efgh error:EMSGSIZE");
    cr_assert_eq(inq(ac_fd(d)), 3, "zz\\n: nothing read after the failure");
    PUT(peer, "more\n");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_str_eq(R.trace, "c:abcd c:efgh error:EMSGSIZE");
    cr_assert_eq(inq(ac_fd(d)), 8);
    close(peer);
    finish(m);
}

Test(chat_ext, max_input_is_per_record, .timeout = 5,
     .description = "W3 ext: records each within the bound pass, whatever their total; a count "
                    "terminator is bounded the same way")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "\n");
    cr_assert_eq(ac_chat_set_max_input(d, 3), 0);
    cr_assert_eq(FEED(d, peer, "abc\ndef\n\nghi\nj"), 0);
    cr_assert_str_eq(R.trace, "c:abc F c:def F F c:ghi F c:j");
    cr_assert_eq(ac_chat_set_terminator_count(d, 100), 0);
    cr_assert_eq(FEED(d, peer, "kl"), 0);
    cr_assert_eq(FEED(d, peer, "m"), -EMSGSIZE, "no guard here: the failure is returned");
    cr_assert_str_eq(R.trace, "c:abc F c:def F F c:ghi F c:j c:kl");
    close(peer);
    finish(m);
}

Test(chat_ext, max_input_bounds_memory_against_a_flood, .timeout = 10,
     .description = "W3 W14 ext: a peer sending 4 MiB without a terminator is cut off after "
                    "the bound; nothing over it is collected; one handle_error")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.quiet = true;
    set_term(d, "\r\n");
    cr_assert_eq(ac_chat_set_max_input(d, 4096), 0);
    char *chunk = malloc(65536);
    memset(chunk, 'x', 65536);
    size_t sent = 0;
    double end = now() + 8;
    while (R.finalized == 0) {
        cr_assert(now() < end);
        if (sent < (4u << 20)) {
            ssize_t n = send(peer, chunk, 65536, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
        }
        cr_assert_eq(ac_poll(m, 0.01), 0);
    }
    cr_assert_eq(R.errors, 1);
    cr_assert_eq(R.last_err, EMSGSIZE);
    cr_assert_eq(R.collects, 0, "the first 64 KiB read is over the bound already");
    cr_assert_eq(R.closes, 1);
    free(chunk);
    close(peer);
    finish(m);
}

static int error_reply_and_close(ac_dispatcher *d, const ac_error *e)
{
    R.errors++;
    tr("error:%s", ac_errno_name(e->err));
    cr_assert_eq(ac_chat_push(d, "ERR\n", 4), 0);
    return ac_close_when_done(d);
}

Test(chat_ext, max_input_stop_survives_the_low_mark, .timeout = 5,
     .description = "W3 ext: after EMSGSIZE reading stays stopped while handle_error replies "
                    "and close_when_done drains, even when the reply crosses the water marks")
{
    ac_map *m = map_new();
    static const ac_handlers h = {
        .collect_incoming_data = h_collect,
        .found_terminator = h_found,
        .handle_close = h_close,
        .handle_error = error_reply_and_close,
        .handle_high_water = h_high,
        .handle_low_water = h_low,
        .finalize = h_finalize,
    };
    int peer;
    ac_dispatcher *d = chat_pair(m, &h, &peer);
    set_term(d, "\n");
    cr_assert_eq(ac_chat_set_max_input(d, 4), 0);
    cr_assert_eq(ac_chat_set_watermarks(d, 0, 3), 0);
    PUT(peer, "abcdefgh\n");
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(R.trace, "error:EMSGSIZE high:4 low:0");
    PUT(peer, "xy\n"); /* must not be read: the channel said it stops reading */
    LOOP_UNTIL(m, R.finalized == 1, 2);
    cr_assert_str_eq(R.trace, "error:EMSGSIZE high:4 low:0 close");
    cr_assert_eq(R.collects, 0);
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_str_eq(out.p, "ERR\n");
    bytes_free(&out);
    close(peer);
    finish(m);
}

Test(chat_ext, max_input_zero_is_unbounded, .timeout = 5,
     .description = "C24 W3 ext: max_input 0 (the default) collects any amount, as asyncore")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.quiet = true;
    set_term(d, "\n");
    cr_assert_eq(ac_chat_set_max_input(d, 5), 0);
    cr_assert_eq(ac_chat_set_max_input(d, 0), 0);
    char buf[50000];
    memset(buf, 'y', sizeof(buf));
    for (int i = 0; i < 4; i++)
        cr_assert_eq(feed(d, peer, buf, sizeof(buf)), 0);
    cr_assert_eq(R.cur.len, 200000);
    cr_assert_eq(R.errors, 0);
    close(peer);
    finish(m);
}

/* ========================================= extension: backpressure */

Test(chat_ext, watermarks_pause_and_resume_reading, .timeout = 5,
     .description = "ext (backpressure): above the high mark handle_high_water runs and "
                    "reading stops; at the low mark handle_low_water runs and reading resumes")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_w, &peer);
    set_term(d, "\n");
    cr_assert_eq(ac_chat_set_watermarks(d, 100, 1000), 0);
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 0, 500), 0);
    char data[2000];
    memset(data, 'd', sizeof(data));
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, data, sizeof(data)), 0);
    cr_assert_str_eq(R.trace, "high:2000");
    ac_set_connected(d, true);
    PUT(peer, "hello\n");
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_str_eq(R.trace, "high:2000 w1500 w1000 w500 low:0 w0 c:hello F");
    cr_assert_eq(inq(peer), 2000);
    cr_assert_eq(R.highs, 1);
    cr_assert_eq(R.lows, 1);
    close(peer);
    finish(m);
}

Test(chat_ext, watermarks_below_high_do_nothing, .timeout = 5,
     .description = "ext (backpressure): a queue that never passes the high mark calls "
                    "neither handler; high 0 turns the marks off")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_w, &peer);
    cr_assert_eq(ac_chat_set_watermarks(d, 10, 1000), 0);
    ac_set_connected(d, false);
    char data[3000];
    memset(data, 'd', sizeof(data));
    cr_assert_eq(ac_chat_push(d, data, 1000), 0);
    cr_assert_eq(R.highs, 0, "1000 is not above 1000");
    cr_assert_eq(ac_chat_set_watermarks(d, 0, 0), 0);
    cr_assert_eq(ac_chat_push(d, data, 3000), 0);
    ac_set_connected(d, true);
    LOOP_UNTIL(m, ac_chat_pending(d) == 0, 2);
    cr_assert_eq(R.highs, 0);
    cr_assert_eq(R.lows, 0);
    cr_assert_eq(inq(peer), 4000);
    close(peer);
    finish(m);
}

Test(chat_ext, turning_watermarks_off_resumes_reading, .timeout = 5,
     .description = "ext (backpressure): set_watermarks(0, 0) while reading is paused above "
                    "the high mark turns backpressure off: reading resumes")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_w, &peer);
    set_term(d, "\n");
    cr_assert_eq(ac_chat_set_watermarks(d, 100, 1000), 0);
    char data[2000];
    memset(data, 'd', sizeof(data));
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, data, sizeof(data)), 0);
    cr_assert_str_eq(R.trace, "high:2000");
    cr_assert_eq(ac_chat_set_watermarks(d, 0, 0), 0);
    ac_set_connected(d, true);
    PUT(peer, "in\n");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ac_poll(m, 0), 0);
    /* One iteration reads (marks off: nothing holds reading back), then writes. */
    cr_assert_str_eq(R.trace, "high:2000 c:in F w0");
    close(peer);
    finish(m);
}

Test(chat_ext, discard_buffers_reaches_the_low_mark, .timeout = 5,
     .description = "C21 ext (backpressure): emptying the queue with discard_buffers runs "
                    "handle_low_water and resumes reading")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_w, &peer);
    set_term(d, "\n");
    cr_assert_eq(ac_chat_set_watermarks(d, 0, 10), 0);
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, "0123456789ab", 12), 0);
    PUT(peer, "in\n");
    ac_set_connected(d, true);
    ac_chat_discard_buffers(d);
    cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_str_eq(R.trace, "high:12 low:0 c:in F");
    cr_assert_eq(inq(peer), 0);
    close(peer);
    finish(m);
}

/* ============================ CPython test_asynchat.py, rewritten */

/* CPython's echo_server thread, driven from the test instead: it reads
 * until QUIT\n, drops every QUIT\n, then sends the rest back in pieces of
 * chunk bytes and closes.  The client is CPython's echo_client: a chat
 * channel over TCP that pushes right after connect (C17), collects into a
 * buffer and appends it to contents at each terminator. */
#define SERVER_QUIT "QUIT\n"

struct echo {
    int lfd, conn;
    struct bytes got;
};

static ac_dispatcher *echo_start(ac_map *m, struct echo *s)
{
    memset(s, 0, sizeof(*s));
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, alen), 0);
    cr_assert_eq(listen(s->lfd, 4), 0);
    cr_assert_eq(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
    ac_dispatcher *c = chat_new(m, &chat_h);
    cr_assert_eq(ac_create_socket(c, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&a, alen), 0);
    s->conn = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    cr_assert_geq(s->conn, 0);
    int on = 1;
    setsockopt(s->conn, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    return c;
}

/* Run the loop until the server has read QUIT\n (or EOF); drop the QUITs. */
static void echo_collect(ac_map *m, struct echo *s)
{
    double end = now() + 5;
    while (!s->got.p || !strstr(s->got.p, SERVER_QUIT)) {
        cr_assert(now() < end, "the server never got QUIT: '%s'", s->got.p ? s->got.p : "");
        if (ac_map_count(m))
            cr_assert_eq(ac_poll(m, 0.01), 0);
        char buf[4096];
        ssize_t n = recv(s->conn, buf, sizeof(buf), 0);
        if (n == 0)
            break;
        if (n > 0)
            bytes_add(&s->got, buf, (size_t)n);
    }
    char *q;
    while (s->got.p && (q = strstr(s->got.p, SERVER_QUIT))) {
        memmove(q, q + 5, strlen(q + 5) + 1);
        s->got.len -= 5;
    }
}

/* Send the data back chunk bytes at a time, letting the client read each
 * piece on its own; then close and let the client see EOF. */
static void echo_back(ac_map *m, struct echo *s, int cfd, size_t chunk)
{
    for (size_t off = 0; off < s->got.len; off += chunk) {
        size_t n = s->got.len - off < chunk ? s->got.len - off : chunk;
        cr_assert_eq(send(s->conn, s->got.p + off, n, MSG_NOSIGNAL), (ssize_t)n);
        struct pollfd p = {.fd = cfd, .events = POLLIN};
        poll(&p, 1, 200);
        while (ac_map_count(m) && inq(cfd) > 0)
            cr_assert_eq(ac_poll(m, 0), 0);
    }
    close(s->conn);
    close(s->lfd);
    cr_assert_eq(ac_loop(m, 0.01, 300), 0);
    cr_assert_eq(ac_map_count(m), 0, "the client closed at EOF");
}

static void check_contents(const char *const *want)
{
    int n = 0;
    while (want[n])
        n++;
    cr_assert_eq(R.nrecs, n, "contents has %d records, want %d (trace %s)", R.nrecs, n, R.trace);
    for (int i = 0; i < n; i++)
        cr_assert_str_eq(R.recs[i].p ? R.recs[i].p : "", want[i], "record %d", i);
}

static void line_terminator_check(const char *term, size_t chunk)
{
    ac_map *m = map_new();
    R.quiet = true;
    struct echo s;
    ac_dispatcher *c = echo_start(m, &s);
    set_term(c, term);
    char buf[64];
    cr_assert_eq(ac_chat_push(c, "hello ", 6), 0);
    snprintf(buf, sizeof(buf), "world%s", term);
    cr_assert_eq(ac_chat_push(c, buf, strlen(buf)), 0);
    snprintf(buf, sizeof(buf), "I'm not dead yet!%s", term);
    cr_assert_eq(ac_chat_push(c, buf, strlen(buf)), 0);
    cr_assert_eq(ac_chat_push(c, SERVER_QUIT, 5), 0);
    int cfd = ac_fd(c);
    echo_collect(m, &s);
    echo_back(m, &s, cfd, chunk);
    check_contents((const char *const[]){"hello world", "I'm not dead yet!", NULL});
    bytes_free(&s.got);
    finish(m);
}

Test(chat_cpython, line_terminator1, .timeout = 20,
     .description = "C6c C17 (test_line_terminator1): terminator \\n, echoed back 1, 2 and 3 "
                    "bytes at a time")
{
    for (size_t l = 1; l <= 3; l++)
        line_terminator_check("\n", l);
}

Test(chat_cpython, line_terminator2, .timeout = 20,
     .description = "C6c C12 (test_line_terminator2): terminator \\r\\n, echoed back 1, 2 and 3 "
                    "bytes at a time")
{
    for (size_t l = 1; l <= 3; l++)
        line_terminator_check("\r\n", l);
}

Test(chat_cpython, line_terminator3, .timeout = 20,
     .description = "C6c C12 (test_line_terminator3): terminator qqq, echoed back 1, 2 and 3 "
                    "bytes at a time")
{
    for (size_t l = 1; l <= 3; l++)
        line_terminator_check("qqq", l);
}

static void numeric_terminator_check(long long termlen)
{
    ac_map *m = map_new();
    R.quiet = true;
    struct echo s;
    ac_dispatcher *c = echo_start(m, &s);
    cr_assert_eq(ac_chat_set_terminator_count(c, termlen), 0);
    static const char data[] = "hello world, I'm not dead yet!\n";
    cr_assert_eq(ac_chat_push(c, data, sizeof(data) - 1), 0);
    cr_assert_eq(ac_chat_push(c, SERVER_QUIT, 5), 0);
    int cfd = ac_fd(c);
    echo_collect(m, &s);
    echo_back(m, &s, cfd, 1);
    cr_assert_eq(R.nrecs, 1);
    cr_assert_eq(R.recs[0].len, (size_t)termlen);
    cr_assert_eq(memcmp(R.recs[0].p, data, (size_t)termlen), 0);
    cr_assert_str_eq(R.cur.p, data + termlen, "C7: the rest is collected, never found");
    bytes_free(&s.got);
    finish(m);
}

Test(chat_cpython, numeric_terminator1, .timeout = 10,
     .description = "C6b C7 (test_numeric_terminator1): count 1")
{
    numeric_terminator_check(1);
}

Test(chat_cpython, numeric_terminator2, .timeout = 10,
     .description = "C6b C7 (test_numeric_terminator2): count 6")
{
    numeric_terminator_check(6);
}

Test(chat_cpython, none_terminator, .timeout = 10,
     .description = "C6a (test_none_terminator): everything is collected, contents stays empty")
{
    ac_map *m = map_new();
    R.quiet = true;
    struct echo s;
    ac_dispatcher *c = echo_start(m, &s);
    cr_assert_eq(ac_chat_set_terminator_none(c), 0);
    static const char data[] = "hello world, I'm not dead yet!\n";
    cr_assert_eq(ac_chat_push(c, data, sizeof(data) - 1), 0);
    cr_assert_eq(ac_chat_push(c, SERVER_QUIT, 5), 0);
    int cfd = ac_fd(c);
    echo_collect(m, &s);
    echo_back(m, &s, cfd, 1);
    cr_assert_eq(R.nrecs, 0);
    cr_assert_str_eq(R.cur.p, data);
    bytes_free(&s.got);
    finish(m);
}

static void producer_check(ac_producer *p)
{
    ac_map *m = map_new();
    R.quiet = true;
    struct echo s;
    ac_dispatcher *c = echo_start(m, &s);
    set_term(c, "\n");
    cr_assert_eq(ac_chat_push_with_producer(c, p), 0);
    int cfd = ac_fd(c);
    echo_collect(m, &s);
    echo_back(m, &s, cfd, 1);
    check_contents((const char *const[]){"hello world", "I'm not dead yet!", NULL});
    bytes_free(&s.got);
    finish(m);
}

Test(chat_cpython, simple_producer, .timeout = 10,
     .description = "C22 C14 C17 (test_simple_producer): a simple_producer with buffer_size 8")
{
    static const char data[] = "hello world\nI'm not dead yet!\n" SERVER_QUIT;
    producer_check(ac_simple_producer_new(data, sizeof(data) - 1, 8));
}

Test(chat_cpython, string_producer, .timeout = 10,
     .description = "C14 (test_string_producer): the whole string as one producer piece")
{
    struct script s = {
        .name = "s",
        .pieces = (const char *const[]){"hello world\nI'm not dead yet!\n" SERVER_QUIT, NULL}};
    producer_check(script_new(&s));
}

Test(chat_cpython, empty_line, .timeout = 10,
     .description = "C8 (test_empty_line): an empty line is an empty record")
{
    ac_map *m = map_new();
    R.quiet = true;
    struct echo s;
    ac_dispatcher *c = echo_start(m, &s);
    set_term(c, "\n");
    static const char data[] = "hello world\n\nI'm not dead yet!\n";
    cr_assert_eq(ac_chat_push(c, data, sizeof(data) - 1), 0);
    cr_assert_eq(ac_chat_push(c, SERVER_QUIT, 5), 0);
    int cfd = ac_fd(c);
    echo_collect(m, &s);
    echo_back(m, &s, cfd, 1);
    check_contents((const char *const[]){"hello world", "", "I'm not dead yet!", NULL});
    bytes_free(&s.got);
    finish(m);
}

Test(chat_cpython, close_when_done, .timeout = 10,
     .description = "C15 C17 (test_close_when_done): the client sends everything it queued, "
                    "then closes; it never reads the echo")
{
    ac_map *m = map_new();
    R.quiet = true;
    struct echo s;
    ac_dispatcher *c = echo_start(m, &s);
    set_term(c, "\n");
    static const char data[] = "hello world\nI'm not dead yet!\n";
    cr_assert_eq(ac_chat_push(c, data, sizeof(data) - 1), 0);
    cr_assert_eq(ac_chat_push(c, SERVER_QUIT, 5), 0);
    cr_assert_eq(ac_close_when_done(c), 0);
    cr_assert_eq(ac_loop(m, 0.01, 300), 0);
    cr_assert_eq(ac_map_count(m), 0, "closed by the marker");
    cr_assert_eq(R.closes, 1);
    /* Now the server reads: everything arrived, then EOF. */
    double end = now() + 5;
    for (;;) {
        cr_assert(now() < end);
        char buf[256];
        ssize_t n = recv(s.conn, buf, sizeof(buf), 0);
        if (n == 0)
            break;
        if (n > 0)
            bytes_add(&s.got, buf, (size_t)n);
        else
            poll(&(struct pollfd){.fd = s.conn, .events = POLLIN}, 1, 50);
    }
    cr_assert_str_eq(s.got.p, "hello world\nI'm not dead yet!\n" SERVER_QUIT);
    cr_assert_eq(R.nrecs, 0);
    cr_assert_eq(R.collects, 0);
    close(s.conn);
    close(s.lfd);
    bytes_free(&s.got);
    finish(m);
}

Test(chat_cpython, push, .timeout = 10,
     .description = "C13 X18 (test_push): any buffer can be pushed; NULL data with a length is "
                    "-EINVAL (Python's TypeError)")
{
    ac_map *m = map_new();
    R.quiet = true;
    struct echo s;
    ac_dispatcher *c = echo_start(m, &s);
    set_term(c, "\n");
    static const char data[] = "bytes\n";
    char *heap = strdup(data);
    char view[] = "xxbytes\nxx";
    cr_assert_eq(ac_chat_push(c, data, 6), 0);
    cr_assert_eq(ac_chat_push(c, heap, 6), 0);
    cr_assert_eq(ac_chat_push(c, view + 2, 6), 0);
    cr_assert_eq(ac_chat_push(c, NULL, 10), -EINVAL);
    cr_assert_eq(ac_chat_push(c, SERVER_QUIT, 5), 0);
    free(heap);
    int cfd = ac_fd(c);
    echo_collect(m, &s);
    echo_back(m, &s, cfd, 1);
    check_contents((const char *const[]){"bytes", "bytes", "bytes", NULL});
    bytes_free(&s.got);
    finish(m);
}

/* ================================ extension: coalesced sending (W13) */

/* found_terminator that echoes the record and a "\n", then traces what is
 * still queued. */
static int echo_record(ac_dispatcher *d)
{
    const struct bytes *rec = &R.recs[R.nrecs - 1];
    cr_assert_eq(ac_chat_push(d, rec->p, rec->len), 0);
    cr_assert_eq(ac_chat_push(d, "\n", 1), 0);
    tr("p%zu", ac_chat_pending(d));
    return 0;
}

Test(chat_ext, coalesce_sends_a_read_s_pushes_together, .timeout = 5,
     .description = "ext (W13, C13): with coalescing, pushes made while a read's records are "
                    "handled wait in the queue and leave together once the read is done; "
                    "without it every push sends at once")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "\n");
    R.on_found = echo_record;
    R.quiet = true;
    cr_assert_eq(FEED(d, peer, "a\nbb\n"), 0);
    cr_assert_str_eq(R.trace, "F p0 F p0", "C13: each push is sent at once");
    trace_clear();
    cr_assert_eq(ac_chat_set_coalesce(d, true), 0);
    cr_assert_eq(FEED(d, peer, "a\nbb\nccc\n"), 0);
    cr_assert_str_eq(R.trace, "F p2 F p5 F p9");
    cr_assert_eq(ac_chat_pending(d), 0, "sent when the read was done");
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_eq(out.len, 14);
    cr_assert_eq(memcmp(out.p, "a\nbb\na\nbb\nccc\n", 14), 0);
    bytes_free(&out);
    close(peer);
    finish(m);
}

Test(chat_ext, coalesce_one_call_sends_the_run_of_byte_entries, .timeout = 5,
     .description = "ext (W13, C16): a coalescing initiate_send sends the head's run of byte "
                    "entries in one call, empty entries dropped, up to ac_out_buffer_size; "
                    "asynchat's sends one entry per call")
{
    ac_map *m = map_new();
    int peer, peer2;
    ac_dispatcher *plain = chat_pair(m, &chat_h, &peer);
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer2);
    cr_assert_eq(ac_chat_set_coalesce(d, true), 0);
    for (int i = 0; i < 2; i++) {
        ac_dispatcher *x = i ? d : plain;
        ac_set_connected(x, false); /* C16: nothing leaves while not connected */
        cr_assert_eq(ac_chat_push(x, "ab", 2), 0);
        cr_assert_eq(ac_chat_push(x, "", 0), 0);
        cr_assert_eq(ac_chat_push(x, "cd", 2), 0);
        ac_set_connected(x, true);
        cr_assert_eq(ac_initiate_send(x), 0);
    }
    cr_assert_eq(inq(peer), 2, "C16: one entry per call");
    cr_assert_eq(ac_chat_pending(plain), 2);
    cr_assert_eq(inq(peer2), 4, "the whole run in one call");
    cr_assert_eq(ac_chat_pending(d), 0);

    /* The run stops at ac_out_buffer_size; the rest of an entry stays. */
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 0, 5), 0);
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, "efg", 3), 0);
    cr_assert_eq(ac_chat_push(d, "hij", 3), 0);
    ac_set_connected(d, true);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer2), 9);
    cr_assert_eq(ac_chat_pending(d), 1);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer2), 10);
    struct bytes out = {0};
    drain(peer2, &out);
    cr_assert_eq(memcmp(out.p, "abcdefghij", 10), 0);
    bytes_free(&out);
    close(peer);
    close(peer2);
    finish(m);
}

Test(chat_ext, coalesce_keeps_producers_and_the_close_marker_in_order, .timeout = 5,
     .description = "ext (W13, C15, C16): a coalesced run ends at a producer and at the close "
                    "marker; they are handled in queue order as C16 says")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    cr_assert_eq(ac_chat_set_coalesce(d, true), 0);
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, "12", 2), 0);
    cr_assert_eq(ac_chat_push(d, "34", 2), 0);
    cr_assert_eq(ac_chat_push_with_producer(d, ac_simple_producer_new("5678", 4, 2)), 0);
    cr_assert_eq(ac_chat_push(d, "9", 1), 0);
    cr_assert_eq(ac_close_when_done(d), 0);
    ac_set_connected(d, true);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 4, "the run before the producer");
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 6, "the producer's first piece alone: the producer stays behind it");
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 8);
    cr_assert_eq(ac_initiate_send(d), 0); /* the producer is finished; then "9" */
    cr_assert_eq(inq(peer), 9);
    cr_assert_eq(R.closes, 0);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(R.closes, 1, "C15: the close marker, after every byte");
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_eq(out.len, 9);
    cr_assert_eq(memcmp(out.p, "123456789", 9), 0);
    bytes_free(&out);
    close(peer);
    finish(m);
}
