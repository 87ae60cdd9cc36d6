/* Conformance: the chat channel's output (spec C13-C18, C23): push and its
 * entries, push_with_producer and initiate_send, close_when_done, pushes
 * while not connected and inside handle_connect, and the write interest
 * that follows the queue.  The producers themselves are in
 * test_chat_producers.c.  The recorder and the scripted producer are
 * tests/support/chat_recorder.h. */
#include "chat_recorder.h"

/* ========================================================== C13 */

Test(chat, push_cuts_large_data_into_entries, .timeout = 5,
     .description = "C13 C16 C24: a push longer than ac_out_buffer_size is queued as slices of "
                    "exactly that size, one entry each (one send each, even after the size grows)")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 0, 10), 0);
    ac_set_connected(d, false); /* C17: queue only */
    char data[35];
    for (int i = 0; i < 35; i++)
        data[i] = (char)('A' + i % 26);
    cr_assert_eq(ac_chat_push(d, data, 35), 0);
    cr_assert_eq(inq(peer), 0);
    cr_assert_eq(ac_chat_pending(d), 35);
    ac_set_connected(d, true);
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 0, 100), 0); /* read each time it is used */
    static const int sent[] = {10, 20, 30, 35};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(ac_initiate_send(d), 0);
        cr_assert_eq(inq(peer), sent[i], "send %d", i);
        cr_assert_eq(ac_chat_pending(d), (size_t)(35 - sent[i]));
    }
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_eq(out.len, 35);
    cr_assert_eq(memcmp(out.p, data, 35), 0);
    bytes_free(&out);
    close(peer);
    finish(m);
}

Test(chat, push_short_data_is_one_entry_sliced_at_send, .timeout = 5,
     .description = "C13 C16.3 C24: a push no longer than the size is one entry; a smaller "
                    "size at send time sends it in chunks of that size")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, "0123456789abcdefghijklmnopqrstuvwxy", 35), 0);
    ac_set_connected(d, true);
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 0, 10), 0);
    static const int sent[] = {10, 20, 30, 35, 35};
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(ac_initiate_send(d), 0);
        cr_assert_eq(inq(peer), sent[i], "send %d", i);
    }
    close(peer);
    finish(m);
}

Test(chat, empty_entry_ends_initiate_send, .timeout = 5,
     .description = "C13 C16.2 X18: an empty push is one entry; initiate_send removes it and "
                    "sends nothing else in that call")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, "", 0), 0);
    cr_assert_eq(ac_chat_push(d, NULL, 0), 0);
    cr_assert_eq(ac_chat_push(d, "abc", 3), 0);
    ac_set_connected(d, true);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 0, "the first empty entry ends the call");
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 0, "so does the second");
    cr_assert_eq(ac_chat_pending(d), 3);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 3);
    close(peer);
    finish(m);
}

Test(chat, push_copies_the_data, .timeout = 5,
     .description = "C13 X18: push copies; changing the caller's buffer afterwards does not "
                    "change what is sent (CPython test_push: any bytes-like buffer)")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    ac_set_connected(d, false);
    char stack[] = "stack\n";
    char *heap = strdup("heap\n");
    const char big[] = "..slice\n..";
    cr_assert_eq(ac_chat_push(d, stack, 6), 0);
    cr_assert_eq(ac_chat_push(d, heap, 5), 0);
    cr_assert_eq(ac_chat_push(d, big + 2, 6), 0);
    memset(stack, 'X', 6);
    memset(heap, 'X', 5);
    free(heap);
    ac_set_connected(d, true);
    LOOP_UNTIL(m, ac_chat_pending(d) == 0, 2);
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_str_eq(out.p, "stack\nheap\nslice\n");
    bytes_free(&out);
    close(peer);
    finish(m);
}

