/* Conformance: the chat channel's documented deviations from CPython 3.11's
 * asynchat (include/asynchat.h; issue 8 item 4b).  Each test pins what the
 * header states, next to what asynchat does. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "ac_testkit.h"
#include "asynchat.h"

#include <signal.h>

static struct {
    int closes, founds;
    int (*on_found)(ac_dispatcher *d);
    int (*on_collect)(ac_dispatcher *d);
} V;

static int v_close(ac_dispatcher *d)
{
    V.closes++;
    return ac_chat_handle_close(d);
}

static int v_collect(ac_dispatcher *d, const void *data, size_t len)
{
    tk_tr("c:%.*s", (int)len, (const char *)data);
    return V.on_collect ? V.on_collect(d) : 0;
}

static int v_found(ac_dispatcher *d)
{
    V.founds++;
    tk_tr("F");
    return V.on_found ? V.on_found(d) : 0;
}

static const ac_handlers h = {
    .handle_close = v_close,
    .collect_incoming_data = v_collect,
    .found_terminator = v_found,
    .finalize = tk_finalize,
};

static ac_dispatcher *chat_pair(ac_map *m, int sv[2])
{
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *d = tk_new_chat(m, &h, "chat");
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    return d;
}

Test(chat_deviations, empty_push_does_not_detect_a_dead_peer, .timeout = 5,
     .description = "C13 C16.2 X18, issue 8 item 4b(a): asynchat's zero-length send fails with "
                    "EPIPE and closes at once; ours makes no system call, so the dead peer is "
                    "noticed at the next real send")
{
    signal(SIGPIPE, SIG_IGN);
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = chat_pair(m, sv);
    close(sv[1]);
    cr_assert_eq(ac_chat_push(d, "", 0), 0);
    cr_assert_eq(V.closes, 0);
    cr_assert_not(ac_is_closed(d));
    cr_assert_eq(ac_chat_push(d, "x", 1), 0);
    cr_assert_eq(V.closes, 1, "EPIPE on the real send: handle_close (S10)");
    cr_assert(ac_is_closed(d));
    tk_finish(m);
}

static int to_newline(ac_dispatcher *d) { return ac_chat_set_terminator(d, "\n", 1); }

Test(chat_deviations, count_changed_by_collect_keeps_the_old_count, .timeout = 5,
     .description = "C6b C7, issue 8 item 4b(b): collect_incoming_data sets a string terminator "
                    "while a count is partway; the old count minus the bytes read is stored "
                    "(asynchat: TypeError, handle_error)")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = chat_pair(m, sv);
    cr_assert_eq(ac_chat_set_terminator_count(d, 10), 0);
    V.on_collect = to_newline;
    cr_assert_eq(write(sv[1], "abcd", 4), 4);
    cr_assert_eq(ac_chat_handle_read(d), 0);
    size_t left = 0;
    cr_assert_eq(ac_chat_get_terminator(d, NULL, &left), AC_TERM_COUNT);
    cr_assert_eq(left, 6);
    V.on_collect = NULL;
    cr_assert_eq(write(sv[1], "ef\nghi", 6), 6);
    cr_assert_eq(ac_chat_handle_read(d), 0);
    cr_assert_str_eq(tk_trace, "c:abcd c:ef\nghi F", "the count of 10 held: 4 + 6");
    close(sv[1]);
    tk_finish(m);
}

static int reply_then_close(ac_dispatcher *d)
{
    int rc = ac_chat_push(d, "bye\n", 4);
    return rc ? rc : ac_close(d);
}

static int reply_then_close_when_done(ac_dispatcher *d)
{
    int rc = ac_chat_push(d, "bye\n", 4);
    return rc ? rc : ac_close_when_done(d);
}

static size_t peer_bytes(int fd, char *buf, size_t cap)
{
    size_t n = tk_read_full(fd, buf, cap, 500);
    return n;
}

Test(chat_deviations, coalesced_reply_then_close_is_lost, .timeout = 5,
     .description = "W13 C13, issue 8 item 4b(c): with coalescing a reply pushed in "
                    "found_terminator waits for the end of the read; ac_close() before that "
                    "drops it (asynchat sent it during the push)")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = chat_pair(m, sv);
    cr_assert_eq(ac_chat_set_terminator(d, "\n", 1), 0);
    cr_assert_eq(ac_chat_set_coalesce(d, true), 0);
    V.on_found = reply_then_close;
    cr_assert_eq(write(sv[1], "quit\n", 5), 5);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    char buf[16];
    cr_assert_eq(peer_bytes(sv[1], buf, sizeof(buf)), 0, "the reply never left");
    close(sv[1]);
    tk_finish(m);
}

Test(chat_deviations, coalesced_reply_then_close_when_done_arrives, .timeout = 5,
     .description = "W13 C15, issue 8 item 4b(c): the header's advice, close_when_done, "
                    "delivers the reply and then closes")
{
    ac_map *m = tk_map();
    int sv[2];
    ac_dispatcher *d = chat_pair(m, sv);
    cr_assert_eq(ac_chat_set_terminator(d, "\n", 1), 0);
    cr_assert_eq(ac_chat_set_coalesce(d, true), 0);
    V.on_found = reply_then_close_when_done;
    cr_assert_eq(write(sv[1], "quit\n", 5), 5);
    for (int i = 0; i < 3 && ac_map_count(m); i++) /* d is released once closed */
        cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_eq(ac_map_count(m), 0);
    char buf[16];
    cr_assert_eq(peer_bytes(sv[1], buf, sizeof(buf)), 4);
    cr_assert_eq(memcmp(buf, "bye\n", 4), 0);
    cr_assert_eq(V.closes, 1);
    close(sv[1]);
    tk_finish(m);
}

static int three_replies(ac_dispatcher *d)
{
    for (int i = 0; i < 3; i++) {
        int rc = ac_chat_push(d, "0123456789", 10);
        if (rc)
            return rc;
    }
    return 0;
}

static int close_after_read(ac_dispatcher *d)
{
    int rc = ac_chat_handle_read(d);
    return rc ? rc : ac_close(d);
}

static const ac_handlers small_h = {
    .handle_read = close_after_read,
    .collect_incoming_data = v_collect,
    .found_terminator = v_found,
    .finalize = tk_finalize,
};

Test(chat_deviations, coalesced_small_buffer_sends_less_before_a_close, .timeout = 5,
     .description = "W13 C24, issue 8 item 4b(c): three 10-byte replies with "
                    "ac_out_buffer_size 16: asynchat sends 30 bytes during the pushes; "
                    "coalesced, one send of 16 leaves before a close that follows the read")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    struct tk_node *n = tk_node_new("chat");
    ac_dispatcher *d = ac_chat_new(m, &small_h, n);
    n->d = d;
    tk_created++;
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    cr_assert_eq(ac_chat_set_terminator(d, "\n", 1), 0);
    cr_assert_eq(ac_chat_set_buffer_sizes(d, 0, 16), 0);
    cr_assert_eq(ac_chat_set_coalesce(d, true), 0);
    V.on_found = three_replies;
    cr_assert_eq(write(sv[1], "go\n", 3), 3);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_eq(ac_map_count(m), 0, "closed (and released) after the read");
    char buf[64];
    cr_assert_eq(peer_bytes(sv[1], buf, sizeof(buf)), 16);
    close(sv[1]);
    tk_finish(m);
}
