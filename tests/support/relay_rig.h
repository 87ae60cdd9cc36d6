/* The relay tests' rig: a relay between two loopback connections (TCP,
 * port 0, or AF_UNIX socketpairs) and two fault-injecting peers driven in
 * the test's own thread, interleaved with the map's iterations.
 *
 *   peer A  <--->  [fd_a  relay  fd_b]  <--->  peer B
 *
 * A peer sends a seeded pseudo-random stream in random chunk sizes with
 * random pauses, verifies every byte it receives against the stream the
 * other peer sends (plus an optional prefix: bytes pushed with
 * ac_relay_push), keeps an FNV-1a checksum of both, and can half-close,
 * answer only after EOF, never read, or reset (SO_LINGER 0 close) at a
 * chosen byte count.  Everything is static: Criterion runs each test in a
 * process of its own. */
#ifndef RELAY_RIG_H
#define RELAY_RIG_H

#include "ac_testkit.h"

#include "asyncore_relay.h"

#include <dirent.h>
#include <netinet/tcp.h>
#include <signal.h>

/* ---------------------------------------------------------- streams */

/* xorshift64*: 8 bytes per step. */
struct gen {
    uint64_t s, w;
    unsigned left;
};

static TK_UNUSED void gen_init(struct gen *g, uint64_t seed)
{
    g->s = (seed + 1) * 0x9E3779B97F4A7C15ull | 1;
    g->w = 0;
    g->left = 0;
}

static inline uint8_t gen_byte(struct gen *g)
{
    if (!g->left) {
        g->s ^= g->s >> 12;
        g->s ^= g->s << 25;
        g->s ^= g->s >> 27;
        g->w = g->s * 2685821657736338717ull;
        g->left = 8;
    }
    uint8_t b = (uint8_t)g->w;
    g->w >>= 8;
    g->left--;
    return b;
}

#define FNV_INIT 0xcbf29ce484222325ull

static inline uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ------------------------------------------------------------ peers */

struct peer {
    const char *name;
    int fd;
    uint32_t rng;
    size_t max_chunk; /* each send/recv asks for 1..max_chunk bytes */
    int burst;        /* calls per step while they make progress */
    int pause_pct;    /* chance (percent) of a pause after a step */
    int pause_ms;     /* its length, at most */
    double pause_until;
    /* sending */
    uint64_t tx_total, tx_sent, tx_hash;
    struct gen txg;
    unsigned char txbuf[65536];
    size_t tx_off, tx_len;
    bool shut_after;       /* shutdown(SHUT_WR) once everything is sent */
    bool answer_after_eof; /* send nothing before EOF has been read */
    bool shut_done;
    int tx_err;
    bool rst_armed; /* reset once tx_sent >= rst_at */
    uint64_t rst_at;
    bool did_rst;
    /* receiving */
    bool no_read;
    const unsigned char *prefix; /* expected before the stream */
    size_t prefix_len;
    struct gen rxg;
    uint64_t rx_got, rx_hash, rx_bad; /* rx_bad: first wrong offset + 1 */
    uint64_t rx_at_eof;
    bool eof;
    int rx_err;
};

static struct peer *rig_peers[32];
static int rig_npeers;

static TK_UNUSED void peer_init(struct peer *p, const char *name, int fd, uint64_t tx_seed,
                                uint64_t rx_seed, uint64_t tx_total, uint32_t rng)
{
    memset(p, 0, sizeof(*p));
    p->name = name;
    p->fd = fd;
    p->rng = rng ? rng : 1;
    p->max_chunk = 65536;
    p->burst = 4;
    p->tx_total = tx_total;
    p->tx_hash = p->rx_hash = FNV_INIT;
    gen_init(&p->txg, tx_seed);
    gen_init(&p->rxg, rx_seed);
    tk_set_nonblocking(fd);
    cr_assert_lt(rig_npeers, 32);
    rig_peers[rig_npeers++] = p;
}

/* The checksum of the first n bytes of the stream of seed (what a peer
 * that sent n bytes of it has in tx_hash). */
static TK_UNUSED uint64_t stream_hash(uint64_t seed, uint64_t n)
{
    struct gen g;
    gen_init(&g, seed);
    uint64_t h = FNV_INIT;
    unsigned char buf[4096];
    while (n > 0) {
        size_t k = n < sizeof(buf) ? (size_t)n : sizeof(buf);
        for (size_t i = 0; i < k; i++)
            buf[i] = gen_byte(&g);
        h = fnv(h, buf, k);
        n -= k;
    }
    return h;
}

static TK_UNUSED void peer_rst(struct peer *p)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    cr_assert_eq(setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    cr_assert_eq(close(p->fd), 0);
    p->fd = -1;
    p->did_rst = true;
}

