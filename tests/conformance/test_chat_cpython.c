/* Conformance: CPython's test_asynchat.py, rewritten (suite chat_cpython):
 * an echo server driven from the test and a chat client over TCP, with
 * line, numeric and no terminators, producers, an empty line,
 * close_when_done and push.  The recorder is
 * tests/support/chat_recorder.h. */
#include "chat_recorder.h"

/* ============================ CPython test_asynchat.py, rewritten */

/* CPython's echo_server thread, driven from the test instead: it reads
 * until QUIT\n, drops every QUIT\n, then sends the rest back in pieces of
 * chunk bytes and closes.  The client is CPython's echo_client: a chat
 * channel over TCP that pushes right after connect (C17), collects into a
 * buffer and appends it to contents at each terminator. */
#define SERVER_QUIT "QUIT\n"

struct echo {
    int lfd, conn;
    struct bytes got;
};

static ac_dispatcher *echo_start(ac_map *m, struct echo *s)
{
    memset(s, 0, sizeof(*s));
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    cr_assert_eq(bind(s->lfd, (struct sockaddr *)&a, alen), 0);
    cr_assert_eq(listen(s->lfd, 4), 0);
    cr_assert_eq(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
    ac_dispatcher *c = chat_new(m, &chat_h);
    cr_assert_eq(ac_create_socket(c, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&a, alen), 0);
    s->conn = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    cr_assert_geq(s->conn, 0);
    int on = 1;
    setsockopt(s->conn, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    return c;
}

/* Run the loop until the server has read QUIT\n (or EOF); drop the QUITs. */
static void echo_collect(ac_map *m, struct echo *s)
{
    double end = now() + 5;
    while (!s->got.p || !strstr(s->got.p, SERVER_QUIT)) {
        cr_assert(now() < end, "the server never got QUIT: '%s'", s->got.p ? s->got.p : "");
        if (ac_map_count(m))
            cr_assert_eq(ac_poll(m, 0.01), 0);
        char buf[4096];
        ssize_t n = recv(s->conn, buf, sizeof(buf), 0);
        if (n == 0)
            break;
        if (n > 0)
            bytes_add(&s->got, buf, (size_t)n);
    }
    char *q;
    while (s->got.p && (q = strstr(s->got.p, SERVER_QUIT))) {
        memmove(q, q + 5, strlen(q + 5) + 1);
        s->got.len -= 5;
    }
}

/* Send the data back chunk bytes at a time, letting the client read each
 * piece on its own; then close and let the client see EOF. */
static void echo_back(ac_map *m, struct echo *s, int cfd, size_t chunk)
{
    for (size_t off = 0; off < s->got.len; off += chunk) {
        size_t n = s->got.len - off < chunk ? s->got.len - off : chunk;
        cr_assert_eq(send(s->conn, s->got.p + off, n, MSG_NOSIGNAL), (ssize_t)n);
        struct pollfd p = {.fd = cfd, .events = POLLIN};
        poll(&p, 1, 200);
        while (ac_map_count(m) && inq(cfd) > 0)
            cr_assert_eq(ac_poll(m, 0), 0);
    }
    close(s->conn);
    close(s->lfd);
    cr_assert_eq(ac_loop(m, 0.01, 300), 0);
    cr_assert_eq(ac_map_count(m), 0, "the client closed at EOF");
}

static void check_contents(const char *const *want)
{
    int n = 0;
    while (want[n])
        n++;
    cr_assert_eq(R.nrecs, n, "contents has %d records, want %d (trace %s)", R.nrecs, n, R.trace);
    for (int i = 0; i < n; i++)
        cr_assert_str_eq(R.recs[i].p ? R.recs[i].p : "", want[i], "record %d", i);
}

static void line_terminator_check(const char *term, size_t chunk)
{
    ac_map *m = map_new();
    R.quiet = true;
    struct echo s;
    ac_dispatcher *c = echo_start(m, &s);
    set_term(c, term);
    char buf[64];
    cr_assert_eq(ac_chat_push(c, "hello ", 6), 0);
    snprintf(buf, sizeof(buf), "world%s", term);
    cr_assert_eq(ac_chat_push(c, buf, strlen(buf)), 0);
    snprintf(buf, sizeof(buf), "I'm not dead yet!%s", term);
    cr_assert_eq(ac_chat_push(c, buf, strlen(buf)), 0);
    cr_assert_eq(ac_chat_push(c, SERVER_QUIT, 5), 0);
    int cfd = ac_fd(c);
    echo_collect(m, &s);
    echo_back(m, &s, cfd, chunk);
    check_contents((const char *const[]){"hello world", "I'm not dead yet!", NULL});
    bytes_free(&s.got);
    finish(m);
}

Test(chat_cpython, line_terminator1, .timeout = 20,
     .description = "C6c C17 (test_line_terminator1): terminator \\n, echoed back 1, 2 and 3 "
                    "bytes at a time")
{
    for (size_t l = 1; l <= 3; l++)
        line_terminator_check("\n", l);
}

Test(chat_cpython, line_terminator2, .timeout = 20,
     .description = "C6c C12 (test_line_terminator2): terminator \\r\\n, echoed back 1, 2 and 3 "
                    "bytes at a time")
{
    for (size_t l = 1; l <= 3; l++)
        line_terminator_check("\r\n", l);
}

Test(chat_cpython, line_terminator3, .timeout = 20,
     .description = "C6c C12 (test_line_terminator3): terminator qqq, echoed back 1, 2 and 3 "
                    "bytes at a time")
{
    for (size_t l = 1; l <= 3; l++)
        line_terminator_check("qqq", l);
}

static void numeric_terminator_check(long long termlen)
{
    ac_map *m = map_new();
    R.quiet = true;
    struct echo s;
    ac_dispatcher *c = echo_start(m, &s);
    cr_assert_eq(ac_chat_set_terminator_count(c, termlen), 0);
    static const char data[] = "hello world, I'm not dead yet!\n";
    cr_assert_eq(ac_chat_push(c, data, sizeof(data) - 1), 0);
    cr_assert_eq(ac_chat_push(c, SERVER_QUIT, 5), 0);
    int cfd = ac_fd(c);
    echo_collect(m, &s);
    echo_back(m, &s, cfd, 1);
    cr_assert_eq(R.nrecs, 1);
    cr_assert_eq(R.recs[0].len, (size_t)termlen);
    cr_assert_eq(memcmp(R.recs[0].p, data, (size_t)termlen), 0);
    cr_assert_str_eq(R.cur.p, data + termlen, "C7: the rest is collected, never found");
    bytes_free(&s.got);
    finish(m);
}

Test(chat_cpython, numeric_terminator1, .timeout = 10,
     .description = "C6b C7 (test_numeric_terminator1): count 1")
{
    numeric_terminator_check(1);
}

Test(chat_cpython, numeric_terminator2, .timeout = 10,
     .description = "C6b C7 (test_numeric_terminator2): count 6")
{
    numeric_terminator_check(6);
}

Test(chat_cpython, none_terminator, .timeout = 10,
     .description = "C6a (test_none_terminator): everything is collected, contents stays empty")
{
    ac_map *m = map_new();
    R.quiet = true;
    struct echo s;
    ac_dispatcher *c = echo_start(m, &s);
    cr_assert_eq(ac_chat_set_terminator_none(c), 0);
    static const char data[] = "hello world, I'm not dead yet!\n";
    cr_assert_eq(ac_chat_push(c, data, sizeof(data) - 1), 0);
    cr_assert_eq(ac_chat_push(c, SERVER_QUIT, 5), 0);
    int cfd = ac_fd(c);
    echo_collect(m, &s);
    echo_back(m, &s, cfd, 1);
    cr_assert_eq(R.nrecs, 0);
    cr_assert_str_eq(R.cur.p, data);
    bytes_free(&s.got);
    finish(m);
}

static void producer_check(ac_producer *p)
{
    ac_map *m = map_new();
    R.quiet = true;
    struct echo s;
    ac_dispatcher *c = echo_start(m, &s);
    set_term(c, "\n");
    cr_assert_eq(ac_chat_push_with_producer(c, p), 0);
    int cfd = ac_fd(c);
    echo_collect(m, &s);
    echo_back(m, &s, cfd, 1);
    check_contents((const char *const[]){"hello world", "I'm not dead yet!", NULL});
    bytes_free(&s.got);
    finish(m);
}

Test(chat_cpython, simple_producer, .timeout = 10,
     .description = "C22 C14 C17 (test_simple_producer): a simple_producer with buffer_size 8")
{
    static const char data[] = "hello world\nI'm not dead yet!\n" SERVER_QUIT;
    producer_check(ac_simple_producer_new(data, sizeof(data) - 1, 8));
}

Test(chat_cpython, string_producer, .timeout = 10,
     .description = "C14 (test_string_producer): the whole string as one producer piece")
{
    struct script s = {
        .name = "s",
        .pieces = (const char *const[]){"hello world\nI'm not dead yet!\n" SERVER_QUIT, NULL}};
    producer_check(script_new(&s));
}

Test(chat_cpython, empty_line, .timeout = 10,
     .description = "C8 (test_empty_line): an empty line is an empty record")
{
    ac_map *m = map_new();
    R.quiet = true;
    struct echo s;
    ac_dispatcher *c = echo_start(m, &s);
    set_term(c, "\n");
    static const char data[] = "hello world\n\nI'm not dead yet!\n";
    cr_assert_eq(ac_chat_push(c, data, sizeof(data) - 1), 0);
    cr_assert_eq(ac_chat_push(c, SERVER_QUIT, 5), 0);
    int cfd = ac_fd(c);
    echo_collect(m, &s);
    echo_back(m, &s, cfd, 1);
    check_contents((const char *const[]){"hello world", "", "I'm not dead yet!", NULL});
    bytes_free(&s.got);
    finish(m);
}

Test(chat_cpython, close_when_done, .timeout = 10,
     .description = "C15 C17 (test_close_when_done): the client sends everything it queued, "
                    "then closes; it never reads the echo")
{
    ac_map *m = map_new();
    R.quiet = true;
    struct echo s;
    ac_dispatcher *c = echo_start(m, &s);
    set_term(c, "\n");
    static const char data[] = "hello world\nI'm not dead yet!\n";
    cr_assert_eq(ac_chat_push(c, data, sizeof(data) - 1), 0);
    cr_assert_eq(ac_chat_push(c, SERVER_QUIT, 5), 0);
    cr_assert_eq(ac_close_when_done(c), 0);
    cr_assert_eq(ac_loop(m, 0.01, 300), 0);
    cr_assert_eq(ac_map_count(m), 0, "closed by the marker");
    cr_assert_eq(R.closes, 1);
    /* Now the server reads: everything arrived, then EOF. */
    double end = now() + 5;
    for (;;) {
        cr_assert(now() < end);
        char buf[256];
        ssize_t n = recv(s.conn, buf, sizeof(buf), 0);
        if (n == 0)
            break;
        if (n > 0)
            bytes_add(&s.got, buf, (size_t)n);
        else
            poll(&(struct pollfd){.fd = s.conn, .events = POLLIN}, 1, 50);
    }
    cr_assert_str_eq(s.got.p, "hello world\nI'm not dead yet!\n" SERVER_QUIT);
    cr_assert_eq(R.nrecs, 0);
    cr_assert_eq(R.collects, 0);
    close(s.conn);
    close(s.lfd);
    bytes_free(&s.got);
    finish(m);
}

Test(chat_cpython, push, .timeout = 10,
     .description = "C13 X18 (test_push): any buffer can be pushed; NULL data with a length is "
                    "-EINVAL (Python's TypeError)")
{
    ac_map *m = map_new();
    R.quiet = true;
    struct echo s;
    ac_dispatcher *c = echo_start(m, &s);
    set_term(c, "\n");
    static const char data[] = "bytes\n";
    char *heap = strdup(data);
    char view[] = "xxbytes\nxx";
    cr_assert_eq(ac_chat_push(c, data, 6), 0);
    cr_assert_eq(ac_chat_push(c, heap, 6), 0);
    cr_assert_eq(ac_chat_push(c, view + 2, 6), 0);
    cr_assert_eq(ac_chat_push(c, NULL, 10), -EINVAL);
    cr_assert_eq(ac_chat_push(c, SERVER_QUIT, 5), 0);
    free(heap);
    int cfd = ac_fd(c);
    echo_collect(m, &s);
    echo_back(m, &s, cfd, 1);
    check_contents((const char *const[]){"bytes", "bytes", "bytes", NULL});
    bytes_free(&s.got);
    finish(m);
}
