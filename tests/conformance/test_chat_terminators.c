/* Conformance: the chat channel's splitting loop (spec C6-C12): string,
 * count and no terminators, the integer bookkeeping, empty records and
 * pieces, the leftover at EOF, handlers that change things in
 * found_terminator, and find_prefix_at_end.  The splitting matrix and the
 * seeded property test are in test_chat_split.c.  The recorder is
 * tests/support/chat_recorder.h. */
#include "chat_recorder.h"

/* ======================================================== C6, C7 */

Test(chat, string_terminator_found_and_held, .timeout = 5,
     .description = "C6c C9 C12: first occurrence found, terminator bytes dropped, a possible "
                    "terminator start at the end is held back for the next read")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "\r\n");
    cr_assert_eq(FEED(d, peer, "ab\r"), 0);
    cr_assert_str_eq(R.trace, "c:ab");
    cr_assert_eq(FEED(d, peer, "\ncd\r\nef"), 0);
    cr_assert_str_eq(R.trace, "c:ab F c:cd F c:ef");
    cr_assert_eq(R.nrecs, 2);
    cr_assert_str_eq(R.recs[0].p, "ab");
    cr_assert_str_eq(R.recs[1].p, "cd");
    close(peer);
    finish(m);
}

Test(chat, whole_buffer_may_start_the_terminator, .timeout = 5,
     .description = "C6c (p == L) C12: a buffer that may entirely be the start of the "
                    "terminator is kept; a longer one passes on all but the prefix")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "abc");
    cr_assert_eq(FEED(d, peer, "ab"), 0);
    cr_assert_str_empty(R.trace);
    cr_assert_eq(FEED(d, peer, "a"), 0);
    cr_assert_str_eq(R.trace, "c:ab");
    cr_assert_eq(FEED(d, peer, "bc"), 0);
    cr_assert_str_eq(R.trace, "c:ab F");
    close(peer);
    finish(m);
}

static int found_sees_zero(ac_dispatcher *d)
{
    size_t left = 99;
    cr_assert_eq(ac_chat_get_terminator(d, NULL, &left), AC_TERM_COUNT);
    cr_assert_eq(left, 0, "C7: found_terminator observes get_terminator() == 0");
    tr("term0");
    return 0;
}

Test(chat, count_terminator_bookkeeping, .timeout = 5,
     .description = "C6b C7: the count is decremented in place, found_terminator sees 0, later "
                    "bytes are collected without another found_terminator")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.on_found = found_sees_zero;
    cr_assert_eq(ac_chat_set_terminator_count(d, 5), 0);
    cr_assert_eq(FEED(d, peer, "abc"), 0);
    size_t left;
    cr_assert_eq(ac_chat_get_terminator(d, NULL, &left), AC_TERM_COUNT);
    cr_assert_eq(left, 2, "C3: get_terminator returns the count still remaining");
    cr_assert_eq(FEED(d, peer, "defgh"), 0);
    cr_assert_str_eq(R.trace, "c:abc c:de F term0 c:fgh");
    cr_assert_eq(FEED(d, peer, "ijk"), 0);
    cr_assert_str_eq(R.trace, "c:abc c:de F term0 c:fgh c:ijk");
    cr_assert_eq(R.founds, 1);
    close(peer);
    finish(m);
}

Test(chat, count_spans_many_reads, .timeout = 10,
     .description = "C7 C8: a count of 1000 fed 7 bytes per read: 143 pieces, one "
                    "found_terminator after exactly 1000 bytes")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.quiet = true;
    cr_assert_eq(ac_chat_set_terminator_count(d, 1000), 0);
    char data[1001];
    for (int i = 0; i < 1000; i++)
        data[i] = (char)('a' + i % 26);
    for (int off = 0; off < 1000; off += 7) {
        cr_assert_eq(R.founds, 0);
        cr_assert_eq(feed(d, peer, data + off, off + 7 <= 1000 ? 7 : (size_t)(1000 - off)), 0);
    }
    cr_assert_eq(R.collects, 143);
    cr_assert_eq(R.founds, 1);
    cr_assert_eq(R.recs[0].len, 1000);
    cr_assert_eq(memcmp(R.recs[0].p, data, 1000), 0);
    close(peer);
    finish(m);
}

static size_t count_left(ac_dispatcher *d)
{
    size_t left = 0;
    return ac_chat_get_terminator(d, NULL, &left) == AC_TERM_COUNT ? left : 999;
}

