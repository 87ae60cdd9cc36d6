/* What every tool of tools/ does the same way: leveled logs on stderr,
 * the library's log lines routed into them, option values checked whole,
 * addresses as text, the startup line of a listener, accepting that
 * pauses when descriptors run out, and as many descriptors as the hard
 * limit allows. */
#ifndef AC_TOOLKIT_H
#define AC_TOOLKIT_H

#include <asyncore.h>

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

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

/* After an option whose value tool_number or tool_seconds refused:
 * "NAME: invalid value for --LONG: 'VALUE'" on stderr, LONG being the
 * name longopts gives opt. */
void tool_invalid_value(const struct option *longopts, int opt, const char *value);

/* After the option loop: true when argv holds nothing past the options;
 * else "NAME: unexpected argument 'X'" on stderr for the first one. */
bool tool_no_operands(int argc, char **argv);

/* Addresses as text for the logs, numeric (no lookups), "?" for what
 * getnameinfo cannot say.  Each returns out. */

/* The host alone: "127.0.0.1", "::1".  An IPv4 client of a "::"
 * listener comes as ::ffff:a.b.c.d and is shown as a.b.c.d. */
const char *tool_host_text(const struct sockaddr *sa, socklen_t len, char *out, size_t size);

/* Host and port as one word: "127.0.0.1:5000", "[::1]:5000". */
const char *tool_peer_text(const struct sockaddr *sa, socklen_t len, char *out, size_t size);

/* The startup line of a listening socket, at level info: "listening on
 * HOST port PORT, " and then fmt.  PORT is the one the kernel chose for
 * port 0, which is how tests and scripts learn it. */
void tool_log_listening(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Accepting that pauses instead of spinning.  An accept that fails for
 * want of descriptors or memory (EMFILE, ENFILE, ENOBUFS) leaves the
 * backlog readable: going on would spin, and asyncore would close the
 * listener (W15).  A tool pauses its listeners for a moment instead; the
 * connections that run go on, and the descriptors they free let it
 * recover. */
typedef struct tool_backoff tool_backoff;

/* A back-off of `seconds` for the listeners of map m.  accepting(arg, on)
 * turns reading off (false) or on (true) on every one of them; it is
 * called with true when a pause is over, and may start another pause
 * from there.  NULL when out of memory. */
tool_backoff *tool_backoff_new(ac_map *m, double seconds, void (*accepting)(void *arg, bool on),
                               void *arg);

/* Pause: "[WHAT: ]OP: ERROR (accepting again in N s)" at level warning,
 * accepting(arg, false), and the timer (re)started.  what may be NULL. */
void tool_backoff_pause(tool_backoff *b, const char *what, const char *op, int err);

/* Whether a pause is running; stop one that is no longer wanted (the tool
 * is stopping: accepting is not turned on again).  NULL is allowed. */
bool tool_backoff_is_active(const tool_backoff *b);
void tool_backoff_stop(tool_backoff *b);
void tool_backoff_free(tool_backoff *b);

/* Raise the soft limit on descriptors to the hard one (each client is one). */
void tool_raise_nofile(void);

#endif