Test(chat, push_large_buffer_through_the_loop, .timeout = 20,
     .description = "C13 C16 C19 C24: 1 MiB pushed at once is 16 entries of 65536 bytes; the "
                    "write events send them in order, at most one entry per send")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_w, &peer);
    const size_t n = 1 << 20;
    char *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)(i * 131 + i / 65536);
    cr_assert_eq(ac_chat_push(d, data, n), 0);
    cr_assert_leq(inq(peer), AC_CHAT_BUFFER_SIZE, "one send of at most one entry");
    struct bytes out = {0};
    double end = now() + 15;
    while (out.len < n) {
        cr_assert(now() < end, "received %zu of %zu", out.len, n);
        size_t before = out.len;
        cr_assert_eq(ac_poll(m, 0.01), 0);
        int q = inq(peer);
        drain(peer, &out);
        cr_assert_leq(out.len - before, AC_CHAT_BUFFER_SIZE, "C16: one send per write event");
        (void)q;
    }
    cr_assert_eq(out.len, n);
    cr_assert_eq(memcmp(out.p, data, n), 0);
    cr_assert_geq(R.writes, 15, "16 entries, the first sent by push itself");
    cr_assert_eq(ac_chat_pending(d), 0);
    free(data);
    bytes_free(&out);
    close(peer);
    finish(m);
}

/* ================================================== C14, C16 */

Test(chat, producer_pieces_in_odd_sizes, .timeout = 5,
     .description = "C14 C16.4 X18: a producer's pieces of 1, 7, 13, 64 and 3 bytes go out in "
                    "order; the producer is asked once per piece and once more, then released")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    static const char p64[] = "0123456789012345678901234567890123456789012345678901234567890123";
    struct script s = {
        .name = "p",
        .pieces = (const char *const[]){"a", "bcdefgh", "ijklmnopqrstu", p64, "xyz", NULL}};
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&s)), 0);
    LOOP_UNTIL(m, s.releases == 1, 2);
    struct bytes out = {0};
    drain(peer, &out);
    char want[128];
    snprintf(want, sizeof(want), "abcdefghijklmnopqrstu%sxyz", p64);
    cr_assert_str_eq(out.p, want);
    cr_assert_eq(s.mores, 6);
    cr_assert_str_eq(R.trace, "p:more:1 p:more:7 p:more:13 p:more:64 p:more:3 p:more:0 "
                              "p:release");
    bytes_free(&out);
    close(peer);
    finish(m);
}

Test(chat, producer_piece_sliced_and_asked_only_at_head, .timeout = 5,
     .description = "C14 C16.3 C16.4: a piece longer than ac_out_buffer_size goes out in "
                    "slices; more() is called only when the previous piece has gone entirely")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 0, 4), 0);
    struct script s = {.name = "p", .pieces = (const char *const[]){"abcdefgh", "ij", NULL}};
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&s)), 0);
    cr_assert_eq(inq(peer), 4);
    cr_assert_str_eq(R.trace, "p:more:8");
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 8);
    cr_assert_str_eq(R.trace, "p:more:8", "no more() while the piece is unsent");
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 10);
    cr_assert_str_eq(R.trace, "p:more:8 p:more:2");
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_str_eq(R.trace, "p:more:8 p:more:2 p:more:0 p:release");
    cr_assert_eq(inq(peer), 10);
    close(peer);
    finish(m);
}

Test(chat, producer_empty_once_is_finished, .timeout = 5,
     .description = "C16.4: a producer that returns nothing once is removed, even if it could "
                    "produce more later; the next entry follows")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    struct script s = {.name = "p", .pieces = (const char *const[]){"", "late", NULL}};
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&s)), 0);
    cr_assert_str_eq(R.trace, "p:more:0 p:release");
    cr_assert_eq(ac_chat_push(d, "next", 4), 0);
    cr_assert_eq(inq(peer), 4);
    cr_assert_eq(s.mores, 1);
    close(peer);
    finish(m);
}

