/* socks5d — a SOCKS5 server (RFC 1928, RFC 1929), with SOCKS4 and 4a on
 * the same port: the demo of Python's asyncore SOCKS server grown into a
 * tool that can replace microsocks (whose command line it takes) or dante.
 *
 * One listener per worker; each accepted client is a session (session.c)
 * that reads the handshake, carries out the request and hands the two
 * sockets to a relay (asyncore_relay.h).  Names are resolved by c-ares
 * inside the loop (asyncore_resolver.h), so a slow lookup holds up only
 * its own client.  With --threads N there are N workers, each a map in
 * its own thread with its own resolver and its own SO_REUSEPORT listener;
 * the main thread is worker 0 and also receives the signals. */
#define _GNU_SOURCE
#include "session.h"
#include "toolkit.h"

#include <asyncore.h>
#include <asyncore_relay.h>
#include <asyncore_resolver.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPT_BACKOFF 0.1 /* seconds accepting pauses after EMFILE and the like */
#define MAX_THREADS 64

struct worker {
    struct s5_worker s; /* its map, resolver and sessions */
    int id;
    pthread_t thread;
    tool_backoff *backoff;
    ac_timer *drain;
    ac_dispatcher *listener;
    bool stopping;
};

static struct {
    /* options */
    const char *listen_ip, *port, *user, *password, *users_file, *bind_ip;
    int backlog, threads;
    long max_conns;
    double drain_timeout;
    /* state */
    struct sockaddr_storage listen_addr;
    socklen_t listen_len;
    bool serving; /* the loops ran: the exit prints the stats */
    struct worker workers[MAX_THREADS];
    int stop_signals;
} S = {
    .listen_ip = "127.0.0.1",
    .port = "1080",
    .backlog = SOMAXCONN,
    .threads = 1,
    .max_conns = 10000,
    .drain_timeout = 10,
};

/* ---------------------------------------------------------- listeners */

static int listener_accepted(ac_dispatcher *d, int fd, const struct sockaddr *addr,
                             socklen_t addrlen)
{
    struct worker *w = ac_user(d);
    atomic_fetch_add(&s5_stats.connections, 1);
    if (atomic_load(&s5_stats.active) >= S.max_conns) {
        atomic_fetch_add(&s5_stats.refused, 1);
        close(fd); /* a plain FIN: the client learns at once */
        return 0;
    }
    s5_session_start(&w->s, fd, addr, addrlen);
    return 0;
}

/* An accept failure that is not "nothing there": EMFILE, ENFILE, ENOBUFS. */
static int listener_error(ac_dispatcher *d, const ac_error *e)
{
    struct worker *w = ac_user(d);
    tool_backoff_pause(w->backoff, NULL, e->op, e->err);
    return 0;
}

static const ac_handlers listener_handlers = {
    .name = "socks5d.listener",
    .handle_accepted = listener_accepted,
    .handle_error = listener_error,
};

static void set_accepting(void *arg, bool on)
{
    struct worker *w = arg;
    if (w->listener)
        ac_set_reading(w->listener, on);
}

