/* Conformance: the chat channel itself, asynchat's async_chat (spec section
 * 6): what a new channel is and its terminator kinds (C1, C3, X17), the
 * user handlers and their defaults (C2), the unset terminator (C4), one
 * read (C5), handle_close (C20), discard_buffers (C21) and the buffer sizes
 * (C24).  Splitting is in test_chat_terminators.c, sending in
 * test_chat_sending.c, producers in test_chat_producers.c, the header's
 * additions in test_chat_extensions.c, CPython's test_asynchat.py in
 * test_chat_cpython.c, the splitting matrix and the seeded property test
 * in test_chat_split.c.  The recorder and the plumbing (a channel on a
 * socketpair) are tests/support/chat_recorder.h. */
#include "chat_recorder.h"

/* ===================================================== C1, C3, X17 */

Test(chat, construction, .timeout = 5,
     .description = "C1 C3 C4 D3: a new chat channel has no socket, is outside the map, flags "
                    "false, terminator unset, nothing queued")
{
    ac_map *m = map_new();
    ac_dispatcher *d = chat_new(m, &chat_h);
    cr_assert_eq(ac_fd(d), -1);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_not(ac_is_connected(d));
    cr_assert_not(ac_is_accepting(d));
    cr_assert_not(ac_is_connecting(d));
    const void *t = (void *)1;
    size_t len = 99;
    cr_assert_eq(ac_chat_get_terminator(d, &t, &len), AC_TERM_UNSET);
    cr_assert_eq(ac_chat_get_terminator(d, NULL, NULL), AC_TERM_UNSET);
    cr_assert_eq(ac_chat_pending(d), 0);
    size_t dl = 0;
    char *data = ac_chat_get_data(d, &dl);
    cr_assert_not_null(data);
    cr_assert_eq(dl, 0);
    cr_assert_str_empty(data);
    free(data);
    finish(m);
}

Test(chat, default_buffer_sizes_are_65536, .timeout = 10,
     .description = "C1 C24 C13 C5: ac_in_buffer_size and ac_out_buffer_size start at 65536: "
                    "70000 bytes are one 65536-byte recv plus the rest, and two entries")
{
    ac_map *m = map_new();
    int peer;
    int big = 1 << 20;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    setsockopt(peer, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(ac_fd(d), SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    R.quiet = true;
    cr_assert_eq(ac_chat_set_terminator_none(d), 0);
    char *data = calloc(1, 70000);
    put(peer, data, 70000);
    cr_assert_eq(ac_chat_handle_read(d), 0);
    cr_assert_eq(R.cur.len, 65536);
    cr_assert_eq(ac_chat_handle_read(d), 0);
    cr_assert_eq(R.cur.len, 70000);
    cr_assert_eq(R.collects, 2);

    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, data, 70000), 0);
    ac_set_connected(d, true);
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 0, 1 << 20), 0); /* entries stay as cut */
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 65536);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 70000);
    free(data);
    close(peer);
    finish(m);
}

Test(chat, terminator_kinds_round_trip, .timeout = 5,
     .description = "C3 X17: set/get_terminator for bytes with NUL bytes (copied), the empty "
                    "string, a count, count 0 and none; get reports which was set")
{
    ac_map *m = map_new();
    ac_dispatcher *d = chat_new(m, &chat_h);
    char term[] = {'\0', 'a', '\0'};
    cr_assert_eq(ac_chat_set_terminator(d, term, 3), 0);
    term[1] = 'X'; /* the channel holds a copy */
    const void *t = NULL;
    size_t len = 0;
    cr_assert_eq(ac_chat_get_terminator(d, &t, &len), AC_TERM_BYTES);
    cr_assert_eq(len, 3);
    cr_assert_eq(memcmp(t, "\0a\0", 3), 0);

    cr_assert_eq(ac_chat_set_terminator(d, "", 0), 0);
    cr_assert_eq(ac_chat_get_terminator(d, &t, &len), AC_TERM_BYTES);
    cr_assert_eq(len, 0, "the empty string is kept as a string of length 0");
    cr_assert_eq(ac_chat_set_terminator(d, NULL, 0), 0, "NULL with length 0 is the empty string");
    cr_assert_eq(ac_chat_get_terminator(d, NULL, &len), AC_TERM_BYTES);
    cr_assert_eq(len, 0);

    cr_assert_eq(ac_chat_set_terminator_count(d, 7), 0);
    cr_assert_eq(ac_chat_get_terminator(d, NULL, &len), AC_TERM_COUNT);
    cr_assert_eq(len, 7);
    cr_assert_eq(ac_chat_set_terminator_count(d, 0), 0);
    cr_assert_eq(ac_chat_get_terminator(d, NULL, &len), AC_TERM_COUNT);
    cr_assert_eq(len, 0);

    cr_assert_eq(ac_chat_set_terminator_none(d), 0);
    cr_assert_eq(ac_chat_get_terminator(d, NULL, NULL), AC_TERM_NONE);
    finish(m);
}

