/* lineload — the load generator of the chat line benchmark (bench/run_chat.sh).
 *
 * Independent of libasyncore on purpose, like loadgen.c: one thread, raw
 * level-triggered epoll, non-blocking sockets with TCP_NODELAY, loopback
 * only.  It drives a line-echo server (every "\n"-terminated line it
 * receives comes back, terminator included):
 *
 *   N connections (-c), each keeping K lines (-k) in flight: it starts by
 *   sending K lines in one write, and whenever m complete lines have come
 *   back it sends m new ones (again in one write).  A line is S bytes (-s)
 *   including its "\n".  Every byte that comes back is checked against the
 *   stream that was sent, so a server that drops, reorders or mangles
 *   lines fails the run (status=error) instead of looking fast.
 *
 * After a warm-up (-w) it measures for -d seconds and prints one key=value
 * line: lines echoed per second (rate), p50/p99 latency of a line (µs, from
 * the write that carried it to the read that completed its echo), MB/s of
 * lines echoed, and with -P <server pid> the server's CPU time per line
 * (from /proc/<pid>/schedstat) and the share of CPU time the hypervisor
 * stole during the window (from /proc/stat), as loadgen.c does, and its
 * own CPU time as a share of one CPU (lg_cpu: near 1.0 means the load
 * generator, not the server, set the pace).
 *
 * usage: lineload -p PORT [-c CONNS] [-k INFLIGHT] [-s LINE_BYTES]
 *                 [-d SECS] [-w WARMUP] [-P SERVER_PID] [-a 127.0.0.1]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "procstat.h"

#define RXSIZE 65536
#define SETUP_CAP_NS (30ull * 1000000000ull)

struct conn {
    int fd;
    bool connected;
    uint32_t mask;    /* epoll interest now in the kernel */
    size_t tx_off;    /* position in the periodic stream of the next byte to send */
    size_t tx_owed;   /* bytes due to be sent (whole lines) but not yet taken by the kernel */
    size_t rx_off;    /* position in the stream of the next byte expected back */
    uint64_t *t0;     /* ring of K send times, one per line in flight, oldest first */
    unsigned head, n; /* ring: index of the oldest, count */
};

static struct {
    const char *host;
    int port, conns, inflight, pid;
    size_t size;
    double secs, warmup;
} o = {.host = "127.0.0.1", .conns = 1, .inflight = 1, .size = 64, .secs = 3.0, .warmup = 0.5};

static struct sockaddr_in srv;
static int ep;
static unsigned char *pattern; /* two periods of the stream: K lines, twice */
static size_t period;          /* bytes of K lines */
static unsigned char rxbuf[RXSIZE];
static volatile sig_atomic_t interrupted;

static uint64_t done, bytes, errors;
static uint32_t *lat;
static size_t nlat, caplat;

static void fail(const char *what, int err)
{
    printf("mode=lines status=error what=%s errno=%s conns=%d k=%d size=%zu\n", what, strerror(err),
           o.conns, o.inflight, o.size);
    fflush(stdout);
    exit(2);
}

static unsigned long long others0, others1;

static void set_mask(struct conn *c, uint32_t mask)
{
    if (c->mask == mask)
        return;
    struct epoll_event ev = {.events = mask, .data.ptr = c};
    if (epoll_ctl(ep, c->mask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) < 0)
        fail("epoll_ctl", errno);
    c->mask = mask;
}

