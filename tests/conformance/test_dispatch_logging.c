/* Conformance: logging and description (spec D21-D24): log and log_info
 * through the hook and the default sink, ignore_log_types, debug, and
 * ac_describe; CPython's test_log, test_log_info and test_repr.  The rig
 * is tests/support/dispatch_rig.h. */
#include "dispatch_rig.h"

#include <criterion/redirect.h>

/* ------------------------------------------------------------ D21, D22 */

static ac_dispatcher *hook_d;
static int hook_null_type;

static void type_hook(ac_dispatcher *d, const char *type, const char *msg, void *ctx)
{
    tk_log_hook(d, type, msg, ctx);
    if (d != hook_d)
        tk_tr("wrong-channel");
    if (!type)
        hook_null_type++;
    cr_assert_eq(ctx, &hook_null_type);
}

Test(dispatch_log, log_writes_every_message, .timeout = 5,
     .description = "D21 X15 (CPython test_log): log passes every message to the hook as "
                    "'log: <msg>', with no type and the channel, whatever ignore_log_types "
                    "holds")
{
    static const char *const everything[] = {"log", "info", "warning", "error", "", NULL};
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &tr_h, "d");
    hook_d = d;
    ac_set_log_hook(type_hook, &hook_null_type);
    ac_log(d, "Lovely spam! Wonderful spam!");
    ac_set_ignore_log_types(d, everything);
    ac_log(d, "I don't like spam!");
    cr_assert_str_eq(tk_logbuf, "log: Lovely spam! Wonderful spam!\nlog: I don't like spam!\n");
    cr_assert_eq(hook_null_type, 2);
    cr_assert_str_empty(tk_trace);
    finish(m);
}

Test(dispatch_log, log_info_types, .timeout = 5,
     .description = "D22 (CPython test_log_info): '<type>: <msg>' for free-form types; no "
                    "type means info")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &tr_h, "d");
    ac_log_info(d, "Have you got anything without spam?", "EGGS");
    ac_log_info(d, "Why can't she have egg bacon spam and sausage?", NULL);
    ac_log_info(d, "THAT'S got spam in it!", "SPAM");
    ac_log_infof(d, NULL, "%d eggs, %s", 3, "spam");
    ac_log_infof(d, "menu", "%s", "spam spam spam");
    cr_assert_str_eq(tk_logbuf, "EGGS: Have you got anything without spam?\n"
                                "info: Why can't she have egg bacon spam and sausage?\n"
                                "SPAM: THAT'S got spam in it!\n"
                                "info: 3 eggs, spam\n"
                                "menu: spam spam spam\n");
    finish(m);
}

Test(dispatch_log, log_info_drops_only_ignored_types, .timeout = 5,
     .description = "D22: only a type in ignore_log_types is dropped (exact, case-sensitive "
                    "match); ac_log_infof filters the same way")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &tr_h, "d");
    ac_log_info(d, "a", "warning");
    ac_log_infof(d, "warning", "b %d", 1);
    ac_log_info(d, "c", "WARNING");
    ac_log_info(d, "d", "warnings");
    ac_log_info(d, "e", "error");
    cr_assert_str_eq(tk_logbuf, "WARNING: c\nwarnings: d\nerror: e\n");
    finish(m);
}

