/* Conformance: a chat channel whose output queue has emptied stops asking
 * for write events (C18 through X7; issue 8 item 1).
 *
 * C18 makes a connected chat channel writable only while its queue holds
 * something.  Our channels have no per-iteration predicate (X7): the
 * library recomputes their interest whenever the queue changes, and a path
 * that forgets to do so leaves the channel write-interested with nothing to
 * send, so every iteration delivers an empty write event and the loop
 * spins.  Each test below takes one path that empties or changes the queue,
 * counts the handle_write calls it needs (exactly), and then runs 30 idle
 * iterations with a 10 ms timeout: they must deliver no write event and so
 * take at least 250 ms in all.
 *
 * The channel adopts one end of a unix socketpair (connected, D4); the test
 * reads the other end raw. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "ac_testkit.h"
#include "asynchat.h"

static struct {
    int writes, closes, founds;
    int (*on_found)(ac_dispatcher *d);
} W;

static int w_write(ac_dispatcher *d)
{
    W.writes++;
    return ac_initiate_send(d); /* C19 */
}

/* A handle_close that keeps the channel: half-close, as a server does
 * after its last reply. */
static int w_close_half(ac_dispatcher *d)
{
    W.closes++;
    return ac_shutdown(d, SHUT_WR);
}

static int w_collect(ac_dispatcher *d, const void *data, size_t len)
{
    (void)d, (void)data, (void)len;
    return 0;
}

static int w_found(ac_dispatcher *d)
{
    W.founds++;
    return W.on_found ? W.on_found(d) : 0;
}

static const ac_handlers chat_h = {
    .handle_write = w_write,
    .handle_close = w_close_half,
    .collect_incoming_data = w_collect,
    .found_terminator = w_found,
    .finalize = tk_finalize,
};

static ac_dispatcher *chat_pair(ac_map *m, int sv[2])
{
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *d = tk_new_chat(m, &chat_h, "chat");
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    cr_assert(ac_is_connected(d));
    cr_assert_eq(ac_chat_set_terminator(d, "\n", 1), 0);
    tk_set_nonblocking(sv[1]);
    return d;
}

/* n iterations that each have a write event to deliver. */
/* The point of every test: with the queue empty, 30 iterations at 10 ms
 * deliver no write event (the count stays `writes`) and so really wait. */
static void assert_idle(ac_map *m, int writes)
{
    double t0 = tk_clock();
    for (int i = 0; i < 30; i++)
        cr_assert_eq(ac_poll(m, 0.01), 0);
    double dt = tk_clock() - t0;
    cr_assert_eq(W.writes, writes, "%d write events while idle (the channel spins)",
                 W.writes - writes);
    cr_assert_geq(dt, 0.25, "30 idle iterations at 10 ms took %.4f s", dt);
}

static void assert_peer_got(int peer, const char *want)
{
    char buf[4096];
    size_t n = tk_drain(peer, buf, sizeof(buf));
    cr_assert_eq(n, strlen(want), "peer got %zu bytes, want %zu", n, strlen(want));
    cr_assert_eq(memcmp(buf, want, n), 0);
}

static void finish(ac_map *m, int peer)
{
    close(peer);
    tk_finish(m);
}

Test(chat_interest, simple_producer_exhausted, .timeout = 10,
     .description = "C14 C16.4 C18 X7, issue 8 item 1: once a simple_producer returned its last "
                    "empty piece and the queue is empty, no more write events")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = chat_pair(m, sv);
    /* C22: "hell" "o wo" "rld" then empty.  The push sends the first piece
     * (C14: initiate_send once); each write event sends one more (C16);
     * the third write event finds the producer finished and removes it. */
    cr_assert_eq(ac_chat_push_with_producer(d, ac_simple_producer_new("hello world", 11, 4)), 0);
    tk_iterate(m, 3);
    cr_assert_eq(W.writes, 3);
    assert_peer_got(sv[1], "hello world");
    assert_idle(m, 3);
    finish(m, sv[1]);
}

Test(chat_interest, simple_producer_exhausted_coalesced, .timeout = 10,
     .description = "C16.4 C18 X7, issue 8 item 1: the same with coalesced sending")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = chat_pair(m, sv);
    cr_assert_eq(ac_chat_set_coalesce(d, true), 0);
    cr_assert_eq(ac_chat_push_with_producer(d, ac_simple_producer_new("hello world", 11, 4)), 0);
    tk_iterate(m, 3);
    cr_assert_eq(W.writes, 3);
    assert_peer_got(sv[1], "hello world");
    assert_idle(m, 3);
    finish(m, sv[1]);
}

/* A producer over a caller's bytes: all of them at once, then finished
 * (Python's push_with_producer(b"...")). */
struct once {
    const char *data;
    size_t len;
};

