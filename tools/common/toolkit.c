#include "toolkit.h"

#include <errno.h>
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

void tool_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}
