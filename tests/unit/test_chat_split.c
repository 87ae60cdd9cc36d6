/* Unit: the chat channel's input splitting (spec C5-C11, C24, X17) as a
 * fast seeded property test.  The same model and reference as
 * tests/conformance/test_chat_split.c, but the reads are driven by calling
 * ac_chat_handle_read() directly after each write to the peer (no poller),
 * so thousands of seeds run in a second or two.
 *
 *   CHAT_SPLIT_SEEDS=N   run seeds 1..N (default 1500)
 *   CHAT_SPLIT_SEED=N    run seed N only (to replay a failure)
 *
 * A failure prints the seed, the model's events and the channel's. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <criterion/criterion.h>

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
        cr_assert_not_null(b->p);
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
    cr_assert_eq(rc, 0);
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
    int closes, errors;
} R;

static int h_collect(ac_dispatcher *d, const void *data, size_t len)
{
    (void)d;
    cr_assert_gt(len, 0, "C8: collect_incoming_data is never called with empty data");
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
    R.errors++;
    cr_log_error("unexpected handle_error: %s (%s)", ac_errno_name(e->err), e->op);
    return 0;
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

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Chunk sizes: maxchunk 0 = everything at once, 1 = byte by byte, else
 * random in [1, maxchunk]. */
struct feed {
    size_t maxchunk;
    uint64_t seed;
    size_t in_size; /* 0 = default */
};

/* One stream through a fresh channel: write a chunk, read until the socket
 * is empty (each ac_chat_handle_read is one recv of at most in_size), EOF
 * at the end.  Returns false (after logging) when the channel disagrees. */
static bool run_split(ac_map *m, const struct sched *s, const unsigned char *data, size_t n,
                      const struct feed *f, const char *what)
{
    memset(&R, 0, sizeof(R));
    R.s = s;
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ac_dispatcher *d = ac_chat_new(m, &splitter, NULL);
    cr_assert_not_null(d);
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    if (f->in_size)
        cr_assert_eq(ac_chat_set_buffer_sizes(d, f->in_size, 0), 0);
    term_apply(d, &s->t[0]);
    size_t in_size = f->in_size ? f->in_size : AC_CHAT_BUFFER_SIZE;

    struct model md;
    model_init(&md, s);
    uint64_t rng = f->seed;
    for (size_t off = 0; off < n;) {
        size_t c = f->maxchunk == 0   ? n - off
                   : f->maxchunk == 1 ? 1
                                      : 1 + rng_next(&rng) % f->maxchunk;
        if (c > n - off)
            c = n - off;
        cr_assert_eq(write(sv[1], data + off, c), (ssize_t)c);
        for (size_t left = c; left;) {
            size_t r = left < in_size ? left : in_size;
            model_read(&md, data + off + (c - left), r);
            left -= r;
        }
        while (inq(sv[0]) > 0)
            cr_assert_eq(ac_chat_handle_read(d), 0);
        off += c;
    }
    shutdown(sv[1], SHUT_WR);
    model_read(&md, "", 0);
    cr_assert_eq(ac_chat_handle_read(d), 0);
    cr_assert_eq(R.closes, 1, "%s: EOF closes", what);
    cr_assert_eq(R.errors, 0, "%s", what);

    bool ok = bytes_same(&R.ev, &md.ev);
    if (!ok) {
        char *got = ev_render(&R.ev), *want = ev_render(&md.ev);
        cr_log_error("%s: events differ from the model (C6-C9)\n got:  %s\n want: %s", what, got,
                     want);
        free(got);
        free(want);
    }
    struct bytes recs = {0}, ref = {0};
    ev_to_records(&R.ev, &recs);
    ref_split(s, data, n, &ref);
    if (ok && !bytes_same(&recs, &ref)) {
        char *got = ev_render(&recs), *want = ev_render(&ref);
        cr_log_error("%s: records differ from the reference (C8-C10)\n got:  %s\n want: %s", what,
                     got, want);
        free(got);
        free(want);
        ok = false;
    }
    bytes_free(&recs);
    bytes_free(&ref);
    model_free(&md);
    bytes_free(&R.ev);
    close(sv[1]);
    return ok;
}

/* --------------------------------------------------- the model itself */

/* The model against CPython 3.11's asynchat on the same reads (printed by
 * a short script feeding a socketpair and calling handle_read). */
static void model_says(const struct sched *s, const char *const *reads, const char *want)
{
    struct model md;
    model_init(&md, s);
    for (int i = 0; reads[i]; i++)
        model_read(&md, reads[i], strlen(reads[i]));
    model_read(&md, "", 0);
    char *got = ev_render(&md.ev);
    cr_assert_str_eq(got, want);
    free(got);
    model_free(&md);
}

#define BYTES_TERM(lit)                                                                            \
    {                                                                                              \
        .kind = K_BYTES, .len = sizeof(lit) - 1, .b = lit                                          \
    }
