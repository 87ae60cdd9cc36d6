/* echo_libevent — the echo server written the way libevent's own samples
 * write it: an evconnlistener, one bufferevent per connection, and a read
 * callback that moves the whole input buffer to the output buffer.
 *
 * Like libevent's samples it leaves Nagle on: `-n` sets TCP_NODELAY on
 * accepted sockets (used by the supplementary row of bench/run.sh).
 *
 * usage: echo_libevent [-n] [PORT]   (0 = any; prints "PORT <n>" first)
 */
#define _GNU_SOURCE
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>

#include "../bench_util.h"

static bool nodelay;

static void on_read(struct bufferevent *bev, void *ctx)
{
    (void)ctx;
    bufferevent_write_buffer(bev, bufferevent_get_input(bev));
}

static void on_event(struct bufferevent *bev, short what, void *ctx)
{
    (void)ctx;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *ctx)
{
    (void)sa, (void)salen, (void)ctx;
    if (nodelay) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    struct event_base *base = evconnlistener_get_base(l);
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        evutil_closesocket(fd);
        return;
    }
    bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_signal(evutil_socket_t sig, short what, void *base)
{
    (void)sig, (void)what;
    event_base_loopbreak(base);
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

    struct event_base *base = event_base_new();
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct evconnlistener *l =
        evconnlistener_new_bind(base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                BENCH_BACKLOG, (struct sockaddr *)&sin, sizeof sin);
    if (!l) {
        perror("echo_libevent: evconnlistener_new_bind");
        return 1;
    }
    bench_print_port(evconnlistener_get_fd(l));

    struct event *sint = evsignal_new(base, SIGINT, on_signal, base);
    struct event *sterm = evsignal_new(base, SIGTERM, on_signal, base);
    event_add(sint, NULL);
    event_add(sterm, NULL);
    event_base_dispatch(base);

    event_free(sint);
    event_free(sterm);
    evconnlistener_free(l);
    event_base_free(base);
    return 0;
}
