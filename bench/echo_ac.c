/* echo_ac — the echo server of the benchmark, on libasyncore.
 *
 * The seed echo server as a C user writes it: a listening dispatcher whose
 * handle_accepted makes a buffered dispatcher for every connection, whose
 * handle_read receives into a stack buffer and hands the bytes to the
 * buffered sender.
 *
 * Two choices are deliberate (issue 3, "no Nagle stall"):
 *   - The read size is 64 KiB (READ_SIZE), the sender's chunk cap
 *     (AC_SEND_CHUNK) and about one loopback segment (MSS 65,483): a message
 *     of up to 64 KiB that has arrived is read in one call and goes back in
 *     one send.  Python's seed reads 8 KiB, so a 16 KiB message leaves as
 *     two writes, and the second one waits for the ACK of the first (Nagle)
 *     while the client delays that ACK (40 ms): 44 ms per round trip.
 *   - TCP_NODELAY on every accepted socket: an echo answers at once, there
 *     is never a reason to hold back a small tail.
 * Output above HIGH_WATER pauses reading until it drained to LOW_WATER, so
 * a client that sends without reading cannot grow our memory.
 *
 * usage: echo_ac [PORT]   (0 = any; prints "PORT <n>" first)
 * AC_POLLER=poll|select picks another poller.
 */
#define _GNU_SOURCE
#include <asyncore.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"

#define READ_SIZE 65536
#define HIGH_WATER (256 * 1024)
#define LOW_WATER (64 * 1024)

static int echo_read(ac_dispatcher *d)
{
    char buf[READ_SIZE];
    ssize_t n = ac_recv(d, buf, sizeof buf);
    if (n == -EAGAIN)
        return 0;
    if (n <= 0) /* 0: EOF, handle_close has run; < 0: raise it */
        return (int)n;
    return ac_buffered_send(d, buf, (size_t)n);
}

static int echo_close(ac_dispatcher *d)
{
    ac_close(d);
    return 0;
}

static int echo_pause(ac_dispatcher *d)
{
    ac_set_reading(d, false);
    return 0;
}

static int echo_resume(ac_dispatcher *d)
{
    ac_set_reading(d, true);
    return 0;
}

static const ac_handlers echo_handlers = {
    .name = "echo_handler",
    .handle_read = echo_read,
    .handle_close = echo_close,
    .handle_high_water = echo_pause,
    .handle_low_water = echo_resume,
};

static int server_accepted(ac_dispatcher *ls, int fd, const struct sockaddr *addr,
                           socklen_t addrlen)
{
    (void)addr, (void)addrlen;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ac_dispatcher *c = ac_buffered_new(ac_map_of(ls), &echo_handlers, NULL);
    if (!c) {
        close(fd);
        return 0;
    }
    if (ac_attach(c, fd) < 0) {
        close(fd);
        ac_close(c);
        return 0;
    }
    ac_buffered_set_watermarks(c, LOW_WATER, HIGH_WATER);
    return 0;
}

static const ac_handlers server_handlers = {
    .name = "echo_server",
    .handle_accepted = server_accepted,
};

static int on_signal(ac_map *m, int signo, void *arg)
{
    (void)m, (void)signo, (void)arg;
    return AC_EXIT_NOW;
}

int main(int argc, char **argv)
{
    int port = bench_port_arg(argc, argv);
    bench_raise_nofile();
    signal(SIGPIPE, SIG_IGN);

    ac_map *m;
    int r = ac_map_new(&m, AC_POLLER_DEFAULT);
    if (r < 0) {
        fprintf(stderr, "echo_ac: map: %s\n", strerror(-r));
        return 1;
    }
    ac_dispatcher *ls = ac_dispatcher_new(m, &server_handlers, NULL);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (!ls || (r = ac_create_socket(ls, AF_INET, SOCK_STREAM)) < 0) {
        fprintf(stderr, "echo_ac: socket: %s\n", strerror(ls ? -r : ENOMEM));
        return 1;
    }
    ac_set_reuse_addr(ls);
    if ((r = ac_bind(ls, (struct sockaddr *)&sin, sizeof sin)) < 0 ||
        (r = ac_listen(ls, BENCH_BACKLOG)) < 0) {
        fprintf(stderr, "echo_ac: bind/listen: %s\n", strerror(-r));
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
