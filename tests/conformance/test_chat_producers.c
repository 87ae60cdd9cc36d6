/* Conformance: the producers a chat channel sends from: simple_producer
 * (spec C22) and the header's file producer (X18, C14), piece by piece and
 * through a channel.  The recorder is tests/support/chat_recorder.h. */
#include "chat_recorder.h"

/* ========================================================== C22 */

static void expect_pieces(ac_producer *p, const char *const *want)
{
    for (int i = 0; want[i]; i++) {
        const void *data = NULL;
        ssize_t n = ac_producer_more(p, &data);
        cr_assert_eq(n, (ssize_t)strlen(want[i]), "piece %d", i);
        cr_assert_eq(memcmp(data, want[i], (size_t)n), 0, "piece %d", i);
    }
}

Test(chat, simple_producer_pieces, .timeout = 5,
     .description = "C22: buffer_size pieces while more than that remains, then the rest, then "
                    "empty forever; buffer_size 0 means 512; the data is copied")
{
    char src[] = "abcdefghij";
    ac_producer *p = ac_simple_producer_new(src, 10, 4);
    cr_assert_not_null(p);
    memset(src, 'X', 10);
    expect_pieces(p, (const char *const[]){"abcd", "efgh", "ij", "", "", NULL});
    ac_producer_free(p);

    p = ac_simple_producer_new("abcd", 4, 4);
    expect_pieces(p, (const char *const[]){"abcd", "", NULL});
    ac_producer_free(p);

    p = ac_simple_producer_new("", 0, 4);
    expect_pieces(p, (const char *const[]){"", NULL});
    ac_producer_free(p);

    char big[1000];
    memset(big, 'b', sizeof(big));
    p = ac_simple_producer_new(big, sizeof(big), 0);
    const void *data;
    cr_assert_eq(ac_producer_more(p, &data), 512);
    cr_assert_eq(ac_producer_more(p, &data), 488);
    cr_assert_eq(ac_producer_more(p, &data), 0);
    ac_producer_free(p);
    ac_producer_free(NULL);
}

Test(chat, simple_producer_through_a_channel, .timeout = 5,
     .description = "C22 C14 C16.4: a simple_producer of 8-byte pieces streams its data whole "
                    "through the channel")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    static const char text[] = "hello world\nI'm not dead yet!\n";
    cr_assert_eq(ac_chat_push_with_producer(d, ac_simple_producer_new(text, 30, 8)), 0);
    cr_assert_eq(inq(peer), 8, "one piece per send");
    LOOP_UNTIL(m, inq(peer) == 30, 2);
    struct bytes out = {0};
    drain(peer, &out);
    cr_assert_str_eq(out.p, text);
    bytes_free(&out);
    close(peer);
    finish(m);
}

/* ------------------------------------------------------ file producer */

static int temp_file(size_t n, char **content)
{
    char path[] = "/tmp/ac-chat-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    char *c = malloc(n);
    for (size_t i = 0; i < n; i++)
        c[i] = (char)(i % 251);
    cr_assert_eq(write(fd, c, n), (ssize_t)n);
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    *content = c;
    return fd;
}

Test(chat, file_producer_pieces, .timeout = 5,
     .description = "X18 C14: the file producer reads buffer_size pieces until EOF, then 0; "
                    "close_fd decides who closes the descriptor")
{
    char *content;
    int fd = temp_file(100003, &content);
    ac_producer *p = ac_file_producer_new(fd, 4096, true);
    cr_assert_not_null(p);
    size_t total = 0;
    int pieces = 0;
    for (;;) {
        const void *data;
        ssize_t n = ac_producer_more(p, &data);
        cr_assert_geq(n, 0);
        if (n == 0)
            break;
        cr_assert_eq(n, total + 4096 <= 100003 ? 4096 : 100003 % 4096);
        cr_assert_eq(memcmp(data, content + total, (size_t)n), 0);
        total += (size_t)n;
        pieces++;
    }
    cr_assert_eq(total, 100003);
    cr_assert_eq(pieces, 25);
    ac_producer_free(p);
    cr_assert_eq(fcntl(fd, F_GETFD), -1, "close_fd: closed on release");

    free(content);
    fd = temp_file(10, &content);
    p = ac_file_producer_new(fd, 0, false);
    const void *data;
    cr_assert_eq(ac_producer_more(p, &data), 10);
    ac_producer_free(p);
    cr_assert_neq(fcntl(fd, F_GETFD), -1, "not close_fd: still open");
    close(fd);
    free(content);
}

Test(chat, file_producer_through_a_channel, .timeout = 10,
     .description = "X18 C14 C16.4: a temp file streamed through a chat channel arrives whole; "
                    "the producer is released (its fd closed) when it is done")
{
    ac_map *m = map_new();
    int peer;
    ac_dispatcher *d = chat_pair(m, &chat_h, &peer);
    char *content;
    const size_t n = 300001;
    int fd = temp_file(n, &content);
    cr_assert_eq(ac_chat_push_with_producer(d, ac_file_producer_new(fd, 0, true)), 0);
    cr_assert_eq(ac_chat_push(d, "END", 3), 0);
    struct bytes out = {0};
    double end = now() + 8;
    while (out.len < n + 3) {
        cr_assert(now() < end, "received %zu", out.len);
        cr_assert_eq(ac_poll(m, 0.01), 0);
        drain(peer, &out);
    }
    cr_assert_eq(out.len, n + 3);
    cr_assert_eq(memcmp(out.p, content, n), 0);
    cr_assert_eq(memcmp(out.p + n, "END", 3), 0);
    cr_assert_eq(fcntl(fd, F_GETFD), -1);
    free(content);
    bytes_free(&out);
    close(peer);
    finish(m);
}
