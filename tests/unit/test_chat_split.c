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

#include "chat_split_harness.h"

/* ---------------------------------------------------------- channel */

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
        size_t c = chunk_len(f, &rng, n - off);
        cr_assert_eq(write(sv[1], data + off, c), (ssize_t)c);
        model_feed(&md, data + off, c, in_size);
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
