/* Conformance: what the header adds to asynchat's async_chat: bounded
 * input (W3, W14: a record larger than max_input fails and reading stops),
 * output backpressure (the water marks pause and resume reading) and
 * coalesced sending (W13: a read's pushes leave in one send).  Suite
 * chat_ext.  The recorder is tests/support/chat_recorder.h. */
#include "chat_recorder.h"

/* ======================================== extension: bounded input */

Test(chat_ext, max_input_bounds_a_record, .timeout = 5,
     .description = "W3 ext: max_input bytes may be collected for one record; one more is "
                    "EMSGSIZE (op max_input) to handle_error, whose default closes")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "\n");
    cr_assert_eq(ac_chat_set_max_input(d, 10), 0);
    PUT(peer, "0123456789\n0123456789A");
    LOOP_UNTIL(m, R.finalized == 1, 2);
    cr_assert_str_eq(R.trace, "c:0123456789 F error:EMSGSIZE close");
    cr_assert_str_eq(R.last_op, "max_input");
    cr_assert_eq(R.nrecs, 1);
    cr_assert_eq(R.cur.len, 0, "the piece over the bound is not collected");
    close(peer);
    finish(m);
}

Test(chat_ext, max_input_across_reads_stops_reading, .timeout = 5,
     .description = "W3 ext: the bound counts every piece since the last found_terminator; "
                    "past it the input is discarded and reading stops")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.keep_open = true;
    set_term(d, "\n");
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 4, 0), 0);
    cr_assert_eq(ac_chat_set_max_input(d, 10), 0);
    PUT(peer, "abcdefghijk\nzz\n");
    for (int i = 0; i < 6; i++)
        cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_str_eq(R.trace, "c:abcd c:efgh error:EMSGSIZE");
    cr_assert_eq(inq(ac_fd(d)), 3, "zz\\n: nothing read after the failure");
    PUT(peer, "more\n");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_str_eq(R.trace, "c:abcd c:efgh error:EMSGSIZE");
    cr_assert_eq(inq(ac_fd(d)), 8);
    close(peer);
    finish(m);
}

Test(chat_ext, max_input_is_per_record, .timeout = 5,
     .description = "W3 ext: records each within the bound pass, whatever their total; a count "
                    "terminator is bounded the same way")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "\n");
    cr_assert_eq(ac_chat_set_max_input(d, 3), 0);
    cr_assert_eq(FEED(d, peer, "abc\ndef\n\nghi\nj"), 0);
    cr_assert_str_eq(R.trace, "c:abc F c:def F F c:ghi F c:j");
    cr_assert_eq(ac_chat_set_terminator_count(d, 100), 0);
    cr_assert_eq(FEED(d, peer, "kl"), 0);
    cr_assert_eq(FEED(d, peer, "m"), -EMSGSIZE, "no guard here: the failure is returned");
    cr_assert_str_eq(R.trace, "c:abc F c:def F F c:ghi F c:j c:kl");
    close(peer);
    finish(m);
}

Test(chat_ext, max_input_bounds_memory_against_a_flood, .timeout = 10,
     .description = "W3 W14 ext: a peer sending 4 MiB without a terminator is cut off after "
                    "the bound; nothing over it is collected; one handle_error")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.quiet = true;
    set_term(d, "\r\n");
    cr_assert_eq(ac_chat_set_max_input(d, 4096), 0);
    char *chunk = malloc(65536);
    memset(chunk, 'x', 65536);
    size_t sent = 0;
    double end = now() + 8;
    while (R.finalized == 0) {
        cr_assert(now() < end);
        if (sent < (4u << 20)) {
            ssize_t n = send(peer, chunk, 65536, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
        }
        cr_assert_eq(ac_poll(m, 0.01), 0);
    }
    cr_assert_eq(R.errors, 1);
    cr_assert_eq(R.last_err, EMSGSIZE);
    cr_assert_eq(R.collects, 0, "the first 64 KiB read is over the bound already");
    cr_assert_eq(R.closes, 1);
    free(chunk);
    close(peer);
    finish(m);
}

static int error_reply_and_close(ac_dispatcher *d, const ac_error *e)
{
    R.errors++;
    tr("error:%s", ac_errno_name(e->err));
    cr_assert_eq(ac_chat_push(d, "ERR\n", 4), 0);
    return ac_close_when_done(d);
}

Test(chat_ext, max_input_stop_survives_the_low_mark, .timeout = 5,
     .description = "W3 ext: after EMSGSIZE reading stays stopped while handle_error replies "
                    "and close_when_done drains, even when the reply crosses the water marks")
{
    ac_map *m = map_new();
    static const ac_handlers h = {
        .collect_incoming_data = h_collect,
        .found_terminator = h_found,
        .handle_close = h_close,
        .handle_error = error_reply_and_close,
        .handle_high_water = h_high,
        .handle_low_water = h_low,
        .finalize = h_finalize,
    };
    int peer;
    ac_dispatcher *d = chat_pair(m, &h, &peer);
    set_term(d, "\n");
    cr_assert_eq(ac_chat_set_max_input(d, 4), 0);
    cr_assert_eq(ac_chat_set_watermarks(d, 0, 3), 0);
    PUT(peer, "abcdefgh\n");
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(R.trace, "error:EMSGSIZE high:4 low:0");
    PUT(peer, "xy\n"); /* must not be read: the channel said it stops reading */
    LOOP_UNTIL(m, R.finalized == 1, 2);
    cr_assert_str_eq(R.trace, "error:EMSGSIZE high:4 low:0 close");
    cr_assert_eq(R.collects, 0);
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_str_eq(out.p, "ERR\n");
    bytes_free(&out);
    close(peer);
    finish(m);
}

