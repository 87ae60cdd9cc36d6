/* echo_libev — the echo server in libev's idiom: an ev_io per direction,
 * read then write at once, and the write watcher started only when the
 * kernel did not take everything (reading stops meanwhile).  A read of up
 * to 64 KiB into one static buffer; a connection keeps memory only while
 * it has output pending.
 *
 * Leaves Nagle on like the other peers; `-n` sets TCP_NODELAY on accepted
 * sockets (used by the supplementary row of bench/run.sh).
 *
 * usage: echo_libev [-n] [PORT]   (0 = any; prints "PORT <n>" first)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../bench_util.h"

struct client {
    ev_io rio, wio;
    char *pending;
    size_t len, off;
};

static bool nodelay;
static char buf[65536];

static void client_free(struct ev_loop *loop, struct client *c)
{
    ev_io_stop(loop, &c->rio);
    ev_io_stop(loop, &c->wio);
    close(c->rio.fd);
    free(c->pending);
    free(c);
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct client *c = (struct client *)((char *)w - offsetof(struct client, wio));
    ssize_t n = send(w->fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN)
            client_free(loop, c);
        return;
    }
    c->off += (size_t)n;
    if (c->off < c->len)
        return;
    free(c->pending);
    c->pending = NULL;
    ev_io_stop(loop, &c->wio);
    ev_io_start(loop, &c->rio);
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    struct client *c = (struct client *)w;
    ssize_t n = recv(w->fd, buf, sizeof buf, 0);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN)
            return;
        client_free(loop, c);
        return;
    }
    ssize_t s = send(w->fd, buf, (size_t)n, MSG_NOSIGNAL);
    if (s == n)
        return;
    if (s < 0) {
        if (errno != EAGAIN) {
            client_free(loop, c);
            return;
        }
        s = 0;
    }
    c->len = (size_t)(n - s);
    c->off = 0;
    c->pending = malloc(c->len);
    memcpy(c->pending, buf + s, c->len);
    ev_io_stop(loop, &c->rio);
    ev_io_start(loop, &c->wio);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    for (;;) {
        int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (nodelay) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        struct client *c = calloc(1, sizeof *c);
        ev_io_init(&c->rio, on_read, fd, EV_READ);
        ev_io_init(&c->wio, on_write, fd, EV_WRITE);
        ev_io_start(loop, &c->rio);
    }
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w, (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "-n")) {
        nodelay = true;
        argc--, argv++;
    }
    int port = bench_port_arg(argc, argv);
    bench_raise_nofile();
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(lfd, BENCH_BACKLOG) < 0) {
        perror("echo_libev: bind/listen");
        return 1;
    }
    bench_print_port(lfd);

    struct ev_loop *loop = ev_default_loop(0);
    ev_io accept_w;
    ev_io_init(&accept_w, on_accept, lfd, EV_READ);
    ev_io_start(loop, &accept_w);
    ev_signal sint, sterm;
    ev_signal_init(&sint, on_signal, SIGINT);
    ev_signal_init(&sterm, on_signal, SIGTERM);
    ev_signal_start(loop, &sint);
    ev_signal_start(loop, &sterm);
    ev_run(loop, 0);
    return 0;
}