static void peer_check(struct peer *p, const unsigned char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t at = p->rx_got + i;
        uint8_t want = at < p->prefix_len ? p->prefix[at] : gen_byte(&p->rxg);
        if (buf[i] != want && !p->rx_bad)
            p->rx_bad = at + 1;
    }
    p->rx_hash = fnv(p->rx_hash, buf, n);
    p->rx_got += n;
}

static size_t chunk(struct peer *p) { return 1 + (size_t)tk_rand(&p->rng) % p->max_chunk; }

static TK_UNUSED void peer_step(struct peer *p, double now)
{
    if (p->fd < 0 || now < p->pause_until)
        return;
    for (int k = 0; k < p->burst; k++) {
        bool progress = false;
        if (!p->no_read && !p->eof && !p->rx_err) {
            unsigned char buf[65536];
            size_t want = chunk(p);
            ssize_t n = recv(p->fd, buf, want < sizeof(buf) ? want : sizeof(buf), 0);
            if (n > 0) {
                peer_check(p, buf, (size_t)n);
                progress = true;
            } else if (n == 0) {
                p->eof = true;
                p->rx_at_eof = p->rx_got;
            } else if (errno != EAGAIN && errno != EINTR) {
                p->rx_err = errno;
            }
        }
        bool may_send = !p->tx_err && (!p->answer_after_eof || p->eof);
        if (may_send && p->tx_sent < p->tx_total) {
            if (p->tx_len == 0) {
                size_t c = chunk(p);
                uint64_t left = p->tx_total - p->tx_sent;
                if (c > sizeof(p->txbuf))
                    c = sizeof(p->txbuf);
                if (c > left)
                    c = (size_t)left;
                for (size_t i = 0; i < c; i++)
                    p->txbuf[i] = gen_byte(&p->txg);
                p->tx_off = 0;
                p->tx_len = c;
            }
            ssize_t n = send(p->fd, p->txbuf + p->tx_off, p->tx_len, MSG_NOSIGNAL);
            if (n > 0) {
                p->tx_hash = fnv(p->tx_hash, p->txbuf + p->tx_off, (size_t)n);
                p->tx_off += (size_t)n;
                p->tx_len -= (size_t)n;
                p->tx_sent += (uint64_t)n;
                progress = true;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                p->tx_err = errno;
            }
        }
        if (p->rst_armed && p->tx_sent >= p->rst_at) {
            peer_rst(p);
            return;
        }
        if (may_send && p->shut_after && !p->shut_done && p->tx_sent == p->tx_total) {
            cr_assert_eq(shutdown(p->fd, SHUT_WR), 0, "%s: shutdown: %s", p->name, strerror(errno));
            p->shut_done = true;
        }
        if (!progress)
            break;
    }
    if (p->pause_pct && (int)(tk_rand(&p->rng) % 100) < p->pause_pct)
        p->pause_until = now + (double)(tk_rand(&p->rng) % (unsigned)(p->pause_ms + 1)) / 1000.0;
}

/* The peer has nothing more to receive: EOF, an error, or it is gone. */
static TK_UNUSED bool peer_rx_over(const struct peer *p)
{
    return p->fd < 0 || p->eof || p->rx_err;
}

/* The peer saw a reset: ECONNRESET on read, or on a write (which takes the
 * pending error first, leaving EOF for the next read), or EPIPE on a write. */
static TK_UNUSED bool peer_saw_reset(const struct peer *p)
{
    return p->rx_err == ECONNRESET || p->tx_err == ECONNRESET || p->tx_err == EPIPE;
}

/* ------------------------------------------------------ completion */

struct done_rec {
    int calls;
    ac_relay_stats st;
    int fd[2];       /* the relay's descriptors */
    bool fds_closed; /* both closed when done ran */
    bool sides_null; /* ac_relay_side NULL during done */
    bool arg_ok;     /* ac_relay_arg == arg */
    bool stats_same; /* ac_relay_stats_get == st */
    int push_rc;     /* ac_relay_push during done */
    double at;       /* tk_clock() */
};

static TK_UNUSED bool fd_closed(int fd) { return fcntl(fd, F_GETFD) < 0 && errno == EBADF; }

static TK_UNUSED void on_done(ac_relay *r, const ac_relay_stats *st, void *arg)
{
    struct done_rec *d = arg;
    d->calls++;
    d->st = *st;
    d->at = tk_clock();
    d->arg_ok = ac_relay_arg(r) == arg;
    ac_relay_stats live;
    ac_relay_stats_get(r, &live);
    d->stats_same = memcmp(&live, st, sizeof(live)) == 0;
    d->sides_null = !ac_relay_side(r, AC_RELAY_A) && !ac_relay_side(r, AC_RELAY_B);
    d->fds_closed = fd_closed(d->fd[0]) && fd_closed(d->fd[1]);
    d->push_rc = ac_relay_push(r, AC_RELAY_B, "x", 1);
}

