/* Conformance: the chat channel's input splitting (spec C5-C11, X17) checked
 * against two references written here, through a socketpair and the loop
 * of the poller named by AC_POLLER.
 *
 *   - model: asynchat's handle_read loop (C6) re-done over the same recv
 *     boundaries the channel sees.  It predicts the exact sequence of
 *     collect_incoming_data pieces and found_terminator calls.
 *   - reference: a plain whole-stream splitter that knows nothing about
 *     reads.  Because pieces from different reads are never joined (C8), it
 *     can only predict the records: the concatenation of the pieces before
 *     each found_terminator, the count of found_terminator calls, and the
 *     bytes collected for the unterminated tail (C10).
 *
 * The recv boundaries are deterministic: after each chunk is written to the
 * peer, single iterations run until the channel's receive queue is empty, so
 * every recv returns min(queued, ac_in_buffer_size) bytes (C5, C24).
 * Terminators of every kind (C3) are fed byte by byte, in one read and in
 * random chunkings; the property test draws the terminator schedule (what
 * found_terminator sets next, C11), the data, the chunking and the input
 * buffer size from a seed.  The same model drives tests/unit/
 * test_chat_split.c and fuzz/fuzz_chat_split.c. */
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
    R.errors++;
    cr_log_error("unexpected handle_error: %s (%s)", ac_errno_name(e->err), e->op);
    return ac_default_handle_error(d, e);
}

static const ac_handlers splitter = {
    .collect_incoming_data = h_collect,
    .found_terminator = h_found,
    .handle_close = h_close,
    .handle_error = h_error,
    .finalize = h_finalize,
};

