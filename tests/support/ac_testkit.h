/* Small helpers shared by the conformance, lifetime, relay and unit tests,
 * and the base of the rigs beside it (dispatch_rig.h, loop_rig.h,
 * socket_rig.h, relay_rig.h): an event trace, a log capture, counted
 * dispatchers with a finalizer, a loop anchor, and socket plumbing.  (The
 * chat tests' recorder, chat_recorder.h, is a trace of its own.)
 * Everything is static so that each test file gets its own copy; Criterion
 * runs every test in its own process, so the globals below start fresh for
 * each test. */
#ifndef AC_TESTKIT_H
#define AC_TESTKIT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <criterion/criterion.h>

#include "asynchat.h"
#include "asyncore.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define TK_UNUSED __attribute__((unused))

/* ------------------------------------------------------------- trace */

/* Space-separated tokens, in the order things happened. */
static char tk_trace[65536];

static TK_UNUSED void tk_tr(const char *fmt, ...)
{
    size_t len = strlen(tk_trace);
    if (len && len + 1 < sizeof(tk_trace))
        tk_trace[len++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tk_trace + len, sizeof(tk_trace) - len, fmt, ap);
    va_end(ap);
}

static TK_UNUSED void tk_trace_clear(void) { tk_trace[0] = '\0'; }

/* ---------------------------------------------------------- logging */

/* Every line the library logs, as "type: msg\n" ("log: msg" for ac_log). */
static char tk_logbuf[65536];
static int tk_log_lines;

static TK_UNUSED void tk_log_hook(ac_dispatcher *d, const char *type, const char *msg, void *ctx)
{
    (void)d;
    (void)ctx;
    size_t len = strlen(tk_logbuf);
    snprintf(tk_logbuf + len, sizeof(tk_logbuf) - len, "%s: %s\n", type ? type : "log", msg);
    tk_log_lines++;
}

/* --------------------------------------------------- counted nodes */

/* The user pointer of every dispatcher the tests create: a name for the
 * trace and a little state the handlers share. */
struct tk_node {
    const char *name;
    ac_dispatcher *d;
    ac_dispatcher *peer; /* for handlers that close "the other one" */
    int finalized;
    int reads, writes, closes, errors, connects, accepts, expts, timeouts;
    int last_err; /* errno of the last handle_error */
    size_t chunk; /* read size for handlers that read */
    char *buf;    /* where readers put what they read */
    size_t len, cap;
    void *extra;
};

static int tk_created, tk_finalized;
static bool tk_fin_in_trace; /* lifetime tests want "x:finalize" in the trace */

static TK_UNUSED void tk_finalize(ac_dispatcher *d)
{
    struct tk_node *n = ac_user(d);
    tk_finalized++;
    if (!n)
        return;
    n->finalized++;
    if (tk_fin_in_trace)
        tk_tr("%s:finalize", n->name ? n->name : "?");
    n->d = NULL;
}

static TK_UNUSED const char *tk_name(ac_dispatcher *d)
{
    struct tk_node *n = ac_user(d);
    return n && n->name ? n->name : "?";
}

static TK_UNUSED struct tk_node *tk_node(ac_dispatcher *d) { return ac_user(d); }

/* Every node made by tk_new*, so that tk_finish can check and free them. */
static struct tk_node *tk_nodes[1024];
static int tk_nnodes;

static TK_UNUSED struct tk_node *tk_node_new(const char *name)
{
    struct tk_node *n = calloc(1, sizeof(*n));
    cr_assert_not_null(n);
    n->name = name;
    cr_assert_lt(tk_nnodes, 1024);
    tk_nodes[tk_nnodes++] = n;
    return n;
}

/* Each node's dispatcher finalized exactly once; then free the nodes (and
 * whatever a test left in ->extra). */
static TK_UNUSED void tk_nodes_check_and_free(void)
{
    for (int i = 0; i < tk_nnodes; i++) {
        struct tk_node *n = tk_nodes[i];
        cr_assert_eq(n->finalized, 1, "%s finalized %d times", n->name ? n->name : "?",
                     n->finalized);
        free(n->extra);
        free(n);
    }
    tk_nnodes = 0;
}

/* A plain dispatcher with a node; counted for tk_finish. */
static TK_UNUSED ac_dispatcher *tk_new(ac_map *m, const ac_handlers *h, const char *name)
{
    struct tk_node *n = tk_node_new(name);
    ac_dispatcher *d = ac_dispatcher_new(m, h, n);
    cr_assert_not_null(d);
    n->d = d;
    tk_created++;
    return d;
}

static TK_UNUSED ac_dispatcher *tk_new_buffered(ac_map *m, const ac_handlers *h, const char *name)
{
    struct tk_node *n = tk_node_new(name);
    ac_dispatcher *d = ac_buffered_new(m, h, n);
    cr_assert_not_null(d);
    n->d = d;
    tk_created++;
    return d;
}

