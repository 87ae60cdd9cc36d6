/* echo_epoll — the hand-written limit of the echo benchmark.
 *
 * Level-triggered epoll, one thread, nothing that is not needed: a read of
 * up to 64 KiB into one static buffer is written straight back.  Only when
 * the kernel takes less than all of it is the rest kept (one allocation,
 * indexed by fd) and the interest switched from EPOLLIN to EPOLLOUT until
 * it has gone, so a slow reader stops us reading from it.  An idle
 * connection costs no user-space memory but its slot in that array.
 * TCP_NODELAY on every accepted socket, as in bench/echo_ac.c.
 *
 * usage: echo_epoll [PORT]   (0 = any; prints "PORT <n>" first)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../bench_util.h"

struct pending {
    size_t len, off;
    char data[];
};

static int ep, lfd;
static struct pending **pend; /* by fd; NULL = nothing waiting */
static size_t npend;
static volatile sig_atomic_t stop;
static char buf[65536];

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void interest(int fd, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    epoll_ctl(ep, op, fd, &ev);
}

static void drop(int fd)
{
    free(pend[fd]);
    pend[fd] = NULL;
    close(fd); /* also removes it from the epoll set */
}

static void on_accept(void)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a transient failure: try on the next event */
        if ((size_t)fd >= npend) {
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        interest(fd, EPOLL_CTL_ADD, EPOLLIN);
    }
}

static void on_read(int fd)
{
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        drop(fd);
        return;
    }
    ssize_t w = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
    if (w == n)
        return;
    if (w < 0) {
        if (errno != EAGAIN) {
            drop(fd);
            return;
        }
        w = 0;
    }
    struct pending *p = malloc(sizeof *p + (size_t)(n - w));
    if (!p) {
        drop(fd);
        return;
    }
    p->len = (size_t)(n - w);
    p->off = 0;
    memcpy(p->data, buf + w, p->len);
    pend[fd] = p;
    interest(fd, EPOLL_CTL_MOD, EPOLLOUT);
}

static void on_write(int fd)
{
    struct pending *p = pend[fd];
    ssize_t w = send(fd, p->data + p->off, p->len - p->off, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN)
            drop(fd);
        return;
    }
    p->off += (size_t)w;
    if (p->off < p->len)
        return;
    free(p);
    pend[fd] = NULL;
    interest(fd, EPOLL_CTL_MOD, EPOLLIN);
}

int main(int argc, char **argv)
{
    int port = bench_port_arg(argc, argv);
    bench_raise_nofile();
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    npend = rl.rlim_cur;
    pend = calloc(npend, sizeof *pend);

    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: epoll_wait gets EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(lfd, BENCH_BACKLOG) < 0) {
        perror("echo_epoll: bind/listen");
        return 1;
    }
    bench_print_port(lfd);
    ep = epoll_create1(EPOLL_CLOEXEC);
    interest(lfd, EPOLL_CTL_ADD, EPOLLIN);

    struct epoll_event evs[1024];
    while (!stop) {
        int k = epoll_wait(ep, evs, 1024, -1);
        for (int i = 0; i < k; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd)
                on_accept();
            else if (pend[fd])
                on_write(fd);
            else
                on_read(fd);
        }
    }
    return 0;
}
