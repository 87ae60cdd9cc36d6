/* The chat tests' recorder: what a chat channel's handlers saw, as a trace
 * string ("c:ab F close"), the records found_terminator ended, counters
 * per handler and the log; the handler tables that fill it; plumbing for
 * a channel on a socketpair; and a scripted producer that traces its
 * calls.  Used by the conformance tests of the chat channel
 * (test_chat_channel.c, _terminators, _sending, _producers, _extensions,
 * _cpython); another chat test can include it the same way.
 *
 * Most tests use a socketpair: the chat channel adopts one end (connected),
 * the test writes and reads the other end raw.  A unix stream socket puts
 * what was sent into the peer's receive queue at once, so FIONREAD counts
 * exactly what one send handed to the kernel (C13, C16), and one recv takes
 * everything written before it (up to ac_in_buffer_size, C24).  Input tests
 * drive the read either with ac_chat_handle_read() (C5 itself, no guard) or
 * with single loop iterations (guard, interest).  Pushes are queued without
 * sending by clearing `connected` (C17).
 *
 * Everything is static, so each test file gets its own copy; Criterion
 * runs every test in its own process, so one recorder R is enough.  Not
 * to be included with ac_testkit.h or chat_split_model.h (both have their
 * own trace or struct bytes). */
#ifndef AC_CHAT_RECORDER_H
#define AC_CHAT_RECORDER_H

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

#define REC_UNUSED __attribute__((unused))

/* ------------------------------------------------------------ bytes */

struct bytes {
    char *p;
    size_t len, cap;
};

static REC_UNUSED void bytes_add(struct bytes *b, const void *data, size_t len)
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

static REC_UNUSED void bytes_free(struct bytes *b)
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

static REC_UNUSED void tr(const char *fmt, ...)
{
    size_t len = strlen(R.trace);
    if (len && len + 1 < sizeof(R.trace))
        R.trace[len++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(R.trace + len, sizeof(R.trace) - len, fmt, ap);
    va_end(ap);
}

static REC_UNUSED void trace_clear(void) { R.trace[0] = '\0'; }

/* Bytes as trace text: \r \n \0 \t escaped, other non-printables \xNN. */
static REC_UNUSED const char *esc(const void *data, size_t len)
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

static REC_UNUSED void log_hook(ac_dispatcher *d, const char *type, const char *msg, void *ctx)
{
    (void)d;
    (void)ctx;
    size_t len = strlen(R.log);
    snprintf(R.log + len, sizeof(R.log) - len, "%s: %s\n", type ? type : "log", msg);
    R.log_lines++;
}

/* ---------------------------------------------------------- handlers */

static REC_UNUSED int h_collect(ac_dispatcher *d, const void *data, size_t len)
{
    (void)d;
    cr_assert_gt(len, 0, "C8: collect_incoming_data is never called with empty data");
    R.collects++;
    bytes_add(&R.cur, data, len);
    if (!R.quiet)
        tr("c:%s", esc(data, len));
    return 0;
}

static REC_UNUSED int h_found(ac_dispatcher *d)
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

static REC_UNUSED int h_close(ac_dispatcher *d)
{
    R.closes++;
    tr("close");
    return ac_chat_handle_close(d); /* C20 */
}

static REC_UNUSED int h_error(ac_dispatcher *d, const ac_error *e)
{
    R.errors++;
    R.last_err = e->err;
    R.last_op = e->op;
    tr("error:%s", ac_errno_name(e->err));
    return R.keep_open ? 0 : ac_default_handle_error(d, e);
}

static REC_UNUSED int h_write(ac_dispatcher *d)
{
    R.writes++;
    int rc = ac_initiate_send(d); /* C19 */
    tr("w%zu", ac_chat_pending(d));
    return rc;
}

static REC_UNUSED int h_connect(ac_dispatcher *d)
{
    R.connects++;
    tr("connect:%d%d", ac_is_connected(d), ac_is_connecting(d));
    return 0;
}

static REC_UNUSED int h_high(ac_dispatcher *d)
{
    R.highs++;
    tr("high:%zu", ac_chat_pending(d));
    return 0;
}

static REC_UNUSED int h_low(ac_dispatcher *d)
{
    R.lows++;
    tr("low:%zu", ac_chat_pending(d));
    return 0;
}

static REC_UNUSED void h_finalize(ac_dispatcher *d)
{
    (void)d;
    R.finalized++;
}

static REC_UNUSED const ac_handlers chat_h = {
    .collect_incoming_data = h_collect,
    .found_terminator = h_found,
    .handle_close = h_close,
    .handle_error = h_error,
    .finalize = h_finalize,
};

/* The same with a traced handle_write and the water-mark handlers. */
static REC_UNUSED const ac_handlers chat_w = {
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

static REC_UNUSED ac_map *map_new(void)
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

static REC_UNUSED ac_dispatcher *chat_new(ac_map *m, const ac_handlers *h)
{
    ac_dispatcher *d = ac_chat_new(m, h, NULL);
    cr_assert_not_null(d);
    R.created++;
    return d;
}

/* A chat channel adopting one end of a socketpair (connected, D4); the
 * raw other end goes to *peer. */
static REC_UNUSED ac_dispatcher *chat_pair(ac_map *m, const ac_handlers *h, int *peer)
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
static REC_UNUSED void finish(ac_map *m)
{
    cr_assert_eq(ac_close_all(m, true), 0);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_eq(ac_map_free(m), 0);
    cr_assert_eq(R.finalized, R.created, "finalized %d of %d channels", R.finalized, R.created);
    for (int i = 0; i < R.nrecs; i++)
        bytes_free(&R.recs[i]);
    bytes_free(&R.cur);
}

static REC_UNUSED double now(void)
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

static REC_UNUSED int inq(int fd)
{
    int n = -1;
    return ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

static REC_UNUSED void put(int fd, const void *data, size_t len)
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
static REC_UNUSED void drain(int fd, struct bytes *out)
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
static REC_UNUSED int feed(ac_dispatcher *d, int peer, const void *data, size_t len)
{
    put(peer, data, len);
    return ac_chat_handle_read(d);
}

#define FEED(d, peer, lit) feed((d), (peer), (lit), sizeof(lit) - 1)

static REC_UNUSED void set_term(ac_dispatcher *d, const char *t)
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

static REC_UNUSED ssize_t script_more(void *ctx, const void **data)
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

static REC_UNUSED void script_release(void *ctx)
{
    struct script *s = ctx;
    s->releases++;
    tr("%s:release", s->name);
}

static REC_UNUSED const ac_producer_ops script_ops = {script_more, script_release};

static REC_UNUSED ac_producer *script_new(struct script *s)
{
    ac_producer *p = ac_producer_new(&script_ops, s);
    cr_assert_not_null(p);
    return p;
}

#endif /* AC_CHAT_RECORDER_H */