Test(dispatch_log, ignore_log_types_per_kind_and_per_channel, .timeout = 5,
     .description = "D22: ignore_log_types can be replaced per kind (the table) and per "
                    "channel; a replacement replaces the whole set; NULL goes back to the "
                    "kind's; other channels are unaffected")
{
    static const char *const kind_types[] = {"info", "debug", NULL};
    static const char *const chan_types[] = {"error", NULL};
    static const ac_handlers kind = {
        .ignore_log_types = kind_types,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    ac_dispatcher *a = tk_new(m, &kind, "a");
    ac_dispatcher *b = tk_new(m, &kind, "b");
    ac_dispatcher *p = tk_new(m, &defaults_h, "p");
    ac_log_info(a, "a1", "info");
    ac_log_info(a, "a2", "debug");
    ac_log_info(a, "a3", "warning");
    ac_log_info(p, "p1", "warning");
    ac_log_info(p, "p2", "info");
    cr_assert_str_eq(tk_logbuf, "warning: a3\ninfo: p2\n");
    tk_logbuf[0] = '\0';

    ac_set_ignore_log_types(a, chan_types);
    ac_log_info(a, "a4", "error");
    ac_log_info(a, "a5", "info");
    ac_log_info(b, "b1", "info");
    ac_log_info(b, "b2", "error");
    cr_assert_str_eq(tk_logbuf, "info: a5\nerror: b2\n");
    tk_logbuf[0] = '\0';

    ac_set_ignore_log_types(a, NULL);
    ac_log_info(a, "a6", "info");
    ac_log_info(a, "a7", "error");
    ac_set_ignore_log_types(p, log_nothing_ignored);
    ac_log_info(p, "p3", "warning");
    cr_assert_str_eq(tk_logbuf, "error: a7\nwarning: p3\n");
    finish(m);
}

static ac_dispatcher *new_chat(ac_map *m, const ac_handlers *h, const char *name)
{
    struct tk_node *n = tk_node_new(name);
    ac_dispatcher *d = ac_chat_new(m, h, n);
    cr_assert_not_null(d);
    n->d = d;
    tk_created++;
    return d;
}

Test(dispatch_log, every_kind_ignores_warnings_by_default, .timeout = 5,
     .description = "D22 D1: plain, buffered, chat and file channels all start with "
                    "ignore_log_types = {warning}")
{
    ac_map *m = tk_map();
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    ac_dispatcher *ds[4] = {
        tk_new(m, &defaults_h, "plain"),
        tk_new_buffered(m, &defaults_h, "buffered"),
        new_chat(m, &defaults_h, "chat"),
        tk_new_file(m, &defaults_h, "file", p[0]),
    };
    for (int i = 0; i < 4; i++) {
        ac_log_info(ds[i], "hidden", "warning");
        ac_log_info(ds[i], tk_name(ds[i]), "info");
    }
    cr_assert_str_eq(tk_logbuf, "info: plain\ninfo: buffered\ninfo: chat\ninfo: file\n");
    finish(m);
    close(p[0]);
    close(p[1]);
}

static void redirect_all(void)
{
    cr_redirect_stdout();
    cr_redirect_stderr();
}

Test(dispatch_log, default_sink_is_stderr, .timeout = 5, .init = redirect_all,
     .description = "D21 D22 X15 (documented deviation: log_info goes to stderr): the default "
                    "hook writes 'log: msg' and '<type>: msg' lines to stderr, nothing to "
                    "stdout, and still drops ignored types")
{
    ac_map *m = tk_map();
    ac_set_log_hook(NULL, NULL);
    ac_dispatcher *d = tk_new(m, &tr_h, "d");
    ac_log(d, "Lovely spam!");
    ac_log_info(d, "egg and bacon", NULL);
    ac_log_info(d, "hidden", "warning");
    ac_log_info(d, "spam", "SPAM");
    fflush(stdout);
    fflush(stderr);
    finish(m);
    cr_assert_stderr_eq_str("log: Lovely spam!\ninfo: egg and bacon\nSPAM: spam\n");
    cr_assert_stdout_eq_str("");
}

/* --------------------------------------------------------------- D23 */

Test(dispatch_log, debug_is_off_and_read_only_by_buffered_send, .timeout = 5,
     .description = "D23 S15: debug is off by default (buffered send logs nothing); with it "
                    "on, a plain send and a chat push still log nothing")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    keep_peer(sv[1]);
    ac_dispatcher *b = tk_new_buffered(m, &defaults_h, "b");
    cr_assert_eq(ac_attach(b, sv[0]), 0);
    cr_assert_eq(ac_buffered_send(b, "abc", 3), 0);
    cr_assert_eq(tk_log_lines, 0, "%s", tk_logbuf);

    ac_dispatcher *d = pair_d(m, &defaults_h, "d");
    ac_set_debug(d, true);
    cr_assert_eq(ac_send(d, "abc", 3), 3);

    tk_socketpair(SOCK_STREAM, sv);
    keep_peer(sv[1]);
    ac_dispatcher *c = new_chat(m, &defaults_h, "c");
    cr_assert_eq(ac_attach(c, sv[0]), 0);
    ac_set_debug(c, true);
    cr_assert_eq(ac_chat_push(c, "abc", 3), 0);
    char buf[3];
    cr_assert_eq(tk_read_full(sv[1], buf, 3, 1000), 3);
    cr_assert_eq(tk_log_lines, 0, "%s", tk_logbuf);
    cr_assert_str_eq(flags_of(d), "100");
    finish(m);
}