static int collect_sees_count(ac_dispatcher *d, const void *data, size_t len)
{
    R.collects++;
    tr("c:%s@%zu", esc(data, len), count_left(d));
    /* The second part of the test: a new count set while collecting. */
    if (R.keep_open && len == 3 && memcmp(data, "abc", 3) == 0)
        cr_assert_eq(ac_chat_set_terminator_count(d, 2), 0);
    return 0;
}

static int found_sees_count(ac_dispatcher *d)
{
    R.founds++;
    tr("F@%zu", count_left(d));
    return 0;
}

Test(chat, count_is_stored_after_the_piece_is_passed_on, .timeout = 5,
     .description = "C6b C7 C11: the piece is passed on first, then n - L (or 0) is stored: "
                    "collect_incoming_data still sees the old count, and a count it sets is "
                    "overwritten (as CPython)")
{
    ac_map *m = map_new();
    static const ac_handlers h = {
        .collect_incoming_data = collect_sees_count,
        .found_terminator = found_sees_count,
        .handle_error = h_error,
        .finalize = h_finalize,
    };
    int peer;
    ac_dispatcher *d = chat_pair(m, &h, &peer);
    cr_assert_eq(ac_chat_set_terminator_count(d, 5), 0);
    cr_assert_eq(FEED(d, peer, "abc"), 0);
    cr_assert_eq(FEED(d, peer, "defgh"), 0);
    /* Python 3.11: [('c', b'abc', 5), ('c', b'de', 2), ('F', 0), ('c', b'fgh', 0)] */
    cr_assert_str_eq(R.trace, "c:abc@5 c:de@2 F@0 c:fgh@0");

    trace_clear();
    R.keep_open = true; /* collect sets count 2 when it gets "abc" */
    cr_assert_eq(ac_chat_set_terminator_count(d, 3), 0);
    cr_assert_eq(FEED(d, peer, "abcdefg"), 0);
    /* Python 3.11: [('c', b'abc', 3), ('F', 0), ('c', b'defg', 0)] */
    cr_assert_str_eq(R.trace, "c:abc@3 F@0 c:defg@0");
    close(peer);
    finish(m);
}

static int found_rearm3(ac_dispatcher *d) { return ac_chat_set_terminator_count(d, 3); }

Test(chat, count_rearmed_in_found_terminator, .timeout = 5,
     .description = "C7 C11: a new count set by found_terminator applies to the bytes already "
                    "buffered")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.on_found = found_rearm3;
    cr_assert_eq(ac_chat_set_terminator_count(d, 3), 0);
    cr_assert_eq(FEED(d, peer, "abcdefgh"), 0);
    cr_assert_str_eq(R.trace, "c:abc F c:def F c:gh");
    close(peer);
    finish(m);
}

Test(chat, no_terminator_forms_collect_everything, .timeout = 5,
     .description = "C6a C3 X17: none, the empty string and count 0 pass the whole buffer on "
                    "and never call found_terminator; get_terminator tells them apart")
{
    ac_map *m = map_new();
    for (int kind = 0; kind < 3; kind++) {
        int peer;
        ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
        int rc = kind == 0   ? ac_chat_set_terminator_none(d)
                 : kind == 1 ? ac_chat_set_terminator(d, "", 0)
                             : ac_chat_set_terminator_count(d, 0);
        cr_assert_eq(rc, 0);
        trace_clear();
        cr_assert_eq(FEED(d, peer, "abc\n\r\n"), 0);
        cr_assert_eq(FEED(d, peer, "\0"), 0);
        cr_assert_str_eq(R.trace, "c:abc\\n\\r\\n c:\\0", "kind %d", kind);
        cr_assert_eq(ac_chat_get_terminator(d, NULL, NULL), kind == 0   ? AC_TERM_NONE
                                                            : kind == 1 ? AC_TERM_BYTES
                                                                        : AC_TERM_COUNT);
        close(peer);
    }
    cr_assert_eq(R.founds, 0);
    finish(m);
}

/* ============================================================ C8 */