static TK_UNUSED ac_dispatcher *tk_new_chat(ac_map *m, const ac_handlers *h, const char *name)
{
    struct tk_node *n = tk_node_new(name);
    ac_dispatcher *d = ac_chat_new(m, h, n);
    cr_assert_not_null(d);
    n->d = d;
    tk_created++;
    return d;
}

static TK_UNUSED ac_dispatcher *tk_new_file(ac_map *m, const ac_handlers *h, const char *name,
                                            int fd)
{
    struct tk_node *n = tk_node_new(name);
    ac_dispatcher *d = NULL;
    int rc = ac_file_dispatcher_new(&d, m, h, n, fd);
    cr_assert_eq(rc, 0, "ac_file_dispatcher_new: %d (%s)", rc, strerror(-rc));
    cr_assert_not_null(d);
    n->d = d;
    tk_created++;
    return d;
}

static void tk_cleanup_paths(void);

/* ---------------------------------------------------------------- map */

static TK_UNUSED ac_map *tk_map(void)
{
    ac_set_log_hook(tk_log_hook, NULL);
    ac_map *m = NULL;
    int rc = ac_map_new(&m, AC_POLLER_DEFAULT);
    cr_assert_eq(rc, 0, "ac_map_new: %d (AC_POLLER=%s)", rc, getenv("AC_POLLER"));
    cr_assert_not_null(m);
    const char *env = getenv("AC_POLLER");
    if (env && *env)
        cr_assert_str_eq(ac_map_poller_name(m), env);
    return m;
}

static TK_UNUSED bool tk_is_select(const ac_map *m)
{
    return strcmp(ac_map_poller_name(m), "select") == 0;
}

/* Close everything, free the map, and check that nothing leaked: every
 * dispatcher made through tk_new* was finalized exactly once. */
static TK_UNUSED void tk_finish(ac_map *m)
{
    cr_assert_eq(ac_close_all(m, true), 0);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_eq(ac_map_free(m), 0);
    tk_cleanup_paths();
    cr_assert_eq(tk_finalized, tk_created, "finalized %d of %d dispatchers", tk_finalized,
                 tk_created);
    tk_nodes_check_and_free();
}

static TK_UNUSED double tk_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run single iterations until cond(arg) holds or `seconds` pass. */
static TK_UNUSED bool tk_loop_until(ac_map *m, bool (*cond)(void *), void *arg, double seconds)
{
    double end = tk_clock() + seconds;
    while (!cond(arg)) {
        if (tk_clock() > end)
            return false;
        int rc = ac_poll(m, 0.02);
        cr_assert(rc == 0 || rc == AC_EXIT_NOW, "ac_poll returned %d", rc);
    }
    return true;
}

/* ------------------------------------------------------------- sockets */

static TK_UNUSED bool tk_fd_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

static TK_UNUSED bool tk_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFD);
    return fl >= 0 && (fl & FD_CLOEXEC);
}

static TK_UNUSED bool tk_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && (fl & O_NONBLOCK);
}

static TK_UNUSED void tk_set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    cr_assert(fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0);
}

static TK_UNUSED void tk_socketpair(int type, int sv[2])
{
    cr_assert_eq(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0, "socketpair: %s",
                 strerror(errno));
}

/* Loopback address of the family, port 0. */
static TK_UNUSED socklen_t tk_loopback(int family, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        return sizeof(*a);
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sizeof(*a);
}

/* A unique AF_UNIX path in a fresh directory (removed at exit by nobody:
 * /tmp is scratch; the directory name is unique per process). */
static char tk_tmpdir[64];
static char tk_paths[16][108];
static int tk_npaths;

static TK_UNUSED const char *tk_dir(void)
{
    if (!tk_tmpdir[0]) {
        snprintf(tk_tmpdir, sizeof(tk_tmpdir), "/tmp/ac-test-XXXXXX");
        cr_assert_not_null(mkdtemp(tk_tmpdir));
    }
    return tk_tmpdir;
}

/* A path in the test's own directory, removed by tk_cleanup_paths. */
static TK_UNUSED const char *tk_path(const char *leaf)
{
    cr_assert(tk_npaths < 16);
    char *p = tk_paths[tk_npaths++];
    snprintf(p, 108, "%s/%s", tk_dir(), leaf);
    return p;
}

static TK_UNUSED void tk_cleanup_paths(void)
{
    for (int i = 0; i < tk_npaths; i++)
        unlink(tk_paths[i]);
    tk_npaths = 0;
    if (tk_tmpdir[0])
        rmdir(tk_tmpdir);
    tk_tmpdir[0] = '\0';
}

static TK_UNUSED socklen_t tk_unix_addr(struct sockaddr_storage *ss, const char *leaf)
{
    const char *path = tk_path(leaf);
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_un *un = (struct sockaddr_un *)ss;
    un->sun_family = AF_UNIX;
    snprintf(un->sun_path, sizeof(un->sun_path), "%s", path);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(un->sun_path) + 1);
}

