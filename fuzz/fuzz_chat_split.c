/* libFuzzer target: the chat channel's input splitting (spec C5-C12, C24,
 * X17).  The input chooses a terminator schedule (what found_terminator
 * sets next: byte strings with any bytes, counts, none, the empty string),
 * a chunking, an input buffer size and the data.  The data goes through a
 * chat channel on a socketpair, one ac_chat_handle_read() per recv, then
 * EOF; the collect/found events must equal the model's exactly and the
 * records the whole-stream reference's (the same model and reference as
 * tests/conformance/test_chat_split.c).  A mismatch prints both and aborts.
 *
 * Input layout:
 *   [0]      bits 0-1: schedule length - 1; bit 2: re-arm a single entry;
 *            bits 3-5: ac_in_buffer_size selector; bits 6-7: chunk mode
 *   per entry: kind byte k (k % 8: 0-3 bytes of length 1 + k / 8 % 7,
 *            which follow; 4: count, the next byte; 5: none; 6: the empty
 *            string; 7: count 0)
 *   [1 byte] chunk seed
 *   rest     the data
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -Iinclude
 *        fuzz/fuzz_chat_split.c src/[a-z]*.c -lm -lpthread -o /tmp/fz && /tmp/fz
 * Seeds: fuzz/corpus/chat_split/. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "asynchat.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------ bytes */

struct bytes {
    unsigned char *p;
    size_t len, cap;
};

static void bytes_add(struct bytes *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            abort();
        b->cap = cap;
    }
    if (len)
        memcpy(b->p + b->len, data, len);
    b->len += len;
}

static void bytes_free(struct bytes *b)
{
    free(b->p);
    *b = (struct bytes){0};
}