Test(chat, negative_count_rejected, .timeout = 5,
     .description = "C3 (CPython test_disallow_negative_terminator): a negative count is "
                    "-EINVAL and the terminator is unchanged")
{
    ac_map *m = map_new();
    ac_dispatcher *d = chat_new(m, &chat_h);
    cr_assert_eq(ac_chat_set_terminator_count(d, -1), -EINVAL);
    cr_assert_eq(ac_chat_get_terminator(d, NULL, NULL), AC_TERM_UNSET);
    set_term(d, "\r\n");
    cr_assert_eq(ac_chat_set_terminator_count(d, -5), -EINVAL);
    const void *t;
    size_t len;
    cr_assert_eq(ac_chat_get_terminator(d, &t, &len), AC_TERM_BYTES);
    cr_assert_eq(len, 2);
    cr_assert_eq(memcmp(t, "\r\n", 2), 0);
    cr_assert_eq(ac_chat_set_terminator(d, NULL, 3), -EINVAL, "NULL data with a length");
    cr_assert_eq(ac_chat_get_terminator(d, NULL, &len), AC_TERM_BYTES);
    cr_assert_eq(len, 2);
    finish(m);
}

Test(chat, chat_calls_refuse_other_dispatchers, .timeout = 5,
     .description = "C3 C13 C14 X3 X18: chat calls on a plain dispatcher return -EINVAL; "
                    "push_with_producer releases the producer it refuses")
{
    ac_map *m = map_new();
    ac_dispatcher *p = ac_dispatcher_new(m, &chat_h, NULL);
    R.created++;
    cr_assert_eq(ac_chat_set_terminator(p, "\n", 1), -EINVAL);
    cr_assert_eq(ac_chat_set_terminator_count(p, 3), -EINVAL);
    cr_assert_eq(ac_chat_set_terminator_none(p), -EINVAL);
    cr_assert_eq(ac_chat_get_terminator(p, NULL, NULL), AC_TERM_UNSET);
    cr_assert_eq(ac_chat_push(p, "x", 1), -EINVAL);
    cr_assert_eq(ac_chat_set_buffer_sizes(p, 10, 10), -EINVAL);
    cr_assert_eq(ac_chat_set_max_input(p, 10), -EINVAL);
    cr_assert_eq(ac_chat_set_watermarks(p, 1, 2), -EINVAL);
    cr_assert_eq(ac_chat_pending(p), 0);
    cr_assert_eq(ac_chat_handle_read(p), -EINVAL);
    cr_assert_eq(ac_chat_collect_incoming_data(p, "x", 1), -EINVAL);
    struct script s = {.name = "p", .pieces = (const char *const[]){"x", NULL}};
    cr_assert_eq(ac_chat_push_with_producer(p, script_new(&s)), -EINVAL);
    cr_assert_eq(s.releases, 1, "X18: the refused producer is released once");
    cr_assert_eq(s.mores, 0);

    ac_dispatcher *d = chat_new(m, &chat_h);
    cr_assert_eq(ac_chat_push(d, NULL, 5), -EINVAL, "C13: not bytes-like");
    cr_assert_eq(ac_chat_push_with_producer(d, NULL), -EINVAL);
    cr_assert_eq(ac_chat_pending(d), 0);
    cr_assert_eq(ac_chat_set_watermarks(d, 10, 5), -EINVAL, "low > high");
    finish(m);
}

/* ============================================================ C2 */

