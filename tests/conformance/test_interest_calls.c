/* Conformance: the interest calls ac_set_reading / ac_is_reading and
 * ac_set_writing / ac_is_writing (beyond asyncore; X7, L6, S18, C18).
 *
 * Every test counts handler calls exactly over a fixed number of single
 * iterations (ac_poll with a short timeout), so a pause that leaks an event
 * or a resume that loses one fails.  Dispatchers sit on one end of a unix
 * socketpair, which is always writable while its buffer has room; the test
 * drives the other end raw. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "ac_testkit.h"
#include "asynchat.h"

static struct {
    int reads, writes;
} C;

static int c_read(ac_dispatcher *d)
{
    C.reads++;
    char buf[64];
    ssize_t n = ac_recv(d, buf, sizeof(buf));
    return n < 0 && n != -EAGAIN ? (int)n : 0;
}

static int c_write(ac_dispatcher *d)
{
    (void)d;
    C.writes++;
    return 0;
}

static bool always(ac_dispatcher *d)
{
    (void)d;
    return true;
}

static int c_collect(ac_dispatcher *d, const void *data, size_t len)
{
    (void)d, (void)data, (void)len;
    return 0;
}

static int c_found(ac_dispatcher *d)
{
    (void)d;
    return 0;
}

static const ac_handlers plain_h = {
    .handle_read = c_read,
    .handle_write = c_write,
    .finalize = tk_finalize,
};

/* The same with a writable predicate: it decides alone (L6). */
static const ac_handlers pred_h = {
    .writable = always,
    .handle_read = c_read,
    .handle_write = c_write,
    .finalize = tk_finalize,
};

static const ac_handlers chat_h = {
    .handle_read = c_read,
    .handle_write = c_write,
    .collect_incoming_data = c_collect,
    .found_terminator = c_found,
    .finalize = tk_finalize,
};

/* n iterations; each waits at most 10 ms. */
/* d takes sv[0] without becoming connected (S2); sv[1] is the test's. */
static void on_pair(ac_dispatcher *d, int sv[2])
{
    tk_socketpair(SOCK_STREAM, sv);
    tk_set_nonblocking(sv[0]);
    tk_set_nonblocking(sv[1]);
    cr_assert_eq(ac_set_socket(d, sv[0]), 0);
}

Test(interest_calls, both_on_by_default, .timeout = 10,
     .description = "a new plain, buffered and chat dispatcher reads and writes")
{
    ac_map *m = tk_map();
    ac_dispatcher *d[3] = {tk_new(m, &plain_h, "plain"), tk_new_buffered(m, &plain_h, "buf"),
                           tk_new_chat(m, &chat_h, "chat")};
    for (int i = 0; i < 3; i++) {
        cr_assert(ac_is_reading(d[i]), "%d reading", i);
        cr_assert(ac_is_writing(d[i]), "%d writing", i);
    }
    tk_finish(m);
}

Test(interest_calls, paused_writing_gets_no_write_event, .timeout = 10,
     .description = "X7 L6: a plain dispatcher is always writable; paused, it gets no write "
                    "event, and resumed it gets one per iteration again")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &plain_h, "d");
    int sv[2];
    on_pair(d, sv);
    tk_iterate(m, 3);
    cr_assert_eq(C.writes, 3);
    ac_set_writing(d, false);
    cr_assert_not(ac_is_writing(d));
    cr_assert(ac_is_reading(d), "reading is not touched");
    tk_iterate(m, 5);
    cr_assert_eq(C.writes, 3, "paused: %d write events", C.writes - 3);
    ac_set_writing(d, false); /* twice is the same */
    tk_iterate(m, 2);
    cr_assert_eq(C.writes, 3);
    ac_set_writing(d, true);
    cr_assert(ac_is_writing(d));
    tk_iterate(m, 4);
    cr_assert_eq(C.writes, 7);
    cr_assert_eq(C.reads, 0);
    close(sv[1]);
    tk_finish(m);
}

Test(interest_calls, paused_reading_gets_no_read_event, .timeout = 10,
     .description = "X7: bytes wait while reading is paused; resumed, one read event takes "
                    "them, and none follows")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &plain_h, "d");
    int sv[2];
    on_pair(d, sv);
    ac_set_writing(d, false); /* only reads are counted here */
    ac_set_reading(d, false);
    cr_assert_not(ac_is_reading(d));
    cr_assert(write(sv[1], "abc", 3) == 3);
    tk_iterate(m, 4);
    cr_assert_eq(C.reads, 0, "paused: %d read events", C.reads);
    ac_set_reading(d, true);
    cr_assert(ac_is_reading(d));
    tk_iterate(m, 4);
    cr_assert_eq(C.reads, 1);
    cr_assert_eq(C.writes, 0);
    close(sv[1]);
    tk_finish(m);
}

Test(interest_calls, buffered_resume_gives_s18_back, .timeout = 10,
     .description = "S18: a buffered dispatcher not connected is writable; paused it is not; "
                    "resumed and connected with nothing to send it is not either")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new_buffered(m, &plain_h, "d");
    int sv[2];
    on_pair(d, sv);
    ac_set_reading(d, false);
    tk_iterate(m, 2);
    cr_assert_eq(C.writes, 2, "S18: not connected is writable");
    ac_set_writing(d, false);
    tk_iterate(m, 3);
    cr_assert_eq(C.writes, 2);
    ac_set_writing(d, true);
    tk_iterate(m, 2);
    cr_assert_eq(C.writes, 4);
    ac_set_connected(d, true); /* S18: connected and empty: not writable */
    tk_iterate(m, 3);
    cr_assert_eq(C.writes, 4);
    cr_assert(ac_is_writing(d), "the pause is the caller's, the rule is the layer's");
    close(sv[1]);
    tk_finish(m);
}

Test(interest_calls, predicate_decides_alone, .timeout = 10,
     .description = "L6: a writable predicate is asked every iteration whatever the pause")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &pred_h, "d");
    int sv[2];
    on_pair(d, sv);
    ac_set_writing(d, false);
    tk_iterate(m, 3);
    cr_assert_eq(C.writes, 3);
    close(sv[1]);
    tk_finish(m);
}

Test(interest_calls, chat_high_water_pauses_reading, .timeout = 10,
     .description = "C18 W3: a chat channel above its high mark is not reading; back at the "
                    "low mark it reads again")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new_chat(m, &chat_h, "chat");
    int sv[2];
    on_pair(d, sv); /* not connected: pushes stay queued (C16) */
    cr_assert_eq(ac_chat_set_watermarks(d, 2, 4), 0);
    cr_assert_eq(ac_chat_push(d, "0123456789", 10), 0);
    cr_assert_eq(ac_chat_pending(d), 10);
    cr_assert_not(ac_is_reading(d));
    cr_assert(ac_is_writing(d));
    cr_assert(write(sv[1], "x", 1) == 1);
    ac_set_writing(d, false);
    tk_iterate(m, 3);
    cr_assert_eq(C.reads, 0, "above the high mark: %d read events", C.reads);
    ac_chat_discard_buffers(d);
    cr_assert(ac_is_reading(d));
    tk_iterate(m, 3);
    cr_assert_eq(C.reads, 1);
    cr_assert_eq(C.writes, 0);
    close(sv[1]);
    tk_finish(m);
}