static ssize_t once_more(void *ctx, const void **data)
{
    struct once *o = ctx;
    *data = o->data;
    size_t n = o->len;
    o->len = 0;
    return (ssize_t)n;
}

static void once_release(void *ctx) { free(ctx); }

static const ac_producer_ops once_ops = {once_more, once_release};

static ac_producer *once_new(const char *data)
{
    struct once *o = malloc(sizeof(*o));
    cr_assert_not_null(o);
    *o = (struct once){data, strlen(data)};
    ac_producer *p = ac_producer_new(&once_ops, o);
    cr_assert_not_null(p);
    return p;
}

Test(chat_interest, bytes_producer_exhausted, .timeout = 10,
     .description = "C14 C16.4 C18, issue 8 item 1: bytes through push_with_producer")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = chat_pair(m, sv);
    cr_assert_eq(ac_chat_push_with_producer(d, once_new("one piece\n")), 0);
    tk_iterate(m, 1); /* the piece left at the push; this event finds the end */
    cr_assert_eq(W.writes, 1);
    assert_peer_got(sv[1], "one piece\n");
    assert_idle(m, 1);
    finish(m, sv[1]);
}

Test(chat_interest, empty_producer, .timeout = 10,
     .description = "C14 C16.4 C18, issue 8 item 1: a producer that is finished at once is "
                    "removed inside the push; the queue is empty again")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = chat_pair(m, sv);
    cr_assert_eq(ac_chat_push_with_producer(d, once_new("")), 0);
    assert_idle(m, 0);
    assert_peer_got(sv[1], "");
    finish(m, sv[1]);
}

Test(chat_interest, producers_and_bytes_in_turn, .timeout = 10,
     .description = "C13 C14 C16 C18, issue 8 item 1: bytes and producers in turn: one write "
                    "event for the last producer's end, then none")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = chat_pair(m, sv);
    /* Each push runs initiate_send once (C13, C14), which sends one piece
     * (C16): "a"; "b"; then the finished "b" producer is removed and "c"
     * sent; "d".  The "d" producer's end is left for one write event. */
    cr_assert_eq(ac_chat_push(d, "a", 1), 0);
    cr_assert_eq(ac_chat_push_with_producer(d, once_new("b")), 0);
    cr_assert_eq(ac_chat_push(d, "c", 1), 0);
    cr_assert_eq(ac_chat_push_with_producer(d, once_new("d")), 0);
    assert_peer_got(sv[1], "abcd");
    tk_iterate(m, 1);
    cr_assert_eq(W.writes, 1);
    assert_idle(m, 1);
    finish(m, sv[1]);
}

/* Fill the socket so that a push stays queued. */
static void shrink_sndbuf(int fd)
{
    int size = 4096;
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)), 0);
}

Test(chat_interest, discard_buffers, .timeout = 10,
     .description = "C21 C18, issue 8 item 1: discard_buffers empties the queue; once the "
                    "socket is writable again there is nothing to write")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = chat_pair(m, sv);
    shrink_sndbuf(sv[0]);
    static char big[1 << 20];
    cr_assert_eq(ac_chat_push(d, big, sizeof(big)), 0);
    cr_assert_gt(ac_chat_pending(d), 0);
    ac_chat_discard_buffers(d);
    cr_assert_eq(ac_chat_pending(d), 0);
    tk_drain(sv[1], NULL, 0);
    assert_idle(m, 0);
    finish(m, sv[1]);
}

Test(chat_interest, close_marker_with_a_handle_close_that_keeps_the_channel, .timeout = 10,
     .description = "C15 C16.1 C18, issue 8 item 1: the close marker is removed and "
                    "handle_close runs once; a handle_close that only half-closes leaves an "
                    "empty queue")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = chat_pair(m, sv);
    cr_assert_eq(ac_chat_push(d, "bye\n", 4), 0);
    cr_assert_eq(ac_close_when_done(d), 0); /* C15: not sent, not closed here */
    tk_iterate(m, 1);
    cr_assert_eq(W.writes, 1);
    cr_assert_eq(W.closes, 1);
    cr_assert_not(ac_is_closed(d));
    assert_peer_got(sv[1], "bye\n");
    assert_idle(m, 1);
    cr_assert_eq(W.closes, 1);
    char c;
    cr_assert_eq(read(sv[1], &c, 1), 0, "the peer sees the half-close");
    finish(m, sv[1]);
}

Test(chat_interest, close_when_done_then_discard, .timeout = 10,
     .description = "C15 C21 C18, issue 8 item 1: discard_buffers drops the close marker too")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = chat_pair(m, sv);
    cr_assert_eq(ac_close_when_done(d), 0);
    ac_chat_discard_buffers(d);
    assert_idle(m, 0);
    cr_assert_eq(W.closes, 0);
    finish(m, sv[1]);
}

