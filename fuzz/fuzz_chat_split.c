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
 * Build: clang -fsanitize=fuzzer,address,undefined -Iinclude -Itests/support
 *        fuzz/fuzz_chat_split.c src/[a-z]*.c -lpthread -o /tmp/fz && /tmp/fz
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

#include "chat_split_model.h"

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
        case 5: t->kind = K_NONE; break;
        case 6: t->kind = K_BYTES; break;
        default: t->kind = K_COUNT; break;
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
