/* Unit: the buffered sender's buffer (S15, S16, X16) driven through the
 * public API: random appends of random sizes (empty, tiny, across block
 * boundaries, above the chunk cap), random partial drains by the peer and
 * random extra send attempts, with a small SO_SNDBUF so that most sends
 * are partial.  After every step: pending + bytes the peer has read + bytes
 * waiting in the peer's queue == bytes given; at the end, byte-exact. */
#include "ac_testkit.h"

static const ac_handlers quiet = {
    .finalize = tk_finalize,
};

static void run_seed(uint32_t seed, size_t total, size_t chunk)
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    int small = 4096;
    cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    ac_dispatcher *d = tk_new_buffered(m, &quiet, "d");
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    if (chunk)
        cr_assert_eq(ac_buffered_set_chunk(d, chunk), 0);
    tk_set_nonblocking(sv[1]);

    char *data = malloc(total), *got = malloc(total);
    cr_assert(data && got);
    tk_fill(data, total, seed);
    uint32_t s = seed;
    size_t given = 0, taken = 0;
    while (given < total || ac_buffered_pending(d)) {
        uint32_t op = tk_rand(&s) % 8;
        if (op < 3 && given < total) {
            size_t n;
            switch (tk_rand(&s) % 5) {
            case 0: n = 0; break;
            case 1: n = 1 + tk_rand(&s) % 16; break;
            case 2: n = 16380 + tk_rand(&s) % 10; break; /* around a block */
            case 3: n = 65530 + tk_rand(&s) % 20; break; /* around the cap */
            default: n = tk_rand(&s) % 5000; break;
            }
            if (n > total - given)
                n = total - given;
            cr_assert_eq(ac_buffered_send(d, data + given, n), 0);
            given += n;
        } else if (op < 6) {
            size_t want = 1 + tk_rand(&s) % 20000;
            if (want > total - taken)
                want = total - taken;
            ssize_t r = read(sv[1], got + taken, want);
            if (r > 0)
                taken += (size_t)r;
        } else {
            cr_assert_eq(ac_initiate_send(d), 0);
        }
        cr_assert_eq(ac_buffered_pending(d) + taken + (size_t)tk_inq(sv[1]), given,
                     "seed %u: bytes lost or duplicated", seed);
    }
    taken += tk_drain(sv[1], got + taken, total - taken);
    cr_assert_eq(taken, total);
    cr_assert_eq(memcmp(got, data, total), 0, "seed %u: not byte-exact", seed);
    free(data);
    free(got);
    tk_finish(m);
    close(sv[1]);
}

Test(sendbuf, random_appends_and_partial_drains, .timeout = 60,
     .description = "S15 S16 X16: random appends and partial drains through a socketpair with "
                    "a small SO_SNDBUF keep every byte, in order (default chunk cap)")
{
    for (uint32_t seed = 1; seed <= 20; seed++)
        run_seed(seed * 2246822519u, 600000, 0);
}

Test(sendbuf, random_with_small_chunk_caps, .timeout = 60,
     .description = "S16 X16: the same with odd chunk caps (1, 7, 1000, 16385, 70000)")
{
    static const size_t caps[] = {1, 7, 1000, 16385, 70000};
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
        run_seed((uint32_t)(i + 1) * 3266489917u, caps[i] == 1 ? 20000 : 300000, caps[i]);
}

Test(sendbuf, one_attempt_never_exceeds_the_cap, .timeout = 30,
     .description = "S16: whatever the buffer holds, one initiate_send moves at most the "
                    "chunk cap")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    int big = 4 << 20;
    cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big)), 0);
    ac_dispatcher *d = tk_new_buffered(m, &quiet, "d");
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    cr_assert_eq(ac_buffered_set_chunk(d, 5000), 0);
    static char data[300000];
    tk_fill(data, sizeof(data), 77);
    /* Many small appends: the buffer is made of many pieces. */
    cr_assert_eq(ac_buffered_send(d, data, 1), 0);
    for (size_t off = 1; off < sizeof(data); off += 333) {
        size_t n = sizeof(data) - off < 333 ? sizeof(data) - off : 333;
        size_t before = (size_t)tk_inq(sv[1]);
        cr_assert_eq(ac_buffered_send(d, data + off, n), 0);
        size_t moved = (size_t)tk_inq(sv[1]) - before;
        cr_assert_leq(moved, 5000);
    }
    size_t prev = (size_t)tk_inq(sv[1]);
    while (ac_buffered_pending(d)) {
        size_t p = ac_buffered_pending(d);
        cr_assert_eq(ac_initiate_send(d), 0);
        size_t now = (size_t)tk_inq(sv[1]);
        cr_assert_eq(now - prev, p < 5000 ? p : 5000, "a big SO_SNDBUF takes the whole chunk");
        prev = now;
    }
    static char got[300000];
    cr_assert_eq(tk_read_full(sv[1], got, sizeof(got), 2000), sizeof(got));
    cr_assert_eq(memcmp(got, data, sizeof(data)), 0);
    tk_finish(m);
    close(sv[1]);
}
