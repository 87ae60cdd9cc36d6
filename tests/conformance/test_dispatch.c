/* Conformance: dispatcher state, event translation, default handlers and
 * logging (spec D1-D25).
 *
 * Each test names the rules it checks in its description.  Scenarios of
 * CPython's test_asyncore.py are rewritten here in C: test_basic and
 * test_repr (ac_describe), test_log, test_log_info, test_unhandled,
 * test_strerror, test_compact_traceback (the ac_error location), test_readwrite
 * and test_readwriteexc (the event-level entry points driven with chosen
 * flags), test_handle_expt (urgent data), test_handle_error,
 * test_handle_close and test_connection_attributes (the D4 angle).  Most
 * tests drive ac_handle_*_event / ac_read / ac_write / ac_exception /
 * ac_readwrite directly so that every cell of D11's table is exercised with
 * a chosen state and a known SO_ERROR; the loop tests branch on
 * ac_map_poller_name() where select and poll/epoll legitimately differ. */
#include "ac_testkit.h"

#include "asynchat.h"

#include <criterion/redirect.h>
#include <inttypes.h>

/* ----------------------------------------------------------- helpers */

static bool never(ac_dispatcher *d)
{
    (void)d;
    return false;
}

static bool always(ac_dispatcher *d)
{
    (void)d;
    return true;
}

static const char *const log_nothing_ignored[] = {NULL};

/* What the next handler of the event tests returns: 0, the exit request,
 * or a raised failure (test_readwriteexc's exitingdummy / crashingdummy). */
enum mode { M_OK, M_EXIT, M_EPROTO, M_ECONNRESET };
static enum mode g_mode;

static int mode_rc(ac_dispatcher *d)
{
    enum mode mode = g_mode;
    g_mode = M_OK; /* one shot: handlers the guard calls afterwards succeed */
    switch (mode) {
    case M_EXIT:
        return AC_EXIT_NOW;
    case M_EPROTO:
        return AC_RAISE(d, EPROTO, "crash");
    case M_ECONNRESET:
        return AC_RAISE(d, ECONNRESET, "crash");
    default:
        return 0;
    }
}

static int t_read(ac_dispatcher *d)
{
    tk_node(d)->reads++;
    tk_tr("read");
    return mode_rc(d);
}

static int t_write(ac_dispatcher *d)
{
    tk_node(d)->writes++;
    tk_tr("write");
    return mode_rc(d);
}

static int t_expt(ac_dispatcher *d)
{
    tk_node(d)->expts++;
    tk_tr("expt");
    return mode_rc(d);
}

/* "connect:CN": C = connected, N = connecting, as handle_connect sees them. */
static int t_connect(ac_dispatcher *d)
{
    tk_node(d)->connects++;
    tk_tr("connect:%d%d", ac_is_connected(d), ac_is_connecting(d));
    return mode_rc(d);
}

static int t_accept(ac_dispatcher *d)
{
    tk_node(d)->accepts++;
    tk_tr("accept");
    return mode_rc(d);
}

/* handle_close that closes (tr_h) and one that leaves the channel open
 * (keep_h), so that its SO_ERROR can be looked at afterwards. */
static int t_close(ac_dispatcher *d)
{
    tk_node(d)->closes++;
    tk_tr("close");
    int rc = mode_rc(d);
    int c = ac_close(d);
    return rc ? rc : c;
}

static int t_close_keep(ac_dispatcher *d)
{
    tk_node(d)->closes++;
    tk_tr("close");
    return mode_rc(d);
}

/* Records the failure and keeps the channel open. */
static int t_error(ac_dispatcher *d, const ac_error *e)
{
    struct tk_node *n = tk_node(d);
    n->errors++;
    n->last_err = e->err;
    tk_tr("error:%s", strerrorname_np(e->err));
    return 0;
}

static const ac_handlers tr_h = {
    .handle_read = t_read,
    .handle_write = t_write,
    .handle_expt = t_expt,
    .handle_connect = t_connect,
    .handle_accept = t_accept,
    .handle_close = t_close,
    .handle_error = t_error,
    .finalize = tk_finalize,
};

static const ac_handlers keep_h = {
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
static const ac_handlers defaults_h = {
    .finalize = tk_finalize,
};

/* Peers of the socketpairs the tests make, closed by finish(). */
static int peers[64];
static int npeers;

static void keep_peer(int fd)
{
    cr_assert_lt(npeers, 64);
    peers[npeers++] = fd;
}

static void finish(ac_map *m)
{
    tk_finish(m);
    for (int i = 0; i < npeers; i++)
        close(peers[i]);
    npeers = 0;
}

/* A dispatcher adopting one end of a stream socketpair (D4: connected). */
static ac_dispatcher *pair_d(ac_map *m, const ac_handlers *h, const char *name)
{
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    ac_dispatcher *d = tk_new(m, h, name);
    cr_assert_eq(ac_attach(d, sv[0]), 0);
    cr_assert(ac_is_connected(d));
    keep_peer(sv[1]);
    return d;
}

static int last_peer(void) { return peers[npeers - 1]; }

/* A non-blocking TCP socket whose connect to `ss` (a bound, non-listening
 * port) has been refused: SO_ERROR holds ECONNREFUSED, not yet read. */
static int refused_fd(const struct sockaddr_storage *ss, socklen_t len)
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
static ac_dispatcher *refused_d(ac_map *m, const ac_handlers *h, const char *name,
                                const struct sockaddr_storage *ss, socklen_t len)
{
    ac_dispatcher *d = tk_new(m, h, name);
    cr_assert_eq(ac_attach(d, refused_fd(ss, len)), 0);
    cr_assert_not(ac_is_connected(d));
    return d;
}

/* A connected loopback TCP pair of raw blocking sockets. */
static void tcp_pair(int *cli, int *srv)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int l = tk_listener(AF_INET, &ss, &len, 1);
    *cli = tk_connect_raw(&ss, len);
    *srv = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(*srv, 0);
    close(l);
}

enum state { ST_ACCEPTING, ST_CONNECTING, ST_IDLE, ST_CONNECTED, ST_N };
static const char *const state_name[ST_N] = {"accepting", "connecting", "idle", "connected"};

static void set_state(ac_dispatcher *d, enum state st)
{
    ac_set_connected(d, st == ST_CONNECTED);
    ac_set_accepting(d, st == ST_ACCEPTING);
    ac_set_connecting(d, st == ST_CONNECTING);
}

/* "CAN": connected, accepting, connecting. */
static const char *flags_of(const ac_dispatcher *d)
{
    static char buf[4];
    buf[0] = ac_is_connected(d) ? '1' : '0';
    buf[1] = ac_is_accepting(d) ? '1' : '0';
    buf[2] = ac_is_connecting(d) ? '1' : '0';
    buf[3] = '\0';
    return buf;
}

static const char *flags_for(enum state st)
{
    static const char *const f[ST_N] = {"010", "001", "000", "100"};
    return f[st];
}

static char *describe(const ac_dispatcher *d)
{
    static char buf[512];
    size_t n = ac_describe(d, buf, sizeof(buf));
    cr_assert_lt(n, sizeof(buf));
    cr_assert_eq(n, strlen(buf));
    return buf;
}

/* The expected description: "<" body " at 0x<address>>" (D24). */
static char *expect_desc(const ac_dispatcher *d, const char *body)
{
    static char buf[512];
    snprintf(buf, sizeof(buf), "<%s at 0x%" PRIxPTR ">", body, (uintptr_t)d);
    return buf;
}

static const char *basename_of(const char *path)
{
    const char *s = path ? strrchr(path, '/') : NULL;
    return s ? s + 1 : path;
}

/* ================================================================ D1-D5 */

Test(dispatch, fields_of_a_new_dispatcher, .timeout = 5,
     .description = "D1 D3 D22: a new dispatcher: no socket, no descriptor, not in the map, "
                    "four flags false, addr none, no (family, type), its map, ignore_log_types "
                    "= {warning}; create_socket remembers (family, type) and changes no flag")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &tr_h, "d");
    cr_assert_eq(ac_fd(d), -1);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_not(ac_is_connected(d));
    cr_assert_not(ac_is_accepting(d));
    cr_assert_not(ac_is_connecting(d));
    cr_assert_not(ac_is_closing(d));
    cr_assert_not(ac_is_closed(d));
    socklen_t alen = 77;
    cr_assert_null(ac_addr(d, &alen));
    cr_assert_eq(alen, 0);
    cr_assert_eq(ac_family(d), 0);
    cr_assert_eq(ac_socktype(d), 0);
    cr_assert_eq(ac_map_of(d), m);
    cr_assert_eq(ac_handlers_of(d), &tr_h);
    cr_assert_eq(ac_user(d), tk_nodes[0]);

    /* ignore_log_types defaults to {"warning"}: nothing else is dropped. */
    ac_log_info(d, "dropped", "warning");
    ac_log_info(d, "kept", "info");
    ac_log_info(d, "kept too", "error");
    cr_assert_str_eq(tk_logbuf, "info: kept\nerror: kept too\n");

    cr_assert_eq(ac_create_socket(d, AF_INET6, SOCK_DGRAM), 0);
    cr_assert_eq(ac_family(d), AF_INET6);
    cr_assert_eq(ac_socktype(d), SOCK_DGRAM);
    cr_assert_str_eq(flags_of(d), "000");
    cr_assert_not(ac_is_closing(d));
    cr_assert_null(ac_addr(d, NULL));
    cr_assert_eq(ac_map_get(m, ac_fd(d)), d);
    cr_assert_str_empty(tk_trace);
    finish(m);
}