static const ac_handlers chat_defaults = {
    .handle_error = h_error,
    .finalize = h_finalize,
};

Test(chat, default_collector_is_not_implemented, .timeout = 5,
     .description = "C2 C25 D19 C20: without collect_incoming_data the default fails (ENOSYS), "
                    "the dispatcher's handle_error logs one error line and closes")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_defaults, &peer);
    set_term(d, "\n");
    PUT(peer, "abc\n");
    LOOP_UNTIL(m, R.finalized == 1, 2);
    cr_assert_str_eq(R.trace, "error:ENOSYS");
    cr_assert_str_eq(R.last_op, "collect_incoming_data");
    cr_assert_eq(R.log_lines, 1, "D19's line only; C20 adds none: %s", R.log);
    cr_assert(strncmp(R.log, "error: ", 7) == 0, "%s", R.log);
    cr_assert_not_null(strstr(R.log, "closing channel"), "%s", R.log);
    cr_assert_not_null(strstr(R.log, "ENOSYS"), "%s", R.log);
    close(peer);
    finish(m);
}

Test(chat, default_found_terminator_is_not_implemented, .timeout = 5,
     .description = "C2 C8 D19: an empty record calls found_terminator without a collect; its "
                    "default fails (ENOSYS) and the channel is closed")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_defaults, &peer);
    set_term(d, "\n");
    PUT(peer, "\n");
    LOOP_UNTIL(m, R.finalized == 1, 2);
    cr_assert_str_eq(R.trace, "error:ENOSYS");
    cr_assert_str_eq(R.last_op, "found_terminator");
    close(peer);
    finish(m);
}

static struct bytes got_data[8];
static int ngot;

static int found_get_data(ac_dispatcher *d)
{
    size_t len = 99;
    char *data = ac_chat_get_data(d, &len);
    cr_assert_not_null(data);
    cr_assert_eq(data[len], '\0', "get_data is NUL-terminated");
    cr_assert_lt(ngot, 8);
    got_data[ngot] = (struct bytes){0};
    bytes_add(&got_data[ngot++], data, len);
    tr("data:%s", esc(data, len));
    free(data);
    return 0;
}

static const ac_handlers chat_incoming = {
    .collect_incoming_data = ac_chat_collect_incoming_data,
    .found_terminator = found_get_data,
    .handle_error = h_error,
    .finalize = h_finalize,
};

Test(chat, opt_in_collector_and_get_data, .timeout = 5,
     .description = "C2 C8: ac_chat_collect_incoming_data appends to incoming, get_data returns "
                    "the concatenation (NUL bytes intact) and empties it")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_incoming, &peer);
    set_term(d, "\r\n");
    cr_assert_eq(FEED(d, peer, "hel"), 0);
    cr_assert_eq(FEED(d, peer, "lo\r"), 0);
    cr_assert_eq(FEED(d, peer, "\na\0b\r\n\r\nrest"), 0);
    cr_assert_str_eq(R.trace, "data:hello data:a\\0b data:");
    cr_assert_eq(got_data[1].len, 3);
    size_t len = 99;
    char *rest = ac_chat_get_data(d, &len);
    cr_assert_eq(len, 4);
    cr_assert_str_eq(rest, "rest");
    free(rest);
    rest = ac_chat_get_data(d, &len);
    cr_assert_eq(len, 0, "get_data empties incoming");
    free(rest);
    for (int i = 0; i < ngot; i++)
        bytes_free(&got_data[i]);
    close(peer);
    finish(m);
}

/* ============================================================ C4 */

Test(chat, unset_terminator_reaches_handle_error, .timeout = 5,
     .description = "C4 W14: data before any set_terminator fails the read dispatch; "
                    "handle_error runs (EINVAL) and by default closes; nothing is collected")
{
    ac_map *m = map_new();
    int peer;
    chat_pair(m, &chat_h, &peer);
    PUT(peer, "abc\n");
    LOOP_UNTIL(m, R.finalized == 1, 2);
    cr_assert_str_eq(R.trace, "error:EINVAL close");
    cr_assert_eq(R.collects, 0);
    close(peer);
    finish(m);
}