static bool bytes_same(const struct bytes *a, const struct bytes *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

/* Event streams: 'c' <size_t len> <bytes> for collect_incoming_data, 'F'
 * for found_terminator.  Record streams: 'R' <len> <bytes> per record, then
 * 'T' <len> <bytes> for the tail. */
static void ev_piece(struct bytes *ev, char tag, const void *data, size_t len)
{
    bytes_add(ev, &tag, 1);
    bytes_add(ev, &len, sizeof(len));
    bytes_add(ev, data, len);
}

static void ev_found(struct bytes *ev) { bytes_add(ev, "F", 1); }

/* Fold an event stream into a record stream (what the reference predicts). */
static void ev_to_records(const struct bytes *ev, struct bytes *out)
{
    struct bytes cur = {0};
    size_t i = 0;
    while (i < ev->len) {
        if (ev->p[i] == 'F') {
            ev_piece(out, 'R', cur.p, cur.len);
            cur.len = 0;
            i++;
            continue;
        }
        size_t len;
        memcpy(&len, ev->p + i + 1, sizeof(len));
        bytes_add(&cur, ev->p + i + 1 + sizeof(len), len);
        i += 1 + sizeof(len) + len;
    }
    ev_piece(out, 'T', cur.p, cur.len);
    bytes_free(&cur);
}

/* A readable rendering of an event stream for failure messages. */
static char *ev_render(const struct bytes *ev)
{
    struct bytes s = {0};
    size_t i = 0;
    while (i < ev->len && s.len < 3000) {
        char tag = (char)ev->p[i];
        if (tag == 'F') {
            bytes_add(&s, "F ", 2);
            i++;
            continue;
        }
        size_t len;
        memcpy(&len, ev->p + i + 1, sizeof(len));
        const unsigned char *d = ev->p + i + 1 + sizeof(len);
        char tmp[8];
        bytes_add(&s, tag == 'c' ? "c:" : tag == 'R' ? "R:" : "T:", 2);
        for (size_t k = 0; k < len; k++) {
            if (d[k] >= 0x20 && d[k] < 0x7f && d[k] != '\\')
                bytes_add(&s, d + k, 1);
            else
                bytes_add(&s, tmp, (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", d[k]));
        }
        bytes_add(&s, " ", 1);
        i += 1 + sizeof(len) + len;
    }
    bytes_add(&s, "", 1);
    return (char *)s.p;
}

/* ----------------------------------------------------- terminators */

enum { K_NONE, K_BYTES, K_COUNT };

struct term {
    int kind;
    size_t len; /* K_BYTES: length of b (0 = the empty string); K_COUNT: the count */
    unsigned char b[8];
};

/* What found_terminator does: with more than one entry, or rearm, it sets
 * the next entry of the schedule (cyclically); otherwise it leaves the
 * terminator alone (a count then stays at 0, C7). */
struct sched {
    struct term t[4];
    int n;
    bool rearm;
};

static void sched_next(const struct sched *s, int *idx, bool *changed)
{
    *changed = s->n > 1 || s->rearm;
    if (*changed)
        *idx = (*idx + 1) % s->n;
}

static void term_apply(ac_dispatcher *d, const struct term *t)
{
    int rc = t->kind == K_NONE    ? ac_chat_set_terminator_none(d)
             : t->kind == K_COUNT ? ac_chat_set_terminator_count(d, (long long)t->len)
                                  : ac_chat_set_terminator(d, t->b, t->len);
    if (rc != 0)
        abort();
}

/* find_prefix_at_end (C12), written again so the model does not trust the
 * library's. */
static size_t ref_prefix(const unsigned char *h, size_t hl, const unsigned char *n, size_t nl)
{
    for (size_t l = nl ? nl - 1 : 0; l > 0; l--)
        if (l <= hl && memcmp(h + hl - l, n, l) == 0)
            return l;
    return 0;
}

/* ------------------------------------------------------------ model */

struct model {
    const struct sched *s;
    int idx;
    size_t count;     /* K_COUNT: remaining */
    struct bytes buf; /* ac_in_buffer */
    struct bytes ev;
};

static void model_load(struct model *m) { m->count = m->s->t[m->idx].len; }

static void model_init(struct model *m, const struct sched *s)
{
    *m = (struct model){.s = s};
    model_load(m);
}

/* asynchat.handle_read after a recv returned data (possibly empty at EOF). */
static void model_read(struct model *m, const void *data, size_t n)
{
    bytes_add(&m->buf, data, n);
    size_t off = 0;
    while (off < m->buf.len) {
        const struct term *t = &m->s->t[m->idx];
        const unsigned char *p = m->buf.p + off;
        size_t L = m->buf.len - off;
        if (t->kind == K_NONE || (t->kind == K_BYTES && t->len == 0) ||
            (t->kind == K_COUNT && m->count == 0)) {
            ev_piece(&m->ev, 'c', p, L);
            off += L;
        } else if (t->kind == K_COUNT) {
            if (L < m->count) {
                ev_piece(&m->ev, 'c', p, L);
                off += L;
                m->count -= L;
            } else {
                ev_piece(&m->ev, 'c', p, m->count);
                off += m->count;
                m->count = 0;
                ev_found(&m->ev);
                bool changed;
                sched_next(m->s, &m->idx, &changed);
                if (changed)
                    model_load(m);
            }
        } else {
            const unsigned char *hit = memmem(p, L, t->b, t->len);
            if (hit) {
                size_t i = (size_t)(hit - p);
                if (i)
                    ev_piece(&m->ev, 'c', p, i);
                off += i + t->len;
                ev_found(&m->ev);
                bool changed;
                sched_next(m->s, &m->idx, &changed);
                if (changed)
                    model_load(m);
                continue;
            }
            size_t k = ref_prefix(p, L, t->b, t->len);
            if (k) {
                if (k != L) {
                    ev_piece(&m->ev, 'c', p, L - k);
                    off += L - k;
                }
                break;
            }
            ev_piece(&m->ev, 'c', p, L);
            off += L;
        }
    }
    if (off) {
        memmove(m->buf.p, m->buf.p + off, m->buf.len - off);
        m->buf.len -= off;
    }
}

static void model_free(struct model *m)
{
    bytes_free(&m->buf);
    bytes_free(&m->ev);
}

/* -------------------------------------------------------- reference */

/* The records of the whole stream, with no notion of reads. */
static void ref_split(const struct sched *s, const unsigned char *data, size_t n, struct bytes *out)
{
    struct bytes cur = {0};
    int idx = 0;
    size_t count = s->t[0].len, pos = 0;
    while (pos < n) {
        const struct term *t = &s->t[idx];
        bool found = false;
        if (t->kind == K_NONE || t->len == 0 || (t->kind == K_COUNT && count == 0)) {
            bytes_add(&cur, data + pos, n - pos);
            pos = n;
        } else if (t->kind == K_COUNT) {
            size_t take = n - pos < count ? n - pos : count;
            bytes_add(&cur, data + pos, take);
            pos += take;
            count -= take;
            found = count == 0;
        } else {
            const unsigned char *hit = memmem(data + pos, n - pos, t->b, t->len);
            if (hit) {
                bytes_add(&cur, data + pos, (size_t)(hit - (data + pos)));
                pos = (size_t)(hit - data) + t->len;
                found = true;
            } else {
                /* C10: a tail that may start the terminator is never delivered. */
                size_t k = ref_prefix(data + pos, n - pos, t->b, t->len);
                bytes_add(&cur, data + pos, n - pos - k);
                pos = n;
            }
        }
        if (found) {
            ev_piece(out, 'R', cur.p, cur.len);
            cur.len = 0;
            bool changed;
            sched_next(s, &idx, &changed);
            if (changed)
                count = s->t[idx].len;
        }
    }
    ev_piece(out, 'T', cur.p, cur.len);
    bytes_free(&cur);
}

/* ---------------------------------------------------------- channel */

static struct {
    const struct sched *s;
    int idx;
    struct bytes ev;
    int closes;
} R;

static int h_collect(ac_dispatcher *d, const void *data, size_t len)
{
    (void)d;
    if (len == 0) {
        fprintf(stderr, "C8: collect_incoming_data called with empty data\n");
        abort();
    }
    ev_piece(&R.ev, 'c', data, len);
    return 0;
}

static int h_found(ac_dispatcher *d)
{
    ev_found(&R.ev);
    bool changed;
    sched_next(R.s, &R.idx, &changed);
    if (changed)
        term_apply(d, &R.s->t[R.idx]);
    return 0;
}

static int h_close(ac_dispatcher *d)
{
    R.closes++;
    return ac_chat_handle_close(d);
}

static int h_error(ac_dispatcher *d, const ac_error *e)
{
    (void)d;
    fprintf(stderr, "unexpected handle_error: %s (%s)\n", ac_errno_name(e->err), e->op);
    abort();
}

static const ac_handlers splitter = {
    .collect_incoming_data = h_collect,
    .found_terminator = h_found,
    .handle_close = h_close,
    .handle_error = h_error,
};

static int inq(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

static void check(bool ok, const char *what, const struct bytes *got, const struct bytes *want)
{
    if (ok)
        return;
    char *g = ev_render(got), *w = ev_render(want);
    fprintf(stderr, "%s\n got:  %s\n want: %s\n", what, g, w);
    abort();
}

/* Parse the schedule; returns the bytes used. */
static size_t parse_sched(const uint8_t *in, size_t size, struct sched *s)
{
    size_t at = 1;
    s->n = (in[0] & 3) + 1;
    s->rearm = in[0] & 4;
    for (int i = 0; i < s->n; i++) {
        struct term *t = &s->t[i];
        *t = (struct term){0};
        uint8_t k = at < size ? in[at] : 0;
        at++;
        switch (k % 8) {
        case 0:
        case 1:
        case 2:
        case 3:
            t->kind = K_BYTES;
            t->len = 1 + (size_t)(k / 8 % 7);
            for (size_t j = 0; j < t->len; j++, at++)
                t->b[j] = at < size ? in[at] : 0;
            break;
        case 4:
            t->kind = K_COUNT;
            t->len = at < size ? in[at] : 0;
            at++;
            break;
        case 5:
            t->kind = K_NONE;
            break;
        case 6:
            t->kind = K_BYTES;
            break;
        default:
            t->kind = K_COUNT;
            break;
        }
    }
    return at;
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (size < 2)
        return 0;
    static const size_t ins[] = {AC_CHAT_BUFFER_SIZE, AC_CHAT_BUFFER_SIZE, 1, 2, 3, 5, 16, 64};
    size_t in_size = ins[(in[0] >> 3) & 7];
    int mode = in[0] >> 6;
    struct sched s;
    size_t at = parse_sched(in, size, &s);
    uint32_t rng = at < size ? in[at] * 2654435761u + 1 : 1;
    at++;
    const uint8_t *data = at < size ? in + at : in;
    size_t n = at < size ? size - at : 0;

    ac_map *m = NULL;
    if (ac_map_new(&m, AC_POLLER_POLL) != 0)
        abort();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    memset(&R, 0, sizeof(R));
    R.s = &s;
    ac_dispatcher *d = ac_chat_new(m, &splitter, NULL);
    if (!d || ac_attach(d, sv[0]) != 0 || ac_chat_set_buffer_sizes(d, in_size, 0) != 0)
        abort();
    term_apply(d, &s.t[0]);

    struct model md;
    model_init(&md, &s);
    for (size_t off = 0; off < n;) {
        size_t c;
        if (mode == 0) {
            c = n - off;
        } else if (mode == 1) {
            c = 1;
        } else {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            c = 1 + rng % (mode == 2 ? 8u : 200u);
        }
        if (c > n - off)
            c = n - off;
        if (write(sv[1], data + off, c) != (ssize_t)c)
            abort();
        for (size_t left = c; left;) {
            size_t r = left < in_size ? left : in_size;
            model_read(&md, data + off + (c - left), r);
            left -= r;
        }
        while (inq(sv[0]) > 0)
            if (ac_chat_handle_read(d) != 0)
                abort();
        off += c;
    }
    shutdown(sv[1], SHUT_WR);
    model_read(&md, "", 0);
    if (ac_chat_handle_read(d) != 0 || R.closes != 1 || !ac_is_closed(d))
        abort();

    check(bytes_same(&R.ev, &md.ev), "events differ from the model (C6-C9)", &R.ev, &md.ev);
    struct bytes recs = {0}, ref = {0};
    ev_to_records(&R.ev, &recs);
    ref_split(&s, data, n, &ref);
    check(bytes_same(&recs, &ref), "records differ from the reference (C8-C10)", &recs, &ref);

    /* find_prefix_at_end (C12) against the model's own. */
    for (int i = 0; i < s.n; i++) {
        const struct term *t = &s.t[i];
        if (t->kind == K_BYTES &&
            ac_find_prefix_at_end(data, n, t->b, t->len) != ref_prefix(data, n, t->b, t->len))
            abort();
    }

    bytes_free(&recs);
    bytes_free(&ref);
    model_free(&md);
    bytes_free(&R.ev);
    close(sv[1]);
    if (ac_close_all(m, true) != 0 || ac_map_free(m) != 0)
        abort();
    return 0;
}