Test(dispatch, default_map_when_none_is_given, .timeout = 5,
     .description = "D1 L1: a channel constructed without a map belongs to the default map "
                    "and enters it when it gets a socket")
{
    ac_set_log_hook(tk_log_hook, NULL);
    struct tk_node *n = tk_node_new("d");
    ac_dispatcher *d = ac_dispatcher_new(NULL, &tr_h, n);
    cr_assert_not_null(d);
    n->d = d;
    tk_created++;
    ac_map *dm = ac_default_map();
    cr_assert_not_null(dm);
    cr_assert_eq(ac_map_of(d), dm);
    size_t before = ac_map_count(dm);
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_map_count(dm), before + 1);
    cr_assert_eq(ac_map_get(NULL, ac_fd(d)), d);
    finish(dm);
}

Test(dispatch, flags_are_independent, .timeout = 5,
     .description = "D2: the four flags are separate booleans: setting one changes no other, "
                    "any combination can exist")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &tr_h, "d");
    cr_assert_eq(ac_create_socket(d, AF_INET, SOCK_STREAM), 0);
    void (*set[4])(ac_dispatcher *, bool) = {ac_set_connected, ac_set_accepting,
                                             ac_set_connecting, ac_set_closing};
    bool (*get[4])(const ac_dispatcher *) = {ac_is_connected, ac_is_accepting,
                                             ac_is_connecting, ac_is_closing};
    for (unsigned bits = 0; bits < 16; bits++) {
        for (int i = 0; i < 4; i++)
            set[i](d, (bits >> i) & 1u);
        for (int i = 0; i < 4; i++)
            cr_assert_eq(get[i](d), (bool)((bits >> i) & 1u), "combination %u, flag %d", bits, i);
        /* Toggle each one alone and back. */
        for (int i = 0; i < 4; i++) {
            set[i](d, !((bits >> i) & 1u));
            for (int j = 0; j < 4; j++) {
                bool want = (bool)((bits >> j) & 1u);
                if (j == i)
                    want = !want;
                cr_assert_eq(get[j](d), want, "combination %u, toggled %d, flag %d", bits, i, j);
            }
            set[i](d, (bits >> i) & 1u);
        }
    }
    cr_assert_str_empty(tk_trace);
    finish(m);
}

Test(dispatch, accepting_and_connecting_together, .timeout = 5,
     .description = "D2 D6 D7 D11: accepting-and-connecting is a valid state; accepting "
                    "wins: read -> handle_accept only, write dropped, no connect completion")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &tr_h, "d");
    ac_set_connected(d, false);
    ac_set_accepting(d, true);
    ac_set_connecting(d, true);
    cr_assert_eq(ac_handle_read_event(d), 0);
    cr_assert_eq(ac_handle_write_event(d), 0);
    cr_assert_str_eq(tk_trace, "accept");
    cr_assert_str_eq(flags_of(d), "011");
    finish(m);
}

static bool connected_now(void *arg) { return ac_is_connected(arg); }

Test(dispatch, closing_is_never_touched_by_the_library, .timeout = 10,
     .description = "D2 D5 S12: closing is the user's flag: connect, its completion, listen "
                    "and close leave it as the user set it (true or false)")
{
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int l = tk_listener(AF_INET, &ss, &len, 5);
    for (int on = 0; on < 2; on++) {
        ac_dispatcher *c = tk_new(m, &tr_h, "c");
        ac_set_closing(c, on);
        cr_assert_eq(ac_create_socket(c, AF_INET, SOCK_STREAM), 0);
        cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
        cr_assert_eq(ac_is_closing(c), (bool)on);
        cr_assert(tk_loop_until(m, connected_now, c, 3.0));
        cr_assert_eq(ac_is_closing(c), (bool)on);
        cr_assert_eq(ac_close(c), 0);
        cr_assert_eq(ac_is_closing(c), (bool)on);

        ac_dispatcher *s = tk_new(m, &tr_h, "s");
        ac_set_closing(s, on);
        cr_assert_eq(ac_create_socket(s, AF_INET, SOCK_STREAM), 0);
        struct sockaddr_storage any;
        socklen_t alen = tk_loopback(AF_INET, &any);
        cr_assert_eq(ac_bind(s, (struct sockaddr *)&any, alen), 0);
        cr_assert_eq(ac_listen(s, 5), 0);
        cr_assert_eq(ac_is_closing(s), (bool)on);
        cr_assert_eq(ac_close(s), 0);
        cr_assert_eq(ac_is_closing(s), (bool)on);
        tk_trace_clear();
    }
    close(l);
    finish(m);
}

Test(dispatch, adopt_connected_tcp_socket, .timeout = 5,
     .description = "D4 D5 (CPython test_connection_attributes, adopted side): a connected "
                    "blocking socket becomes non-blocking, registered, connected, addr = peer "
                    "address; accepting and connecting stay false")
{
    ac_map *m = tk_map();
    int c, s;
    tcp_pair(&c, &s);
    cr_assert_not(tk_nonblocking(s));
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    cr_assert_eq(getpeername(s, (struct sockaddr *)&peer, &plen), 0);
    ac_dispatcher *d = tk_new(m, &tr_h, "d");
    cr_assert_eq(ac_attach(d, s), 0);
    cr_assert(tk_nonblocking(s));
    cr_assert_eq(ac_fd(d), s);
    cr_assert_eq(ac_map_get(m, s), d);
    cr_assert_str_eq(flags_of(d), "100");
    socklen_t alen = 0;
    const struct sockaddr *a = ac_addr(d, &alen);
    cr_assert_not_null(a);
    cr_assert_eq(alen, plen);
    cr_assert_eq(memcmp(a, &peer, plen), 0);
    cr_assert_str_empty(tk_trace);
    finish(m);
    close(c);
}

Test(dispatch, adopt_unconnected_sockets, .timeout = 5,
     .description = "D4: getpeername failing with ENOTCONN (unconnected stream, datagram) "
                    "leaves connected false and addr none; construction succeeds")
{
    ac_map *m = tk_map();
    int types[2] = {SOCK_STREAM, SOCK_DGRAM};
    for (int i = 0; i < 2; i++) {
        int fd = socket(AF_INET, types[i] | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        ac_dispatcher *d = tk_new(m, &tr_h, "d");
        cr_assert_eq(ac_attach(d, fd), 0);
        cr_assert(tk_nonblocking(fd));
        cr_assert_eq(ac_map_get(m, fd), d);
        cr_assert_str_eq(flags_of(d), "000");
        cr_assert_null(ac_addr(d, NULL));
    }
    cr_assert_eq(ac_map_count(m), 2);
    finish(m);
}

Test(dispatch, adopt_non_socket_fails, .timeout = 5,
     .description = "D4 X3: a getpeername failure other than ENOTCONN/EINVAL (ENOTSOCK on a "
                    "pipe) makes construction fail: unregistered, the descriptor is the "
                    "caller's")
{
    ac_map *m = tk_map();
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    ac_dispatcher *d = tk_new(m, &tr_h, "d");
    int rc = ac_attach(d, p[0]);
    cr_assert_eq(rc, -ENOTSOCK, "got %d", rc);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_null(ac_map_get(m, p[0]));
    cr_assert_eq(ac_fd(d), -1);
    cr_assert(tk_fd_open(p[0]), "the caller keeps the descriptor");
    cr_assert_str_eq(flags_of(d), "000");
    cr_assert_null(ac_addr(d, NULL));
    cr_assert_str_empty(tk_trace);
    finish(m);
    close(p[0]);
    close(p[1]);
}

static int acc_close(ac_dispatcher *d)
{
    tk_node(d)->accepts++;
    int fd = ac_accept(d, NULL, NULL);
    tk_tr("accept:%s", fd >= 0 ? "fd" : strerrorname_np(-fd));
    if (fd >= 0)
        close(fd);
    return 0;
}

static int read_quiet(ac_dispatcher *d)
{
    tk_node(d)->reads++;
    tk_tr("read");
    return 0;
}

Test(dispatch, adopted_listener_is_not_accepting, .timeout = 10,
     .description = "D4 D6: an adopted listening socket is not connected, has no addr and is "
                    "not accepting: a pending connection reaches handle_read; once the user "
                    "sets accepting, handle_accept")
{
    static const ac_handlers h = {
        .handle_read = read_quiet,
        .handle_write = t_write,
        .handle_accept = acc_close,
        .handle_close = t_close,
        .handle_error = t_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int lfd = tk_listener(AF_INET, &ss, &len, 5);
    ac_dispatcher *l = tk_new(m, &h, "l");
    cr_assert_eq(ac_attach(l, lfd), 0);
    cr_assert_str_eq(flags_of(l), "000");
    cr_assert_null(ac_addr(l, NULL));

    int c1 = tk_connect_raw(&ss, len);
    cr_assert(tk_wait_fd(lfd, POLLIN, 2000));
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "read");

    tk_trace_clear();
    ac_set_accepting(l, true);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "accept:fd");
    close(c1);
    finish(m);
}

/* ====================================================== D6-D11 (events) */

