/* socks_hs — the SOCKS5 handshake load generator of bench/run_socks5d.sh.
 *
 * Independent of libasyncore on purpose, like loadgen.c: one thread, raw
 * edge-triggered epoll, non-blocking sockets, loopback only.  A client does
 * what curl does (RFC 1928): the greeting "no authentication" (05 01 00),
 * waits for the method (05 00), sends CONNECT to the sink (05 01 00 01
 * 127.0.0.1 port, or with -H a domain name), and waits for the whole reply
 * (05 00 00 ATYP address port).  Each step waits for the answer before the
 * next write, because peers differ on pipelined input.  Modes, one
 * key=value line out:
 *
 *   hs      J clients in flight: connect to the proxy, greeting, CONNECT,
 *           reply, close, a new client.  Handshakes/s over the window (-d
 *           after -w); with -P, the proxy's CPU per handshake.
 *   direct  the limit: J clients connect to the sink itself; a connect that
 *           completes is the "handshake" (the sink's answer to SYN).
 *   idle    K tunnels opened (each carries one 64-byte echo through the
 *           proxy to the sink, an echo server, so the proxy surely relays
 *           it) and held.  With -P: the memory of the proxy's process tree
 *           (the session that PID leads: bench/run_socks5d.sh starts every
 *           proxy with setsid), Rss and Pss summed over its processes,
 *           before (one tunnel open) and after (all K open), and its
 *           process and thread counts.
 *
 *   -C SID  no clients: print the CPU time of session SID's processes in
 *           ns and their user ticks (utime + cutime), then exit; the
 *           script's snapshot of a proxy or a server around a curl run.
 *
 * The proxy's CPU time is that of its whole session (tree_of), so a proxy
 * with helper processes (dante) or a thread per client (microsocks) is
 * counted whole.  Client source addresses rotate over 127.0.0.2..254 as in
 * loadgen: each closed client leaves a TIME_WAIT entry on our side.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
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
#include <unistd.h>

#include "procstat.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum mode { MODE_HS, MODE_DIRECT, MODE_IDLE };
enum step { ST_CONNECT, ST_METHOD, ST_REPLY, ST_ECHO, ST_DONE };

#define ECHO_SIZE 64
#define SETUP_INFLIGHT 128

struct client {
    int fd;
    enum step step;
    size_t got;                 /* bytes of the current answer so far */
    unsigned char buf[6 + 256]; /* the longest reply: a 255-byte name */
};

static struct {
    enum mode mode;
    int port;         /* the proxy's (direct: unused) */
    int sink;         /* the sink's port */
    const char *name; /* -H: CONNECT by this name (ATYP 3), else 127.0.0.1 */
    int inflight;
    int idle;
    double secs, warmup, cap;
    int pid;    /* the proxy's session leader, 0 = none */
    int cpu_of; /* -C: only print this session's CPU time */
} o = {.mode = MODE_HS, .inflight = 32, .idle = 2000, .secs = 3, .warmup = 0.5, .cap = 60};

static struct sockaddr_in proxy_addr, sink_addr;
static unsigned char request[7 + 255];
static size_t request_len;
static unsigned char echo_msg[ECHO_SIZE];
static int ep;
static volatile sig_atomic_t interrupted;
static unsigned long long errors;

static void die(const char *what)
{
    printf("mode=error status=fail what=%s errno=%s\n", what, strerror(errno));
    exit(2);
}

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* The CONNECT request, built once: to 127.0.0.1:sink, or to -H's name. */
static void build_request(void)
{
    unsigned char *p = request;
    *p++ = 5, *p++ = 1, *p++ = 0;
    if (o.name) {
        size_t n = strlen(o.name);
        *p++ = 3, *p++ = (unsigned char)n;
        memcpy(p, o.name, n);
        p += n;
    } else {
        *p++ = 1;
        memcpy(p, &sink_addr.sin_addr, 4);
        p += 4;
    }
    *p++ = (unsigned char)(o.sink >> 8), *p++ = (unsigned char)o.sink;
    request_len = (size_t)(p - request);
}

