/* loadgen — the load generator of the echo benchmark (bench/run.sh).
 *
 * Independent of libasyncore on purpose: one thread, raw level-triggered
 * epoll, non-blocking sockets with TCP_NODELAY, loopback only.  It drives an
 * echo server in one of three modes and prints one key=value line:
 *
 *   rr        N connections, each a closed loop: send one message of S bytes,
 *             wait until S bytes came back (checked byte for byte), repeat.
 *             Reports round trips/s, p50/p99 latency (µs) and MB/s.
 *   idle      K connections opened first (each echoes one 64-byte message so
 *             the server has surely accepted it, then stays silent and open),
 *             plus 1 busy connection measured as in rr.  With -P it also
 *             reports the server's VmRSS growth per idle connection.
 *   connrate  connect, one 64-byte echo, close; J attempts in flight at any
 *             time.  Reports connections/s.  With -n N: exactly N
 *             connections in all, no warm-up, no window; it ends when the
 *             last one has closed (bench/run_portfwd.sh counts the system
 *             calls of a forwarder over them).
 *
 * Every mode runs a warm-up (-w) and then measures for -d seconds; only
 * round trips completed inside the window count.  With -P <server pid> it
 * also reports the server's CPU time per round trip (from
 * /proc/<pid>/schedstat), which stays meaningful when the load generator
 * and not the server is the bottleneck.  With -S as well, the server is
 * every process of the session PID leads (a forwarder that forks a process
 * per connection): see session_cpu_ns() in procstat.h.
 *
 * MB/s is payload echoed back to the client (one direction), 10^6 bytes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
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

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum mode { MODE_RR, MODE_IDLE, MODE_CONNRATE };
enum cstate { CS_CONNECTING, CS_ACTIVE, CS_IDLE };

struct conn {
    int fd;
    enum cstate state;
    uint32_t mask;     /* epoll interest now in the kernel */
    size_t sent, rcvd; /* of the current message */
    uint64_t t0;       /* ns: when the current message (or connect) started */
};

struct opts {
    enum mode mode;
    const char *host;
    int port;
    int conns;   /* rr: connections */
    size_t size; /* message size */
    double secs; /* measuring window */
    double warmup;
    int idle;         /* idle mode: idle connections */
    int inflight;     /* connrate: attempts in flight */
    int pid;          /* server pid for RSS and CPU, 0 = none */
    bool session;     /* -S: the server's CPU is that of pid's whole session */
    long total;       /* connrate -n: connections in all, 0 = a timed window */
    double setup_cap; /* seconds allowed to open the connections */
};

struct stats {
    uint64_t done;  /* round trips (or connections) completed in the window */
    uint64_t bytes; /* payload received in the window */
    uint64_t errors;
    uint32_t *lat; /* ns per completed round trip in the window */
    size_t nlat, caplat;
};

static struct opts o = {
    .mode = MODE_RR,
    .host = "127.0.0.1",
    .port = 0,
    .conns = 1,
    .size = 64,
    .secs = 3.0,
    .warmup = 0.5,
    .idle = 10000,
    .inflight = 32,
    .pid = 0,
    .session = false,
    .total = 0,
    .setup_cap = 120.0,
};
static struct sockaddr_in srv;
static unsigned char *txbuf, *rxbuf;
#define RXSIZE 65536
#define SETUP_INFLIGHT 256
static int ep;
static volatile sig_atomic_t interrupted;

