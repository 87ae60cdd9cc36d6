/* libasyncore — name resolution that does not block the loop (c-ares).
 *
 * A resolver belongs to one map and is driven by it: the sockets c-ares
 * opens are dispatchers of that map, and its timeouts are one ac_timer of
 * the map, armed only while a query is waiting (an idle resolver costs
 * nothing per iteration and holds no descriptor).  No thread is started.
 * Numeric addresses and names of /etc/hosts are answered without a query.
 *
 * This module is a library of its own, libasyncore-resolver (pkg-config
 * asyncore-resolver), on top of libasyncore and c-ares; the core does not
 * need it.  Like everything of a map, a resolver is used from the map's
 * thread only.
 *
 * Callbacks never run inside the call that started the request: a result
 * known at once (a numeric address, /etc/hosts) is delivered by the loop,
 * at its next iteration, through a timer of the map.  Like every timer it
 * runs only while the loop does, and ac_loop returns when the map has no
 * channel left (L4): a program whose map is otherwise empty keeps a
 * channel in it.  A call that fails (returns < 0) never calls its
 * callback.  A request that was cancelled never calls it either.  A
 * callback may start, cancel or free anything, its own resolver included.
 *
 * c-ares has no per-query cancel: a cancelled lookup's query stays with
 * c-ares (and so its socket and timer in the map) until it is answered or
 * times out; only its callback is gone.  Numeric IPv6 addresses with a
 * scope ("fe80::1%eth0") are not understood as addresses.
 */
#ifndef ASYNCORE_RESOLVER_H
#define ASYNCORE_RESOLVER_H

#include "asyncore.h"

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Failures of a lookup that have no errno of their own.  Like AC_EXIT_NOW
 * they are negative and outside the errno range; ac_resolve_error_name()
 * and ac_resolve_strerror() name every status a callback may get. */
#define AC_EAI_NONAME (-10100) /* the name does not exist, or has no address of that family */
#define AC_EAI_AGAIN (-10101)  /* the servers failed or refused (try again later) */
#define AC_EAI_FAIL (-10102)   /* a malformed or unusable answer */
/* Besides: -ETIMEDOUT (no answer in time), -EINVAL (not a valid host name),
 * -ENOMEM, -ECONNREFUSED and the other connect errors (ac_resolver_connect),
 * -EACCES (every address was refused by the filter). */

typedef struct ac_resolver ac_resolver;
typedef struct ac_resolve_req ac_resolve_req; /* a lookup in flight */
typedef struct ac_connect_req ac_connect_req; /* a connect by name in flight */

/* Options of a resolver.  All zero (or a NULL pointer) means the system's
 * configuration (/etc/resolv.conf, /etc/hosts). */
typedef struct ac_resolver_config {
    /* Seconds before the first retry; c-ares 1.18.1 doubles it after each
     * round of the servers, so one server and `tries` tries wait
     * timeout * (2^tries - 1) in all.  0 = resolv.conf's, else 5 s. */
    double timeout;
    int tries;           /* attempts per server; 0 = resolv.conf's, else 4 */
    const char *servers; /* "127.0.0.1:5353,[::1]:53": these servers instead of resolv.conf */
} ac_resolver_config;

/* One address of a result, with the port asked for already in it. */
typedef struct ac_address {
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } u;
    socklen_t len;
} ac_address;

/* The result of ac_resolve: status 0 and n >= 1 addresses (borrowed for
 * the call), or a negative status and n == 0. */
typedef void (*ac_resolve_fn)(void *arg, int status, const ac_address *addrs, size_t n);

/* The result of a connect by name: fd >= 0 is a connected, non-blocking
 * TCP socket, now the callback's, and addr the address it connected to;
 * fd < 0 is the error (the last attempt's, see ac_resolver_connect), and
 * addr the last address tried (NULL if none was). */
typedef void (*ac_connected_fn)(void *arg, int fd, const struct sockaddr *addr, socklen_t len);

/* Options of a connect by name.  All zero means: both families, IPv6
 * first, the RFC 8305 head start, no time limit, no source address. */
typedef struct ac_connect_config {
    int family;           /* AF_UNSPEC (default), AF_INET or AF_INET6 */
    double attempt_delay; /* head start of each attempt; 0 = 0.25 s (RFC 8305) */
    double timeout;       /* seconds for the whole connect, resolution included; 0 = none */
    const struct sockaddr *bind_addr; /* source address (port 0 for any); NULL = the kernel's */
    socklen_t bind_len;
    /* Asked for each address before it is tried (after resolution), with
     * the arg of ac_resolver_connect (with ac_connect_name: the dispatcher);
     * false skips it.  When every address is skipped the result is -EACCES. */
    bool (*filter)(void *arg, const struct sockaddr *addr, socklen_t len);
} ac_connect_config;

/* ------------------------------------------------------------ resolver */

/* Create a resolver for map m (NULL: the default map).  Stores it in
 * *out; returns 0, -ENOMEM, -EINVAL (a bad option: a negative timeout or
 * tries, an empty or malformed servers list), or -EIO (c-ares could not
 * start).  It opens no descriptor until a query needs one. */