enum ev { EV_READ, EV_WRITE, EV_EXPT, EV_HUP, EV_ERR, EV_NVAL, EV_N };
static const char *const ev_name[EV_N] = {"read", "write", "expt", "POLLHUP", "POLLERR",
                                          "POLLNVAL"};

static int fire(ac_dispatcher *d, enum ev e)
{
    switch (e) {
    case EV_READ:
        return ac_handle_read_event(d);
    case EV_WRITE:
        return ac_handle_write_event(d);
    case EV_EXPT:
        return ac_handle_expt_event(d);
    case EV_HUP:
        return ac_readwrite(d, POLLHUP);
    case EV_ERR:
        return ac_readwrite(d, POLLERR);
    default:
        return ac_readwrite(d, POLLNVAL);
    }
}

Test(dispatch_events, translation_table_so_error_clear, .timeout = 10,
     .description = "D6 D7 D9 D10 D11: every cell of D11's table with SO_ERROR = 0: read, "
                    "write, exceptional and poll close events in each of the four states reach "
                    "exactly the listed handlers; flags change only through D8")
{
    /* [event][state] -> trace */
    static const char *const want[EV_N][ST_N] = {
        [EV_READ] = {"accept", "connect:01 read", "read", "read"},
        [EV_WRITE] = {"", "connect:01 write", "write", "write"},
        [EV_EXPT] = {"expt", "expt", "expt", "expt"},
        [EV_HUP] = {"close", "close", "close", "close"},
        [EV_ERR] = {"close", "close", "close", "close"},
        [EV_NVAL] = {"close", "close", "close", "close"},
    };
    ac_map *m = tk_map();
    for (int e = 0; e < EV_N; e++) {
        for (int s = 0; s < ST_N; s++) {
            ac_dispatcher *d = pair_d(m, &keep_h, "d");
            set_state(d, (enum state)s);
            tk_trace_clear();
            int rc = fire(d, (enum ev)e);
            cr_assert_eq(rc, 0, "%s event, %s: rc %d", ev_name[e], state_name[s], rc);
            cr_assert_str_eq(tk_trace, want[e][s], "%s event, %s: trace '%s'", ev_name[e],
                             state_name[s], tk_trace);
            /* D8 succeeded -> connected, not connecting; otherwise unchanged. */
            const char *f = (s == ST_CONNECTING && (e == EV_READ || e == EV_WRITE))
                                ? "100"
                                : flags_for((enum state)s);
            cr_assert_str_eq(flags_of(d), f, "%s event, %s: flags %s", ev_name[e],
                             state_name[s], flags_of(d));
            cr_assert_not(ac_is_closed(d));
            cr_assert_eq(tk_node(d)->errors, 0);
        }
    }
    cr_assert_eq(tk_log_lines, 0);
    finish(m);
}

Test(dispatch_events, translation_table_so_error_pending, .timeout = 10,
     .description = "D6 D7 D8 D9 D10 D11 D25: with SO_ERROR = ECONNREFUSED pending: only "
                    "connect completion (connecting) and expt-dispatch (any state) read it; "
                    "D8 fails with it leaving the flags; D9 calls handle_close; accept, "
                    "read, write and poll close events leave it pending")
{
    static const char *const want[EV_N][ST_N] = {
        [EV_READ] = {"accept", "", "read", "read"},
        [EV_WRITE] = {"", "", "write", "write"},
        [EV_EXPT] = {"close", "close", "close", "close"},
        [EV_HUP] = {"close", "close", "close", "close"},
        [EV_ERR] = {"close", "close", "close", "close"},
        [EV_NVAL] = {"close", "close", "close", "close"},
    };
    ac_map *m = tk_map();
    int holder;
    struct sockaddr_storage ss;
    socklen_t len = tk_refusing_addr(AF_INET, &ss, &holder);
    for (int e = 0; e < EV_N; e++) {
        for (int s = 0; s < ST_N; s++) {
            ac_dispatcher *d = refused_d(m, &keep_h, "d", &ss, len);
            set_state(d, (enum state)s);
            tk_trace_clear();
            int rc = fire(d, (enum ev)e);
            bool d8 = s == ST_CONNECTING && (e == EV_READ || e == EV_WRITE);
            bool reads_so_error = d8 || e == EV_EXPT;
            cr_assert_eq(rc, d8 ? -ECONNREFUSED : 0, "%s event, %s: rc %d", ev_name[e],
                         state_name[s], rc);
            cr_assert_str_eq(tk_trace, want[e][s], "%s event, %s: trace '%s'", ev_name[e],
                             state_name[s], tk_trace);
            cr_assert_str_eq(flags_of(d), flags_for((enum state)s), "%s event, %s: flags %s",
                             ev_name[e], state_name[s], flags_of(d));
            if (d8) {
                const ac_error *err = ac_current_error(d);
                cr_assert_eq(err->err, ECONNREFUSED);
                cr_assert_eq(tk_node(d)->connects, 0, "D8: no handle_connect on failure");
            }
            int pending = ac_socket_error(d);
            cr_assert_eq(pending, reads_so_error ? 0 : ECONNREFUSED,
                         "%s event, %s: SO_ERROR afterwards %d", ev_name[e], state_name[s],
                         pending);
            cr_assert_eq(tk_node(d)->errors, 0, "no guard here: nothing routed");
        }
    }
    close(holder);
    finish(m);
}

Test(dispatch_events, connect_completion_failure_through_the_guards, .timeout = 10,
     .description = "D8 D11 L11 L14 D19 D25: D8's ECONNREFUSED reaches handle_error through "
                    "the select guard and the poll guard alike; its default line carries the "
                    "errno name and strerror text, then handle_close closes")
{
    static const ac_handlers h = {
        .handle_read = t_read,
        .handle_write = t_write,
        .handle_connect = t_connect,
        .handle_close = t_close,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    int holder;
    struct sockaddr_storage ss;
    socklen_t len = tk_refusing_addr(AF_INET, &ss, &holder);
    for (int via = 0; via < 3; via++) {
        ac_dispatcher *d = refused_d(m, &h, "d", &ss, len);
        ac_set_connecting(d, true);
        tk_logbuf[0] = '\0';
        tk_trace_clear();
        int rc = via == 0 ? ac_read(d) : via == 1 ? ac_write(d) : ac_readwrite(d, POLLIN | POLLOUT);
        cr_assert_eq(rc, 0);
        cr_assert_str_eq(tk_trace, "close", "via %d: %s", via, tk_trace);
        cr_assert(ac_is_closed(d));
        cr_assert_eq(strncmp(tk_logbuf, "error: ", 7), 0, "%s", tk_logbuf);
        cr_assert_not_null(strstr(tk_logbuf, "closing channel"), "%s", tk_logbuf);
        cr_assert_not_null(strstr(tk_logbuf, "ECONNREFUSED"), "%s", tk_logbuf);
        cr_assert_not_null(strstr(tk_logbuf, strerror(ECONNREFUSED)), "%s", tk_logbuf);
        cr_assert_eq(tk_log_lines, 1, "one line: %s", tk_logbuf);
        tk_log_lines = 0;
    }
    close(holder);
    finish(m);
}

Test(dispatch_events, connect_completion_handler_failure, .timeout = 5,
     .description = "D8 D6 D7: a failing handle_connect stops the event: no handle_read / "
                    "handle_write, flags not updated, its failure is returned")
{
    ac_map *m = tk_map();
    for (int e = 0; e < 2; e++) {
        ac_dispatcher *d = pair_d(m, &keep_h, "d");
        set_state(d, ST_CONNECTING);
        tk_trace_clear();
        g_mode = M_EPROTO;
        int rc = e == 0 ? ac_handle_read_event(d) : ac_handle_write_event(d);
        g_mode = M_OK;
        cr_assert_eq(rc, -EPROTO);
        cr_assert_str_eq(tk_trace, "connect:01");
        cr_assert_str_eq(flags_of(d), "001");
    }
    finish(m);
}

Test(dispatch_events, connected_and_connecting_skips_completion, .timeout = 5,
     .description = "D6 D7: D8 runs only when not connected and connecting; connected with "
                    "connecting set goes straight to handle_read / handle_write")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &keep_h, "d");
    ac_set_connecting(d, true);
    cr_assert_eq(ac_handle_read_event(d), 0);
    cr_assert_eq(ac_handle_write_event(d), 0);
    cr_assert_str_eq(tk_trace, "read write");
    cr_assert_str_eq(flags_of(d), "101");
    finish(m);
}

Test(dispatch_events, events_on_a_closed_channel, .timeout = 5,
     .description = "D6 D7 D9 S13 L11 L14: a closed channel is neither connected nor "
                    "connecting: read and write events reach handle_read / handle_write; "
                    "expt-dispatch fails reading SO_ERROR with EBADF -> handle_error under the "
                    "select guard, handle_close under the poll guard")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &keep_h, "d");
    cr_assert_eq(ac_close(d), 0);
    cr_assert_eq(ac_handle_read_event(d), 0);
    cr_assert_eq(ac_handle_write_event(d), 0);
    cr_assert_str_eq(tk_trace, "read write");
    tk_trace_clear();
    cr_assert_eq(ac_handle_expt_event(d), -EBADF);
    cr_assert_str_empty(tk_trace);
    cr_assert_eq(ac_exception(d), 0);
    cr_assert_str_eq(tk_trace, "error:EBADF");
    tk_trace_clear();
    cr_assert_eq(ac_readwrite(d, POLLPRI), 0);
    cr_assert_str_eq(tk_trace, "close");
    finish(m);
}