/* --------------------------------------------------------------- D24 */

Test(dispatch_log, describe_plain_and_kinds, .timeout = 5,
     .description = "D24 (CPython test_repr): '<kind at 0xADDR>' with the kind's qualified "
                    "name: asyncore.dispatcher, asyncore.dispatcher_with_send, "
                    "asynchat.async_chat, asyncore.file_dispatcher, or the table's name")
{
    static const ac_handlers named = {.name = "spam.Srv", .finalize = tk_finalize};
    ac_map *m = tk_map();
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    ac_dispatcher *d = tk_new(m, &defaults_h, "d");
    cr_assert_str_eq(describe(d), expect_desc(d, "asyncore.dispatcher"));
    d = tk_new_buffered(m, &defaults_h, "b");
    cr_assert_str_eq(describe(d), expect_desc(d, "asyncore.dispatcher_with_send"));
    d = new_chat(m, &defaults_h, "c");
    cr_assert_str_eq(describe(d), expect_desc(d, "asynchat.async_chat"));
    d = tk_new(m, &named, "n");
    cr_assert_str_eq(describe(d), expect_desc(d, "spam.Srv"));
    /* A file dispatcher is connected, with no addr. */
    d = tk_new_file(m, &defaults_h, "f", p[0]);
    cr_assert_str_eq(describe(d), expect_desc(d, "asyncore.file_dispatcher connected"));
    finish(m);
    close(p[0]);
    close(p[1]);
}