Test(chat, string_producer_is_one_unsplit_entry, .timeout = 5,
     .description = "C14 C16.3 (CPython test_string_producer): a producer giving one long "
                    "string is one entry; it is sent in ac_out_buffer_size chunks")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 0, 5), 0);
    struct script s = {.name = "p", .pieces = (const char *const[]){"hello world", NULL}};
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&s)), 0);
    cr_assert_eq(ac_chat_push(d, "!", 1), 0);
    cr_assert_str_empty(R.trace, "not connected: the producer is not asked");
    ac_set_connected(d, true);
    static const int sent[] = {5, 10, 11, 12};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(ac_initiate_send(d), 0);
        cr_assert_eq(inq(peer), sent[i], "send %d", i);
    }
    cr_assert_str_eq(R.trace, "p:more:11 p:more:0 p:release");
    close(peer);
    finish(m);
}

Test(chat, entries_never_interleave, .timeout = 5,
     .description = "C16: two producers, a push between them: each entry's data goes out "
                    "whole before the next one's")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    ac_set_connected(d, false);
    struct script a = {.name = "a", .pieces = (const char *const[]){"a1", "a2", "a3", NULL}};
    struct script b = {.name = "b", .pieces = (const char *const[]){"b1", "b2", NULL}};
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&a)), 0);
    cr_assert_eq(ac_chat_push(d, "--", 2), 0);
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&b)), 0);
    ac_set_connected(d, true);
    LOOP_UNTIL(m, b.releases == 1, 2);
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_str_eq(out.p, "a1a2a3--b1b2");
    cr_assert_str_eq(R.trace, "a:more:2 a:more:2 a:more:2 a:more:0 a:release b:more:2 "
                              "b:more:2 b:more:0 b:release");
    bytes_free(&out);
    close(peer);
    finish(m);
}

Test(chat, producer_failure_propagates, .timeout = 5,
     .description = "C16.4 X3: a failing more() propagates: push_with_producer returns it; in "
                    "the loop the guard gives it to handle_error")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    struct script s = {.name = "p", .fail = EIO};
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&s)), -EIO);
    cr_assert_str_eq(R.trace, "p:fail");
    cr_assert_eq(R.errors, 0);
    LOOP_UNTIL(m, R.finalized == 1, 2);
    cr_assert_str_eq(R.trace, "p:fail p:fail error:EIO close p:release");
    close(peer);
    finish(m);
}

Test(chat, one_send_per_initiate_send, .timeout = 5,
     .description = "C16: at most one send per initiate_send call; the call after the queue is "
                    "empty does nothing")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, "aa", 2), 0);
    cr_assert_eq(ac_chat_push(d, "bb", 2), 0);
    cr_assert_eq(ac_chat_push(d, "cc", 2), 0);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 0, "C17: nothing while not connected");
    ac_set_connected(d, true);
    static const int sent[] = {2, 4, 6, 6};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(ac_initiate_send(d), 0);
        cr_assert_eq(inq(peer), sent[i], "call %d", i);
        cr_assert_eq(ac_chat_pending(d), (size_t)(6 - sent[i]));
    }
    close(peer);
    finish(m);
}

Test(chat, send_failure_reaches_handle_error, .timeout = 5,
     .description = "C16.3 S10: a send failing with an errno outside the disconnected set "
                    "calls handle_error; push returns what handle_error returned")
{
    ac_map *m = map_new();
    int pfd[2];
    cr_assert_eq(pipe2(pfd, O_CLOEXEC | O_NONBLOCK), 0);
    ac_dispatcher *d = chat_new(m, &chat_h);
    cr_assert_eq(ac_set_socket(d, pfd[1]), 0); /* sendmsg(2) on a pipe: ENOTSOCK */
    ac_set_connected(d, true);
    R.keep_open = true;
    cr_assert_eq(ac_chat_push(d, "x", 1), 0);
    cr_assert_str_eq(R.trace, "error:ENOTSOCK");
    cr_assert_str_eq(R.last_op, "send");
    cr_assert_eq(ac_chat_pending(d), 1, "the entry stays queued");
    close(pfd[0]);
    finish(m);
}