Test(chat_ext, max_input_zero_is_unbounded, .timeout = 5,
     .description = "C24 W3 ext: max_input 0 (the default) collects any amount, as asyncore")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.quiet = true;
    set_term(d, "\n");
    cr_assert_eq(ac_chat_set_max_input(d, 5), 0);
    cr_assert_eq(ac_chat_set_max_input(d, 0), 0);
    char buf[50000];
    memset(buf, 'y', sizeof(buf));
    for (int i = 0; i < 4; i++)
        cr_assert_eq(feed(d, peer, buf, sizeof(buf)), 0);
    cr_assert_eq(R.cur.len, 200000);
    cr_assert_eq(R.errors, 0);
    close(peer);
    finish(m);
}

/* ========================================= extension: backpressure */

Test(chat_ext, watermarks_pause_and_resume_reading, .timeout = 5,
     .description = "ext (backpressure): above the high mark handle_high_water runs and "
                    "reading stops; at the low mark handle_low_water runs and reading resumes")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_w, &peer);
    set_term(d, "\n");
    cr_assert_eq(ac_chat_set_watermarks(d, 100, 1000), 0);
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 0, 500), 0);
    char data[2000];
    memset(data, 'd', sizeof(data));
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, data, sizeof(data)), 0);
    cr_assert_str_eq(R.trace, "high:2000");
    ac_set_connected(d, true);
    PUT(peer, "hello\n");
    for (int i = 0; i < 5; i++)
        cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_str_eq(R.trace, "high:2000 w1500 w1000 w500 low:0 w0 c:hello F");
    cr_assert_eq(inq(peer), 2000);
    cr_assert_eq(R.highs, 1);
    cr_assert_eq(R.lows, 1);
    close(peer);
    finish(m);
}

Test(chat_ext, watermarks_below_high_do_nothing, .timeout = 5,
     .description = "ext (backpressure): a queue that never passes the high mark calls "
                    "neither handler; high 0 turns the marks off")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_w, &peer);
    cr_assert_eq(ac_chat_set_watermarks(d, 10, 1000), 0);
    ac_set_connected(d, false);
    char data[3000];
    memset(data, 'd', sizeof(data));
    cr_assert_eq(ac_chat_push(d, data, 1000), 0);
    cr_assert_eq(R.highs, 0, "1000 is not above 1000");
    cr_assert_eq(ac_chat_set_watermarks(d, 0, 0), 0);
    cr_assert_eq(ac_chat_push(d, data, 3000), 0);
    ac_set_connected(d, true);
    LOOP_UNTIL(m, ac_chat_pending(d) == 0, 2);
    cr_assert_eq(R.highs, 0);
    cr_assert_eq(R.lows, 0);
    cr_assert_eq(inq(peer), 4000);
    close(peer);
    finish(m);
}

Test(chat_ext, turning_watermarks_off_resumes_reading, .timeout = 5,
     .description = "ext (backpressure): set_watermarks(0, 0) while reading is paused above "
                    "the high mark turns backpressure off: reading resumes")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_w, &peer);
    set_term(d, "\n");
    cr_assert_eq(ac_chat_set_watermarks(d, 100, 1000), 0);
    char data[2000];
    memset(data, 'd', sizeof(data));
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, data, sizeof(data)), 0);
    cr_assert_str_eq(R.trace, "high:2000");
    cr_assert_eq(ac_chat_set_watermarks(d, 0, 0), 0);
    ac_set_connected(d, true);
    PUT(peer, "in\n");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ac_poll(m, 0), 0);
    /* One iteration reads (marks off: nothing holds reading back), then writes. */
    cr_assert_str_eq(R.trace, "high:2000 c:in F w0");
    close(peer);
    finish(m);
}

Test(chat_ext, discard_buffers_reaches_the_low_mark, .timeout = 5,
     .description = "C21 ext (backpressure): emptying the queue with discard_buffers runs "
                    "handle_low_water and resumes reading")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_w, &peer);
    set_term(d, "\n");
    cr_assert_eq(ac_chat_set_watermarks(d, 0, 10), 0);
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, "0123456789ab", 12), 0);
    PUT(peer, "in\n");
    ac_set_connected(d, true);
    ac_chat_discard_buffers(d);
    cr_assert_eq(ac_poll(m, 0), 0);
    cr_assert_str_eq(R.trace, "high:12 low:0 c:in F");
    cr_assert_eq(inq(peer), 0);
    close(peer);
    finish(m);
}

