#include "toolkit.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

const char *tool_name = "tool";
int tool_verbosity = TOOL_INFO;
static long tool_library_reports; /* warnings and errors tool_library_log has passed on */

void tool_start(const char *name, char **argv)
{
    tool_name = name;
    argv[0] = (char *)name;
}

int tool_option_end(int opt, const char *usage)
{
    if (opt == 'h') {
        fputs(usage, stdout);
        return 0;
    }
    if (opt == 'V') {
        printf("%s (libasyncore) %s\n", tool_name, AC_VERSION_STRING);
        return 0;
    }
    fprintf(stderr, "Try '%s --help' for more information.\n", tool_name);
    return 2;
}

void tool_log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    if (level > tool_verbosity)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s: %s\n", tool_name, names[level], line);
}

void tool_library_log(ac_dispatcher *d, const char *type, const char *msg, void *ctx)
{
    (void)d, (void)ctx;
    int level = TOOL_DEBUG;
    if (type && !strcmp(type, "error"))
        level = TOOL_ERROR;
    else if (type && !strcmp(type, "warning"))
        level = TOOL_WARNING;
    tool_library_reports += level != TOOL_DEBUG;
    tool_log(level, "%s", msg);
}

int tool_map_new(ac_map **out)
{
    ac_set_log_hook(tool_library_log, NULL);
    long reports = tool_library_reports;
    int rc = ac_map_new(out, AC_POLLER_DEFAULT);
    if (rc < 0 && reports == tool_library_reports)
        tool_log(TOOL_ERROR, "cannot create the map: %s", strerror(-rc));
    return rc;
}

bool tool_number(const char *s, unsigned long long min, unsigned long long max,
                 unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool tool_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0 && v <= 1e9))
        return false;
    *out = v;
    return true;
}

void tool_invalid_value(const struct option *longopts, int opt, const char *value)
{
    for (const struct option *o = longopts; o->name; o++)
        if (o->val == opt) {
            fprintf(stderr, "%s: invalid value for --%s: '%s'\n", tool_name, o->name, value);
            return;
        }
}

bool tool_no_operands(int argc, char **argv)
{
    if (optind >= argc)
        return true;
    fprintf(stderr, "%s: unexpected argument '%s'\n", tool_name, argv[optind]);
    return false;
}

/* ------------------------------------------------------ addresses */

/* getnameinfo, numeric.  On failure both are "?": it may have written
 * part of them. */
static bool numeric(const struct sockaddr *sa, socklen_t len, char host[NI_MAXHOST],
                    char serv[NI_MAXSERV])
{
    int flags = NI_NUMERICHOST | NI_NUMERICSERV;
    if (getnameinfo(sa, len, host, NI_MAXHOST, serv, NI_MAXSERV, flags) == 0)
        return true;
    strcpy(host, "?");
    strcpy(serv, "?");
    return false;
}

const char *tool_host_text(const struct sockaddr *sa, socklen_t len, char *out, size_t size)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
    struct sockaddr_in v4 = {.sin_family = AF_INET};
    if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
        memcpy(&v4.sin_addr, &v6->sin6_addr.s6_addr[12], 4);
        v4.sin_port = v6->sin6_port;
        sa = (const struct sockaddr *)&v4;
        len = sizeof v4;
    }
    numeric(sa, len, host, serv);
    snprintf(out, size, "%s", host);
    return out;
}

const char *tool_peer_text(const struct sockaddr *sa, socklen_t len, char *out, size_t size)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (!numeric(sa, len, host, serv))
        snprintf(out, size, "?");
    else
        snprintf(out, size, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
    return out;
}

void tool_log_listening(int fd, const char *fmt, ...)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?", what[512];
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        numeric((struct sockaddr *)&ss, len, host, serv);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    tool_log(TOOL_INFO, "listening on %s port %s, %s", host, serv, what);
}

/* -------------------------------------------------------- back-off */

struct tool_backoff {
    ac_timer *timer;
    double seconds;
    void (*accepting)(void *arg, bool on);
    void *arg;
};

static double backoff_over(ac_timer *t, void *arg)
{
    (void)t;
    tool_backoff *b = arg;
    b->accepting(b->arg, true); /* may pause again: the timer is then running anew */
    return -1;
}

tool_backoff *tool_backoff_new(ac_map *m, double seconds, void (*accepting)(void *arg, bool on),
                               void *arg)
{
    tool_backoff *b = malloc(sizeof *b);
    if (!b)
        return NULL;
    *b = (tool_backoff){.seconds = seconds, .accepting = accepting, .arg = arg};
    if (!(b->timer = ac_timer_new(m, backoff_over, b))) {
        free(b);
        return NULL;
    }
    return b;
}

void tool_backoff_pause(tool_backoff *b, const char *what, const char *op, int err)
{
    tool_log(TOOL_WARNING, "%s%s%s: %s (accepting again in %g s)", what ? what : "",
             what ? ": " : "", op, strerror(err), b->seconds);
    b->accepting(b->arg, false);
    ac_timer_start(b->timer, b->seconds);
}

bool tool_backoff_is_active(const tool_backoff *b) { return b && ac_timer_is_active(b->timer); }

void tool_backoff_stop(tool_backoff *b)
{
    if (b)
        ac_timer_stop(b->timer);
}

void tool_backoff_free(tool_backoff *b)
{
    if (!b)
        return;
    ac_timer_free(b->timer);
    free(b);
}

/* ----------------------------------------------------------- limits */

void tool_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}