Test(chat, send_to_a_closed_peer_closes, .timeout = 5,
     .description = "C16 S10 L15 X12: EPIPE is in the disconnected set: handle_close runs, "
                    "push returns 0, and no SIGPIPE kills the process")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    close(peer);
    cr_assert_eq(ac_chat_push(d, "x", 1), 0);
    cr_assert_str_eq(R.trace, "close");
    cr_assert(ac_is_closed(d));
    finish(m);
}

/* ========================================================== C15 */

Test(chat, close_when_done_waits_for_initiate_send, .timeout = 5,
     .description = "C15 C18 C19: close_when_done does not call initiate_send; the queued "
                    "marker makes the channel writable and the next write event closes it")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_w, &peer);
    cr_assert_eq(ac_close_when_done(d), 0);
    cr_assert_str_empty(R.trace);
    cr_assert_not(ac_is_closed(d));
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(R.trace, "close w0");
    cr_assert_eq(R.finalized, 1);
    char c;
    cr_assert_eq(read(peer, &c, 1), 0, "the peer sees EOF");
    close(peer);
    finish(m);
}

Test(chat, close_when_done_with_producers_still_queued, .timeout = 5,
     .description = "C15 C16 X18: everything queued before the marker is sent, producers "
                    "included; entries after it are never sent nor asked, only released")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    ac_set_connected(d, false);
    struct script a = {.name = "a", .pieces = (const char *const[]){"b", "cd", NULL}};
    struct script z = {.name = "z", .pieces = (const char *const[]){"never", NULL}};
    cr_assert_eq(ac_chat_push(d, "a", 1), 0);
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&a)), 0);
    cr_assert_eq(ac_close_when_done(d), 0);
    cr_assert_eq(ac_chat_push(d, "after", 5), 0);
    cr_assert_eq(ac_chat_push_with_producer(d, script_new(&z)), 0);
    ac_set_connected(d, true);
    LOOP_UNTIL(m, R.finalized == 1, 2);
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_str_eq(out.p, "abcd");
    cr_assert_str_eq(R.trace, "a:more:1 a:more:2 a:more:0 a:release close z:release");
    cr_assert_eq(z.mores, 0);
    bytes_free(&out);
    close(peer);
    finish(m);
}

Test(chat, push_after_the_marker_closes, .timeout = 5,
     .description = "C15 C13: the push after close_when_done runs initiate_send, which meets "
                    "the marker first: the channel closes and the pushed data is not sent")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    cr_assert_eq(ac_close_when_done(d), 0);
    cr_assert_eq(ac_chat_push(d, "x", 1), 0);
    cr_assert_str_eq(R.trace, "close");
    cr_assert(ac_is_closed(d));
    char c;
    cr_assert_eq(read(peer, &c, 1), 0);
    close(peer);
    finish(m);
}

/* ================================================== C17, C23 */

Test(chat, pushes_before_connect_leave_after_it, .timeout = 10,
     .description = "C17 C23 D8 C19: pushes while connecting and inside handle_connect only "
                    "queue; the same write event's handle_write sends them")
{
    ac_map *m = map_new();
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, alen), 0);
    cr_assert_eq(listen(lfd, 4), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);

    ac_dispatcher *d = chat_new(m, &chat_w);
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    set_term(d, "\n");
    cr_assert_eq(ac_connect(d, (struct sockaddr *)&a, alen), 0);
    int srv = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(srv, 0);
    bool in_progress = R.connects == 0; /* the usual case for TCP, even on loopback */
    cr_assert_eq(ac_chat_push(d, "early\n", 6), 0);
    if (in_progress) {
        cr_assert(ac_is_connecting(d));
        cr_assert_not(ac_is_connected(d));
        cr_assert_eq(ac_chat_pending(d), 6, "C17: queued while connecting");
        LOOP_UNTIL(m, R.writes > 0, 5);
        cr_assert_str_eq(R.trace, "connect:01 w0", "handle_connect, then handle_write");
    } else {
        cr_assert_str_eq(R.trace, "connect:01", "completed inside ac_connect (S7)");
        cr_assert_eq(ac_chat_pending(d), 0, "connected: the push sent at once");
    }
    cr_assert_eq(R.connects, 1);
    cr_assert(ac_is_connected(d));
    struct bytes out = {0};
    double end = now() + 5;
    while (out.len < 6 && now() < end) {
        struct pollfd p = {.fd = srv, .events = POLLIN};
        poll(&p, 1, 50);
        drain(srv, &out);
    }
    cr_assert_str_eq(out.p, "early\n");
    bytes_free(&out);
    close(srv);
    close(lfd);
    finish(m);
}