Test(chat_interest, empty_push, .timeout = 10,
     .description = "C13 C16.2 C18, issue 8 item 1: an empty push queues an empty entry, "
                    "which its own initiate_send removes")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = chat_pair(m, sv);
    cr_assert_eq(ac_chat_push(d, "", 0), 0);
    assert_idle(m, 0);
    assert_peer_got(sv[1], "");
    finish(m, sv[1]);
}

Test(chat_interest, empty_push_behind_bytes, .timeout = 10,
     .description = "C13 C16.2 C18, issue 8 item 1: an empty entry behind a pending one costs "
                    "one write event (C16.2), then nothing")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = chat_pair(m, sv);
    ac_set_connected(d, false); /* C17: queue both without sending */
    cr_assert_eq(ac_chat_push(d, "x", 1), 0);
    cr_assert_eq(ac_chat_push(d, "", 0), 0);
    ac_set_connected(d, true);
    tk_iterate(m, 2); /* "x"; then the empty entry (C16.2) */
    cr_assert_eq(W.writes, 2);
    assert_peer_got(sv[1], "x");
    assert_idle(m, 2);
    finish(m, sv[1]);
}

static int reply_twice(ac_dispatcher *d)
{
    int rc = ac_chat_push(d, "ok\n", 3);
    return rc ? rc : ac_chat_push(d, "", 0);
}

Test(chat_interest, coalesced_replies, .timeout = 10,
     .description = "W13 (coalesced sending) C18, issue 8 item 1: replies pushed in "
                    "found_terminator leave together; the queue is then empty")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = chat_pair(m, sv);
    cr_assert_eq(ac_chat_set_coalesce(d, true), 0);
    W.on_found = reply_twice;
    cr_assert_eq(write(sv[1], "a\nb\nc\n", 6), 6);
    tk_iterate(m, 1);
    cr_assert_eq(W.founds, 3);
    assert_peer_got(sv[1], "ok\nok\nok\n");
    assert_idle(m, 0);
    finish(m, sv[1]);
}

static int reply_empty(ac_dispatcher *d) { return ac_chat_push(d, "", 0); }

Test(chat_interest, coalesced_empty_replies, .timeout = 10,
     .description = "W13 C16.2 C18, issue 8 item 1: a coalesced run of empty entries makes no "
                    "system call and empties the queue")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = chat_pair(m, sv);
    cr_assert_eq(ac_chat_set_coalesce(d, true), 0);
    W.on_found = reply_empty;
    cr_assert_eq(write(sv[1], "a\nb\n", 4), 4);
    tk_iterate(m, 1);
    cr_assert_eq(W.founds, 2);
    assert_idle(m, 0);
    assert_peer_got(sv[1], "");
    finish(m, sv[1]);
}

static int reply_producer(ac_dispatcher *d)
{
    return ac_chat_push_with_producer(d, ac_simple_producer_new("abcdef", 6, 3));
}

Test(chat_interest, coalesced_producer_reply, .timeout = 10,
     .description = "W13 C14 C16.4 C18, issue 8 item 1: a producer pushed in found_terminator "
                    "of a coalescing channel: one write event per piece and one for its end")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = chat_pair(m, sv);
    cr_assert_eq(ac_chat_set_coalesce(d, true), 0);
    W.on_found = reply_producer;
    cr_assert_eq(write(sv[1], "go\n", 3), 3);
    tk_iterate(m, 1); /* the read; "abc" leaves at its end */
    tk_iterate(m, 2); /* "def"; the producer's end */
    cr_assert_eq(W.writes, 2);
    assert_peer_got(sv[1], "abcdef");
    assert_idle(m, 2);
    finish(m, sv[1]);
}

/* The buffered sender's close-when-done (W12), same shape: handle_close
 * runs once when the buffer has drained, and then there is nothing to do. */
static const ac_handlers buffered_h = {
    .handle_write = w_write,
    .handle_close = w_close_half,
    .finalize = tk_finalize,
};

Test(chat_interest, buffered_close_when_done_keeps_the_channel, .timeout = 10,
     .description = "W12 S18, issue 8 item 1: buffered close_when_done calls handle_close once; "
                    "a handle_close that keeps the channel is not called again")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *d = tk_new_buffered(m, &buffered_h, "buffered");
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    tk_set_nonblocking(sv[1]);
    cr_assert_eq(ac_buffered_send(d, "bye\n", 4), 0);
    cr_assert_eq(ac_close_when_done(d), 0);
    tk_iterate(m, 1);
    cr_assert_eq(W.writes, 1);
    cr_assert_eq(W.closes, 1);
    assert_peer_got(sv[1], "bye\n");
    assert_idle(m, 1);
    cr_assert_eq(W.closes, 1);
    cr_assert_eq(ac_buffered_send(d, "more", 4), -EPIPE, "still nothing accepted after it");
    finish(m, sv[1]);
}