Test(chat, unset_terminator_keeps_the_input, .timeout = 5,
     .description = "C4 C6: the bytes that arrived before set_terminator stay in the input "
                    "buffer and are split with the next read")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.keep_open = true;
    PUT(peer, "ab");
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(R.trace, "error:EINVAL");
    set_term(d, "\n");
    PUT(peer, "c\nd");
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(R.trace, "error:EINVAL c:abc F c:d");
    close(peer);
    finish(m);
}

/* ============================================================ C5 */

Test(chat, read_would_block_is_silent, .timeout = 5,
     .description = "C5 (CPython test_blockingioerror): a read with nothing to read returns "
                    "quietly; no handler runs, under the guard neither")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "\n");
    cr_assert_eq(ac_chat_handle_read(d), 0);
    cr_assert_eq(ac_read(d), 0);
    cr_assert_eq(ac_readwrite(d, POLLIN), 0);
    cr_assert_str_empty(R.trace);
    cr_assert_not(ac_is_closed(d));
    close(peer);
    finish(m);
}

Test(chat, recv_failure_calls_handle_error_directly, .timeout = 5,
     .description = "C5: a recv failure other than EAGAIN calls handle_error itself and "
                    "returns 0, so the guard does not call it a second time")
{
    ac_map *m = map_new();
    int pfd[2];
    cr_assert_eq(pipe2(pfd, O_CLOEXEC | O_NONBLOCK), 0);
    ac_dispatcher *d = chat_new(m, &chat_h);
    cr_assert_eq(ac_set_socket(d, pfd[0]), 0); /* recv(2) on a pipe: ENOTSOCK */
    set_term(d, "\n");
    R.keep_open = true;
    cr_assert_eq(ac_chat_handle_read(d), 0);
    cr_assert_str_eq(R.trace, "error:ENOTSOCK");
    cr_assert_str_eq(R.last_op, "recv");
    cr_assert_eq(ac_read(d), 0);
    cr_assert_str_eq(R.trace, "error:ENOTSOCK error:ENOTSOCK", "one handle_error per read");
    close(pfd[1]);
    finish(m);
}

Test(chat, eof_closes_then_splits_the_leftover, .timeout = 5,
     .description = "C5 C10 C20 C11: at EOF recv calls handle_close, then the splitting loop "
                    "still runs over the leftover with the current terminator")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "\r\n");
    cr_assert_eq(FEED(d, peer, "abc\r"), 0);
    cr_assert_str_eq(R.trace, "c:abc");
    cr_assert_eq(ac_chat_set_terminator_none(d), 0);
    shutdown(peer, SHUT_WR);
    cr_assert_eq(ac_chat_handle_read(d), 0);
    cr_assert_str_eq(R.trace, "c:abc close c:\\r");
    cr_assert(ac_is_closed(d));
    close(peer);
    finish(m);
}

/* ========================================================== C20 */

static int plain_read(ac_dispatcher *d)
{
    char buf[16];
    ssize_t n = ac_recv(d, buf, sizeof(buf));
    return n < 0 ? (int)n : 0;
}

Test(chat, handle_close_logs_nothing, .timeout = 5,
     .description = "C20 D18 D22: the chat channel's handle_close only closes: no 'unhandled "
                    "close event' line even with nothing ignored (a plain dispatcher logs one)")
{
    static const char *const nothing[] = {NULL};
    ac_map *m = map_new();
    static const ac_handlers bare = {
        .collect_incoming_data = h_collect,
        .found_terminator = h_found,
        .finalize = h_finalize,
    };
    int peer;
    ac_dispatcher *d = chat_pair(m, &bare, &peer);
    ac_set_ignore_log_types(d, nothing);
    set_term(d, "\n");
    PUT(peer, "a\nb");
    shutdown(peer, SHUT_WR);
    LOOP_UNTIL(m, R.finalized == 1, 2);
    cr_assert_str_eq(R.trace, "c:a F c:b");
    cr_assert_eq(R.log_lines, 0, "%s", R.log);
    close(peer);

    /* The contrast: asyncore's default handle_close (D18) does log. */
    static const ac_handlers plain = {.handle_read = plain_read, .finalize = h_finalize};
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ac_dispatcher *p = ac_dispatcher_new(m, &plain, NULL);
    R.created++;
    cr_assert_eq(ac_attach(p, sv[0]), 0);
    ac_set_ignore_log_types(p, nothing);
    close(sv[1]);
    LOOP_UNTIL(m, R.finalized == 2, 2);
    cr_assert(strncmp(R.log, "warning: unhandled close event\n", 31) == 0, "%s", R.log);
    finish(m);
}

