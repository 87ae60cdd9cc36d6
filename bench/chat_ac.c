/* chat_ac — the line-echo server of the chat benchmark, on libasyncore's
 * chat channel (include/asynchat.h).
 *
 * As a C user writes asynchat's classic pattern, and as tools/chatd does:
 * every connection is a chat channel with "\n" as its terminator;
 * collect_incoming_data appends the pieces of a line to the connection's
 * buffer and found_terminator pushes the line back, "\n" included, with one
 * ac_chat_push.  Python's asynchat (bench/peers/chat_asynchat.py) is the
 * same program.
 *
 * Policy, the same in every server of the chat benchmark: TCP_NODELAY on
 * every accepted socket (a chat line should not wait for an ACK; chatd sets
 * it too), the channel's default 64 KiB read size (AC_CHAT_BUFFER_SIZE, as
 * asynchat's ac_in_buffer_size), lines of at most MAX_LINE bytes
 * (ac_chat_set_max_input), and output above HIGH_WATER stops reading until
 * it drained to LOW_WATER (ac_chat_set_watermarks).
 *
 * -b (batched, the supplementary row of bench/run_chat.sh): the same
 * program with the channel's coalesced sending on (ac_chat_set_coalesce):
 * the lines pushed while a read is handled leave in one sendmsg when the
 * read is done, instead of one send(2) per line as asynchat does (C13,
 * C16, W13).
 *
 * usage: chat_ac [-b] [PORT]   (0 = any; prints "PORT <n>" first)
 * AC_POLLER=poll|select picks another poller.
 */
#define _GNU_SOURCE
#include <asynchat.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"

#define MAX_LINE 4096
#define HIGH_WATER (256 * 1024)
#define LOW_WATER (64 * 1024)

static bool batched;

struct buf {
    char *p;
    size_t len, cap;
};

struct client {
    struct buf line; /* the line being collected */
};

static int buf_add(struct buf *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->len + len)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

static int chat_collect(ac_dispatcher *d, const void *data, size_t len)
{
    struct client *c = ac_user(d);
    return buf_add(&c->line, data, len) < 0 ? AC_RAISE(d, ENOMEM, "collect") : 0;
}

static int chat_found_terminator(ac_dispatcher *d)
{
    struct client *c = ac_user(d);
    if (buf_add(&c->line, "\n", 1) < 0)
        return AC_RAISE(d, ENOMEM, "collect");
    int rc = ac_chat_push(d, c->line.p, c->line.len);
    c->line.len = 0;
    return rc;
}

static void chat_finalize(ac_dispatcher *d)
{
    struct client *c = ac_user(d);
    free(c->line.p);
    free(c);
}

static const ac_handlers chat_handlers = {
    .name = "line_echo",
    .collect_incoming_data = chat_collect,
    .found_terminator = chat_found_terminator,
    .finalize = chat_finalize,
};

static int server_accepted(ac_dispatcher *ls, int fd, const struct sockaddr *addr,
                           socklen_t addrlen)
{
    (void)addr, (void)addrlen;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct client *c = calloc(1, sizeof *c);
    ac_dispatcher *d = c ? ac_chat_new(ac_map_of(ls), &chat_handlers, c) : NULL;
    if (!d) {
        free(c);
        close(fd);
        return 0;
    }
    if (ac_attach(d, fd) < 0) {
        close(fd);
        ac_close(d); /* finalize frees c */
        return 0;
    }
    ac_chat_set_terminator(d, "\n", 1);
    ac_chat_set_max_input(d, MAX_LINE);
    ac_chat_set_watermarks(d, LOW_WATER, HIGH_WATER);
    ac_chat_set_coalesce(d, batched);
    return 0;
}

static const ac_handlers server_handlers = {
    .name = "chat_server",
    .handle_accepted = server_accepted,
};

static int on_signal(ac_map *m, int signo, void *arg)
{
    (void)m, (void)signo, (void)arg;
    return AC_EXIT_NOW;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "-b")) {
        batched = true;
        argc--, argv++;
    }
    int port = bench_port_arg(argc, argv);
    bench_raise_nofile();
    signal(SIGPIPE, SIG_IGN);

    ac_map *m;
    int r = ac_map_new(&m, AC_POLLER_DEFAULT);
    if (r < 0) {
        fprintf(stderr, "chat_ac: map: %s\n", strerror(-r));
        return 1;
    }
    ac_dispatcher *ls = ac_dispatcher_new(m, &server_handlers, NULL);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (!ls || (r = ac_create_socket(ls, AF_INET, SOCK_STREAM)) < 0) {
        fprintf(stderr, "chat_ac: socket: %s\n", strerror(ls ? -r : ENOMEM));
        return 1;
    }
    ac_set_reuse_addr(ls);
    if ((r = ac_bind(ls, (struct sockaddr *)&sin, sizeof sin)) < 0 ||
        (r = ac_listen(ls, BENCH_BACKLOG)) < 0) {
        fprintf(stderr, "chat_ac: bind/listen: %s\n", strerror(-r));
        return 1;
    }
    bench_print_port(ac_fd(ls));
    ac_signal_watch(m, SIGINT, on_signal, NULL);
    ac_signal_watch(m, SIGTERM, on_signal, NULL);

    r = ac_loop(m, -1.0, AC_FOREVER);
    ac_close_all(m, true);
    ac_map_free(m);
    return r == AC_EXIT_NOW || r == 0 ? 0 : 1;
}
