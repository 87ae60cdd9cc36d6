/* The chat channel side of the splitting tests: what tests/unit/test_chat_split.c
 * (reads driven by hand) and tests/conformance/test_chat_split.c (reads
 * driven by the loop) both need around chat_split_model.h.  A recorder of
 * the channel's events in the model's format, the handlers that fill it and
 * follow the terminator schedule (C11), and the chunking and the random
 * source of the property tests.  Each file keeps its own handle_error,
 * handler table, run loop and random_term, because those differ (the unit
 * test logs and goes on, the conformance test closes; their seeded inputs
 * are not the same).
 *
 * fuzz/fuzz_chat_split.c has the same handlers without Criterion (it aborts
 * instead of asserting), so it keeps its own.  Static functions only: each
 * includer gets its own copy. */
#ifndef AC_CHAT_SPLIT_HARNESS_H
#define AC_CHAT_SPLIT_HARNESS_H

#include <criterion/criterion.h>

#include "asynchat.h"

#include <stdint.h>
#include <sys/ioctl.h>

#include "chat_split_model.h"

#define CS_UNUSED __attribute__((unused))

/* What the channel did, in the model's event format (ev), and the
 * schedule it follows.  Criterion runs every test in its own process, so
 * one static recorder is enough; a run starts with memset. */
static struct {
    const struct sched *s;
    int idx;
    struct bytes ev;
    int closes, finalized, errors;
} R;

static CS_UNUSED int h_collect(ac_dispatcher *d, const void *data, size_t len)
{
    (void)d;
    cr_assert_gt(len, 0, "C8: collect_incoming_data is never called with empty data");
    ev_piece(&R.ev, 'c', data, len);
    return 0;
}

/* C11: found_terminator moves to the schedule's next terminator. */
static CS_UNUSED int h_found(ac_dispatcher *d)
{
    ev_found(&R.ev);
    bool changed;
    sched_next(R.s, &R.idx, &changed);
    if (changed)
        term_apply(d, &R.s->t[R.idx]);
    return 0;
}

static CS_UNUSED int h_close(ac_dispatcher *d)
{
    R.closes++;
    return ac_chat_handle_close(d);
}

static CS_UNUSED void h_finalize(ac_dispatcher *d)
{
    (void)d;
    R.finalized++;
}

/* Bytes queued for reading on fd, -1 if FIONREAD fails. */
static CS_UNUSED int inq(int fd)
{
    int n = 0;
    return ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

/* splitmix64: the property tests' random source. */
static CS_UNUSED uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* How a stream is cut into writes: maxchunk 0 = all at once, 1 = byte by
 * byte, otherwise random sizes in [1, maxchunk] drawn from seed. */
struct feed {
    size_t maxchunk;
    uint64_t seed;
    size_t in_size; /* ac_in_buffer_size; 0 = default */
};

/* The next write's length, at most `left`. */
static CS_UNUSED size_t chunk_len(const struct feed *f, uint64_t *rng, size_t left)
{
    size_t n = f->maxchunk == 0 ? left : f->maxchunk == 1 ? 1 : 1 + rng_next(rng) % f->maxchunk;
    return n < left ? n : left;
}

/* One write of len bytes as the channel reads it: recvs of at most
 * in_size bytes each (C5, C24), fed to the model in the same cuts. */
static CS_UNUSED void model_feed(struct model *md, const unsigned char *data, size_t len,
                                 size_t in_size)
{
    for (size_t left = len; left;) {
        size_t r = left < in_size ? left : in_size;
        model_read(md, data + (len - left), r);
        left -= r;
    }
}

/* The bytes the random data and terminators are drawn from. */
static const unsigned char alphabet[] = {'a', 'b', '\r', '\n', '\0', 'q', '.'};

static CS_UNUSED unsigned char pick(uint64_t *rng)
{
    return alphabet[rng_next(rng) % sizeof(alphabet)];
}

/* A struct term initializer for a string literal terminator. */
#define BYTES_TERM(lit)                                                                            \
    {                                                                                              \
        .kind = K_BYTES, .len = sizeof(lit) - 1, .b = lit                                          \
    }

#endif /* AC_CHAT_SPLIT_HARNESS_H */