Test(chat, chat_handle_close_is_callable, .timeout = 5,
     .description = "C20 X2: ac_chat_handle_close closes the channel, and again harmlessly")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    cr_assert_eq(ac_chat_handle_close(d), 0);
    cr_assert(ac_is_closed(d));
    cr_assert_eq(ac_fd(d), -1);
    cr_assert_eq(ac_chat_handle_close(d), 0);
    cr_assert_eq(R.log_lines, 0);
    close(peer);
    finish(m);
}

/* ========================================================== C21 */

Test(chat, discard_buffers_empties_everything, .timeout = 5,
     .description = "C21 X18: discard_buffers drops the held input, incoming, the queued "
                    "entries, producers and the close marker; terminator and state stay")
{
    ac_map *m = map_new();
    static const ac_handlers h = {
        .collect_incoming_data = ac_chat_collect_incoming_data,
        .found_terminator = h_found,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = h_finalize,
    };
    int peer;
    ac_dispatcher *d = chat_pair(m, &h, &peer);
    set_term(d, "\r\n");
    cr_assert_eq(FEED(d, peer, "ab\r"), 0); /* incoming "ab", "\r" held */
    ac_set_connected(d, false);
    struct script s = {.name = "p", .pieces = (const char *const[]){"never", NULL}};
    cr_assert_eq(ac_chat_push(d, "queued", 6), 0);
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&s)), 0);
    cr_assert_eq(ac_close_when_done(d), 0);
    ac_chat_discard_buffers(d);
    cr_assert_str_eq(R.trace, "p:release");
    cr_assert_eq(ac_chat_pending(d), 0);
    size_t len = 99;
    char *data = ac_chat_get_data(d, &len);
    cr_assert_eq(len, 0);
    free(data);
    cr_assert_not(ac_is_connected(d), "connection state untouched");
    ac_set_connected(d, true);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_not(ac_is_closed(d), "the close marker is gone");
    cr_assert_eq(inq(peer), 0);
    /* The held \r is gone: \n alone is no terminator now. */
    cr_assert_eq(FEED(d, peer, "\nx\r\n"), 0);
    cr_assert_str_eq(R.trace, "p:release F");
    data = ac_chat_get_data(d, &len);
    cr_assert_eq(len, 2);
    cr_assert_str_eq(data, "\nx", "with the \r still held this would be \"x\"");
    free(data);
    const void *t;
    cr_assert_eq(ac_chat_get_terminator(d, &t, &len), AC_TERM_BYTES);
    cr_assert_eq(len, 2);
    close(peer);
    finish(m);
}

Test(chat, discard_buffers_mid_stream, .timeout = 5,
     .description = "C21 C16 X18: discarding while a producer streams releases it at once; "
                    "later pushes go out normally")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 0, 2), 0);
    struct script s = {.name = "p", .pieces = (const char *const[]){"abcdef", "gh", NULL}};
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&s)), 0);
    cr_assert_eq(inq(peer), 2);
    ac_chat_discard_buffers(d);
    cr_assert_str_eq(R.trace, "p:more:6 p:release");
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 2);
    cr_assert_eq(ac_chat_push(d, "zz", 2), 0);
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_str_eq(out.p, "abzz");
    bytes_free(&out);
    close(peer);
    finish(m);
}

/* ========================================================== C24 */

Test(chat, in_buffer_size_bounds_each_recv, .timeout = 5,
     .description = "C24 C5 C8: ac_in_buffer_size bounds each recv: 12 bytes with size 5 are "
                    "three reads, three pieces, one per read event")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 5, 0), 0);
    cr_assert_eq(ac_chat_set_terminator_none(d), 0);
    PUT(peer, "abcdefghijkl");
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(R.trace, "c:abcde");
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(R.trace, "c:abcde c:fghij c:kl");
    cr_assert_eq(inq(ac_fd(d)), 0);
    close(peer);
    finish(m);
}