static int listener_open(struct worker *w)
{
    ac_dispatcher *d = ac_dispatcher_new(w->s.map, &listener_handlers, w);
    if (!d)
        return -ENOMEM;
    int family = S.listen_addr.ss_family, one = 1, zero = 0;
    int rc = ac_create_socket(d, family, SOCK_STREAM);
    if (rc == 0) {
        int fd = ac_fd(d);
        ac_set_reuse_addr(d);
        if (S.threads > 1 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
            rc = -errno;
        /* "::" takes IPv4 clients too, whatever net.ipv6.bindv6only says. */
        if (family == AF_INET6)
            (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        /* Inherited by the accepted sockets: no system call per client. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (rc == 0)
        rc = ac_bind(d, (const struct sockaddr *)&S.listen_addr, S.listen_len);
    if (rc == 0)
        rc = ac_listen(d, S.backlog);
    if (rc < 0) {
        ac_close(d);
        return rc;
    }
    w->listener = d;
    return 0;
}

/* ------------------------------------------------------------ workers */

static double drain_over(ac_timer *t, void *arg)
{
    (void)t;
    struct worker *w = arg;
    if (w->s.sessions)
        tool_log(TOOL_INFO, "drain timeout: closing the connections left");
    s5_sessions_abort(&w->s);
    ac_close_all(w->s.map, true);
    return -1;
}

/* Stop accepting; the loop ends once the sessions have ended, or the
 * drain timeout ends them. */
static void worker_stop(ac_map *m, void *arg)
{
    (void)m;
    struct worker *w = arg;
    if (w->stopping) { /* asked twice: now */
        drain_over(w->drain, w);
        return;
    }
    w->stopping = true;
    if (w->listener)
        ac_close(w->listener);
    w->listener = NULL;
    tool_backoff_stop(w->backoff);
    if (S.drain_timeout > 0)
        ac_timer_start(w->drain, S.drain_timeout);
    else
        drain_over(w->drain, w);
}

static int worker_open(struct worker *w, int id)
{
    w->id = id;
    int rc = tool_map_new(&w->s.map); /* says why it failed */
    if (rc < 0)
        return rc;
    rc = ac_resolver_new(&w->s.resolver, w->s.map, NULL);
    if (rc < 0) {
        tool_log(TOOL_ERROR, "cannot start the resolver: %s", ac_resolve_strerror(rc));
        return rc;
    }
    w->backoff = tool_backoff_new(w->s.map, ACCEPT_BACKOFF, set_accepting, w);
    w->drain = ac_timer_new(w->s.map, drain_over, w);
    if (!w->backoff || !w->drain) {
        tool_log(TOOL_ERROR, "cannot create worker %d: %s", id, strerror(ENOMEM));
        return -ENOMEM;
    }
    rc = listener_open(w);
    if (rc < 0)
        tool_log(TOOL_ERROR, "cannot listen on %s port %s: %s", S.listen_ip, S.port, strerror(-rc));
    return rc;
}

static void worker_close(struct worker *w)
{
    if (!w->s.map)
        return;
    s5_sessions_abort(&w->s);
    ac_close_all(w->s.map, true);
    ac_resolver_free(w->s.resolver);
    tool_backoff_free(w->backoff);
    ac_timer_free(w->drain);
    ac_map_free(w->s.map); /* runs the finalizers left */
    w->s.map = NULL;
}

static int worker_run(struct worker *w)
{
    int rc = ac_loop(w->s.map, -1.0, AC_FOREVER);
    if (rc < 0 && rc != AC_EXIT_NOW) {
        tool_log(TOOL_ERROR, "worker %d: loop: %s", w->id, strerror(-rc));
        return -1;
    }
    return 0;
}

static void *worker_thread(void *arg)
{
    worker_run(arg);
    ac_relay_cache_release();
    return NULL;
}

/* ------------------------------------------------------------ signals */

/* One line, one write: "stats: connections=... requests by reply ...
 * up=... down=...". */
static void print_stats(void)
{
    char line[1024];
    unsigned long requests = 0;
    for (int i = 0; i < S5_NREPLIES; i++)
        requests += atomic_load(&s5_stats.replies[i]);
    int n = snprintf(line, sizeof line,
                     "%s: stats: connections=%lu active=%ld refused=%lu dropped=%lu "
                     "auth-failed=%lu requests=%lu",
                     tool_name, atomic_load(&s5_stats.connections), atomic_load(&s5_stats.active),
                     atomic_load(&s5_stats.refused), atomic_load(&s5_stats.dropped),
                     atomic_load(&s5_stats.auth_failed), requests);
    for (int i = 0; i < S5_NREPLIES && n > 0 && (size_t)n < sizeof line; i++)
        n += snprintf(line + n, sizeof line - (size_t)n, " %s=%lu",
                      sp_reply_name(i < S5_NREPLIES - 1 ? i : SOCKS4_REJECTED),
                      atomic_load(&s5_stats.replies[i]));
    if (n > 0 && (size_t)n < sizeof line)
        snprintf(line + n, sizeof line - (size_t)n, " up=%llu down=%llu\n",
                 atomic_load(&s5_stats.up), atomic_load(&s5_stats.down));
    fputs(line, stderr);
}

static int on_signal(ac_map *m, int signo, void *arg)
{
    (void)m, (void)arg;
    if (signo == SIGUSR1) {
        print_stats();
        return 0;
    }
    if (S.stop_signals++ == 0)
        tool_log(TOOL_INFO, "%s: no new connections; %ld to finish within %g s", strsignal(signo),
                 atomic_load(&s5_stats.active), S.drain_timeout);
    worker_stop(S.workers[0].s.map, &S.workers[0]);
    for (int i = 1; i < S.threads; i++)
        ac_call_soon_threadsafe(S.workers[i].s.map, worker_stop, &S.workers[i]);
    return 0;
}

/* ------------------------------------------------------------ options */

static const char usage[] =
    "usage: socks5d [OPTIONS]\n"
    "A SOCKS5 server (RFC 1928: CONNECT, BIND, UDP ASSOCIATE; RFC 1929 passwords),\n"
    "with SOCKS4 and SOCKS4a on the same port.\n"
    "\n"
    "  -i, --listen ADDR          address to listen on (default 127.0.0.1;\n"
    "                             \"::\": every address, IPv6 and IPv4)\n"
    "  -p, --port PORT            port to listen on (default 1080; 0: any free port,\n"
    "                             see the log)\n"
    "  -u, --user NAME            require this user name ...\n"
    "  -P, --password PASS        ... and this password (RFC 1929)\n"
    "      --users FILE           require a user of FILE (one user:password a line)\n"
    "  -1, --auth-once            an IP that authenticated once may then connect\n"
    "                             without a password (and use SOCKS4)\n"
    "  -b, --bind-addr ADDR       source address of outgoing connections\n"
    "      --allow CIDR           let in clients of this range only (repeatable;\n"
    "                             default: everyone)\n"
    "      --deny-dest CIDR       refuse destinations in this range (repeatable)\n"
    "      --handshake-timeout S  close clients whose request is not in after S\n"
    "                             seconds (default 10; 0: never)\n"
    "      --connect-timeout S    give up a connect (lookup included) or a BIND\n"
    "                             after S seconds (default 10; 0: never)\n"
    "      --idle-timeout S       close tunnels silent for S seconds\n"
    "                             (default 0: never)\n"
    "      --max-conns N          clients at once; past it they are refused\n"
    "                             (default 10000)\n"
    "      --threads N            worker threads, each with its own listener\n"
    "                             (default 1)\n"
    "      --backlog N            listen backlog (default SOMAXCONN)\n"
    "      --buffer BYTES         bytes held per direction of a tunnel\n"
    "                             (default 131072)\n"
    "      --drain-timeout S      on SIGINT/SIGTERM, time left to live tunnels\n"
    "                             (default 10)\n"
    "  -q, --quiet                no line per request, warnings and errors only\n"
    "                             (twice: errors only)\n"
    "  -v, --verbose              also debug messages\n"
    "  -h, --help                 show this help\n"
    "  -V, --version              show the version\n"
    "\n"
    "Signals: SIGUSR1 prints the stats, SIGINT/SIGTERM drain and exit.\n";

enum {
    OPT_USERS = 256,
    OPT_ALLOW,
    OPT_DENY_DEST,
    OPT_HANDSHAKE_TIMEOUT,
    OPT_CONNECT_TIMEOUT,
    OPT_IDLE_TIMEOUT,
    OPT_MAX_CONNS,
    OPT_THREADS,
    OPT_BACKLOG,
    OPT_BUFFER,
    OPT_DRAIN_TIMEOUT,
};

static const struct option longopts[] = {
    {"listen", required_argument, NULL, 'i'},
    {"port", required_argument, NULL, 'p'},
    {"user", required_argument, NULL, 'u'},
    {"password", required_argument, NULL, 'P'},
    {"users", required_argument, NULL, OPT_USERS},
    {"auth-once", no_argument, NULL, '1'},
    {"bind-addr", required_argument, NULL, 'b'},
    {"allow", required_argument, NULL, OPT_ALLOW},
    {"deny-dest", required_argument, NULL, OPT_DENY_DEST},
    {"handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"backlog", required_argument, NULL, OPT_BACKLOG},
    {"buffer", required_argument, NULL, OPT_BUFFER},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* One option; false when its value is wrong. */
static bool option(int c)
{
    unsigned long long v;
    bool ok = true;
    switch (c) {
    case 'i': S.listen_ip = optarg; break;
    case 'p': ok = tool_number(optarg, 0, 65535, &v), S.port = optarg; break;
    case 'u': S.user = optarg; break;
    case 'P': S.password = optarg; break;
    case OPT_USERS: S.users_file = optarg; break;
    case '1': s5_opt.auth_once = true; break;
    case 'b': S.bind_ip = optarg; break;
    case OPT_ALLOW: ok = cidr_list_add(&s5_opt.allow, optarg) == 0; break;
    case OPT_DENY_DEST: ok = cidr_list_add(&s5_opt.deny_dest, optarg) == 0; break;
    case OPT_HANDSHAKE_TIMEOUT: ok = tool_seconds(optarg, &s5_opt.handshake_timeout); break;
    case OPT_CONNECT_TIMEOUT: ok = tool_seconds(optarg, &s5_opt.connect_timeout); break;
    case OPT_IDLE_TIMEOUT: ok = tool_seconds(optarg, &s5_opt.idle_timeout); break;
    case OPT_MAX_CONNS: ok = tool_number(optarg, 1, LONG_MAX, &v), S.max_conns = (long)v; break;
    case OPT_THREADS: ok = tool_number(optarg, 1, MAX_THREADS, &v), S.threads = (int)v; break;
    case OPT_BACKLOG: ok = tool_number(optarg, 1, INT_MAX, &v), S.backlog = (int)v; break;
    case OPT_BUFFER: ok = tool_number(optarg, 1024, 1 << 30, &v), s5_opt.buffer = (size_t)v; break;
    case OPT_DRAIN_TIMEOUT: ok = tool_seconds(optarg, &S.drain_timeout); break;
    case 'q': tool_verbosity -= tool_verbosity > TOOL_ERROR; break;
    case 'v': tool_verbosity = TOOL_DEBUG; break;
    }
    return ok;
}

/* -1 to go on, else the exit status. */
static int options(int argc, char **argv)
{
    int c;
    s5_opt.handshake_timeout = 10;
    s5_opt.connect_timeout = 10;
    while ((c = getopt_long(argc, argv, "i:p:u:P:b:1qvhV", longopts, NULL)) != -1) {
        if (c == 'h' || c == 'V' || c == '?' || c == ':')
            return tool_option_end(c, usage); /* -h, -V, or getopt said why */
        if (!option(c)) {
            tool_invalid_value(longopts, c, optarg);
            return tool_option_end('?', usage);
        }
    }
    if (!tool_no_operands(argc, argv))
        return tool_option_end('?', usage);
    if (!S.user != !S.password) {
        fprintf(stderr, "%s: -u and -P go together\n", tool_name);
        return tool_option_end('?', usage);
    }
    return -1;
}

/* --------------------------------------------------------------- main */

static bool resolve(const char *host, const char *port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai) {
        tool_log(TOOL_ERROR, "cannot resolve %s: %s", host, gai_strerror(gai));
        return false;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return true;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

/* The users: -u/-P, --users FILE, or none. */
static bool load_users(void)
{
    char err[512];
    if (S.users_file && users_load(S.users_file, &s5_opt.users, err, sizeof err) < 0) {
        tool_log(TOOL_ERROR, "%s", err);
        return false;
    }
    if (S.user && users_add(&s5_opt.users, S.user, S.password) < 0) {
        tool_log(TOOL_ERROR, "-u %s: not a valid user name and password", S.user);
        return false;
    }
    s5_opt.auth = S.users_file || S.user;
    return true;
}

/* Everything before the loops: a failure here exits 1 with nothing
 * listening.  Signals are watched (and so blocked) before the other
 * threads start, so that they inherit the mask and only worker 0 gets
 * them. */
static bool setup(void)
{
    if (!resolve(S.listen_ip, S.port, &S.listen_addr, &S.listen_len) || !load_users())
        return false;
    if (S.bind_ip) {
        if (!resolve(S.bind_ip, NULL, &s5_opt.bind_addr, &s5_opt.bind_len))
            return false;
        s5_opt.bind_len = s5_unmap((const struct sockaddr *)&s5_opt.bind_addr, s5_opt.bind_len,
                                   &s5_opt.bind_addr);
    }
    tool_raise_nofile();
    signal(SIGPIPE, SIG_IGN); /* the relay splices only while SIGPIPE cannot kill */
    ac_set_log_hook(tool_library_log, NULL);
    for (int i = 0; i < S.threads; i++)
        if (worker_open(&S.workers[i], i) < 0)
            return false;
    static const int signals[] = {SIGINT, SIGTERM, SIGUSR1};
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
        if (ac_signal_watch(S.workers[0].s.map, signals[i], on_signal, NULL) < 0) {
            tool_log(TOOL_ERROR, "cannot watch %s", strsignal(signals[i]));
            return false;
        }
    tool_log_listening(ac_fd(S.workers[0].listener), "SOCKS5, SOCKS4 and 4a; authentication %s",
                       s5_opt.auth ? "username/password" : "none");
    if (!s5_opt.auth && !is_loopback(&S.listen_addr))
        tool_log(TOOL_WARNING,
                 "an open proxy: no password is asked of clients on %s, anyone who can reach "
                 "it may use it%s (-u/-P or --users require one)",
                 S.listen_ip, s5_opt.allow.n ? " from the --allow ranges" : "");
    return true;
}

int main(int argc, char **argv)
{
    tool_start("socks5d", argv);
    int status = options(argc, argv);
    if (status < 0) {
        status = 1;
        if (setup()) {
            int started = 1;
            for (; started < S.threads; started++)
                if (pthread_create(&S.workers[started].thread, NULL, worker_thread,
                                   &S.workers[started]) != 0) {
                    tool_log(TOOL_ERROR, "cannot start worker %d", started);
                    break;
                }
            S.serving = started == S.threads;
            if (S.serving && worker_run(&S.workers[0]) == 0)
                status = 0;
            for (int i = 1; i < started; i++) {
                if (status)
                    ac_call_soon_threadsafe(S.workers[i].s.map, worker_stop, &S.workers[i]);
                pthread_join(S.workers[i].thread, NULL);
            }
        }
        for (int i = 0; i < S.threads; i++)
            worker_close(&S.workers[i]);
        ac_relay_cache_release();
        if (S.serving)
            print_stats();
    }
    users_free(&s5_opt.users);
    cidr_list_free(&s5_opt.allow);
    cidr_list_free(&s5_opt.deny_dest);
    s5_trusted_free();
    return status;
}