/* A non-blocking connect from the next source address, edge-triggered for
 * both directions from the start (one epoll_ctl per client). */
static int client_open(struct client *c)
{
    static unsigned rot;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000002u + rot++ % 253);
    const struct sockaddr_in *to = o.mode == MODE_DIRECT ? &sink_addr : &proxy_addr;
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0 ||
        (connect(fd, (const struct sockaddr *)to, sizeof *to) < 0 && errno != EINPROGRESS)) {
        int e = errno;
        close(fd);
        return -e;
    }
    c->fd = fd;
    c->step = ST_CONNECT;
    c->got = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl");
    return 0;
}

static void client_close(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
}

/* A few bytes on a fresh socket: all of them go, or it is an error. */
static int send_all(struct client *c, const void *p, size_t n)
{
    ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
    return w == (ssize_t)n ? 0 : w < 0 ? -errno : -EMSGSIZE;
}

/* Read toward an answer of `want` bytes.  1 when all are there, 0 when
 * more must come, -errno (-EPIPE at EOF). */
static int read_toward(struct client *c, size_t want)
{
    while (c->got < want) {
        ssize_t n = recv(c->fd, c->buf + c->got, want - c->got, 0);
        if (n == 0)
            return -EPIPE;
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        c->got += (size_t)n;
    }
    return 1;
}

/* The length of a reply whose first 5 bytes are in (RFC 1928, 6). */
static size_t reply_len(const unsigned char *b)
{
    switch (b[3]) {
    case 1: return 10;
    case 4: return 22;
    case 3: return 7 + (size_t)b[4];
    default: return 0;
    }
}

/* The reply: 05 00 00 ATYP, then the bound address.  1 done, 0 more to
 * come, -errno; -EPROTO for a refusal or a malformed reply. */
static int read_reply(struct client *c)
{
    int r = read_toward(c, 5);
    if (r <= 0)
        return r;
    size_t want = reply_len(c->buf);
    if (c->buf[0] != 5 || c->buf[1] != 0 || want == 0)
        return -EPROTO;
    return read_toward(c, want);
}

/* One step of a client, as far as the socket lets it go.  1 when the
 * handshake (idle: and the echo) is complete, 0 to wait, -errno. */
static int advance(struct client *c, uint32_t events)
{
    int r;
    switch (c->step) {
    case ST_CONNECT:
        if (events & (EPOLLERR | EPOLLHUP))
            return -ECONNREFUSED;
        if (!(events & EPOLLOUT))
            return 0;
        if (o.mode == MODE_DIRECT)
            return 1;
        c->step = ST_METHOD;
        r = send_all(c, "\x05\x01\x00", 3);
        return r < 0 ? r : advance(c, 0);
    case ST_METHOD:
        if ((r = read_toward(c, 2)) <= 0)
            return r;
        if (c->buf[0] != 5 || c->buf[1] != 0)
            return -EPROTO;
        c->step = ST_REPLY;
        c->got = 0;
        r = send_all(c, request, request_len);
        return r < 0 ? r : advance(c, 0);
    case ST_REPLY:
        if ((r = read_reply(c)) <= 0)
            return r;
        if (o.mode != MODE_IDLE)
            return 1;
        c->step = ST_ECHO;
        c->got = 0;
        r = send_all(c, echo_msg, ECHO_SIZE);
        return r < 0 ? r : advance(c, 0);
    case ST_ECHO:
        if ((r = read_toward(c, ECHO_SIZE)) <= 0)
            return r;
        return memcmp(c->buf, echo_msg, ECHO_SIZE) ? -EPROTO : 1;
    case ST_DONE: break;
    }
    return 0;
}

/* What /proc/PID/stat says of a process: its session (field 6), CPU
 * ticks (14-17: its own user and system, its reaped children's) and
 * threads (20). */