Test(chat, empty_records_and_unjoined_pieces, .timeout = 5,
     .description = "C8 (CPython test_empty_line): empty records call found_terminator with no "
                    "collect; pieces from different reads are never joined")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "\n");
    cr_assert_eq(FEED(d, peer, "\n\n"), 0);
    cr_assert_str_eq(R.trace, "F F");
    cr_assert_eq(FEED(d, peer, "ab"), 0);
    cr_assert_eq(FEED(d, peer, "cd"), 0);
    cr_assert_eq(FEED(d, peer, "\nx"), 0);
    cr_assert_str_eq(R.trace, "F F c:ab c:cd F c:x");
    cr_assert_eq(R.nrecs, 3);
    cr_assert_str_eq(R.recs[0].p, "");
    cr_assert_str_eq(R.recs[2].p, "abcd");
    close(peer);
    finish(m);
}

/* =========================================================== C10 */

Test(chat, leftover_never_delivered_at_eof, .timeout = 5,
     .description = "C10 W14: at EOF a trailing partial terminator is never collected and an "
                    "unterminated record never announced")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "\r\n");
    PUT(peer, "abc\r");
    shutdown(peer, SHUT_WR);
    LOOP_UNTIL(m, R.finalized == 1, 2);
    cr_assert_str_eq(R.trace, "c:abc close");
    close(peer);

    d = chat_pair(m, &chat_h, &peer);
    trace_clear();
    cr_assert_eq(ac_chat_set_terminator_count(d, 10), 0);
    PUT(peer, "abc");
    shutdown(peer, SHUT_WR);
    LOOP_UNTIL(m, R.finalized == 2, 2);
    cr_assert_str_eq(R.trace, "c:abc close");
    cr_assert_eq(R.founds, 0);
    close(peer);
    finish(m);
}

Test(chat, held_prefix_resplit_under_new_terminator, .timeout = 5,
     .description = "C6 C10 C3: a held terminator prefix is split again with the terminator "
                    "set before the next read")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    set_term(d, "\r\n");
    cr_assert_eq(FEED(d, peer, "ab\r"), 0);
    set_term(d, "x");
    cr_assert_eq(FEED(d, peer, "yx"), 0);
    cr_assert_str_eq(R.trace, "c:ab c:\\ry F");
    close(peer);
    finish(m);
}

/* =========================================================== C11 */

static int found_http(ac_dispatcher *d)
{
    /* A header ends with \r\n\r\n and announces a 4-byte body. */
    if (ac_chat_get_terminator(d, NULL, NULL) == AC_TERM_BYTES)
        return ac_chat_set_terminator_count(d, 4);
    return ac_chat_set_terminator(d, "\r\n\r\n", 4);
}

Test(chat, found_terminator_changes_the_terminator, .timeout = 5,
     .description = "C11 C6 C7: terminators switched by found_terminator apply at once to the "
                    "rest of the same read")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.on_found = found_http;
    set_term(d, "\r\n\r\n");
    cr_assert_eq(FEED(d, peer, "GET\r\n\r\nbodyHEAD\r\n\r\n12"), 0);
    cr_assert_str_eq(R.trace, "c:GET F c:body F c:HEAD F c:12");
    cr_assert_eq(FEED(d, peer, "34\r\n\r"), 0);
    cr_assert_str_eq(R.trace, "c:GET F c:body F c:HEAD F c:12 c:34 F",
                     "\\r\\n\\r may start the new terminator: held whole");
    cr_assert_eq(FEED(d, peer, "x"), 0);
    cr_assert_str_eq(R.trace, "c:GET F c:body F c:HEAD F c:12 c:34 F c:\\r\\n\\rx");
    close(peer);
    finish(m);
}

static int found_none(ac_dispatcher *d) { return ac_chat_set_terminator_none(d); }

Test(chat, found_terminator_sets_none, .timeout = 5,
     .description = "C11 C6a: after found_terminator sets none, the rest of the buffer is one "
                    "piece")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.on_found = found_none;
    set_term(d, "\n");
    cr_assert_eq(FEED(d, peer, "a\nb\nc"), 0);
    cr_assert_str_eq(R.trace, "c:a F c:b\\nc");
    close(peer);
    finish(m);
}

static int found_close(ac_dispatcher *d)
{
    if (!ac_is_closed(d)) {
        tr("closing");
        return ac_close(d);
    }
    tr("closed");
    return 0;
}