static void put(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        cr_assert(n > 0, "write: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

/* Run data through a chat channel on a socketpair with the loop, then EOF;
 * compare with the model (exact events) and the reference (records). */
static void check_split(const struct sched *s, const void *data, size_t n, const struct feed *f,
                        const char *what)
{
    memset(&R, 0, sizeof(R));
    R.s = s;
    ac_map *m = NULL;
    cr_assert_eq(ac_map_new(&m, AC_POLLER_DEFAULT), 0);
    const char *env = getenv("AC_POLLER");
    if (env && *env)
        cr_assert_str_eq(ac_map_poller_name(m), env);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    int big = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
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
    const unsigned char *p = data;
    size_t off = 0;
    while (off < n) {
        size_t c = chunk_len(f, &rng, n - off);
        put(sv[1], p + off, c);
        /* Each iteration is one recv of min(queued, in_size) bytes. */
        model_feed(&md, p + off, c, in_size);
        for (int guard = 0; inq(sv[0]) > 0; guard++) {
            cr_assert_lt(guard, 1 << 22, "%s: the channel stopped reading", what);
            cr_assert_eq(ac_poll(m, 0), 0);
        }
        off += c;
    }
    /* EOF: handle_close, then the loop runs once more over the leftover (C5, C10). */
    shutdown(sv[1], SHUT_WR);
    model_read(&md, "", 0);
    for (int guard = 0; R.finalized == 0; guard++) {
        cr_assert_lt(guard, 1000, "%s: EOF did not close the channel", what);
        cr_assert_eq(ac_poll(m, 0.5), 0);
    }
    cr_assert_eq(R.closes, 1, "%s: one handle_close at EOF", what);
    cr_assert_eq(R.errors, 0, "%s", what);

    if (!bytes_same(&R.ev, &md.ev)) {
        char *got = ev_render(&R.ev), *want = ev_render(&md.ev);
        cr_assert_fail("%s: events differ from the model (C6-C9)\n got:  %s\n want: %s", what, got,
                       want);
    }
    struct bytes recs = {0}, ref = {0};
    ev_to_records(&R.ev, &recs);
    ref_split(s, data, n, &ref);
    if (!bytes_same(&recs, &ref)) {
        char *got = ev_render(&recs), *want = ev_render(&ref);
        cr_assert_fail("%s: records differ from the reference splitter (C8-C10)\n got:  %s\n"
                       " want: %s",
                       what, got, want);
    }
    bytes_free(&recs);
    bytes_free(&ref);
    model_free(&md);
    bytes_free(&R.ev);
    close(sv[1]);
    cr_assert_eq(ac_close_all(m, true), 0);
    cr_assert_eq(ac_map_free(m), 0);
    cr_assert_eq(R.finalized, 1);
}

/* ------------------------------------------------- the fixed matrix */

/* Text with several terminators of each kind, parts of them, NUL bytes,
 * empty records and a tail that is a partial terminator. */
static const char corpus[] =
    "hello\r\n\r\nworld\n\nqq qqq qqqq\r\n.\r\nab\0ab\0\0\0a\0b aba abab ababab\r\n"
    "I'm not dead yet!\n\r\r\n\n\0\0\0\0x\r\n.\r\n\r\n.\r\n\r\n.\r\npartial\r\n.\r";

static void run_matrix(const struct sched *s, const char *name)
{
    const size_t n = sizeof(corpus) - 1;
    char what[128];
    snprintf(what, sizeof(what), "%s, one read", name);
    check_split(s, corpus, n, &(struct feed){.maxchunk = 0}, what);
    snprintf(what, sizeof(what), "%s, byte by byte", name);
    check_split(s, corpus, n, &(struct feed){.maxchunk = 1}, what);
    for (uint64_t seed = 1; seed <= 12; seed++) {
        snprintf(what, sizeof(what), "%s, random chunks (seed %llu)", name,
                 (unsigned long long)seed);
        check_split(s, corpus, n, &(struct feed){.maxchunk = 1 + seed * 3, .seed = seed}, what);
    }
    /* ac_in_buffer_size smaller than a write: one write, several recvs (C24). */
    snprintf(what, sizeof(what), "%s, in_size 3", name);
    check_split(s, corpus, n, &(struct feed){.maxchunk = 0, .in_size = 3}, what);
}

Test(chat_split, one_byte_terminator, .timeout = 30,
     .description = "C6c C8 C9 C10: a 1-byte terminator (\\n) fed in one read, byte by byte "
                    "and in random chunks gives the model's exact pieces and the reference's "
                    "records")
{
    run_matrix(&(struct sched){.t = {BYTES_TERM("\n")}, .n = 1}, "\\n");
}

Test(chat_split, nul_byte_terminator, .timeout = 30,
     .description = "C3 C6c X17: the terminator \\0 is a byte like any other")
{
    run_matrix(&(struct sched){.t = {BYTES_TERM("\0")}, .n = 1}, "\\0");
}

Test(chat_split, two_byte_terminator, .timeout = 30,
     .description = "C6c C10 C12: \\r\\n split across any number of reads")
{
    run_matrix(&(struct sched){.t = {BYTES_TERM("\r\n")}, .n = 1}, "\\r\\n");
}

Test(chat_split, three_byte_terminator, .timeout = 30,
     .description = "C6c C12: the three-byte terminator qqq of CPython's test_line_terminator3")
{
    run_matrix(&(struct sched){.t = {BYTES_TERM("qqq")}, .n = 1}, "qqq");
}

Test(chat_split, long_terminator_with_nul_bytes, .timeout = 30,
     .description = "C6c X17: multi-byte terminators containing NUL bytes (a\\0b, \\0\\0\\0)")
{
    run_matrix(&(struct sched){.t = {BYTES_TERM("a\0b")}, .n = 1}, "a\\0b");
    run_matrix(&(struct sched){.t = {BYTES_TERM("\0\0\0")}, .n = 1}, "\\0\\0\\0");
}

Test(chat_split, self_overlapping_terminator, .timeout = 30,
     .description = "C6c C12: terminators that overlap themselves (abab, \\r\\n.\\r\\n): first "
                    "occurrence, longest prefix at the end")
{
    run_matrix(&(struct sched){.t = {BYTES_TERM("abab")}, .n = 1}, "abab");
    run_matrix(&(struct sched){.t = {BYTES_TERM("\r\n.\r\n")}, .n = 1}, "\\r\\n.\\r\\n");
}

Test(chat_split, count_terminator, .timeout = 30,
     .description = "C6b C7: a count spans reads; without a new terminator every later byte is "
                    "collected and found_terminator never runs again")
{
    run_matrix(&(struct sched){.t = {{.kind = K_COUNT, .len = 1}}, .n = 1}, "count 1");
    run_matrix(&(struct sched){.t = {{.kind = K_COUNT, .len = 7}}, .n = 1}, "count 7");
    run_matrix(&(struct sched){.t = {{.kind = K_COUNT, .len = 7}}, .n = 1, .rearm = true},
               "count 7 re-armed");
    run_matrix(&(struct sched){.t = {{.kind = K_COUNT, .len = 1000}}, .n = 1}, "count 1000");
}

Test(chat_split, no_terminator_forms, .timeout = 30,
     .description = "C6a: none, the empty string and the count 0 collect everything and never "
                    "call found_terminator")
{
    run_matrix(&(struct sched){.t = {{.kind = K_NONE}}, .n = 1}, "none");
    run_matrix(&(struct sched){.t = {{.kind = K_BYTES, .len = 0}}, .n = 1}, "empty string");
    run_matrix(&(struct sched){.t = {{.kind = K_COUNT, .len = 0}}, .n = 1}, "count 0");
}

Test(chat_split, terminator_changed_by_found_terminator, .timeout = 30,
     .description = "C11 C6 C7: found_terminator switching between \\r\\n.\\r\\n, a count, \\n "
                    "and none; the loop re-reads the terminator over buffered bytes")
{
    struct sched s = {.t = {BYTES_TERM("\r\n.\r\n"),
                            {.kind = K_COUNT, .len = 5},
                            BYTES_TERM("\n"),
                            {.kind = K_COUNT, .len = 3}},
                      .n = 4};
    run_matrix(&s, "schedule");
    struct sched s2 = {.t = {BYTES_TERM("\n"), {.kind = K_NONE}}, .n = 2};
    run_matrix(&s2, "\\n then none");
}

/* ------------------------------------------------ property test */

static struct term random_term(uint64_t *rng)
{
    struct term t = {0};
    switch (rng_next(rng) % 10) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
        t.kind = K_BYTES;
        t.len = 1 + rng_next(rng) % 5;
        for (size_t i = 0; i < t.len; i++)
            t.b[i] = pick(rng);
        break;
    case 6:
        t.kind = K_COUNT;
        t.len = rng_next(rng) % 4; /* 0 included */
        break;
    case 7: t.kind = K_NONE; break;
    case 8:
        t.kind = K_BYTES; /* the empty string */
        break;
    default:
        t.kind = K_COUNT;
        t.len = 1 + rng_next(rng) % 60;
        break;
    }
    return t;
}

static void property_case(uint64_t seed)
{
    uint64_t rng = seed * 7919 + 1;
    struct sched s = {.n = 1 + (int)(rng_next(&rng) % 3), .rearm = rng_next(&rng) % 2};
    for (int i = 0; i < s.n; i++)
        s.t[i] = random_term(&rng);
    size_t n = rng_next(&rng) % 1200;
    unsigned char *data = malloc(n + 1);
    /* Mostly the terminators' own alphabet, with runs copied from a terminator. */
    for (size_t i = 0; i < n; i++) {
        const struct term *t = &s.t[rng_next(&rng) % (uint64_t)s.n];
        if (t->kind == K_BYTES && t->len && rng_next(&rng) % 4 == 0) {
            size_t k = 1 + rng_next(&rng) % t->len;
            for (size_t j = 0; j < k && i < n; j++)
                data[i++] = t->b[j];
            i--;
        } else {
            data[i] = pick(&rng);
        }
    }
    static const size_t chunks[] = {0, 1, 2, 5, 17, 64, 300};
    static const size_t ins[] = {0, 0, 1, 2, 4, 33};
    struct feed f = {.maxchunk = chunks[rng_next(&rng) % 7],
                     .seed = rng_next(&rng),
                     .in_size = ins[rng_next(&rng) % 6]};
    char what[64];
    snprintf(what, sizeof(what), "property seed %llu", (unsigned long long)seed);
    check_split(&s, data, n, &f, what);
    free(data);
}

Test(chat_split, seeded_property, .timeout = 120,
     .description = "C5-C11 C24 X17: random terminator schedules, data, chunkings and input "
                    "buffer sizes agree with the model and the reference (seeds 1-300; "
                    "CHAT_SPLIT_SEED=N runs one seed)")
{
    const char *one = getenv("CHAT_SPLIT_SEED");
    if (one && *one) {
        property_case(strtoull(one, NULL, 10));
        return;
    }
    for (uint64_t seed = 1; seed <= 300; seed++)
        property_case(seed);
}