AC_EXTERN int ac_resolver_new(ac_resolver **out, ac_map *m, const ac_resolver_config *cfg);

/* Free r.  Requests still in flight end without their callbacks, lookups
 * and connects by name alike (a dispatcher of ac_connect_name is left as
 * it is, without a socket, and hears nothing more).  Call it before
 * ac_map_free; ac_close_all on the map first is fine (c-ares then touches
 * no descriptor: the numbers may be someone else's).  Allowed inside a
 * callback of r. */
AC_EXTERN void ac_resolver_free(ac_resolver *r);

/* --------------------------------------------------------------- lookup */

/* Look host up: its addresses of `family` (AF_UNSPEC for both: IPv6 first,
 * then IPv4, as RFC 8305 orders them), each with `port` (host order) in
 * it.  cb(arg, ...) runs once, from the loop.  Stores the request in *out
 * (out may be NULL) for ac_resolve_cancel; it is valid until cb returns.
 * A numeric address is its own answer (an address of the other family
 * than the one asked for: AC_EAI_NONAME); a name goes to /etc/hosts, then
 * to the servers.  Returns 0, -EINVAL (empty or overlong name, bad family,
 * no cb or r), -ENOMEM. */
AC_EXTERN int ac_resolve(ac_resolve_req **out, ac_resolver *r, const char *host, uint16_t port,
                         int family, ac_resolve_fn cb, void *arg);

/* Cancel a lookup in flight: its callback will not run.  q must not be
 * used afterwards.  Never call it for a request whose callback has run. */
AC_EXTERN void ac_resolve_cancel(ac_resolve_req *q);

/* "AC_EAI_NONAME", "ETIMEDOUT", ... for any status (or "OK" for 0), and a
 * sentence for it ("name does not resolve", strerror for an errno).  The
 * positive form handle_error gets (ac_connect_name) is accepted too. */
AC_EXTERN const char *ac_resolve_error_name(int status);
AC_EXTERN const char *ac_resolve_strerror(int status);

/* ------------------------------------------------------ connect by name */

/* Resolve host, then connect to its addresses in turn, Happy Eyeballs
 * style (RFC 8305): addresses alternate between the families, IPv6 first;
 * each attempt gets attempt_delay seconds of head start before the next
 * one starts alongside it; the first to connect wins and the others are
 * closed.  cfg->filter is asked for each address before it is tried (a
 * proxy checks its destination rules there, after resolution).  When all
 * fail, cb gets the last attempt's error (-ECONNREFUSED, ...), a failed
 * lookup's status, -EACCES if the filter refused them all, or -ETIMEDOUT
 * at cfg->timeout; -ECONNABORTED when someone else closed an attempt's
 * dispatcher (ac_close_all).  With bind_addr only addresses of its family
 * are looked up and tried.  cb runs once, from the loop; *out (may be
 * NULL) is for ac_resolver_connect_cancel until then.  Returns 0, -ENOMEM,
 * -EINVAL (no cb, a bad family, a negative delay or timeout, a bind_addr
 * that is not IPv4 or IPv6 or not of cfg->family).  cfg may be NULL (all
 * zero); it is copied. */
AC_EXTERN int ac_resolver_connect(ac_connect_req **out, ac_resolver *r, const char *host,
                                  uint16_t port, const ac_connect_config *cfg, ac_connected_fn cb,
                                  void *arg);

/* Cancel a connect by name in flight: every socket it opened is closed and
 * cb will not run.  c must not be used afterwards; never call it from cb
 * or after cb ran (c is gone by then). */
AC_EXTERN void ac_resolver_connect_cancel(ac_connect_req *c);

/* Connect dispatcher d by name (asyncore's connect((host, port)), without
 * the blocking lookup).  d must have no socket yet.  On success d gets the
 * connected socket and its handle_connect runs, as after ac_connect (D15);
 * on failure its handle_error runs with op "connect" (or "resolve" for a
 * lookup that failed, "attach" if d could not take the socket) and err
 * the positive status (a positive errno, or -AC_EAI_*), made the current
 * error (ac_current_error).  Deviation (L17): a non-zero return of that
 * handle_error, which runs from a timer or another channel's event, stops
 * the loop with AC_EXIT_NOW (ac_loop_stop), not with its own value.
 * Closing d before that cancels the connect: nothing is called for it any
 * more.  The filter's arg is d.  d's close hook (ac_set_close_hook) is
 * taken until then.  Returns 0, -EINVAL (d closed, bad arguments),
 * -EISCONN (d has a socket), -EBUSY (d's close hook is taken, e.g. by a
 * connect by name in flight), -ENOMEM; on failure nothing runs. */
AC_EXTERN int ac_connect_name(ac_dispatcher *d, ac_resolver *r, const char *host, uint16_t port,
                              const ac_connect_config *cfg);

#ifdef __cplusplus
}
#endif
#endif /* ASYNCORE_RESOLVER_H */