Test(dispatch_log, describe_listener, .timeout = 5,
     .description = "D24: a listener shows ' listening' and the address it was bound with "
                    "(port 0 stays :0), also when connected is set; without accepting it is "
                    "' connected'; accepting without addr shows neither")
{
    static const ac_handlers named = {.name = "spam.Srv", .finalize = tk_finalize};
    ac_map *m = tk_map();
    ac_dispatcher *s = tk_new(m, &named, "s");
    cr_assert_eq(ac_create_socket(s, AF_INET, SOCK_STREAM), 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(AF_INET, &ss);
    cr_assert_eq(ac_bind(s, (struct sockaddr *)&ss, len), 0);
    cr_assert_str_eq(describe(s), expect_desc(s, "spam.Srv 127.0.0.1:0"));
    cr_assert_eq(ac_listen(s, 5), 0);
    cr_assert_str_eq(describe(s), expect_desc(s, "spam.Srv listening 127.0.0.1:0"));
    ac_set_connected(s, true);
    cr_assert_str_eq(describe(s), expect_desc(s, "spam.Srv listening 127.0.0.1:0"));
    ac_set_accepting(s, false);
    cr_assert_str_eq(describe(s), expect_desc(s, "spam.Srv connected 127.0.0.1:0"));

    ac_dispatcher *u = tk_new(m, &defaults_h, "u");
    cr_assert_eq(ac_create_socket(u, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_listen(u, 5), 0);
    cr_assert(ac_is_accepting(u));
    cr_assert_str_eq(describe(u), expect_desc(u, "asyncore.dispatcher"));
    finish(m);
}

static void check_describe_client(int family)
{
    if (family == AF_INET6 && !tk_ipv6_ok())
        cr_skip_test("no IPv6 loopback");
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int l = tk_listener(family, &ss, &len, 5);
    ac_dispatcher *c = tk_new(m, &tr_h, "c");
    cr_assert_eq(ac_create_socket(c, family, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
    cr_assert(tk_loop_until(m, connected_now, c, 3.0));
    char addr[200];
    if (family == AF_INET)
        snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(((struct sockaddr_in *)&ss)->sin_port));
    else if (family == AF_INET6)
        snprintf(addr, sizeof(addr), "[::1]:%u", ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    else
        snprintf(addr, sizeof(addr), "'%s'", ((struct sockaddr_un *)&ss)->sun_path);
    char body[256];
    snprintf(body, sizeof(body), "asyncore.dispatcher connected %s", addr);
    cr_assert_str_eq(describe(c), expect_desc(c, body));
    /* close clears the flags but keeps addr (S12). */
    cr_assert_eq(ac_close(c), 0);
    snprintf(body, sizeof(body), "asyncore.dispatcher %s", addr);
    cr_assert_str_eq(describe(c), expect_desc(c, body));
    finish(m);
    close(l);
}

Test(dispatch_log, describe_client_inet, .timeout = 10,
     .description = "D24 S12: a connected IPv4 client shows ' connected host:port'; once "
                    "closed only the address")
{
    check_describe_client(AF_INET);
}

Test(dispatch_log, describe_client_inet6, .timeout = 10,
     .description = "D24 X14: an IPv6 client shows ' connected [addr]:port'")
{
    check_describe_client(AF_INET6);
}

Test(dispatch_log, describe_client_unix, .timeout = 10,
     .description = "D24 X14: an AF_UNIX client shows the quoted path")
{
    check_describe_client(AF_UNIX);
}

Test(dispatch_log, describe_unnamed_unix_peer, .timeout = 5,
     .description = "D24 D4: an adopted socketpair end shows \" connected ''\"; clearing "
                    "connected leaves \" ''\"")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &defaults_h, "d");
    cr_assert_str_eq(describe(d), expect_desc(d, "asyncore.dispatcher connected ''"));
    ac_set_connected(d, false);
    cr_assert_str_eq(describe(d), expect_desc(d, "asyncore.dispatcher ''"));
    finish(m);
}

Test(dispatch_log, describe_accepting_with_empty_addr, .timeout = 5,
     .description = "D24: ' listening' needs accepting AND a non-empty addr: accepting with "
                    "the empty AF_UNIX address '' is not listening (shows ' connected' if "
                    "connected, as Python does)")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &defaults_h, "d");
    ac_set_accepting(d, true);
    cr_assert_str_eq(describe(d), expect_desc(d, "asyncore.dispatcher connected ''"));
    ac_set_connected(d, false);
    cr_assert_str_eq(describe(d), expect_desc(d, "asyncore.dispatcher ''"));
    finish(m);
}

Test(dispatch_log, describe_length_and_truncation, .timeout = 5,
     .description = "D24 X14: ac_describe returns the full length and writes at most size "
                    "bytes, NUL included")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &defaults_h, "d");
    const char *full = expect_desc(d, "asyncore.dispatcher");
    char want[512];
    snprintf(want, sizeof(want), "%s", full);
    size_t n = strlen(want);
    cr_assert_eq(ac_describe(d, NULL, 0), n);
    char small[8];
    memset(small, 'x', sizeof(small));
    cr_assert_eq(ac_describe(d, small, sizeof(small)), n);
    cr_assert_eq(small[7], '\0');
    cr_assert_eq(strncmp(small, want, 7), 0);
    char exact[512];
    cr_assert_eq(ac_describe(d, exact, n + 1), n);
    cr_assert_str_eq(exact, want);
    finish(m);
}