Test(dispatch_events, readwrite_one_flag_one_handler, .timeout = 5,
     .description = "L13 D6 D7 D9 D10 (CPython test_readwrite): each poll flag alone reaches "
                    "exactly its handler on a connected channel")
{
    static const short flag[6] = {POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL};
    static const char *const want[6] = {"read", "expt", "write", "close", "close", "close"};
    ac_map *m = tk_map();
    for (int i = 0; i < 6; i++) {
        ac_dispatcher *d = pair_d(m, &keep_h, "d");
        tk_trace_clear();
        cr_assert_eq(ac_readwrite(d, flag[i]), 0);
        cr_assert_str_eq(tk_trace, want[i], "flag %#x: %s", (unsigned)flag[i], tk_trace);
        struct tk_node *n = tk_node(d);
        cr_assert_eq(n->reads + n->writes + n->expts + n->closes, 1);
        cr_assert_eq(n->errors, 0);
    }
    /* Ignored flags reach nothing. */
    ac_dispatcher *d = pair_d(m, &keep_h, "d");
    tk_trace_clear();
    cr_assert_eq(ac_readwrite(d, POLLRDHUP | POLLRDNORM | POLLWRNORM), 0);
    cr_assert_str_empty(tk_trace);
    finish(m);
}

Test(dispatch_events, readwrite_all_flags_in_order, .timeout = 5,
     .description = "L13 D6 D7 D9 D10: all flags at once: read, write, expt, then close, in "
                    "that order; a connecting channel completes once, in the read step")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &keep_h, "d");
    cr_assert_eq(ac_readwrite(d, POLLIN | POLLOUT | POLLPRI | POLLHUP | POLLERR), 0);
    cr_assert_str_eq(tk_trace, "read write expt close");
    tk_trace_clear();
    d = pair_d(m, &keep_h, "d2");
    set_state(d, ST_CONNECTING);
    cr_assert_eq(ac_readwrite(d, POLLIN | POLLOUT | POLLPRI), 0);
    cr_assert_str_eq(tk_trace, "connect:01 read write expt");
    cr_assert_str_eq(flags_of(d), "100");
    finish(m);
}

Test(dispatch_events, guards_route_exit_and_failures, .timeout = 5,
     .description = "L11 L14 L16 D19 (CPython test_readwriteexc, test_readwrite): the exit "
                    "request leaves every guarded dispatch untouched; another failure reaches "
                    "handle_error; a disconnected errno reaches handle_error under select, "
                    "handle_close under poll")
{
    static const short flag[6] = {POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL};
    static const char *const step[6] = {"read", "expt", "write", "close", "close", "close"};
    ac_map *m = tk_map();
    /* select-style single dispatches */
    int (*guard[3])(ac_dispatcher *) = {ac_read, ac_write, ac_exception};
    static const char *const gstep[3] = {"read", "write", "expt"};
    for (int g = 0; g < 3; g++) {
        ac_dispatcher *d = pair_d(m, &keep_h, "d");
        char want[64];
        g_mode = M_EXIT;
        tk_trace_clear();
        cr_assert_eq(guard[g](d), AC_EXIT_NOW);
        cr_assert_str_eq(tk_trace, gstep[g]);
        g_mode = M_EPROTO;
        tk_trace_clear();
        cr_assert_eq(guard[g](d), 0);
        snprintf(want, sizeof(want), "%s error:EPROTO", gstep[g]);
        cr_assert_str_eq(tk_trace, want);
        g_mode = M_ECONNRESET;
        tk_trace_clear();
        cr_assert_eq(guard[g](d), 0);
        snprintf(want, sizeof(want), "%s error:ECONNRESET", gstep[g]);
        cr_assert_str_eq(tk_trace, want, "L11: select routes every failure to handle_error");
        g_mode = M_OK;
    }
    /* poll-style */
    for (int i = 0; i < 6; i++) {
        ac_dispatcher *d = pair_d(m, &keep_h, "d");
        char want[64];
        g_mode = M_EXIT;
        tk_trace_clear();
        cr_assert_eq(ac_readwrite(d, flag[i]), AC_EXIT_NOW);
        cr_assert_str_eq(tk_trace, step[i]);
        g_mode = M_EPROTO;
        tk_trace_clear();
        cr_assert_eq(ac_readwrite(d, flag[i]), 0);
        snprintf(want, sizeof(want), "%s error:EPROTO", step[i]);
        cr_assert_str_eq(tk_trace, want);
        g_mode = M_OK;
        if (i < 3) {
            /* ECONNRESET from a handler: handle_close, no handle_error. */
            g_mode = M_ECONNRESET;
            tk_trace_clear();
            int rc = ac_readwrite(d, flag[i]);
            g_mode = M_OK;
            cr_assert_eq(rc, 0);
            snprintf(want, sizeof(want), "%s close", step[i]);
            cr_assert_str_eq(tk_trace, want, "L14: %s", tk_trace);
        }
    }
    /* The first failing step skips the rest. */
    ac_dispatcher *d = pair_d(m, &keep_h, "d");
    g_mode = M_EPROTO;
    tk_trace_clear();
    cr_assert_eq(ac_readwrite(d, POLLIN | POLLOUT | POLLPRI | POLLHUP), 0);
    g_mode = M_OK;
    cr_assert_str_eq(tk_trace, "read error:EPROTO");
    finish(m);
}

/* ------------------------------------------------ urgent data (D9, D14) */

/* handle_expt that reads the urgent byte (CPython test_handle_expt). */
static int expt_consume(ac_dispatcher *d)
{
    tk_node(d)->expts++;
    unsigned char b = 0;
    ssize_t r = recv(ac_fd(d), &b, 1, MSG_OOB);
    if (r == 1)
        tk_tr("expt:%02x", b);
    else
        tk_tr("expt:-%s", strerrorname_np(errno));
    return 0;
}

static int read_some(ac_dispatcher *d)
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

static ac_dispatcher *oob_client(ac_map *m, const ac_handlers *h, int *srv, const char *data)
{
    int c;
    tcp_pair(&c, srv);
    ac_dispatcher *d = tk_new(m, h, "c");
    cr_assert_eq(ac_attach(d, c), 0);
    if (data)
        cr_assert_eq(send(*srv, data, strlen(data), 0), (ssize_t)strlen(data));
    cr_assert_eq(send(*srv, "\xf4", 1, MSG_OOB), 1);
    cr_assert(tk_wait_fd(c, POLLPRI, 2000), "urgent data did not arrive");
    return d;
}

Test(dispatch_events, urgent_data_reaches_handle_expt, .timeout = 10,
     .description = "D9 D14 L6 (CPython test_handle_expt): an urgent byte reaches handle_expt "
                    "through the loop under every poller; once read, nothing fires again")
{
    static const ac_handlers h = {
        .writable = never,
        .handle_read = read_some,
        .handle_expt = expt_consume,
        .handle_close = t_close,
        .handle_error = t_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    int s;
    oob_client(m, &h, &s, NULL);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ac_poll(m, 0.05), 0);
    cr_assert_str_eq(tk_trace, "expt:f4");
    finish(m);
    close(s);
}

Test(dispatch_events, data_then_urgent_byte_same_iteration, .timeout = 10,
     .description = "D6 D9 L10 L13: normal data then an urgent byte: one iteration gives "
                    "handle_read (the urgent byte is not in the stream) then handle_expt")
{
    static const ac_handlers h = {
        .writable = never,
        .handle_read = read_some,
        .handle_expt = expt_consume,
        .handle_close = t_close,
        .handle_error = t_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    int s;
    oob_client(m, &h, &s, "ab");
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "read:2 expt:f4");
    finish(m);
    close(s);
}

Test(dispatch_events, default_handle_expt_repeats, .timeout = 10,
     .description = "D14 W8 D22: the default handle_expt consumes nothing: with warnings "
                    "shown, 'unhandled incoming priority event' is logged every iteration")
{
    static const ac_handlers h = {
        .writable = never,
        .handle_read = read_some,
        .handle_close = t_close,
        .handle_error = t_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    int s;
    ac_dispatcher *d = oob_client(m, &h, &s, NULL);
    ac_set_ignore_log_types(d, log_nothing_ignored);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ac_poll(m, 0.05), 0);
    cr_assert_str_eq(tk_logbuf, "warning: unhandled incoming priority event\n"
                                "warning: unhandled incoming priority event\n"
                                "warning: unhandled incoming priority event\n");
    cr_assert_str_empty(tk_trace);
    finish(m);
    close(s);
}