static int connect_pushes(ac_dispatcher *d)
{
    tr("connect:%d%d", ac_is_connected(d), ac_is_connecting(d));
    cr_assert_eq(ac_chat_push(d, "hello\n", 6), 0);
    tr("pending:%zu", ac_chat_pending(d));
    return 0;
}

Test(chat, push_inside_handle_connect_queues, .timeout = 10,
     .description = "C23 D8 C17: handle_connect runs before connected is set, so its push "
                    "queues; handle_write of the same event sends it")
{
    ac_map *m = map_new();
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, alen), 0);
    cr_assert_eq(listen(lfd, 4), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    static const ac_handlers h = {
        .collect_incoming_data = h_collect,
        .found_terminator = h_found,
        .handle_write = h_write,
        .handle_connect = connect_pushes,
        .handle_close = h_close,
        .handle_error = h_error,
        .finalize = h_finalize,
    };
    ac_dispatcher *d = chat_new(m, &h);
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    set_term(d, "\n");
    cr_assert_eq(ac_connect(d, (struct sockaddr *)&a, alen), 0);
    int srv = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(srv, 0);
    if (strstr(R.trace, "connect") == NULL) {
        LOOP_UNTIL(m, R.writes > 0, 5);
        cr_assert_str_eq(R.trace, "connect:01 pending:6 w0");
    } else {
        /* Completed inside ac_connect (D8 via S7): queued; the first write event sends. */
        cr_assert_str_eq(R.trace, "connect:01 pending:6");
        LOOP_UNTIL(m, R.writes > 0, 5);
        cr_assert_str_eq(R.trace, "connect:01 pending:6 w0");
    }
    struct bytes out = {0};
    double end = now() + 5;
    while (out.len < 6 && now() < end) {
        struct pollfd p = {.fd = srv, .events = POLLIN};
        poll(&p, 1, 50);
        drain(srv, &out);
    }
    cr_assert_str_eq(out.p, "hello\n");
    bytes_free(&out);
    close(srv);
    close(lfd);
    finish(m);
}

/* ========================================================== C18 */

Test(chat, interest_follows_queue_and_connection, .timeout = 5,
     .description = "C18 C19 X7: writable only when the queue is non-empty or not connected; "
                    "readable always (also with output queued)")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_w, &peer);
    set_term(d, "\n");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_eq(R.writes, 0, "connected, empty queue: not writable");
    ac_set_connected(d, false);
    cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_eq(R.writes, 1, "not connected: writable");
    cr_assert_eq(ac_chat_push(d, "abc", 3), 0);
    cr_assert_eq(inq(peer), 0);
    ac_set_connected(d, true);
    cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_eq(R.writes, 2);
    cr_assert_eq(inq(peer), 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_eq(R.writes, 2, "queue drained: not writable again");
    cr_assert_str_eq(R.trace, "w0 w0");

    /* Readable with output waiting: queue without sending, then data arrives. */
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, "q", 1), 0);
    PUT(peer, "x\n");
    cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_str_eq(R.trace, "w0 w0 c:x F w1");
    close(peer);
    finish(m);
}
