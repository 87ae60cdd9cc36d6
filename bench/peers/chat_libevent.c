/* chat_libevent — the line-echo server of the chat benchmark in libevent's
 * idiom: an evconnlistener, one bufferevent per connection, and a read
 * callback that takes every complete line out of the input buffer with
 * evbuffer_readln(EVBUFFER_EOL_LF) and appends it, "\n" included, to the
 * output buffer; the bufferevent writes the output buffer when the loop
 * comes round (one write for all the lines of a read).
 *
 * Policy, the same in every server of the chat benchmark (bench/chat_ac.c):
 * TCP_NODELAY on every accepted socket; the read size is the bufferevent's
 * own (it reads what is there, up to its 16 KiB .. 64 KiB read chunk);
 * lines of at most MAX_LINE bytes (a longer one closes the connection);
 * output above HIGH_WATER stops reading until it drained to LOW_WATER (the
 * write callback with a write low-water mark).
 *
 * usage: chat_libevent [PORT]   (0 = any; prints "PORT <n>" first)
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
#include <stdlib.h>
#include <string.h>
#include "../bench_util.h"

#define MAX_LINE 4096
#define HIGH_WATER (256 * 1024)
#define LOW_WATER (64 * 1024)

static void on_read(struct bufferevent *bev, void *ctx)
{
    (void)ctx;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer *out = bufferevent_get_output(bev);
    char *line;
    size_t n;
    while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) != NULL) {
        evbuffer_add(out, line, n);
        evbuffer_add(out, "\n", 1);
        free(line);
    }
    if (evbuffer_get_length(in) > MAX_LINE) {
        bufferevent_free(bev);
        return;
    }
    if (evbuffer_get_length(out) > HIGH_WATER) {
        bufferevent_disable(bev, EV_READ);
        bufferevent_setwatermark(bev, EV_WRITE, LOW_WATER, 0);
    }
}

/* Runs when the output drained to the write low-water mark. */
static void on_write(struct bufferevent *bev, void *ctx)
{
    (void)ctx;
    if (!(bufferevent_get_enabled(bev) & EV_READ)) {
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
        bufferevent_enable(bev, EV_READ);
    }
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
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct event_base *base = evconnlistener_get_base(l);
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        evutil_closesocket(fd);
        return;
    }
    bufferevent_setcb(bev, on_read, on_write, on_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_signal(evutil_socket_t sig, short what, void *base)
{
    (void)sig, (void)what;
    event_base_loopbreak(base);
}

int main(int argc, char **argv)
{
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
        perror("chat_libevent: evconnlistener_new_bind");
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