/* What every ended relay must show. */
static TK_UNUSED void check_done(const struct done_rec *d, ac_relay_end how)
{
    cr_assert_eq(d->calls, 1, "done ran %d times", d->calls);
    cr_assert_eq(d->st.how, how, "ended %s, expected %s (side %d, err %d %s)",
                 ac_relay_end_name(d->st.how), ac_relay_end_name(how), d->st.side, d->st.err,
                 strerror(d->st.err));
    cr_assert(d->arg_ok, "ac_relay_arg during done");
    cr_assert(d->stats_same, "ac_relay_stats_get during done equals st");
    cr_assert(d->sides_null, "ac_relay_side is NULL once ended");
    cr_assert(d->fds_closed, "both sockets are closed when done runs");
    cr_assert_eq(d->push_rc, -EPIPE, "push after the end: %d", d->push_rc);
    cr_assert_geq(d->st.end, d->st.start);
    cr_assert_gt(d->st.start, 0.0);
}

/* ------------------------------------------------------------- rig */

struct rig {
    ac_map *m;
    ac_relay *r;
    struct peer a, b;
    struct done_rec dn;
    int rfd[2]; /* the relay's descriptors (fd_a, fd_b) */
    int fds0;   /* open descriptors before the test */
};

static struct rig R;

static TK_UNUSED int count_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    cr_assert_not_null(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)))
        if (e->d_name[0] != '.')
            n++;
    closedir(dir);
    return n - 1; /* the directory's own */
}

static TK_UNUSED void set_bufs(int fd, int size)
{
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)), 0);
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)), 0);
}

