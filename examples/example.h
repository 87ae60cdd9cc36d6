/* example.h — the few lines every example needs and none is about:
 * parsing a port, turning "host" + port into a sockaddr, printing an
 * address, and leaving the loop on SIGINT/SIGTERM. */
#ifndef EXAMPLE_H
#define EXAMPLE_H

#include <asyncore.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A TCP port 0-65535 from s, or -1 (no atoi: "80x" and "" are refused). */
static inline int ex_port(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return (errno || end == s || *end || v < 0 || v > 65535) ? -1 : (int)v;
}

/* host (a name only when !numeric) and port into *ss.  The lookup blocks:
 * do it before the loop starts.  0, or a getaddrinfo error code. */
static inline int ex_resolve(const char *host, int port, bool numeric, struct sockaddr_storage *ss,
                             socklen_t *len)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = numeric ? AI_NUMERICHOST : AI_ADDRCONFIG};
    struct addrinfo *res;
    char serv[12]; /* any int, so the compiler can see it fits */
    snprintf(serv, sizeof serv, "%d", port);
    int rc = getaddrinfo(host, serv, &hints, &res);
    if (rc)
        return rc;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* "127.0.0.1:7007" or "[::1]:7007" into buf (at least 64 bytes). */
static inline const char *ex_addr(const struct sockaddr *sa, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
    }
    snprintf(buf, size, sa && sa->sa_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
    return buf;
}

/* The address a bound socket really got into *ss (port 0 asks the kernel
 * to choose); returns its port, or -1. */
static inline int ex_bound_port(int fd, struct sockaddr_storage *ss)
{
    socklen_t len = sizeof *ss;
    if (getsockname(fd, (struct sockaddr *)ss, &len) < 0)
        return -1;
    return ntohs(ss->ss_family == AF_INET6 ? ((struct sockaddr_in6 *)ss)->sin6_port
                                           : ((struct sockaddr_in *)ss)->sin_port);
}

/* getopt starts its messages with argv[0]: make that the short name, not
 * the path the program was run by. */
static inline void ex_name(char **argv, const char *name) { argv[0] = (char *)name; }

/* The end of an option loop: -h prints usage to stdout, -V the version
 * (exit status 0).  Anything else is a usage error (2): getopt or the
 * caller has said what is wrong, and a one-line hint follows. */
static inline int ex_usage(int opt, const char *name, const char *usage)
{
    if (opt == 'V')
        printf("%s (libasyncore) %s\n", name, AC_VERSION_STRING);
    else if (opt == 'h')
        fputs(usage, stdout);
    else
        fprintf(stderr, "Try '%s --help' for more information.\n", name);
    return opt == 'h' || opt == 'V' ? 0 : 2;
}

/* asyncore closes a listener on any accept failure but EAGAIN (W15), so
 * out of descriptors (EMFILE) a server would stop serving for good.  The
 * examples pause accepting instead, and resume after a moment: meanwhile
 * new clients wait in the listen backlog. */
#define EX_ACCEPT_BACKOFF 0.1 /* seconds */

static inline double ex_resume_accepting(ac_timer *t, void *listener)
{
    (void)t;
    ac_set_reading(listener, true);
    return -1;
}

/* For a listener's handle_error; backoff is ac_timer_new(m,
 * ex_resume_accepting, listener), freed in the listener's finalize. */
static inline int ex_pause_accepting(ac_dispatcher *listener, ac_timer *backoff, const char *name,
                                     const ac_error *e)
{
    fprintf(stderr, "%s: %s: %s; accepting again in %g s\n", name, e->op, strerror(e->err),
            EX_ACCEPT_BACKOFF);
    ac_set_reading(listener, false);
    return ac_timer_start(backoff, EX_ACCEPT_BACKOFF) < 0 ? ac_close(listener) : 0;
}

/* A usage error: "NAME: what is wrong", then the one-line hint.  Returns
 * the exit status, 2. */
__attribute__((format(printf, 2, 3))) static inline int ex_bad_usage(const char *name,
                                                                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", name);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", name);
    return 2;
}

static inline int ex_on_signal(ac_map *m, int signo, void *arg)
{
    (void)m;
    if (arg)
        *(int *)arg = signo;
    return AC_EXIT_NOW; /* asyncore's ExitNow: ac_loop returns it */
}

/* The library's log lines, "NAME: TYPE: message" like every other line
 * the program prints (the default hook writes "TYPE: message"). */
static inline void ex_log(ac_dispatcher *d, const char *type, const char *msg, void *name)
{
    (void)d;
    fprintf(stderr, "%s: %s: %s\n", (const char *)name, type, msg);
}

/* A map whose loop SIGINT and SIGTERM end with AC_EXIT_NOW (storing the
 * signal in *got, if not NULL).  A peer gone away must not kill us, so
 * SIGPIPE is ignored.  NULL, after saying why, if that failed. */
static inline ac_map *ex_map_new(const char *name, int *got)
{
    ac_map *m;
    ac_set_log_hook(ex_log, (void *)name);
    int rc = ac_map_new(&m, AC_POLLER_DEFAULT);
    if (rc == -EINVAL && getenv("AC_POLLER"))
        return NULL; /* the library has named AC_POLLER and its value */
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", name, strerror(-rc));
        return NULL;
    }
    signal(SIGPIPE, SIG_IGN);
    if ((rc = ac_signal_watch(m, SIGINT, ex_on_signal, got)) < 0 ||
        (rc = ac_signal_watch(m, SIGTERM, ex_on_signal, got)) < 0) {
        fprintf(stderr, "%s: signals: %s\n", name, strerror(-rc));
        ac_map_free(m);
        return NULL;
    }
    return m;
}

/* The listen backlog of the examples.  The seeds say listen(5); a burst of
 * clients overflows that (and 128), and each one dropped waits a second
 * for its SYN to be sent again.  The kernel caps it at net.core.somaxconn. */
#define EX_BACKLOG SOMAXCONN

/* create_socket, set_reuse_addr, bind and listen: the opening of every
 * asyncore server.  ip must be numeric.  Says why on stderr when it fails;
 * 0 or -errno. */
static inline int ex_listen(ac_dispatcher *d, const char *name, const char *ip, int port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (ex_resolve(ip, port, true, &ss, &len) != 0) {
        fprintf(stderr, "%s: '%s' is not a numeric IPv4 or IPv6 address\n", name, ip);
        return -EINVAL;
    }
    int rc = ac_create_socket(d, ss.ss_family, SOCK_STREAM);
    if (rc == 0) {
        ac_set_reuse_addr(d);
        rc = ac_bind(d, (struct sockaddr *)&ss, len);
    }
    if (rc == 0)
        rc = ac_listen(d, EX_BACKLOG);
    if (rc < 0)
        fprintf(stderr, "%s: cannot listen on %s port %d: %s\n", name, ip, port, strerror(-rc));
    return rc;
}

/* The end of every main: if setup went well (rc 0), run the loop until
 * SIGINT or SIGTERM (or until the map is empty); then close everything and
 * free the map.  Returns the exit status. */
static inline int ex_serve(ac_map *m, const char *name, int rc)
{
    if (rc == 0 && (rc = ac_loop(m, -1.0, AC_FOREVER)) < 0 && rc != AC_EXIT_NOW)
        fprintf(stderr, "%s: loop: %s\n", name, strerror(-rc));
    ac_close_all(m, true);
    ac_map_free(m);
    return rc == 0 || rc == AC_EXIT_NOW ? 0 : 1;
}

#endif