struct pstat {
    int sid, threads;
    unsigned long long ut, st, cut, cst;
};

static bool pstat_of(const char *pid, struct pstat *ps)
{
    char path[300], buf[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    return p && sscanf(p + 1,
                       " %*c %*d %*d %d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu %*d %*d %d",
                       &ps->sid, &ps->ut, &ps->st, &ps->cut, &ps->cst, &ps->threads) == 6;
}

/* The proxy's process tree, the session sid leads (run_socks5d.sh starts
 * every proxy with setsid): its memory, threads and CPU time. */
struct tree {
    long rss_kb, pss_kb;
    int procs, threads;
    uint64_t cpu_ns;
    unsigned long long user_ticks; /* utime + cutime: for the noise estimate */
};

static void add_memory(const char *pid, struct tree *t)
{
    char path[300], line[256];
    snprintf(path, sizeof path, "/proc/%s/smaps_rollup", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    long kb;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "Rss: %ld kB", &kb) == 1)
            t->rss_kb += kb;
        else if (sscanf(line, "Pss: %ld kB", &kb) == 1)
            t->pss_kb += kb;
    }
    fclose(f);
}

/* A process's CPU time: its CPU clock, which keeps the time of its threads
 * that have exited (a thread-per-client proxy such as microsocks ends one
 * per client; the schedstat of the threads alive at the end, procstat.h's
 * session_cpu_ns, would lose it), plus the children it has reaped. */