/* A raw listening socket; its bound address goes to *ss. */
static TK_UNUSED int tk_listener(int family, struct sockaddr_storage *ss, socklen_t *len,
                                 int backlog)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    if (family == AF_UNIX) {
        *len = tk_unix_addr(ss, "listener");
    } else {
        int on = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        *len = tk_loopback(family, ss);
    }
    cr_assert_eq(bind(fd, (struct sockaddr *)ss, *len), 0, "bind: %s", strerror(errno));
    cr_assert_eq(listen(fd, backlog), 0);
    if (family != AF_UNIX) {
        *len = sizeof(*ss);
        cr_assert_eq(getsockname(fd, (struct sockaddr *)ss, len), 0);
    }
    return fd;
}

/* A raw, blocking, connected TCP (or AF_UNIX) client of the address. */
static TK_UNUSED int tk_connect_raw(const struct sockaddr_storage *ss, socklen_t len)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    cr_assert_eq(connect(fd, (const struct sockaddr *)ss, len), 0, "connect: %s", strerror(errno));
    return fd;
}

/* A connected loopback TCP pair of raw blocking sockets: *client made the
 * connection, *server is what the listener accepted. */
static TK_UNUSED void tk_tcp_pair(int *client, int *server)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int l = tk_listener(AF_INET, &ss, &len, 1);
    *client = tk_connect_raw(&ss, len);
    *server = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(*server, 0);
    close(l);
}

/* An address nobody listens on: a bound, non-listening socket holds the
 * port so that a connect to it is refused (kept open in *holder). */
static TK_UNUSED socklen_t tk_refusing_addr(int family, struct sockaddr_storage *ss, int *holder)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    socklen_t len = tk_loopback(family, ss);
    cr_assert_eq(bind(fd, (struct sockaddr *)ss, len), 0);
    len = sizeof(*ss);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)ss, &len), 0);
    *holder = fd;
    return len;
}

static TK_UNUSED bool tk_ipv6_ok(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(AF_INET6, &ss);
    bool ok = bind(fd, (struct sockaddr *)&ss, len) == 0;
    close(fd);
    return ok;
}

static TK_UNUSED bool tk_wait_fd(int fd, short events, int ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    return poll(&p, 1, ms) == 1;
}

/* Read exactly len bytes from a blocking or non-blocking fd (with a
 * deadline); returns the count read. */
static TK_UNUSED size_t tk_read_full(int fd, void *buf, size_t len, int ms)
{
    size_t got = 0;
    double end = tk_clock() + ms / 1000.0;
    while (got < len && tk_clock() < end) {
        if (!tk_wait_fd(fd, POLLIN, 20))
            continue;
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            break;
        }
        got += (size_t)n;
    }
    return got;
}

/* Bytes a local stream socket has queued for reading. */
static TK_UNUSED int tk_inq(int fd)
{
    int n = 0;
    cr_assert_eq(ioctl(fd, FIONREAD, &n), 0);
    return n;
}

/* Drain everything readable now from a non-blocking fd; returns bytes. */
static TK_UNUSED size_t tk_drain(int fd, char *into, size_t cap)
{
    size_t got = 0;
    char tmp[65536];
    tk_set_nonblocking(fd);
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof(tmp));
        if (n <= 0)
            break;
        if (into && got + (size_t)n <= cap)
            memcpy(into + got, tmp, (size_t)n);
        got += (size_t)n;
    }
    return got;
}

/* ------------------------------------------------------------- anchor */

/* n iterations of the loop (ac_poll), each waiting at most 10 ms. */
static TK_UNUSED void tk_iterate(ac_map *m, int n)
{
    for (int i = 0; i < n; i++)
        cr_assert_eq(ac_poll(m, 0.01), 0);
}

/* A readable() or writable() that never wants the event. */
static TK_UNUSED bool tk_never(ac_dispatcher *d)
{
    (void)d;
    return false;
}

/* Timers, signals and wake-ups keep no loop alive by themselves (L4/L5: the
 * loop runs while the map is not empty), so their tests register an
 * anchor: a dispatcher that waits for reading on a quiet socketpair.
 * tk_anchor_finish is tk_finish, then the anchor's raw end closed. */
static TK_UNUSED const ac_handlers tk_anchor_h = {
    .writable = tk_never,
    .finalize = tk_finalize,
};

static TK_UNUSED int tk_anchor_raw = -1;

static TK_UNUSED ac_dispatcher *tk_anchor(ac_map *m)
{
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *d = tk_new(m, &tk_anchor_h, "anchor");
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    tk_anchor_raw = sv[1];
    return d;
}

static TK_UNUSED void tk_anchor_finish(ac_map *m)
{
    tk_finish(m);
    if (tk_anchor_raw >= 0)
        close(tk_anchor_raw);
}

/* Deterministic pseudo-random bytes (xorshift), for byte-exact checks. */
static TK_UNUSED uint32_t tk_rand(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static TK_UNUSED void tk_fill(char *buf, size_t len, uint32_t seed)
{
    uint32_t s = seed ? seed : 1;
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)(tk_rand(&s) >> 24);
}

#endif /* AC_TESTKIT_H */
