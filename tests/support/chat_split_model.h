/* The chat splitting model and reference shared by tests/unit/test_chat_split.c,
 * tests/conformance/test_chat_split.c and fuzz/fuzz_chat_split.c (see the
 * conformance file for what each predicts); the two tests' channel side is
 * chat_split_harness.h.  Static functions only: each includer gets its own
 * copy.  A failed allocation or terminator change aborts, which fails a
 * test as surely as an assertion does. */
#ifndef AC_CHAT_SPLIT_MODEL_H
#define AC_CHAT_SPLIT_MODEL_H

#include "asynchat.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#endif
