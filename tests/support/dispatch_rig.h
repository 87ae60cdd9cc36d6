/* The dispatcher tests' rig (tests/conformance/test_dispatch_*.c): handlers
 * that trace every event and return what the test chose (0, the exit
 * request or a raised failure: CPython's exitingdummy and crashingdummy),
 * a handle_close that closes and one that keeps the channel open, the
 * defaults alone; channels on socketpairs, on a refused TCP connect and on
 * a loopback TCP pair; the four states of D11's table; and ac_describe
 * with the description it should give (D24).  Built on ac_testkit.h;
 * everything is static, so each test file gets its own copy. */
#ifndef AC_DISPATCH_RIG_H
#define AC_DISPATCH_RIG_H

#include "ac_testkit.h"

#include "asynchat.h"

#include <inttypes.h>

/* ----------------------------------------------------------- helpers */

static TK_UNUSED bool always(ac_dispatcher *d)
{
    (void)d;
    return true;
}

static TK_UNUSED const char *const log_nothing_ignored[] = {NULL};

/* What the next handler of the event tests returns: 0, the exit request,
 * or a raised failure (test_readwriteexc's exitingdummy / crashingdummy). */
enum mode { M_OK, M_EXIT, M_EPROTO, M_ECONNRESET };
static TK_UNUSED enum mode g_mode;

static TK_UNUSED int mode_rc(ac_dispatcher *d)
{
    enum mode mode = g_mode;
    g_mode = M_OK; /* one shot: handlers the guard calls afterwards succeed */
    switch (mode) {
    case M_EXIT: return AC_EXIT_NOW;
    case M_EPROTO: return AC_RAISE(d, EPROTO, "crash");
    case M_ECONNRESET: return AC_RAISE(d, ECONNRESET, "crash");
    default: return 0;
    }
}

static TK_UNUSED int t_read(ac_dispatcher *d)
{
    tk_node(d)->reads++;
    tk_tr("read");
    return mode_rc(d);
}

static TK_UNUSED int t_write(ac_dispatcher *d)
{
    tk_node(d)->writes++;
    tk_tr("write");
    return mode_rc(d);
}

static TK_UNUSED int t_expt(ac_dispatcher *d)
{
    tk_node(d)->expts++;
    tk_tr("expt");
    return mode_rc(d);
}

/* "connect:CN": C = connected, N = connecting, as handle_connect sees them. */
static TK_UNUSED int t_connect(ac_dispatcher *d)
{
    tk_node(d)->connects++;
    tk_tr("connect:%d%d", ac_is_connected(d), ac_is_connecting(d));
    return mode_rc(d);
}

static TK_UNUSED int t_accept(ac_dispatcher *d)
{
    tk_node(d)->accepts++;
    tk_tr("accept");
    return mode_rc(d);
}

/* A handle_read that reads up to 16 bytes and traces how many (or the
 * errno's name). */
static TK_UNUSED int read_some(ac_dispatcher *d)
{
    tk_node(d)->reads++;
    char buf[16];
    ssize_t r = ac_recv(d, buf, sizeof(buf));
    if (r >= 0)
        tk_tr("read:%zd", r);
    else
        tk_tr("read:-%s", strerrorname_np((int)-r));
    return r < 0 ? (int)r : 0;
}

/* handle_close that closes (tr_h) and one that leaves the channel open
 * (keep_h), so that its SO_ERROR can be looked at afterwards. */
static TK_UNUSED int t_close(ac_dispatcher *d)
{
    tk_node(d)->closes++;
    tk_tr("close");
    int rc = mode_rc(d);
    int c = ac_close(d);
    return rc ? rc : c;
}

static TK_UNUSED int t_close_keep(ac_dispatcher *d)
{
    tk_node(d)->closes++;
    tk_tr("close");
    return mode_rc(d);
}

/* Records the failure and keeps the channel open. */
static TK_UNUSED int t_error(ac_dispatcher *d, const ac_error *e)
{
    struct tk_node *n = tk_node(d);
    n->errors++;
    n->last_err = e->err;
    tk_tr("error:%s", strerrorname_np(e->err));
    return 0;
}

static TK_UNUSED const ac_handlers tr_h = {
    .handle_read = t_read,
    .handle_write = t_write,
    .handle_expt = t_expt,
    .handle_connect = t_connect,
    .handle_accept = t_accept,
    .handle_close = t_close,
    .handle_error = t_error,
    .finalize = tk_finalize,
};