static void record(uint64_t ns)
{
    if (nlat == caplat) {
        size_t cap = caplat ? caplat * 2 : 1 << 20;
        uint32_t *p = realloc(lat, cap * sizeof *p);
        if (!p)
            return;
        lat = p;
        caplat = cap;
    }
    lat[nlat++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

/* Queue m new lines (their clock starts now) and write what is owed. */
static void send_lines(struct conn *c, unsigned m, uint64_t t)
{
    for (unsigned i = 0; i < m; i++)
        c->t0[(c->head + c->n++) % (unsigned)o.inflight] = t;
    c->tx_owed += (size_t)m * o.size;
    while (c->tx_owed > 0) {
        size_t len = c->tx_owed < period ? c->tx_owed : period;
        ssize_t w = send(c->fd, pattern + c->tx_off, len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            fail("send", errno);
        }
        c->tx_off = (c->tx_off + (size_t)w) % period;
        c->tx_owed -= (size_t)w;
    }
    set_mask(c, c->tx_owed ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

/* One read: check the bytes, count the lines completed, send as many. */
static void on_readable(struct conn *c, bool counting)
{
    ssize_t n = recv(c->fd, rxbuf, RXSIZE, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        fail("recv", errno);
    }
    if (n == 0)
        fail("recv (server closed)", EPIPE);
    uint64_t t = now_ns();
    unsigned lines = 0;
    size_t off = c->rx_off;
    for (size_t i = 0; i < (size_t)n; i++) {
        if (rxbuf[i] != pattern[off])
            fail("echo (wrong byte)", EPROTO);
        if (rxbuf[i] == '\n')
            lines++;
        off = off + 1 == period ? 0 : off + 1;
    }
    c->rx_off = off;
    if (lines > c->n)
        fail("echo (more lines than sent)", EPROTO);
    for (unsigned i = 0; i < lines; i++) {
        if (counting)
            record(t - c->t0[c->head]);
        c->head = (c->head + 1) % (unsigned)o.inflight;
        c->n--;
    }
    if (counting) {
        done += lines;
        bytes += (uint64_t)n;
    }
    if (lines)
        send_lines(c, lines, t);
}

/* This process's CPU time in ns (user + system): shows whether the load
 * generator, not the server, was the bottleneck. */
static uint64_t self_cpu_ns(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return 0;
    return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
           ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double pct_us(double p)
{
    if (nlat == 0)
        return 0;
    size_t i = (size_t)(p * (double)(nlat - 1) + 0.5);
    return lat[i] / 1000.0;
}

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: lineload -p PORT [-c CONNS] [-k INFLIGHT] [-s LINE_BYTES]\n"
                    "                [-d SECS] [-w WARMUP] [-P SERVER_PID] [-a 127.0.0.1]\n");
    exit(64);
}

static void parse(int argc, char **argv)
{
    int ch;
    while ((ch = getopt(argc, argv, "a:p:c:k:s:d:w:P:h")) != -1) {
        switch (ch) {
        case 'a': o.host = optarg; break;
        case 'p': o.port = atoi(optarg); break;
        case 'c': o.conns = atoi(optarg); break;
        case 'k': o.inflight = atoi(optarg); break;
        case 's': o.size = strtoul(optarg, NULL, 10); break;
        case 'd': o.secs = atof(optarg); break;
        case 'w': o.warmup = atof(optarg); break;
        case 'P': o.pid = atoi(optarg); break;
        default: usage();
        }
    }
    if (o.port <= 0 || o.port > 65535 || o.conns < 1 || o.inflight < 1 || o.size < 2 ||
        o.size > 4096 || o.secs <= 0 || o.warmup < 0)
        usage();
    srv.sin_family = AF_INET;
    srv.sin_port = htons((uint16_t)o.port);
    if (inet_pton(AF_INET, o.host, &srv.sin_addr) != 1 ||
        (ntohl(srv.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "lineload: loopback addresses only (127.0.0.0/8)\n");
        exit(64);
    }
}

int main(int argc, char **argv)
{
    parse(argc, argv);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* The stream: K lines, each S-1 printable bytes (different in every
     * line, so a lost or repeated line shows) and "\n". */
    period = (size_t)o.inflight * o.size;
    pattern = malloc(2 * period); /* a write of up to one period starts anywhere in the first */
    if (!pattern)
        fail("malloc", ENOMEM);
    for (size_t i = 0; i < 2 * period; i++) {
        size_t line = (i % period) / o.size, col = i % o.size;
        pattern[i] = col == o.size - 1 ? '\n' : (unsigned char)('!' + (line * 31 + col * 7) % 94);
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        fail("epoll_create1", errno);

    struct conn *cs = calloc((size_t)o.conns, sizeof *cs);
    uint64_t *rings = calloc((size_t)o.conns * (size_t)o.inflight, sizeof *rings);
    if (!cs || !rings)
        fail("malloc", ENOMEM);
    for (int i = 0; i < o.conns; i++) {
        struct conn *c = &cs[i];
        c->t0 = rings + (size_t)i * (size_t)o.inflight;
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
            fail("socket", errno);
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c->fd, (struct sockaddr *)&srv, sizeof srv) < 0 && errno != EINPROGRESS)
            fail("connect", errno);
        set_mask(c, EPOLLOUT);
    }

    /* Connect everything first, then start all the lines at once. */
    int connected = 0;
    struct epoll_event evs[1024];
    uint64_t cap = now_ns() + SETUP_CAP_NS;
    while (connected < o.conns) {
        if (interrupted || now_ns() > cap)
            fail("connect (timeout)", ETIMEDOUT);
        int k = epoll_wait(ep, evs, 1024, 100);
        if (k < 0 && errno != EINTR)
            fail("epoll_wait", errno);
        for (int i = 0; i < k; i++) {
            struct conn *c = evs[i].data.ptr;
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
            if (err)
                fail("connect", err);
            if (!c->connected) {
                c->connected = true;
                connected++;
                set_mask(c, EPOLLIN);
            }
        }
    }

    uint64_t t = now_ns();
    for (int i = 0; i < o.conns; i++)
        send_lines(&cs[i], (unsigned)o.inflight, t);

    uint64_t t_start = t + (uint64_t)(o.warmup * 1e9), t_end = UINT64_MAX;
    uint64_t cpu0 = 0, cpu_ns = 0, self0 = 0, self_ns = 0;
    unsigned long long steal0 = 0, steal1 = 0;
    bool counting = false;
    while (!interrupted) {
        int k = epoll_wait(ep, evs, 1024, 100);
        if (k < 0 && errno != EINTR)
            fail("epoll_wait", errno);
        t = now_ns();
        if (!counting && t >= t_start) {
            counting = true;
            cpu0 = server_cpu_ns(o.pid);
            self0 = self_cpu_ns();
            steal0 = steal_ticks();
            others0 = others_ticks(o.pid);
            t_start = t;
            t_end = t + (uint64_t)(o.secs * 1e9);
        }
        if (t >= t_end)
            break;
        for (int i = 0; i < k; i++) {
            struct conn *c = evs[i].data.ptr;
            if (evs[i].events & EPOLLOUT)
                send_lines(c, 0, t);
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(c, counting);
        }
    }
    cpu_ns = server_cpu_ns(o.pid) - cpu0;
    self_ns = self_cpu_ns() - self0;
    steal1 = steal_ticks();
    others1 = others_ticks(o.pid);
    double secs = (double)(now_ns() - t_start) / 1e9;

    qsort(lat, nlat, sizeof *lat, cmp_u32);
    printf("mode=lines status=%s conns=%d k=%d size=%zu secs=%.3f count=%llu rate=%.0f "
           "p50_us=%.1f p99_us=%.1f mbps=%.2f errors=%llu",
           interrupted || !counting ? "interrupted" : "ok", o.conns, o.inflight, o.size, secs,
           (unsigned long long)done, (double)done / secs, pct_us(0.50), pct_us(0.99),
           (double)bytes / secs / 1e6, (unsigned long long)errors);
    if (o.pid > 0 && done > 0)
        printf(" srv_cpu=%.3f srv_ns_per_op=%.0f", (double)cpu_ns / 1e9 / secs,
               (double)cpu_ns / (double)done);
    printf(" lg_cpu=%.3f", (double)self_ns / 1e9 / secs);
    long hz = sysconf(_SC_CLK_TCK), ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (hz > 0 && ncpu > 0)
        printf(" steal_pct=%.1f others_pct=%.1f",
               100.0 * (double)(steal1 - steal0) / ((double)hz * (double)ncpu * secs),
               100.0 * (double)(long long)(others1 - others0) / ((double)hz * (double)ncpu * secs));
    printf("\n");
    fflush(stdout);
    for (int i = 0; i < o.conns; i++)
        close(cs[i].fd);
    free(cs);
    free(rings);
    free(pattern);
    free(lat);
    return 0;
}