static TK_UNUSED int sockopt_int(int fd, int level, int name)
{
    int v = 0;
    socklen_t len = sizeof(v);
    cr_assert_eq(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

/* Two connected loopback TCP sockets (fds[0] the client).  bufsz > 0:
 * SO_SNDBUF and SO_RCVBUF on both, set before the connection exists so
 * that the window follows them. */
static TK_UNUSED void tcp_pair(int fds[2], int bufsz)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(l >= 0);
    if (bufsz > 0)
        set_bufs(l, bufsz);
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(AF_INET, &ss);
    cr_assert_eq(bind(l, (struct sockaddr *)&ss, len), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(l, 1), 0);
    len = sizeof(ss);
    cr_assert_eq(getsockname(l, (struct sockaddr *)&ss, &len), 0);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(c >= 0);
    if (bufsz > 0)
        set_bufs(c, bufsz);
    cr_assert_eq(connect(c, (struct sockaddr *)&ss, len), 0, "connect: %s", strerror(errno));
    int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    cr_assert(s >= 0, "accept: %s", strerror(errno));
    close(l);
    fds[0] = c;
    fds[1] = s;
}

enum link { LINK_TCP, LINK_UNIX };

static TK_UNUSED void make_link(enum link k, int fds[2], int bufsz)
{
    if (k == LINK_TCP) {
        tcp_pair(fds, bufsz);
    } else {
        tk_socketpair(SOCK_STREAM, fds);
        if (bufsz > 0) {
            set_bufs(fds[0], bufsz);
            set_bufs(fds[1], bufsz);
        }
    }
}

/* A fresh map and the baseline of open descriptors.  ign: SIGPIPE ignored
 * (the relay may splice) or left at its default (it may not). */
static TK_UNUSED void rig_begin(bool ign)
{
    signal(SIGPIPE, ign ? SIG_IGN : SIG_DFL);
    memset(&R, 0, sizeof(R));
    rig_npeers = 0;
    R.fds0 = count_fds();
    R.m = tk_map();
    R.rfd[0] = R.rfd[1] = -1;
    R.a.fd = R.b.fd = -1; /* no peer until peer_init */
}

/* Two links and peers: a.fd <-> rfd[0], rfd[1] <-> b.fd.  Stream a->b has
 * seed s, b->a seed s + 1000. */
static TK_UNUSED void rig_links(enum link k, int bufsz, uint64_t s, uint64_t a_tx, uint64_t b_tx)
{
    int la[2], lb[2];
    make_link(k, la, bufsz);
    make_link(k, lb, bufsz);
    R.rfd[0] = la[1];
    R.rfd[1] = lb[0];
    peer_init(&R.a, "a", la[0], s, s + 1000, a_tx, (uint32_t)(s * 7 + 1));
    peer_init(&R.b, "b", lb[1], s + 1000, s, b_tx, (uint32_t)(s * 13 + 5));
    R.a.shut_after = R.b.shut_after = true;
}

static TK_UNUSED void rig_relay(const ac_relay_config *cfg)
{
    R.dn.fd[0] = R.rfd[0];
    R.dn.fd[1] = R.rfd[1];
    int rc = ac_relay_new(&R.r, R.m, R.rfd[0], R.rfd[1], cfg, on_done, &R.dn);
    cr_assert_eq(rc, 0, "ac_relay_new: %d (%s)", rc, strerror(-rc));
    cr_assert_not_null(R.r);
}

/* Iterate the map and step the peers until cond() or `seconds` pass. */
static TK_UNUSED bool rig_run(bool (*cond)(void), double seconds)
{
    double end = tk_clock() + seconds;
    while (!cond()) {
        if (tk_clock() > end)
            return false;
        int rc = ac_poll(R.m, 0.001);
        cr_assert(rc == 0 || rc == AC_EXIT_NOW, "ac_poll returned %d", rc);
        double now = tk_clock();
        for (int i = 0; i < rig_npeers; i++)
            peer_step(rig_peers[i], now);
    }
    return true;
}

/* Run for `seconds` whatever happens. */
static TK_UNUSED bool never_cond(void) { return false; }
static TK_UNUSED void rig_run_for(double seconds) { (void)rig_run(never_cond, seconds); }

static TK_UNUSED bool cond_done(void) { return R.dn.calls > 0; }

static TK_UNUSED bool cond_all_over(void)
{
    return R.dn.calls > 0 && peer_rx_over(&R.a) && peer_rx_over(&R.b);
}

/* Close the peers, free the map, and check that nothing is left: done ran
 * exactly once, no descriptor is open that was not before (the relay's
 * thread cache given back). */
/* An IPv4 socket whose non-blocking connect to ss has begun (b_connecting). */
static TK_UNUSED int rig_connecting(const struct sockaddr_storage *ss, socklen_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    cr_assert(fd >= 0);
    int rc = connect(fd, (const struct sockaddr *)ss, len);
    cr_assert(rc == 0 || errno == EINPROGRESS, "connect: %s", strerror(errno));
    return fd;
}

static TK_UNUSED void rig_end(void)
{
    for (int i = 0; i < rig_npeers; i++)
        if (rig_peers[i]->fd >= 0) {
            close(rig_peers[i]->fd);
            rig_peers[i]->fd = -1;
        }
    tk_finish(R.m);
    R.m = NULL;
    cr_assert_eq(R.dn.calls, 1, "done ran %d times", R.dn.calls);
    ac_relay_cache_release();
    int now = count_fds();
    cr_assert_eq(now, R.fds0, "%d descriptors open, %d before", now, R.fds0);
}

/* A clean end, every byte both ways: content, checksums, counters. */
static TK_UNUSED void check_clean(void)
{
    check_done(&R.dn, AC_RELAY_CLEAN);
    const ac_relay_stats *st = &R.dn.st;
    cr_assert_eq(st->side, -1);
    cr_assert_eq(st->err, 0);
    struct peer *src[2] = {&R.a, &R.b}, *dst[2] = {&R.b, &R.a};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(src[i]->tx_err, 0, "%s: send: %s", src[i]->name, strerror(src[i]->tx_err));
        cr_assert_eq(dst[i]->rx_err, 0, "%s: recv: %s", dst[i]->name, strerror(dst[i]->rx_err));
        cr_assert(dst[i]->eof, "%s saw EOF", dst[i]->name);
        cr_assert_eq(dst[i]->rx_bad, 0, "%s: byte %llu wrong", dst[i]->name,
                     (unsigned long long)dst[i]->rx_bad - 1);
        cr_assert_eq(src[i]->tx_sent, src[i]->tx_total);
        cr_assert_eq(dst[i]->rx_got, dst[i]->prefix_len + src[i]->tx_sent, "%s got %llu of %llu",
                     dst[i]->name, (unsigned long long)dst[i]->rx_got,
                     (unsigned long long)(dst[i]->prefix_len + src[i]->tx_sent));
        cr_assert_eq(st->bytes[i], dst[i]->rx_got, "stats.bytes[%d] %llu, delivered %llu", i,
                     (unsigned long long)st->bytes[i], (unsigned long long)dst[i]->rx_got);
        if (dst[i]->prefix_len == 0)
            cr_assert_eq(dst[i]->rx_hash, src[i]->tx_hash, "checksum of direction %d", i);
    }
}

#endif /* RELAY_RIG_H */