/* ================================ extension: coalesced sending (W13) */

/* found_terminator that echoes the record and a "\n", then traces what is
 * still queued. */
static int echo_record(ac_dispatcher *d)
{
    const struct bytes *rec = &R.recs[R.nrecs - 1];
    cr_assert_eq(ac_chat_push(d, rec->p, rec->len), 0);
    cr_assert_eq(ac_chat_push(d, "\n", 1), 0);
    tr("p%zu", ac_chat_pending(d));
    return 0;
}

Test(chat_ext, coalesce_sends_a_read_s_pushes_together, .timeout = 5,
     .description = "ext (W13, C13): with coalescing, pushes made while a read's records are "
                    "handled wait in the queue and leave together once the read is done; "
                    "without it every push sends at once")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "\n");
    R.on_found = echo_record;
    R.quiet = true;
    cr_assert_eq(FEED(d, peer, "a\nbb\n"), 0);
    cr_assert_str_eq(R.trace, "F p0 F p0", "C13: each push is sent at once");
    trace_clear();
    cr_assert_eq(ac_chat_set_coalesce(d, true), 0);
    cr_assert_eq(FEED(d, peer, "a\nbb\nccc\n"), 0);
    cr_assert_str_eq(R.trace, "F p2 F p5 F p9");
    cr_assert_eq(ac_chat_pending(d), 0, "sent when the read was done");
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_eq(out.len, 14);
    cr_assert_eq(memcmp(out.p, "a\nbb\na\nbb\nccc\n", 14), 0);
    bytes_free(&out);
    close(peer);
    finish(m);
}

Test(chat_ext, coalesce_one_call_sends_the_run_of_byte_entries, .timeout = 5,
     .description = "ext (W13, C16): a coalescing initiate_send sends the head's run of byte "
                    "entries in one call, empty entries dropped, up to ac_out_buffer_size; "
                    "asynchat's sends one entry per call")
{
    ac_map *m = map_new();
    int peer, peer2;
    ac_dispatcher *plain = chat_pair(m, &chat_h, &peer);
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer2);
    cr_assert_eq(ac_chat_set_coalesce(d, true), 0);
    for (int i = 0; i < 2; i++) {
        ac_dispatcher *x = i ? d : plain;
        ac_set_connected(x, false); /* C16: nothing leaves while not connected */
        cr_assert_eq(ac_chat_push(x, "ab", 2), 0);
        cr_assert_eq(ac_chat_push(x, "", 0), 0);
        cr_assert_eq(ac_chat_push(x, "cd", 2), 0);
        ac_set_connected(x, true);
        cr_assert_eq(ac_initiate_send(x), 0);
    }
    cr_assert_eq(inq(peer), 2, "C16: one entry per call");
    cr_assert_eq(ac_chat_pending(plain), 2);
    cr_assert_eq(inq(peer2), 4, "the whole run in one call");
    cr_assert_eq(ac_chat_pending(d), 0);

    /* The run stops at ac_out_buffer_size; the rest of an entry stays. */
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 0, 5), 0);
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, "efg", 3), 0);
    cr_assert_eq(ac_chat_push(d, "hij", 3), 0);
    ac_set_connected(d, true);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer2), 9);
    cr_assert_eq(ac_chat_pending(d), 1);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer2), 10);
    struct bytes out = {0};
    drain(peer2, &out);
    cr_assert_eq(memcmp(out.p, "abcdefghij", 10), 0);
    bytes_free(&out);
    close(peer);
    close(peer2);
    finish(m);
}

Test(chat_ext, coalesce_keeps_producers_and_the_close_marker_in_order, .timeout = 5,
     .description = "ext (W13, C15, C16): a coalesced run ends at a producer and at the close "
                    "marker; they are handled in queue order as C16 says")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    cr_assert_eq(ac_chat_set_coalesce(d, true), 0);
    ac_set_connected(d, false);
    cr_assert_eq(ac_chat_push(d, "12", 2), 0);
    cr_assert_eq(ac_chat_push(d, "34", 2), 0);
    cr_assert_eq(ac_chat_push_with_producer(d, ac_simple_producer_new("5678", 4, 2)), 0);
    cr_assert_eq(ac_chat_push(d, "9", 1), 0);
    cr_assert_eq(ac_close_when_done(d), 0);
    ac_set_connected(d, true);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 4, "the run before the producer");
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 6, "the producer's first piece alone: the producer stays behind it");
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(inq(peer), 8);
    cr_assert_eq(ac_initiate_send(d), 0); /* the producer is finished; then "9" */
    cr_assert_eq(inq(peer), 9);
    cr_assert_eq(R.closes, 0);
    cr_assert_eq(ac_initiate_send(d), 0);
    cr_assert_eq(R.closes, 1, "C15: the close marker, after every byte");
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_eq(out.len, 9);
    cr_assert_eq(memcmp(out.p, "123456789", 9), 0);
    bytes_free(&out);
    close(peer);
    finish(m);
}