static void add_cpu(const char *pid, const struct pstat *ps, struct tree *t)
{
    static long hz;
    if (!hz)
        hz = sysconf(_SC_CLK_TCK);
    clockid_t clk;
    struct timespec ts;
    if (clock_getcpuclockid((pid_t)atoi(pid), &clk) == 0 && clock_gettime(clk, &ts) == 0)
        t->cpu_ns += (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    else
        t->cpu_ns += (ps->ut + ps->st) * 1000000000ull / (unsigned long long)hz;
    t->cpu_ns += (ps->cut + ps->cst) * 1000000000ull / (unsigned long long)hz;
    t->user_ticks += ps->ut + ps->cut;
}

static struct tree tree_of(int sid, bool memory)
{
    struct tree t = {0};
    DIR *proc = opendir("/proc");
    struct dirent *e;
    while (proc && sid > 0 && (e = readdir(proc)) != NULL) {
        struct pstat ps;
        if (e->d_name[0] < '1' || e->d_name[0] > '9' || !pstat_of(e->d_name, &ps) || ps.sid != sid)
            continue;
        t.procs++;
        t.threads += ps.threads;
        add_cpu(e->d_name, &ps, &t);
        if (memory)
            add_memory(e->d_name, &t);
    }
    if (proc)
        closedir(proc);
    return t;
}

/* The machine's state at either end of a window. */
struct snap {
    uint64_t t, cpu;
    unsigned long long steal, others;
};

static struct snap take_snap(void)
{
    /* direct: -P is the sink's pid, one process. */
    uint64_t cpu = o.mode == MODE_DIRECT ? server_cpu_ns(o.pid) : tree_of(o.pid, false).cpu_ns;
    return (struct snap){now_ns(), cpu, steal_ticks(), others_ticks(o.pid)};
}

static void print_window(const struct snap *a, const struct snap *b, uint64_t done)
{
    double secs = (double)(b->t - a->t) / 1e9;
    const char *status = done == 0 ? "fail" : "ok"; /* a proxy that refused them all */
    if (interrupted)
        status = "interrupted";
    printf("mode=%s status=%s inflight=%d secs=%.3f count=%llu rate=%.0f errors=%llu",
           o.mode == MODE_DIRECT ? "direct" : "hs", status, o.inflight, secs,
           (unsigned long long)done, (double)done / secs, errors);
    if (o.pid > 0 && done > 0)
        printf(" srv_cpu=%.3f srv_ns_per_op=%.0f srv_scope=%s",
               (double)(b->cpu - a->cpu) / 1e9 / secs, (double)(b->cpu - a->cpu) / (double)done,
               o.mode == MODE_DIRECT ? "process" : "session");
    long hz = sysconf(_SC_CLK_TCK), ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (hz > 0 && ncpu > 0)
        printf(" steal_pct=%.1f others_pct=%.1f",
               100.0 * (double)(b->steal - a->steal) / ((double)hz * (double)ncpu * secs),
               100.0 * (double)(long long)(b->others - a->others) /
                   ((double)hz * (double)ncpu * secs));
    printf("\n");
}

/* A client finished (r = 1) or failed: count it, start the next one. */
static void recycle(struct client *c, int r, bool counting, uint64_t *done)
{
    if (r == 1 && counting)
        (*done)++;
    if (r < 0)
        errors++;
    client_close(c);
    while ((r = client_open(c)) < 0) {
        if (++errors > 1000) {
            errno = -r;
            die("connect");
        }
    }
}

/* hs and direct: J clients in flight, a new one as each ends. */
static void run_rate(void)
{
    struct client *cs = calloc((size_t)o.inflight, sizeof *cs);
    for (int i = 0; i < o.inflight; i++)
        if (client_open(&cs[i]) < 0)
            die("connect");
    uint64_t t_start = now_ns() + (uint64_t)(o.warmup * 1e9), t_end = UINT64_MAX, done = 0;
    struct snap a = {0}, b;
    bool counting = false;
    struct epoll_event evs[512];
    while (!interrupted) {
        int k = epoll_wait(ep, evs, 512, 100);
        if (k < 0 && errno != EINTR)
            die("epoll_wait");
        uint64_t t = now_ns();
        if (!counting && t >= t_start) {
            counting = true;
            a = take_snap();
            t_end = a.t + (uint64_t)(o.secs * 1e9);
        }
        if (t >= t_end)
            break;
        for (int i = 0; i < k; i++) {
            struct client *c = evs[i].data.ptr;
            int r = advance(c, evs[i].events);
            if (r != 0)
                recycle(c, r, counting, &done);
        }
    }
    b = take_snap();
    if (!counting)
        a = b;
    print_window(&a, &b, done);
    for (int i = 0; i < o.inflight; i++)
        client_close(&cs[i]);
    free(cs);
}

/* Bring clients cs[0..n) to the end of their handshake and echo, at most
 * SETUP_INFLIGHT at a time, and take each out of epoll.  0 or -ETIMEDOUT. */
static int open_idle(struct client *cs, int n)
{
    int opened = 0, ready = 0;
    uint64_t cap = now_ns() + (uint64_t)(o.cap * 1e9);
    struct epoll_event evs[512];
    while (ready < n) {
        for (; opened < n && opened - ready < SETUP_INFLIGHT; opened++)
            if (client_open(&cs[opened]) < 0)
                die("connect");
        if (now_ns() > cap || interrupted)
            return -ETIMEDOUT;
        int k = epoll_wait(ep, evs, 512, 100);
        if (k < 0 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < k; i++) {
            struct client *c = evs[i].data.ptr;
            int r = advance(c, evs[i].events);
            if (r < 0) {
                errno = -r;
                die("idle tunnel");
            }
            if (r == 1) {
                c->step = ST_DONE;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                ready++;
            }
        }
    }
    return 0;
}

/* idle: one tunnel, the memory before; K more, the memory after. */
static int run_idle(void)
{
    struct client *cs = calloc((size_t)o.idle + 1, sizeof *cs);
    if (open_idle(cs, 1) < 0) {
        printf("mode=idle status=timeout phase=first\n");
        return 1;
    }
    usleep(200000);
    struct tree m0 = tree_of(o.pid, true);
    uint64_t t0 = now_ns();
    if (open_idle(cs + 1, o.idle) < 0) {
        printf("mode=idle status=timeout phase=idle idle=%d\n", o.idle);
        return 1;
    }
    double setup = (double)(now_ns() - t0) / 1e9;
    usleep(300000); /* let the proxy settle after the last echo */
    struct tree m1 = tree_of(o.pid, true);
    fprintf(stderr, "socks_hs: %d idle tunnels open in %.2f s\n", o.idle, setup);
    printf("mode=idle status=ok idle=%d setup_s=%.2f rss0_kb=%ld rss1_kb=%ld pss0_kb=%ld "
           "pss1_kb=%ld procs0=%d procs1=%d threads0=%d threads1=%d",
           o.idle, setup, m0.rss_kb, m1.rss_kb, m0.pss_kb, m1.pss_kb, m0.procs, m1.procs,
           m0.threads, m1.threads);
    if (m0.procs > 0 && m1.procs > 0)
        printf(" rss_per_idle=%.0f pss_per_idle=%.0f",
               (double)(m1.rss_kb - m0.rss_kb) * 1024.0 / o.idle,
               (double)(m1.pss_kb - m0.pss_kb) * 1024.0 / o.idle);
    printf("\n");
    for (int i = 0; i <= o.idle; i++)
        client_close(&cs[i]);
    free(cs);
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: socks_hs -t SINK_PORT [-p PROXY_PORT] [-m hs|direct|idle] [-j INFLIGHT]\n"
            "                [-d SECS] [-w WARMUP] [-k IDLE] [-P PROXY_PID] [-H NAME]\n"
            "                [-T SETUP_CAP]\n");
    exit(64);
}