Test(dispatch_events, writable_only_channel_urgent_data, .timeout = 10,
     .description = "L6 D9 D14: a channel writable but not readable is watched for urgent "
                    "data under select (handle_expt every iteration) but not under poll/epoll "
                    "(POLLPRI only with read interest)")
{
    static const ac_handlers h = {
        .readable = never,
        .writable = always,
        .handle_read = t_read,
        .handle_write = t_write,
        .handle_expt = t_expt,
        .handle_close = t_close,
        .handle_error = t_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    int s;
    oob_client(m, &h, &s, NULL);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_eq(ac_poll(m, 1.0), 0);
    if (tk_is_select(m))
        cr_assert_str_eq(tk_trace, "write expt write expt");
    else
        cr_assert_str_eq(tk_trace, "write write");
    finish(m);
    close(s);
}

/* ============================================= D12-D18 (default handlers) */

Test(dispatch_defaults, unhandled_events_log_warnings, .timeout = 5,
     .description = "D12 D13 D14 D15 D22 (CPython test_unhandled): with ignore_log_types "
                    "emptied, the defaults log one warning each, in call order, and return 0")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &defaults_h, "d");
    ac_set_ignore_log_types(d, log_nothing_ignored);
    cr_assert_eq(ac_default_handle_expt(d), 0);
    cr_assert_eq(ac_default_handle_read(d), 0);
    cr_assert_eq(ac_default_handle_write(d), 0);
    cr_assert_eq(ac_default_handle_connect(d), 0);
    cr_assert_str_eq(tk_logbuf, "warning: unhandled incoming priority event\n"
                                "warning: unhandled read event\n"
                                "warning: unhandled write event\n"
                                "warning: unhandled connect event\n");
    cr_assert_eq(tk_log_lines, 4);
    cr_assert_str_eq(flags_of(d), "000");
    finish(m);
}

Test(dispatch_defaults, unhandled_events_silent_by_default, .timeout = 5,
     .description = "D12-D15 D18 D22: the defaults log at type warning, which every channel "
                    "ignores by default: nothing reaches the log")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &defaults_h, "d");
    cr_assert_eq(ac_default_handle_expt(d), 0);
    cr_assert_eq(ac_default_handle_read(d), 0);
    cr_assert_eq(ac_default_handle_write(d), 0);
    cr_assert_eq(ac_default_handle_connect(d), 0);
    cr_assert_eq(ac_default_handle_close(d), 0);
    cr_assert(ac_is_closed(d));
    cr_assert_eq(tk_log_lines, 0, "%s", tk_logbuf);
    finish(m);
}

Test(dispatch_defaults, null_entries_reach_the_defaults, .timeout = 5,
     .description = "D11 D12 D13 D14 D15 X1: with an empty table the event functions reach "
                    "the defaults: expt, read and write warnings; a connecting write event "
                    "logs the connect warning before the write warning")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &defaults_h, "d");
    ac_set_ignore_log_types(d, log_nothing_ignored);
    cr_assert_eq(ac_handle_expt_event(d), 0);
    cr_assert_eq(ac_handle_read_event(d), 0);
    cr_assert_eq(ac_handle_write_event(d), 0);
    set_state(d, ST_CONNECTING);
    cr_assert_eq(ac_handle_write_event(d), 0);
    set_state(d, ST_CONNECTING);
    cr_assert_eq(ac_handle_read_event(d), 0);
    cr_assert_str_eq(tk_logbuf, "warning: unhandled incoming priority event\n"
                                "warning: unhandled read event\n"
                                "warning: unhandled write event\n"
                                "warning: unhandled connect event\n"
                                "warning: unhandled write event\n"
                                "warning: unhandled connect event\n"
                                "warning: unhandled read event\n");
    cr_assert_str_eq(flags_of(d), "100");
    finish(m);
}

Test(dispatch_defaults, default_read_and_write_fire_every_iteration, .timeout = 10,
     .description = "D12 D13 W8 L6 (CPython test_basic): a default channel is readable and "
                    "writable; unread data keeps it readable, so each iteration logs one read "
                    "and one write warning")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &defaults_h, "d");
    ac_set_ignore_log_types(d, log_nothing_ignored);
    cr_assert_eq(write(last_peer(), "spam", 4), 4);
    cr_assert(tk_wait_fd(ac_fd(d), POLLIN, 1000));
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_logbuf, "warning: unhandled read event\n"
                                "warning: unhandled write event\n"
                                "warning: unhandled read event\n"
                                "warning: unhandled write event\n"
                                "warning: unhandled read event\n"
                                "warning: unhandled write event\n");
    cr_assert_eq(tk_inq(ac_fd(d)), 4, "the default handle_read reads nothing");
    finish(m);
}