static void die(const char *what)
{
    printf("mode=error what=%s errno=%s\n", what, strerror(errno));
    exit(2);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static unsigned long long steal0, steal1;

static unsigned long long others0, others1;

/* Server VmRSS in KiB, -1 if unknown. */
static long server_rss_kb(void)
{
    if (o.pid <= 0)
        return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", o.pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* The server's CPU time in ns: its own, or with -S its session's. */
static uint64_t srv_cpu_ns(void)
{
    return o.session ? session_cpu_ns(o.pid) : server_cpu_ns(o.pid);
}

static void set_mask(struct conn *c, uint32_t mask)
{
    if (c->mask == mask)
        return;
    struct epoll_event ev = {.events = mask, .data.ptr = c};
    if (epoll_ctl(ep, c->mask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl");
    c->mask = mask;
}

static void forget(struct conn *c)
{
    if (c->mask)
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    c->mask = 0;
}

/* Start a non-blocking connect.  Source addresses rotate over 127.0.0.2 ..
 * 127.0.0.254 (IP_BIND_ADDRESS_NO_PORT keeps the port choice at connect
 * time): the connection-rate row closes tens of thousands of connections
 * per second and each leaves a TIME_WAIT entry on our side, which would
 * otherwise exhaust the ~28,000 ephemeral ports of one source address. */
static int open_conn(struct conn *c)
{
    static unsigned rot;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (o.mode == MODE_CONNRATE) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000002u + rot++ % 253);
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
    }
    *c = (struct conn){.fd = fd, .state = CS_CONNECTING, .t0 = now_ns()};
    if (connect(fd, (struct sockaddr *)&srv, sizeof srv) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        c->fd = -1;
        return -e;
    }
    /* connrate: edge-triggered and both directions from the start, so a
     * connection costs one epoll_ctl in all (close removes it). */
    set_mask(c, o.mode == MODE_CONNRATE ? EPOLLIN | EPOLLOUT | EPOLLET : EPOLLOUT);
    return 0;
}

static void close_conn(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd); /* also leaves the epoll set: the fd is not shared */
    c->fd = -1;
    c->mask = 0;
}

/* Send what remains of the current message; wait for EPOLLOUT only if the
 * socket buffer is full.  Returns 0 or -errno. */
static int pump_send(struct conn *c)
{
    while (c->sent < o.size) {
        ssize_t n = send(c->fd, txbuf + c->sent, o.size - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            return -errno;
        }
        c->sent += (size_t)n;
    }
    if (!(c->mask & EPOLLET))
        set_mask(c, c->sent < o.size ? EPOLLIN | EPOLLOUT : EPOLLIN);
    return 0;
}

static int start_msg(struct conn *c, uint64_t t)
{
    c->state = CS_ACTIVE;
    c->sent = c->rcvd = 0;
    c->t0 = t;
    return pump_send(c);
}

/* One read.  Returns 1 when the whole message is back, 0 if not yet,
 * -EAGAIN if nothing was there, -errno on failure (-EPIPE for EOF,
 * -EPROTO for wrong bytes). */
static int pump_recv(struct conn *c, struct stats *st, bool counting)
{
    ssize_t n = recv(c->fd, rxbuf, RXSIZE, 0);
    if (n < 0)
        return errno == EINTR ? -EAGAIN : -errno;
    if (n == 0)
        return -EPIPE;
    if (c->rcvd + (size_t)n > o.size || memcmp(rxbuf, txbuf + c->rcvd, (size_t)n) != 0)
        return -EPROTO;
    c->rcvd += (size_t)n;
    if (counting)
        st->bytes += (uint64_t)n;
    return c->rcvd == o.size && c->sent == o.size;
}

static void record(struct stats *st, uint64_t ns)
{
    st->done++;
    if (st->nlat == st->caplat) {
        size_t cap = st->caplat ? st->caplat * 2 : 1 << 20;
        uint32_t *p = realloc(st->lat, cap * sizeof *p);
        if (!p)
            return;
        st->lat = p;
        st->caplat = cap;
    }
    st->lat[st->nlat++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double pct_us(struct stats *st, double p)
{
    if (st->nlat == 0)
        return 0;
    size_t i = (size_t)(p * (double)(st->nlat - 1) + 0.5);
    return st->lat[i] / 1000.0;
}

/* Open n connections, at most SETUP_INFLIGHT being set up at once, and give
 * each one echo of one message so that the server has surely accepted it.  Connections
 * marked idle are then taken out of epoll.  Returns 0 or -errno. */
static int open_all(struct conn *cs, int n, bool make_idle)
{
    int opened = 0, ready = 0, pending = 0;
    uint64_t cap = now_ns() + (uint64_t)(o.setup_cap * 1e9);
    struct epoll_event evs[1024];
    while (ready < n) {
        while (opened < n && pending < SETUP_INFLIGHT) {
            int r = open_conn(&cs[opened]);
            if (r < 0) {
                errno = -r;
                die("connect");
            }
            opened++;
            pending++;
        }
        if (now_ns() > cap || interrupted)
            return -ETIMEDOUT;
        int k = epoll_wait(ep, evs, 1024, 100);
        if (k < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < k; i++) {
            struct conn *c = evs[i].data.ptr;
            int r = 0;
            if (c->state == CS_CONNECTING) {
                r = start_msg(c, now_ns());
            } else {
                if (evs[i].events & EPOLLOUT)
                    r = pump_send(c);
                if (r == 0)
                    r = pump_recv(c, NULL, false);
                if (r == -EAGAIN)
                    r = 0;
                if (r == 1) {
                    pending--;
                    ready++;
                    if (make_idle) {
                        c->state = CS_IDLE;
                        forget(c);
                    } else {
                        set_mask(c, EPOLLIN);
                        c->sent = c->rcvd = 0;
                    }
                    continue;
                }
            }
            if (r < 0) {
                errno = -r;
                die("setup echo");
            }
        }
    }
    return 0;
}

/* The closed loops of rr and idle mode over the connections cs[0..n),
 * all open and quiet.  Warm-up, then the window. */
static void run_rr(struct conn *cs, int n, struct stats *st, uint64_t *cpu_ns)
{
    uint64_t t = now_ns();
    uint64_t t_start = t + (uint64_t)(o.warmup * 1e9);
    uint64_t t_end = t_start + (uint64_t)(o.secs * 1e9);
    bool counting = false;
    uint64_t cpu0 = 0;
    for (int i = 0; i < n; i++)
        if (start_msg(&cs[i], t) < 0)
            die("send");
    struct epoll_event evs[1024];
    while (!interrupted) {
        int k = epoll_wait(ep, evs, 1024, 100);
        if (k < 0 && errno != EINTR)
            die("epoll_wait");
        t = now_ns();
        if (!counting && t >= t_start) {
            counting = true;
            cpu0 = srv_cpu_ns();
            steal0 = steal_ticks();
            others0 = others_ticks(o.pid);
            t_start = t;
            t_end = t + (uint64_t)(o.secs * 1e9);
        }
        if (t >= t_end)
            break;
        for (int i = 0; i < k; i++) {
            struct conn *c = evs[i].data.ptr;
            int r = 0;
            if (evs[i].events & EPOLLOUT)
                r = pump_send(c);
            if (r == 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                r = pump_recv(c, st, counting);
            if (r == -EAGAIN)
                r = 0;
            if (r == 1) {
                uint64_t t1 = now_ns();
                if (counting)
                    record(st, t1 - c->t0);
                r = start_msg(c, t1);
            }
            if (r < 0) {
                errno = -r;
                die("echo");
            }
        }
    }
    *cpu_ns = srv_cpu_ns() - cpu0;
    steal1 = steal_ticks();
    others1 = others_ticks(o.pid);
    o.secs = (double)(now_ns() - t_start) / 1e9;
}

/* connect, one echo, close, with o.inflight attempts in flight.  With -n
 * (o.total): o.total connections in all, counted from the start, and the
 * run ends when the last one is closed. */
static void run_connrate(struct stats *st, uint64_t *cpu_ns)
{
    struct conn *cs = calloc((size_t)o.inflight, sizeof *cs);
    uint64_t t = now_ns();
    uint64_t t_start = t + (uint64_t)(o.warmup * 1e9);
    uint64_t t_end = t_start + (uint64_t)(o.secs * 1e9);
    bool counting = false;
    uint64_t cpu0 = 0;
    long opened = 0, open_now = 0; /* connections started; not yet closed */
    if (o.total > 0)
        t_start = t; /* no warm-up */
    for (int i = 0; i < o.inflight; i++) {
        cs[i].fd = -1;
        if (o.total > 0 && opened == o.total)
            continue;
        if (open_conn(&cs[i]) < 0)
            die("connect");
        opened++;
        open_now++;
    }
    struct epoll_event evs[1024];
    while (!interrupted && (o.total == 0 || open_now > 0)) {
        int k = epoll_wait(ep, evs, 1024, 100);
        if (k < 0 && errno != EINTR)
            die("epoll_wait");
        t = now_ns();
        if (!counting && t >= t_start) {
            counting = true;
            cpu0 = srv_cpu_ns();
            steal0 = steal_ticks();
            others0 = others_ticks(o.pid);
            t_start = t;
            t_end = o.total > 0 ? UINT64_MAX : t + (uint64_t)(o.secs * 1e9);
        }
        if (t >= t_end)
            break;
        for (int i = 0; i < k; i++) {
            struct conn *c = evs[i].data.ptr;
            int r;
            if (c->state == CS_CONNECTING) {
                uint64_t t0 = c->t0;
                r = start_msg(c, t0);
            } else {
                r = 0;
                if ((evs[i].events & EPOLLOUT) && c->sent < o.size)
                    r = pump_send(c);
                while (r == 0) /* edge-triggered: read until EAGAIN */
                    r = pump_recv(c, st, counting);
            }
            if (r == 0 || r == -EAGAIN)
                continue;
            if (r == 1 && counting)
                record(st, now_ns() - c->t0);
            if (r < 0)
                st->errors++;
            close_conn(c);
            if (o.total > 0 && opened == o.total) {
                open_now--;
                continue;
            }
            opened++;
            while ((r = open_conn(c)) < 0) {
                st->errors++;
                if (st->errors > 1000) {
                    errno = -r;
                    die("connect");
                }
            }
        }
    }
    *cpu_ns = srv_cpu_ns() - cpu0;
    steal1 = steal_ticks();
    others1 = others_ticks(o.pid);
    o.secs = (double)(now_ns() - t_start) / 1e9;
    for (int i = 0; i < o.inflight; i++)
        close_conn(&cs[i]);
    free(cs);
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen -p PORT [-m rr|idle|connrate] [-c CONNS] [-s SIZE]\n"
                    "               [-d SECS] [-w WARMUP] [-k IDLE] [-j INFLIGHT] [-P SERVER_PID]\n"
                    "               [-S] [-n TOTAL] [-T SETUP_CAP] [-a 127.0.0.1]\n");
    exit(64);
}

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void parse(int argc, char **argv)
{
    int ch;
    while ((ch = getopt(argc, argv, "m:a:p:c:s:d:w:k:j:P:ST:n:h")) != -1) {
        switch (ch) {
        case 'm':
            if (!strcmp(optarg, "rr"))
                o.mode = MODE_RR;
            else if (!strcmp(optarg, "idle"))
                o.mode = MODE_IDLE;
            else if (!strcmp(optarg, "connrate"))
                o.mode = MODE_CONNRATE;
            else
                usage();
            break;
        case 'a': o.host = optarg; break;
        case 'p': o.port = atoi(optarg); break;
        case 'c': o.conns = atoi(optarg); break;
        case 's': o.size = strtoul(optarg, NULL, 10); break;
        case 'd': o.secs = atof(optarg); break;
        case 'w': o.warmup = atof(optarg); break;
        case 'k': o.idle = atoi(optarg); break;
        case 'j': o.inflight = atoi(optarg); break;
        case 'P': o.pid = atoi(optarg); break;
        case 'S': o.session = true; break;
        case 'n': o.total = atol(optarg); break;
        case 'T': o.setup_cap = atof(optarg); break;
        default: usage();
        }
    }
    if (o.port <= 0 || o.port > 65535 || o.conns < 1 || o.size < 1 || o.secs <= 0 ||
        o.inflight < 1 || o.idle < 0 || o.total < 0 || (o.total > 0 && o.mode != MODE_CONNRATE))
        usage();
    srv.sin_family = AF_INET;
    srv.sin_port = htons((uint16_t)o.port);
    if (inet_pton(AF_INET, o.host, &srv.sin_addr) != 1 ||
        (ntohl(srv.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "loadgen: loopback addresses only (127.0.0.0/8)\n");
        exit(64);
    }
}

int main(int argc, char **argv)
{
    parse(argc, argv);
    raise_nofile();
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (o.mode != MODE_RR)
        o.size = 64; /* idle and connrate: 64-byte messages */
    txbuf = malloc(o.size);
    rxbuf = malloc(RXSIZE);
    for (size_t i = 0; i < o.size; i++)
        txbuf[i] = (unsigned char)('a' + (i * 7 + i / 251) % 26);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");

    struct stats st = {0};
    uint64_t cpu_ns = 0;
    const char *mode = "rr";
    long rss0 = -1, rss1 = -1;
    int nconns = o.conns;
    if (o.mode == MODE_CONNRATE) {
        mode = "connrate";
        nconns = o.inflight;
        run_connrate(&st, &cpu_ns);
    } else {
        struct conn *busy = calloc((size_t)o.conns, sizeof *busy);
        if (open_all(busy, o.conns, false) < 0) {
            printf("mode=%s status=timeout phase=connect conns=%d\n",
                   o.mode == MODE_IDLE ? "idle" : "rr", o.conns);
            return 1;
        }
        if (o.mode == MODE_IDLE) {
            mode = "idle";
            rss0 = server_rss_kb();
            struct conn *idle = calloc((size_t)o.idle, sizeof *idle);
            uint64_t t0 = now_ns();
            if (open_all(idle, o.idle, true) < 0) {
                printf("mode=idle status=timeout phase=idle idle=%d\n", o.idle);
                return 1;
            }
            double setup = (double)(now_ns() - t0) / 1e9;
            usleep(300000); /* let the server settle after the last echo */
            rss1 = server_rss_kb();
            fprintf(stderr, "loadgen: %d idle connections open in %.2f s\n", o.idle, setup);
        }
        run_rr(busy, o.conns, &st, &cpu_ns);
    }

    qsort(st.lat, st.nlat, sizeof *st.lat, cmp_u32);
    double rate = (double)st.done / o.secs;
    printf("mode=%s status=%s conns=%d size=%zu secs=%.3f count=%llu rate=%.0f "
           "p50_us=%.1f p99_us=%.1f mbps=%.2f errors=%llu",
           mode, interrupted ? "interrupted" : "ok", nconns, o.size, o.secs,
           (unsigned long long)st.done, rate, pct_us(&st, 0.50), pct_us(&st, 0.99),
           (double)st.bytes / o.secs / 1e6, (unsigned long long)st.errors);
    if (o.total > 0)
        printf(" total=%ld", o.total);
    if (o.pid > 0 && st.done > 0)
        printf(" srv_cpu=%.3f srv_ns_per_op=%.0f", (double)cpu_ns / 1e9 / o.secs,
               (double)cpu_ns / (double)st.done);
    if (o.pid > 0 && st.done > 0 && o.session)
        printf(" srv_scope=session");
    /* Stolen share of all CPUs' time during the window, in percent. */
    long hz = sysconf(_SC_CLK_TCK);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (hz > 0 && ncpu > 0)
        printf(" steal_pct=%.1f others_pct=%.1f",
               100.0 * (double)(steal1 - steal0) / ((double)hz * (double)ncpu * o.secs),
               100.0 * (double)(long long)(others1 - others0) /
                   ((double)hz * (double)ncpu * o.secs));
    if (o.mode == MODE_IDLE) {
        printf(" idle=%d rss0_kb=%ld rss1_kb=%ld", o.idle, rss0, rss1);
        if (rss0 >= 0 && rss1 >= 0 && o.idle > 0)
            printf(" bytes_per_idle=%.0f", (double)(rss1 - rss0) * 1024.0 / o.idle);
    }
    printf("\n");
    fflush(stdout);
    free(st.lat);
    return 0;
}
