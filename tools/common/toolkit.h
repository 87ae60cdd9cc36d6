/* What every tool of tools/ does the same way: leveled logs on stderr,
 * the library's log lines routed into them, option values checked whole,
 * and as many descriptors as the hard limit allows. */
#ifndef AC_TOOLKIT_H
#define AC_TOOLKIT_H

#include <asyncore.h>

#include <stdbool.h>

enum { TOOL_ERROR, TOOL_WARNING, TOOL_INFO, TOOL_DEBUG };

extern const char *tool_name; /* the prefix of every log line */
extern int tool_verbosity;    /* lines above this level are dropped (default TOOL_INFO) */

/* Name the program: tool_name, and argv[0] too, so that getopt's own
 * messages start with the short name and not with the path it was run by. */
void tool_start(const char *name, char **argv);

/* The end of an option loop, for 'h', 'V' and anything getopt refused:
 * --help prints usage on stdout, --version one "NAME (libasyncore) X.Y.Z"
 * line (both 0); a bad option gets a one-line hint after getopt's own
 * message (2).  Returns the exit status. */
int tool_option_end(int opt, const char *usage);

/* "NAME: LEVEL: message" on stderr, when level <= tool_verbosity. */
void tool_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An ac_log_fn: the library's errors and warnings at those levels, the
 * rest as debug lines. */
void tool_library_log(ac_dispatcher *d, const char *type, const char *msg, void *ctx);

/* ac_map_new with the default poller (AC_POLLER), the log hook set to
 * tool_library_log.  A failure is said in one error line: the library's own
 * words when it logged some ("AC_POLLER=bogus is not epoll, poll or
 * select"), else the errno.  Returns ac_map_new's result. */
int tool_map_new(ac_map **out);

/* A whole decimal number in [min, max] (no sign, nothing after it). */
bool tool_number(const char *s, unsigned long long min, unsigned long long max,
                 unsigned long long *out);

/* Seconds: a whole non-negative decimal, fractions allowed, at most 1e9. */
bool tool_seconds(const char *s, double *out);

/* Raise the soft limit on descriptors to the hard one (each client is one). */
void tool_raise_nofile(void);

#endif