static TK_UNUSED const ac_handlers keep_h = {
    .handle_read = t_read,
    .handle_write = t_write,
    .handle_expt = t_expt,
    .handle_connect = t_connect,
    .handle_accept = t_accept,
    .handle_close = t_close_keep,
    .handle_error = t_error,
    .finalize = tk_finalize,
};

/* Nothing but the finalizer: every handler is asyncore's default. */
static TK_UNUSED const ac_handlers defaults_h = {
    .finalize = tk_finalize,
};

/* Peers of the socketpairs the tests make, closed by finish(). */
static TK_UNUSED int peers[64];
static TK_UNUSED int npeers;

static TK_UNUSED void keep_peer(int fd)
{
    cr_assert_lt(npeers, 64);
    peers[npeers++] = fd;
}

static TK_UNUSED void finish(ac_map *m)
{
    tk_finish(m);
    for (int i = 0; i < npeers; i++)
        close(peers[i]);
    npeers = 0;
}

/* For tk_loop_until: the dispatcher arg is connected. */
static TK_UNUSED bool connected_now(void *arg) { return ac_is_connected(arg); }

/* A dispatcher adopting one end of a stream socketpair (D4: connected). */
static TK_UNUSED ac_dispatcher *pair_d(ac_map *m, const ac_handlers *h, const char *name)
{
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *d = tk_new(m, h, name);
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    cr_assert(ac_is_connected(d));
    keep_peer(sv[1]);
    return d;
}

static TK_UNUSED int last_peer(void) { return peers[npeers - 1]; }

/* A non-blocking TCP socket whose connect to `ss` (a bound, non-listening
 * port) has been refused: SO_ERROR holds ECONNREFUSED, not yet read. */
static TK_UNUSED int refused_fd(const struct sockaddr_storage *ss, socklen_t len)
{
    for (int i = 0; i < 5; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        cr_assert(fd >= 0);
        if (connect(fd, (const struct sockaddr *)ss, len) < 0 && errno == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            cr_assert_eq(poll(&p, 1, 2000), 1);
            cr_assert(p.revents & POLLERR, "revents %#x", (unsigned)p.revents);
            return fd;
        }
        close(fd);
    }
    cr_assert_fail("a connect to a refusing port never went in progress");
    return -1;
}

/* A dispatcher adopting such a socket: D4 gives connected = false. */
static TK_UNUSED ac_dispatcher *refused_d(ac_map *m, const ac_handlers *h, const char *name,
                                          const struct sockaddr_storage *ss, socklen_t len)
{
    ac_dispatcher *d = tk_new(m, h, name);
    cr_assert_eq(ac_attach(d, refused_fd(ss, len)), 0);
    cr_assert_not(ac_is_connected(d));
    return d;
}

enum state { ST_ACCEPTING, ST_CONNECTING, ST_IDLE, ST_CONNECTED, ST_N };
static TK_UNUSED const char *const state_name[ST_N] = {"accepting", "connecting", "idle",
                                                       "connected"};

static TK_UNUSED void set_state(ac_dispatcher *d, enum state st)
{
    ac_set_connected(d, st == ST_CONNECTED);
    ac_set_accepting(d, st == ST_ACCEPTING);
    ac_set_connecting(d, st == ST_CONNECTING);
}

/* "CAN": connected, accepting, connecting. */
static TK_UNUSED const char *flags_of(const ac_dispatcher *d)
{
    static char buf[4];
    buf[0] = ac_is_connected(d) ? '1' : '0';
    buf[1] = ac_is_accepting(d) ? '1' : '0';
    buf[2] = ac_is_connecting(d) ? '1' : '0';
    buf[3] = '\0';
    return buf;
}

static TK_UNUSED const char *flags_for(enum state st)
{
    static const char *const f[ST_N] = {"010", "001", "000", "100"};
    return f[st];
}

static TK_UNUSED char *describe(const ac_dispatcher *d)
{
    static char buf[512];
    size_t n = ac_describe(d, buf, sizeof(buf));
    cr_assert_lt(n, sizeof(buf));
    cr_assert_eq(n, strlen(buf));
    return buf;
}

/* The expected description: "<" body " at 0x<address>>" (D24). */
static TK_UNUSED char *expect_desc(const ac_dispatcher *d, const char *body)
{
    static char buf[512];
    snprintf(buf, sizeof(buf), "<%s at 0x%" PRIxPTR ">", body, (uintptr_t)d);
    return buf;
}

static TK_UNUSED const char *basename_of(const char *path)
{
    const char *s = path ? strrchr(path, '/') : NULL;
    return s ? s + 1 : path;
}

#endif /* AC_DISPATCH_RIG_H */