#define READS(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(chat_split_unit, model_matches_cpython, .timeout = 5,
     .description = "C6 C10 C11 C12: the test's model gives CPython's events for known reads")
{
    model_says(&(struct sched){.t = {BYTES_TERM("\r\n")}, .n = 1},
               READS("ab\r", "\ncd\r", "\r\n\r", "x"), "c:ab F c:cd c:\\x0d F c:\\x0dx ");
    model_says(&(struct sched){.t = {BYTES_TERM("abab")}, .n = 1}, READS("xaba", "babab", "ab"),
               "c:x F F ");
    model_says(&(struct sched){.t = {{.kind = K_COUNT, .len = 5}}, .n = 1},
               READS("abc", "defghij", "k"), "c:abc c:de F c:fghij c:k ");
    model_says(
        &(struct sched){.t = {BYTES_TERM("\n"), {.kind = K_COUNT, .len = 3}, {.kind = K_NONE}},
                        .n = 3},
        READS("a\nbb\nccc"), "c:a F c:bb\\x0a F c:ccc ");
    model_says(&(struct sched){.t = {{.kind = K_BYTES, .len = 0}}, .n = 1}, READS("ab", "c\n"),
               "c:ab c:c\\x0a ");
    model_says(&(struct sched){.t = {BYTES_TERM("qqq")}, .n = 1}, READS("qq", "q", "qqqq", "qq"),
               "F F F ");
}

/* ------------------------------------------------------ property test */

static const unsigned char alphabet[] = {'a', 'b', '\r', '\n', '\0', 'q', '.'};

static unsigned char pick(uint64_t *rng) { return alphabet[rng_next(rng) % sizeof(alphabet)]; }

static struct term random_term(uint64_t *rng)
{
    struct term t = {0};
    uint64_t r = rng_next(rng) % 10;
    if (r < 6) {
        t.kind = K_BYTES;
        t.len = 1 + rng_next(rng) % 6;
        for (size_t i = 0; i < t.len; i++)
            t.b[i] = pick(rng);
    } else if (r == 6) {
        t.kind = K_COUNT;
        t.len = rng_next(rng) % 4; /* count 0 included */
    } else if (r == 7) {
        t.kind = K_NONE;
    } else if (r == 8) {
        t.kind = K_BYTES; /* the empty string */
    } else {
        t.kind = K_COUNT;
        t.len = 1 + rng_next(rng) % 100;
    }
    return t;
}

static bool property_case(ac_map *m, uint64_t seed)
{
    uint64_t rng = seed * 104729 + 17;
    struct sched s = {.n = 1 + (int)(rng_next(&rng) % 4), .rearm = rng_next(&rng) % 2};
    for (int i = 0; i < s.n; i++)
        s.t[i] = random_term(&rng);
    size_t n = rng_next(&rng) % 2048;
    unsigned char *data = malloc(n + 1);
    for (size_t i = 0; i < n;) {
        const struct term *t = &s.t[rng_next(&rng) % (uint64_t)s.n];
        if (t->kind == K_BYTES && t->len && rng_next(&rng) % 3 == 0) {
            /* all or the start of a terminator */
            size_t k = 1 + rng_next(&rng) % t->len;
            for (size_t j = 0; j < k && i < n; j++)
                data[i++] = t->b[j];
        } else {
            data[i++] = pick(&rng);
        }
    }
    static const size_t chunks[] = {0, 1, 2, 3, 7, 31, 200, 5000};
    static const size_t ins[] = {0, 0, 0, 1, 2, 3, 8, 100};
    struct feed f = {.maxchunk = chunks[rng_next(&rng) % 8],
                     .seed = rng_next(&rng),
                     .in_size = ins[rng_next(&rng) % 8]};
    char what[64];
    snprintf(what, sizeof(what), "seed %llu", (unsigned long long)seed);
    bool ok = run_split(m, &s, data, n, &f, what);
    free(data);
    return ok;
}

Test(chat_split_unit, seeded_property, .timeout = 120,
     .description = "C5-C11 C24 X17: random terminator schedules, data, chunkings and input "
                    "buffer sizes agree with the model and the reference")
{
    ac_map *m = NULL;
    cr_assert_eq(ac_map_new(&m, AC_POLLER_DEFAULT), 0);
    const char *one = getenv("CHAT_SPLIT_SEED");
    const char *many = getenv("CHAT_SPLIT_SEEDS");
    uint64_t first = 1, last = 1500;
    if (one && *one)
        first = last = strtoull(one, NULL, 10);
    else if (many && *many)
        last = strtoull(many, NULL, 10);
    int failed = 0;
    for (uint64_t seed = first; seed <= last && failed < 5; seed++) {
        if (!property_case(m, seed))
            failed++;
        if (seed % 64 == 0)
            cr_assert_eq(ac_close_all(m, true), 0); /* closed ones are freed by the next poll */
        if (seed % 64 == 0)
            cr_assert_eq(ac_poll(m, 0), 0);
    }
    cr_assert_eq(failed, 0, "%d seeds failed (replay with CHAT_SPLIT_SEED=N)", failed);
    cr_assert_eq(ac_close_all(m, true), 0);
    cr_assert_eq(ac_map_free(m), 0);
}