static void set_mode(const char *m)
{
    if (!strcmp(m, "hs"))
        o.mode = MODE_HS;
    else if (!strcmp(m, "direct"))
        o.mode = MODE_DIRECT;
    else if (!strcmp(m, "idle"))
        o.mode = MODE_IDLE;
    else
        usage();
}

static void parse(int argc, char **argv)
{
    int ch;
    while ((ch = getopt(argc, argv, "m:p:t:j:d:w:k:P:H:T:C:h")) != -1) {
        switch (ch) {
        case 'm': set_mode(optarg); break;
        case 'p': o.port = atoi(optarg); break;
        case 't': o.sink = atoi(optarg); break;
        case 'j': o.inflight = atoi(optarg); break;
        case 'd': o.secs = atof(optarg); break;
        case 'w': o.warmup = atof(optarg); break;
        case 'k': o.idle = atoi(optarg); break;
        case 'P': o.pid = atoi(optarg); break;
        case 'H': o.name = optarg; break;
        case 'T': o.cap = atof(optarg); break;
        case 'C': o.cpu_of = atoi(optarg); break;
        default: usage();
        }
    }
    if (o.cpu_of > 0)
        return;
    bool need_proxy = o.mode != MODE_DIRECT;
    if (o.sink <= 0 || o.sink > 65535 || (need_proxy && (o.port <= 0 || o.port > 65535)) ||
        o.inflight < 1 || o.idle < 1 || o.secs <= 0 || (o.name && strlen(o.name) > 255))
        usage();
}

int main(int argc, char **argv)
{
    parse(argc, argv);
    if (o.cpu_of > 0) {
        struct tree t = tree_of(o.cpu_of, false);
        printf("%llu %llu\n", (unsigned long long)t.cpu_ns, t.user_ticks);
        return 0;
    }
    raise_nofile();
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    proxy_addr = sink_addr = (struct sockaddr_in){.sin_family = AF_INET};
    proxy_addr.sin_port = htons((uint16_t)o.port);
    sink_addr.sin_port = htons((uint16_t)o.sink);
    proxy_addr.sin_addr.s_addr = sink_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    build_request();
    for (size_t i = 0; i < ECHO_SIZE; i++)
        echo_msg[i] = (unsigned char)('a' + i % 26);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    if (o.mode == MODE_IDLE)
        return run_idle();
    run_rate();
    return 0;
}