Test(dispatch_defaults, default_connect_through_the_loop, .timeout = 10,
     .description = "D15 D8 D7 D13: a client with the default handlers: the first write "
                    "event completes the connect (connect warning), then the write warning; "
                    "it is connected afterwards")
{
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int l = tk_listener(AF_INET, &ss, &len, 5);
    ac_dispatcher *c = tk_new(m, &defaults_h, "c");
    ac_set_ignore_log_types(c, log_nothing_ignored);
    cr_assert_eq(ac_create_socket(c, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
    cr_assert(tk_wait_fd(ac_fd(c), POLLOUT, 2000));
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_logbuf, "warning: unhandled connect event\n"
                                "warning: unhandled write event\n");
    cr_assert_str_eq(flags_of(c), "100");
    finish(m);
    close(l);
}

/* A log hook that also notes what the channel looks like at the moment the
 * line is logged. */
static int probe_fd = -1;

static void probe_hook(ac_dispatcher *d, const char *type, const char *msg, void *ctx)
{
    tk_log_hook(d, type, msg, ctx);
    if (strstr(msg, "unhandled close event"))
        tk_tr("log:closed=%d", ac_is_closed(d));
    if (strstr(msg, "unhandled accepted event")) {
        char b;
        ssize_t r = recv(probe_fd, &b, 1, MSG_DONTWAIT);
        tk_tr("log:peer=%s", r == 0 ? "eof" : "open");
    }
}

Test(dispatch_defaults, default_handle_close_logs_then_closes, .timeout = 5,
     .description = "D18 S12: the default handle_close logs 'unhandled close event' while the "
                    "channel is still open, then closes it (out of the map, descriptor "
                    "closed)")
{
    ac_map *m = tk_map();
    ac_set_log_hook(probe_hook, NULL);
    ac_dispatcher *d = pair_d(m, &defaults_h, "d");
    ac_set_ignore_log_types(d, log_nothing_ignored);
    int fd = ac_fd(d);
    cr_assert_eq(ac_default_handle_close(d), 0);
    cr_assert_str_eq(tk_logbuf, "warning: unhandled close event\n");
    cr_assert_str_eq(tk_trace, "log:closed=0");
    cr_assert(ac_is_closed(d));
    cr_assert_eq(ac_fd(d), -1);
    cr_assert_eq(ac_map_count(m), 0);
    cr_assert_not(tk_fd_open(fd), "the descriptor is closed");
    finish(m);
}

Test(dispatch_defaults, eof_reaches_default_handle_close, .timeout = 10,
     .description = "D18 S11 (CPython test_handle_close): the peer closes; recv in "
                    "handle_read sees EOF and the default handle_close logs and closes")
{
    static const ac_handlers h = {
        .writable = never,
        .handle_read = read_some,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &h, "d");
    ac_set_ignore_log_types(d, log_nothing_ignored);
    close(last_peer());
    npeers--;
    cr_assert_eq(ac_poll(m, 1.0), 0);
    /* poll/epoll report POLLIN|POLLHUP for the dead socketpair: the close
     * step runs again on the closed channel (L13, W7). */
    if (tk_is_select(m)) {
        cr_assert_str_eq(tk_logbuf, "warning: unhandled close event\n");
    } else {
        cr_assert_str_eq(tk_logbuf, "warning: unhandled close event\n"
                                    "warning: unhandled close event\n");
    }
    cr_assert_str_eq(tk_trace, "read:0");
    cr_assert_eq(ac_map_count(m), 0);
    finish(m);
}

Test(dispatch_defaults, default_handle_accept_nothing_pending, .timeout = 5,
     .description = "D16 S9: a read event on a listener with nothing to accept: the default "
                    "handle_accept does nothing (no handle_accepted, no log line)")
{
    ac_map *m = tk_map();
    ac_dispatcher *l = tk_new(m, &defaults_h, "l");
    ac_set_ignore_log_types(l, log_nothing_ignored);
    cr_assert_eq(ac_create_socket(l, AF_INET, SOCK_STREAM), 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(AF_INET, &ss);
    cr_assert_eq(ac_bind(l, (struct sockaddr *)&ss, len), 0);
    cr_assert_eq(ac_listen(l, 5), 0);
    cr_assert_eq(ac_handle_read_event(l), 0);
    cr_assert_eq(ac_read(l), 0);
    cr_assert_eq(ac_readwrite(l, POLLIN), 0);
    cr_assert_str_empty(tk_logbuf);
    cr_assert_not(ac_is_closed(l));
    finish(m);
}

static int accepted_count(ac_dispatcher *d, int fd, const struct sockaddr *a, socklen_t alen)
{
    (void)a;
    (void)alen;
    tk_node(d)->accepts++;
    tk_tr("accepted");
    close(fd);
    return 0;
}

Test(dispatch_defaults, default_handle_accept_accepts_once, .timeout = 5,
     .description = "D16: the default handle_accept calls accept once per read event: two "
                    "pending connections take two events")
{
    static const ac_handlers h = {
        .handle_accepted = accepted_count,
        .handle_error = t_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    ac_dispatcher *l = tk_new(m, &h, "l");
    cr_assert_eq(ac_create_socket(l, AF_INET, SOCK_STREAM), 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(AF_INET, &ss);
    cr_assert_eq(ac_bind(l, (struct sockaddr *)&ss, len), 0);
    cr_assert_eq(ac_listen(l, 5), 0);
    len = sizeof(ss);
    cr_assert_eq(getsockname(ac_fd(l), (struct sockaddr *)&ss, &len), 0);
    int c1 = tk_connect_raw(&ss, len);
    int c2 = tk_connect_raw(&ss, len);
    cr_assert_eq(ac_handle_read_event(l), 0);
    cr_assert_str_eq(tk_trace, "accepted");
    cr_assert_eq(ac_handle_read_event(l), 0);
    cr_assert_eq(ac_handle_read_event(l), 0);
    cr_assert_str_eq(tk_trace, "accepted accepted");
    close(c1);
    close(c2);
    finish(m);
}

Test(dispatch_defaults, default_handle_accept_failure_propagates, .timeout = 5,
     .description = "D16 S9 W15 L11: accepting set on a socket that does not listen: accept "
                    "fails with EINVAL, the event returns it and the guard gives it to "
                    "handle_error")
{
    static const ac_handlers h = {
        .handle_accepted = accepted_count,
        .handle_error = t_error,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    ac_dispatcher *l = tk_new(m, &h, "l");
    cr_assert_eq(ac_create_socket(l, AF_INET, SOCK_STREAM), 0);
    ac_set_accepting(l, true);
    cr_assert_eq(ac_handle_read_event(l), -EINVAL);
    cr_assert_str_empty(tk_trace);
    cr_assert_eq(ac_read(l), 0);
    cr_assert_str_eq(tk_trace, "error:EINVAL");
    tk_trace_clear();
    cr_assert_eq(ac_readwrite(l, POLLIN), 0);
    cr_assert_str_eq(tk_trace, "error:EINVAL");
    finish(m);
}

Test(dispatch_defaults, default_handle_accepted_closes_then_logs, .timeout = 5,
     .description = "D16 D17: the default handle_accepted closes the connection first (the "
                    "client already sees EOF when the line is logged), then logs 'unhandled "
                    "accepted event'")
{
    ac_map *m = tk_map();
    ac_set_log_hook(probe_hook, NULL);
    ac_dispatcher *l = tk_new(m, &defaults_h, "l");
    ac_set_ignore_log_types(l, log_nothing_ignored);
    cr_assert_eq(ac_create_socket(l, AF_UNIX, SOCK_STREAM), 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_unix_addr(&ss, "l");
    cr_assert_eq(ac_bind(l, (struct sockaddr *)&ss, len), 0);
    cr_assert_eq(ac_listen(l, 5), 0);
    probe_fd = tk_connect_raw(&ss, len);
    cr_assert_eq(ac_handle_read_event(l), 0);
    cr_assert_str_eq(tk_logbuf, "warning: unhandled accepted event\n");
    cr_assert_str_eq(tk_trace, "log:peer=eof");
    cr_assert_not(ac_is_closed(l));
    cr_assert_eq(ac_map_count(m), 1, "only the listener is in the map");
    close(probe_fd);
    finish(m);
}

/* ===================================================== D19-D25 (logging) */

static int raise_line;

static int write_raises(ac_dispatcher *d)
{
    tk_tr("write");
    raise_line = __LINE__ + 1;
    return AC_RAISE(d, EPROTO, "parse");
}

Test(dispatch_log, default_handle_error_line, .timeout = 5,
     .description = "D19 D20 D24 D25: the default handle_error logs one line of type error "
                    "naming 'closing channel', the description, the errno's name and strerror "
                    "text and the [file|function|line] of the raise; then handle_close, "
                    "whose warning follows it")
{
    static const ac_handlers h = {
        .handle_write = write_raises,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    for (int via = 0; via < 2; via++) {
        ac_dispatcher *d = pair_d(m, &h, "d");
        ac_set_ignore_log_types(d, log_nothing_ignored);
        char desc[256];
        snprintf(desc, sizeof(desc), "%s", describe(d));
        tk_logbuf[0] = '\0';
        tk_log_lines = 0;
        cr_assert_eq(via ? ac_readwrite(d, POLLOUT) : ac_write(d), 0);
        cr_assert(ac_is_closed(d), "the default handle_error ends in handle_close");
        cr_assert_eq(tk_log_lines, 2, "%s", tk_logbuf);
        char *nl = strchr(tk_logbuf, '\n');
        cr_assert_not_null(nl);
        *nl = '\0';
        const char *line = tk_logbuf;
        cr_assert_eq(strncmp(line, "error: ", 7), 0, "%s", line);
        char want[512];
        snprintf(want, sizeof(want), "closing channel %s (", desc);
        cr_assert_not_null(strstr(line, want), "'%s' not in '%s'", want, line);
        cr_assert_not_null(strstr(line, "EPROTO"), "%s", line);
        cr_assert_not_null(strstr(line, strerror(EPROTO)), "%s", line);
        snprintf(want, sizeof(want), "[test_dispatch.c|write_raises|%d]", raise_line);
        cr_assert_not_null(strstr(line, want), "'%s' not in '%s'", want, line);
        cr_assert_eq(line[strlen(line) - 1], ')', "%s", line);
        cr_assert_str_eq(nl + 1, "warning: unhandled close event\n");
    }
    finish(m);
}

Test(dispatch_log, default_handle_error_default_types, .timeout = 5,
     .description = "D19 D22: with the default ignore_log_types the error line is shown and "
                    "handle_close's warning is not")
{
    static const ac_handlers h = {
        .handle_write = write_raises,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &h, "d");
    cr_assert_eq(ac_write(d), 0);
    cr_assert_eq(tk_log_lines, 1, "%s", tk_logbuf);
    cr_assert_eq(strncmp(tk_logbuf, "error: ", 7), 0, "%s", tk_logbuf);
    cr_assert(ac_is_closed(d));
    finish(m);
}

/* handle_error of CPython's test_handle_error: the failure is the current
 * one and is the one raised in handle_write. */
static int error_checks(ac_dispatcher *d, const ac_error *e)
{
    tk_node(d)->errors++;
    tk_tr("error:%s", strerrorname_np(e->err));
    const ac_error *cur = ac_current_error(d);
    cr_assert_eq(cur->err, e->err);
    cr_assert_eq(cur->line, e->line);
    cr_assert_eq(e->err, EPROTO);
    cr_assert_str_eq(e->op, "parse");
    cr_assert_str_eq(basename_of(e->file), "test_dispatch.c");
    cr_assert_str_eq(e->func, "write_raises");
    cr_assert_eq(e->line, raise_line);
    return ac_close(d);
}

Test(dispatch_log, handle_error_sees_the_current_failure, .timeout = 10,
     .description = "D19 D20 D8 L11 L14 (CPython test_handle_error, test_compact_traceback): "
                    "a client whose handle_write raises: through the loop, handle_error gets "
                    "that failure with its location while it is still the current one")
{
    static const ac_handlers h = {
        .handle_connect = t_connect,
        .handle_write = write_raises,
        .handle_read = t_read,
        .handle_error = error_checks,
        .handle_close = t_close,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int l = tk_listener(AF_INET, &ss, &len, 5);
    ac_dispatcher *c = tk_new(m, &h, "c");
    struct tk_node *n = tk_node(c); /* c itself is freed after the iteration */
    cr_assert_eq(ac_create_socket(c, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
    cr_assert(tk_wait_fd(ac_fd(c), POLLOUT, 2000));
    cr_assert_eq(ac_poll(m, 1.0), 0);
    cr_assert_str_eq(tk_trace, "connect:01 write error:EPROTO");
    cr_assert_eq(n->errors, 1);
    cr_assert_eq(n->finalized, 1);
    cr_assert_eq(ac_map_count(m), 0);
    finish(m);
    close(l);
}

static int read_recv_propagates(ac_dispatcher *d)
{
    char b[8];
    ssize_t r = ac_recv(d, b, sizeof(b));
    tk_tr("read:%zd", r);
    return r < 0 ? (int)r : 0;
}

static int error_location(ac_dispatcher *d, const ac_error *e)
{
    tk_tr("error:%s:%s", strerrorname_np(e->err), e->op ? e->op : "(null)");
    tk_node(d)->errors++;
    cr_assert_not_null(e->file, "a library failure records where it arose");
    cr_assert_not_null(e->func);
    cr_assert_gt(e->line, 0);
    cr_assert_eq(ac_current_error(d)->err, e->err);
    return 0;
}

Test(dispatch_log, library_failure_has_a_location, .timeout = 5,
     .description = "D19 D20 X3 S11: a failure raised inside the library (recv's EAGAIN) "
                    "reaches handle_error with the operation and a file/function/line")
{
    static const ac_handlers h = {
        .handle_read = read_recv_propagates,
        .handle_error = error_location,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &h, "d");
    cr_assert_eq(ac_read(d), 0);
    char want[64];
    snprintf(want, sizeof(want), "read:%d error:EAGAIN:recv", -EAGAIN);
    cr_assert_str_eq(tk_trace, want);
    finish(m);
}

Test(dispatch_log, current_error_slot, .timeout = 5,
     .description = "D20 X3: before any failure the current error is empty (err 0); "
                    "AC_RAISE records errno, operation and location and returns -errno")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &tr_h, "d");
    cr_assert_eq(ac_current_error(d)->err, 0);
    int line = __LINE__ + 1;
    int rc = AC_RAISE(d, EMSGSIZE, "frame");
    cr_assert_eq(rc, -EMSGSIZE);
    const ac_error *e = ac_current_error(d);
    cr_assert_eq(e->err, EMSGSIZE);
    cr_assert_str_eq(e->op, "frame");
    cr_assert_str_eq(basename_of(e->file), "test_dispatch.c");
    cr_assert_str_eq(e->func, "dispatch_log_current_error_slot_impl");
    cr_assert_eq(e->line, line);
    finish(m);
}

/* A handler that fails with a bare negative errno, without AC_RAISE. */
static int read_bare_eproto(ac_dispatcher *d)
{
    tk_tr("read");
    (void)d;
    return -EPROTO;
}

static int error_not_stale(ac_dispatcher *d, const ac_error *e)
{
    tk_node(d)->errors++;
    tk_tr("error:%s:%s:%d", strerrorname_np(e->err), e->func ? e->func : "-", e->line);
    return 0;
}

Test(dispatch_log, location_of_an_earlier_failure_is_not_reused, .timeout = 5,
     .description = "D19 D20: handle_error describes the failure being handled: after a "
                    "raise at a known place was handled, a later failure with the same errno "
                    "that did not come from there must not be reported at that place")
{
    static const ac_handlers h = {
        .handle_read = read_bare_eproto,
        .handle_write = write_raises,
        .handle_error = error_not_stale,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &h, "d");
    cr_assert_eq(ac_write(d), 0);
    char want[128];
    snprintf(want, sizeof(want), "write error:EPROTO:write_raises:%d", raise_line);
    cr_assert_str_eq(tk_trace, want);
    tk_trace_clear();
    cr_assert_eq(ac_read(d), 0);
    cr_assert_eq(strncmp(tk_trace, "read error:EPROTO:", 18), 0, "%s", tk_trace);
    cr_assert_null(strstr(tk_trace, "write_raises"),
                   "the read failure is reported at the earlier raise in write_raises: %s",
                   tk_trace);
    finish(m);
}

static int write_raises_4242(ac_dispatcher *d)
{
    return AC_RAISE(d, 4242, "odd");
}

Test(dispatch_log, strerror_of_errnos, .timeout = 5,
     .description = "D25 (CPython test_strerror): a known errno gives its symbolic name and "
                    "strerror text; an unknown one has no name and its text is 'Unknown "
                    "error N', also in the handle_error line")
{
    static const ac_handlers h = {
        .handle_write = write_raises_4242,
        .finalize = tk_finalize,
    };
    cr_assert_str_eq(ac_errno_name(EPERM), "EPERM");
    cr_assert_str_eq(ac_errno_name(ECONNRESET), "ECONNRESET");
    cr_assert_str_eq(ac_errno_name(EAGAIN), "EAGAIN");
    cr_assert_null(ac_errno_name(4242));
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &h, "d");
    cr_assert_eq(ac_write(d), 0);
    cr_assert_not_null(strstr(tk_logbuf, "Unknown error 4242"), "%s", tk_logbuf);
    cr_assert(ac_is_closed(d));
    finish(m);
}

/* ------------------------------------------------------------ D21, D22 */

static ac_dispatcher *hook_d;
static int hook_null_type;

static void type_hook(ac_dispatcher *d, const char *type, const char *msg, void *ctx)
{
    tk_log_hook(d, type, msg, ctx);
    if (d != hook_d)
        tk_tr("wrong-channel");
    if (!type)
        hook_null_type++;
    cr_assert_eq(ctx, &hook_null_type);
}

Test(dispatch_log, log_writes_every_message, .timeout = 5,
     .description = "D21 X15 (CPython test_log): log passes every message to the hook as "
                    "'log: <msg>', with no type and the channel, whatever ignore_log_types "
                    "holds")
{
    static const char *const everything[] = {"log", "info", "warning", "error", "", NULL};
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &tr_h, "d");
    hook_d = d;
    ac_set_log_hook(type_hook, &hook_null_type);
    ac_log(d, "Lovely spam! Wonderful spam!");
    ac_set_ignore_log_types(d, everything);
    ac_log(d, "I don't like spam!");
    cr_assert_str_eq(tk_logbuf, "log: Lovely spam! Wonderful spam!\nlog: I don't like spam!\n");
    cr_assert_eq(hook_null_type, 2);
    cr_assert_str_empty(tk_trace);
    finish(m);
}

Test(dispatch_log, log_info_types, .timeout = 5,
     .description = "D22 (CPython test_log_info): '<type>: <msg>' for free-form types; no "
                    "type means info")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &tr_h, "d");
    ac_log_info(d, "Have you got anything without spam?", "EGGS");
    ac_log_info(d, "Why can't she have egg bacon spam and sausage?", NULL);
    ac_log_info(d, "THAT'S got spam in it!", "SPAM");
    ac_log_infof(d, NULL, "%d eggs, %s", 3, "spam");
    ac_log_infof(d, "menu", "%s", "spam spam spam");
    cr_assert_str_eq(tk_logbuf, "EGGS: Have you got anything without spam?\n"
                                "info: Why can't she have egg bacon spam and sausage?\n"
                                "SPAM: THAT'S got spam in it!\n"
                                "info: 3 eggs, spam\n"
                                "menu: spam spam spam\n");
    finish(m);
}

Test(dispatch_log, log_info_drops_only_ignored_types, .timeout = 5,
     .description = "D22: only a type in ignore_log_types is dropped (exact, case-sensitive "
                    "match); ac_log_infof filters the same way")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &tr_h, "d");
    ac_log_info(d, "a", "warning");
    ac_log_infof(d, "warning", "b %d", 1);
    ac_log_info(d, "c", "WARNING");
    ac_log_info(d, "d", "warnings");
    ac_log_info(d, "e", "error");
    cr_assert_str_eq(tk_logbuf, "WARNING: c\nwarnings: d\nerror: e\n");
    finish(m);
}

Test(dispatch_log, ignore_log_types_per_kind_and_per_channel, .timeout = 5,
     .description = "D22: ignore_log_types can be replaced per kind (the table) and per "
                    "channel; a replacement replaces the whole set; NULL goes back to the "
                    "kind's; other channels are unaffected")
{
    static const char *const kind_types[] = {"info", "debug", NULL};
    static const char *const chan_types[] = {"error", NULL};
    static const ac_handlers kind = {
        .ignore_log_types = kind_types,
        .finalize = tk_finalize,
    };
    ac_map *m = tk_map();
    ac_dispatcher *a = tk_new(m, &kind, "a");
    ac_dispatcher *b = tk_new(m, &kind, "b");
    ac_dispatcher *p = tk_new(m, &defaults_h, "p");
    ac_log_info(a, "a1", "info");
    ac_log_info(a, "a2", "debug");
    ac_log_info(a, "a3", "warning");
    ac_log_info(p, "p1", "warning");
    ac_log_info(p, "p2", "info");
    cr_assert_str_eq(tk_logbuf, "warning: a3\ninfo: p2\n");
    tk_logbuf[0] = '\0';

    ac_set_ignore_log_types(a, chan_types);
    ac_log_info(a, "a4", "error");
    ac_log_info(a, "a5", "info");
    ac_log_info(b, "b1", "info");
    ac_log_info(b, "b2", "error");
    cr_assert_str_eq(tk_logbuf, "info: a5\nerror: b2\n");
    tk_logbuf[0] = '\0';

    ac_set_ignore_log_types(a, NULL);
    ac_log_info(a, "a6", "info");
    ac_log_info(a, "a7", "error");
    ac_set_ignore_log_types(p, log_nothing_ignored);
    ac_log_info(p, "p3", "warning");
    cr_assert_str_eq(tk_logbuf, "error: a7\nwarning: p3\n");
    finish(m);
}

static ac_dispatcher *new_chat(ac_map *m, const ac_handlers *h, const char *name)
{
    struct tk_node *n = tk_node_new(name);
    ac_dispatcher *d = ac_chat_new(m, h, n);
    cr_assert_not_null(d);
    n->d = d;
    tk_created++;
    return d;
}

Test(dispatch_log, every_kind_ignores_warnings_by_default, .timeout = 5,
     .description = "D22 D1: plain, buffered, chat and file channels all start with "
                    "ignore_log_types = {warning}")
{
    ac_map *m = tk_map();
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    ac_dispatcher *ds[4] = {
        tk_new(m, &defaults_h, "plain"),
        tk_new_buffered(m, &defaults_h, "buffered"),
        new_chat(m, &defaults_h, "chat"),
        tk_new_file(m, &defaults_h, "file", p[0]),
    };
    for (int i = 0; i < 4; i++) {
        ac_log_info(ds[i], "hidden", "warning");
        ac_log_info(ds[i], tk_name(ds[i]), "info");
    }
    cr_assert_str_eq(tk_logbuf, "info: plain\ninfo: buffered\ninfo: chat\ninfo: file\n");
    finish(m);
    close(p[0]);
    close(p[1]);
}

static void redirect_all(void)
{
    cr_redirect_stdout();
    cr_redirect_stderr();
}

Test(dispatch_log, default_sink_is_stderr, .timeout = 5, .init = redirect_all,
     .description = "D21 D22 X15 (documented deviation: log_info goes to stderr): the default "
                    "hook writes 'log: msg' and '<type>: msg' lines to stderr, nothing to "
                    "stdout, and still drops ignored types")
{
    ac_map *m = tk_map();
    ac_set_log_hook(NULL, NULL);
    ac_dispatcher *d = tk_new(m, &tr_h, "d");
    ac_log(d, "Lovely spam!");
    ac_log_info(d, "egg and bacon", NULL);
    ac_log_info(d, "hidden", "warning");
    ac_log_info(d, "spam", "SPAM");
    fflush(stdout);
    fflush(stderr);
    finish(m);
    cr_assert_stderr_eq_str("log: Lovely spam!\ninfo: egg and bacon\nSPAM: spam\n");
    cr_assert_stdout_eq_str("");
}

/* --------------------------------------------------------------- D23 */

Test(dispatch_log, debug_is_off_and_read_only_by_buffered_send, .timeout = 5,
     .description = "D23 S15: debug is off by default (buffered send logs nothing); with it "
                    "on, a plain send and a chat push still log nothing")
{
    ac_map *m = tk_map();
    int sv[2];
    tk_socketpair(SOCK_STREAM, sv);
    keep_peer(sv[1]);
    ac_dispatcher *b = tk_new_buffered(m, &defaults_h, "b");
    cr_assert_eq(ac_attach(b, sv[0]), 0);
    cr_assert_eq(ac_buffered_send(b, "abc", 3), 0);
    cr_assert_eq(tk_log_lines, 0, "%s", tk_logbuf);

    ac_dispatcher *d = pair_d(m, &defaults_h, "d");
    ac_set_debug(d, true);
    cr_assert_eq(ac_send(d, "abc", 3), 3);

    tk_socketpair(SOCK_STREAM, sv);
    keep_peer(sv[1]);
    ac_dispatcher *c = new_chat(m, &defaults_h, "c");
    cr_assert_eq(ac_attach(c, sv[0]), 0);
    ac_set_debug(c, true);
    cr_assert_eq(ac_chat_push(c, "abc", 3), 0);
    char buf[3];
    cr_assert_eq(tk_read_full(sv[1], buf, 3, 1000), 3);
    cr_assert_eq(tk_log_lines, 0, "%s", tk_logbuf);
    cr_assert_str_eq(flags_of(d), "100");
    finish(m);
}

/* --------------------------------------------------------------- D24 */

Test(dispatch_log, describe_plain_and_kinds, .timeout = 5,
     .description = "D24 (CPython test_repr): '<kind at 0xADDR>' with the kind's qualified "
                    "name: asyncore.dispatcher, asyncore.dispatcher_with_send, "
                    "asynchat.async_chat, asyncore.file_dispatcher, or the table's name")
{
    static const ac_handlers named = {.name = "spam.Srv", .finalize = tk_finalize};
    ac_map *m = tk_map();
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    ac_dispatcher *d = tk_new(m, &defaults_h, "d");
    cr_assert_str_eq(describe(d), expect_desc(d, "asyncore.dispatcher"));
    d = tk_new_buffered(m, &defaults_h, "b");
    cr_assert_str_eq(describe(d), expect_desc(d, "asyncore.dispatcher_with_send"));
    d = new_chat(m, &defaults_h, "c");
    cr_assert_str_eq(describe(d), expect_desc(d, "asynchat.async_chat"));
    d = tk_new(m, &named, "n");
    cr_assert_str_eq(describe(d), expect_desc(d, "spam.Srv"));
    /* A file dispatcher is connected, with no addr. */
    d = tk_new_file(m, &defaults_h, "f", p[0]);
    cr_assert_str_eq(describe(d), expect_desc(d, "asyncore.file_dispatcher connected"));
    finish(m);
    close(p[0]);
    close(p[1]);
}

Test(dispatch_log, describe_listener, .timeout = 5,
     .description = "D24: a listener shows ' listening' and the address it was bound with "
                    "(port 0 stays :0), also when connected is set; without accepting it is "
                    "' connected'; accepting without addr shows neither")
{
    static const ac_handlers named = {.name = "spam.Srv", .finalize = tk_finalize};
    ac_map *m = tk_map();
    ac_dispatcher *s = tk_new(m, &named, "s");
    cr_assert_eq(ac_create_socket(s, AF_INET, SOCK_STREAM), 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(AF_INET, &ss);
    cr_assert_eq(ac_bind(s, (struct sockaddr *)&ss, len), 0);
    cr_assert_str_eq(describe(s), expect_desc(s, "spam.Srv 127.0.0.1:0"));
    cr_assert_eq(ac_listen(s, 5), 0);
    cr_assert_str_eq(describe(s), expect_desc(s, "spam.Srv listening 127.0.0.1:0"));
    ac_set_connected(s, true);
    cr_assert_str_eq(describe(s), expect_desc(s, "spam.Srv listening 127.0.0.1:0"));
    ac_set_accepting(s, false);
    cr_assert_str_eq(describe(s), expect_desc(s, "spam.Srv connected 127.0.0.1:0"));

    ac_dispatcher *u = tk_new(m, &defaults_h, "u");
    cr_assert_eq(ac_create_socket(u, AF_INET, SOCK_STREAM), 0);
    cr_assert_eq(ac_listen(u, 5), 0);
    cr_assert(ac_is_accepting(u));
    cr_assert_str_eq(describe(u), expect_desc(u, "asyncore.dispatcher"));
    finish(m);
}

static void check_describe_client(int family)
{
    if (family == AF_INET6 && !tk_ipv6_ok())
        cr_skip_test("no IPv6 loopback");
    ac_map *m = tk_map();
    struct sockaddr_storage ss;
    socklen_t len;
    int l = tk_listener(family, &ss, &len, 5);
    ac_dispatcher *c = tk_new(m, &tr_h, "c");
    cr_assert_eq(ac_create_socket(c, family, SOCK_STREAM), 0);
    cr_assert_eq(ac_connect(c, (struct sockaddr *)&ss, len), 0);
    cr_assert(tk_loop_until(m, connected_now, c, 3.0));
    char addr[200];
    if (family == AF_INET)
        snprintf(addr, sizeof(addr), "127.0.0.1:%u",
                 ntohs(((struct sockaddr_in *)&ss)->sin_port));
    else if (family == AF_INET6)
        snprintf(addr, sizeof(addr), "[::1]:%u", ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    else
        snprintf(addr, sizeof(addr), "'%s'", ((struct sockaddr_un *)&ss)->sun_path);
    char body[256];
    snprintf(body, sizeof(body), "asyncore.dispatcher connected %s", addr);
    cr_assert_str_eq(describe(c), expect_desc(c, body));
    /* close clears the flags but keeps addr (S12). */
    cr_assert_eq(ac_close(c), 0);
    snprintf(body, sizeof(body), "asyncore.dispatcher %s", addr);
    cr_assert_str_eq(describe(c), expect_desc(c, body));
    finish(m);
    close(l);
}

Test(dispatch_log, describe_client_inet, .timeout = 10,
     .description = "D24 S12: a connected IPv4 client shows ' connected host:port'; once "
                    "closed only the address")
{
    check_describe_client(AF_INET);
}

Test(dispatch_log, describe_client_inet6, .timeout = 10,
     .description = "D24 X14: an IPv6 client shows ' connected [addr]:port'")
{
    check_describe_client(AF_INET6);
}

Test(dispatch_log, describe_client_unix, .timeout = 10,
     .description = "D24 X14: an AF_UNIX client shows the quoted path")
{
    check_describe_client(AF_UNIX);
}

Test(dispatch_log, describe_unnamed_unix_peer, .timeout = 5,
     .description = "D24 D4: an adopted socketpair end shows \" connected ''\"; clearing "
                    "connected leaves \" ''\"")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &defaults_h, "d");
    cr_assert_str_eq(describe(d), expect_desc(d, "asyncore.dispatcher connected ''"));
    ac_set_connected(d, false);
    cr_assert_str_eq(describe(d), expect_desc(d, "asyncore.dispatcher ''"));
    finish(m);
}

Test(dispatch_log, describe_accepting_with_empty_addr, .timeout = 5,
     .description = "D24: ' listening' needs accepting AND a non-empty addr: accepting with "
                    "the empty AF_UNIX address '' is not listening (shows ' connected' if "
                    "connected, as Python does)")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = pair_d(m, &defaults_h, "d");
    ac_set_accepting(d, true);
    cr_assert_str_eq(describe(d), expect_desc(d, "asyncore.dispatcher connected ''"));
    ac_set_connected(d, false);
    cr_assert_str_eq(describe(d), expect_desc(d, "asyncore.dispatcher ''"));
    finish(m);
}

Test(dispatch_log, describe_length_and_truncation, .timeout = 5,
     .description = "D24 X14: ac_describe returns the full length and writes at most size "
                    "bytes, NUL included")
{
    ac_map *m = tk_map();
    ac_dispatcher *d = tk_new(m, &defaults_h, "d");
    const char *full = expect_desc(d, "asyncore.dispatcher");
    char want[512];
    snprintf(want, sizeof(want), "%s", full);
    size_t n = strlen(want);
    cr_assert_eq(ac_describe(d, NULL, 0), n);
    char small[8];
    memset(small, 'x', sizeof(small));
    cr_assert_eq(ac_describe(d, small, sizeof(small)), n);
    cr_assert_eq(small[7], '\0');
    cr_assert_eq(strncmp(small, want, 7), 0);
    char exact[512];
    cr_assert_eq(ac_describe(d, exact, n + 1), n);
    cr_assert_str_eq(exact, want);
    finish(m);
}