Test(chat, close_in_found_terminator_continues_the_loop, .timeout = 5,
     .description = "C11 S13: after found_terminator closes the channel, the loop goes on over "
                    "the bytes already read; the channel is finalized once")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.on_found = found_close;
    set_term(d, "\n");
    PUT(peer, "a\nb\nc");
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(R.trace, "c:a F closing c:b F closed c:c");
    cr_assert_eq(R.finalized, 1);
    cr_assert_eq(ac_map_count(m), 0);
    close(peer);
    finish(m);
}

static int found_push_ack(ac_dispatcher *d) { return ac_chat_push(d, "ack\n", 4); }

Test(chat, push_in_found_terminator_continues_the_loop, .timeout = 5,
     .description = "C11 C13: a push from found_terminator sends at once and the loop goes on")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.on_found = found_push_ack;
    set_term(d, "\n");
    cr_assert_eq(FEED(d, peer, "a\nb\nc"), 0);
    cr_assert_str_eq(R.trace, "c:a F c:b F c:c");
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_str_eq(out.p, "ack\nack\n");
    bytes_free(&out);
    close(peer);
    finish(m);
}

static int found_discard(ac_dispatcher *d)
{
    ac_chat_discard_buffers(d);
    return 0;
}

Test(chat, discard_buffers_in_found_terminator_ends_the_loop, .timeout = 5,
     .description = "C11 C21: discard_buffers empties the input buffer, so the records after "
                    "it in the same read are dropped; the terminator stays")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.on_found = found_discard;
    set_term(d, "\n");
    cr_assert_eq(FEED(d, peer, "a\nb\nc\n"), 0);
    cr_assert_str_eq(R.trace, "c:a F");
    cr_assert_eq(FEED(d, peer, "d\ne"), 0);
    cr_assert_str_eq(R.trace, "c:a F c:d F");
    close(peer);
    finish(m);
}

static int found_exit_once(ac_dispatcher *d)
{
    (void)d;
    return R.founds == 1 ? AC_EXIT_NOW : 0;
}

Test(chat, exit_request_keeps_the_rest_for_the_next_read, .timeout = 5,
     .description = "C11 L16 X3: found_terminator asking to leave the loop ends the iteration; "
                    "the records still buffered are split at the next read (as CPython)")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    R.on_found = found_exit_once;
    set_term(d, "\n");
    PUT(peer, "a\nb\nc\n");
    cr_assert_eq(ac_poll(m, 1.0), AC_EXIT_NOW);
    cr_assert_str_eq(R.trace, "c:a F");
    PUT(peer, "d\n");
    cr_assert_eq(ac_poll(m, 1.0), 0);
    /* Python 3.11: a F exit b F c F d F */
    cr_assert_str_eq(R.trace, "c:a F c:b F c:c F c:d F");
    close(peer);
    finish(m);
}

/* =========================================================== C12 */

static size_t fpae(const char *h, size_t hl, const char *n, size_t nl)
{
    return ac_find_prefix_at_end(h, hl, n, nl);
}

#define FPAE(h, n) fpae((h), sizeof(h) - 1, (n), sizeof(n) - 1)

Test(chat, find_prefix_at_end_examples, .timeout = 5,
     .description = "C12 (CPython test_find_prefix_at_end): the longest proper prefix of the "
                    "needle the haystack ends with")
{
    cr_assert_eq(FPAE("qwerty\r", "\r\n"), 1);
    cr_assert_eq(FPAE("qwertydkjf", "\r\n"), 0);
    cr_assert_eq(FPAE("xqq", "qqq"), 2);
    cr_assert_eq(FPAE("q", "qqq"), 1);
    cr_assert_eq(FPAE("aba", "abab"), 3);
    cr_assert_eq(FPAE("ab", "abab"), 2);
    cr_assert_eq(FPAE("a", "a"), 0, "a one-byte needle always gives 0");
    cr_assert_eq(FPAE("xyz\n", "\n"), 0);
    cr_assert_eq(FPAE("abc", ""), 0);
    cr_assert_eq(FPAE("", "\r\n"), 0);
    cr_assert_eq(FPAE("qqq", "qqq"), 2, "proper prefixes only");
    cr_assert_eq(FPAE("x\0", "\0\1"), 1, "NUL bytes are bytes");
    cr_assert_eq(FPAE("\0\0", "\0\0\0"), 2);
    cr_assert_eq(FPAE("\r\n.\r", "\r\n.\r\n"), 4);
    cr_assert_eq(FPAE("\r\n.\r\n\r", "\r\n.\r\n"), 1);
}
