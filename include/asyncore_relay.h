/* libasyncore — the relay: two connected sockets joined into one stream.
 *
 * A relay takes two connected stream sockets, side a and side b, and moves
 * bytes both ways until both directions are done.  It is the part of a
 * port forwarder or a proxy that runs after the handshake; portfwd and
 * socks5d are built on it.  It is made of two dispatchers of the map and
 * the public asyncore API only (asyncore.h).  Rule ids such as S18 or D8
 * are explained in docs/semantics.md.
 *
 *   - Bounded memory.  Each direction holds at most `buffer_size` bytes
 *     (default AC_RELAY_BUFFER); while a direction is full, reading from
 *     its source is paused (ac_set_reading), so whatever the peers do the
 *     relay never holds more.  Buffers are taken from a per-thread cache
 *     when bytes must wait and given back as soon as they have left: an
 *     idle relay holds no buffer at all.
 *   - Half-close.  EOF from one side becomes shutdown(SHUT_WR) on the other
 *     once every byte read before it has been written; the other direction
 *     keeps flowing until it ends too.  No byte is dropped on a clean
 *     close.
 *   - Resets.  A reset (or another I/O failure) on one side ends the relay
 *     at once: the other side is closed with SO_LINGER 0, so it sees a
 *     reset too, and the failure is reported.
 *   - Zero copy for bulk.  Each direction starts on the buffered path
 *     (recv/sendmsg through a ring: for small messages the cheapest, two
 *     system calls per message either way) and, on Linux, switches to
 *     splice(2) through a pipe (socket -> pipe -> socket, the bytes never
 *     enter user space) after one read of at least AC_RELAY_SPLICE_AFTER
 *     bytes or one that filled the ring; splice_always splices from the
 *     first byte, no_splice never.  Where splice is refused (a descriptor
 *     that does not support it, no pipe left) the direction stays on the
 *     buffered path.  The stats say which path each direction used.
 *     Because splice(2) into a socket whose peer is gone raises SIGPIPE (it
 *     has no MSG_NOSIGNAL), splice is only used while SIGPIPE is ignored,
 *     handled or blocked; that is checked once per relay, when its first
 *     direction would switch.
 *   - Counters: bytes each way, start and end time, how it ended, through
 *     a completion callback that runs exactly once.
 *
 * A relay belongs to its map's thread, as dispatchers do.  The relay's
 * dispatchers are its own: do not close them or change their handlers.
 */
#ifndef ASYNCORE_RELAY_H
#define ASYNCORE_RELAY_H

#include "asyncore.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default bytes held per direction. */
#define AC_RELAY_BUFFER (128 * 1024)

/* A read of at least this many bytes switches its direction to splice(2)
 * (see "Zero copy" above). */
#define AC_RELAY_SPLICE_AFTER (16 * 1024)

/* Sides and directions.  Direction AC_RELAY_AB moves what side a sends to
 * side b; AC_RELAY_BA the other way. */
#define AC_RELAY_A 0
#define AC_RELAY_B 1
#define AC_RELAY_AB 0
#define AC_RELAY_BA 1

typedef struct ac_relay ac_relay;

/* How a relay ended. */
typedef enum ac_relay_end {
    AC_RELAY_RUNNING = 0,     /* not yet (live stats) */
    AC_RELAY_CLEAN,           /* EOF both ways, every byte delivered */
    AC_RELAY_RESET,           /* `side` reset the connection (ECONNRESET, EPIPE) */
    AC_RELAY_ERROR,           /* another I/O failure on `side` (err) */
    AC_RELAY_CONNECT_FAILED,  /* side b's connect failed (err) */
    AC_RELAY_CONNECT_TIMEOUT, /* side b did not connect within connect_timeout */
    AC_RELAY_IDLE_TIMEOUT,    /* no byte either way for idle_timeout */
    AC_RELAY_ABORTED,         /* ac_relay_abort(), or the map closed the sides */
} ac_relay_end;

/* The counters of one relay. */
typedef struct ac_relay_stats {
    uint64_t bytes[2]; /* [AC_RELAY_AB], [AC_RELAY_BA]: bytes delivered */
    double start, end; /* ac_now() of the map at creation and at the end (0: running) */
    ac_relay_end how;
    int side;         /* the side the end came from: AC_RELAY_A, AC_RELAY_B, -1 */
    int err;          /* positive errno of a failure, else 0 */
    int first_eof;    /* the side whose EOF came first, -1 if none yet */
    bool spliced[2];  /* per direction: bytes moved with splice(2) */
    bool buffered[2]; /* per direction: bytes moved through the buffered path */
} ac_relay_stats;

/* The completion callback: runs once, when the relay has ended and both
 * sockets are closed.  st is borrowed for the call.  r is still valid
 * during the call (ac_relay_stats works) and must not be used after. */
typedef void (*ac_relay_done_fn)(ac_relay *r, const ac_relay_stats *st, void *arg);

/* Options.  All zero (or a NULL pointer) means the defaults. */
typedef struct ac_relay_config {
    size_t buffer_size;     /* bytes held per direction; 0 = AC_RELAY_BUFFER */
    bool no_splice;         /* always the buffered path */
    bool splice_always;     /* splice from the first byte (default: after a bulk read) */
    bool nagle;             /* leave TCP_NODELAY as the caller set it (default: the relay
                               sets TCP_NODELAY on both sides) */
    bool b_connecting;      /* fd_b's non-blocking connect is still in progress */
    double connect_timeout; /* seconds for b_connecting; 0 = no limit */
    double idle_timeout;    /* seconds without a byte either way; 0 = no limit */
} ac_relay_config;

/* Join fd_a and fd_b (connected stream sockets; with cfg->b_connecting,
 * fd_b may still be connecting: reading side a waits until it has, and a
 * failure ends the relay with AC_RELAY_CONNECT_FAILED and a plain close of
 * side a).  A connection the remote accepted is established even when it
 * failed before the map saw the connect complete (say the remote sent a
 * few bytes and reset at once): those bytes reach side a, then the reset,
 * and the end is AC_RELAY_RESET (or AC_RELAY_ERROR), as it would be for
 * any established connection.  Both descriptors
 * belong to the relay from now on.  Their blocking mode does not matter:
 * the relay's reads and writes all say MSG_DONTWAIT, and a relay whose
 * direction switches to splice makes both non-blocking then (splice has
 * no such flag); a relay that never splices changes neither.  done (may
 * be NULL) runs once when it ends.  Stores the relay in *out (out may be
 * NULL).  Returns 0, -EINVAL (bad descriptor or option), -ENOMEM; on
 * failure the descriptors are still the caller's and done never runs.
 * A descriptor that is not an open socket is found by the TCP_NODELAY
 * the relay sets (-EINVAL); with cfg->nagle the relay makes no system
 * call at all here, and such a descriptor fails the relay at its first
 * read or write instead (done runs with AC_RELAY_ERROR). */
AC_EXTERN int ac_relay_new(ac_relay **out, ac_map *m, int fd_a, int fd_b,
                           const ac_relay_config *cfg, ac_relay_done_fn done, void *arg);

/* Queue bytes to be written to side `to` before anything the relay reads
 * for it: bytes a handshake read ahead, a greeting.  Copies them.  Only
 * before that direction has moved anything (-EBUSY after), and at most
 * buffer_size bytes in all (-ENOBUFS).  0 or -errno. */
AC_EXTERN int ac_relay_push(ac_relay *r, int to, const void *data, size_t len);

/* End the relay now: both sides are closed (with SO_LINGER 0 when rst),
 * bytes still held are dropped, and done runs with AC_RELAY_ABORTED
 * before this returns.  Nothing happens for a relay that has ended. */
AC_EXTERN void ac_relay_abort(ac_relay *r, bool rst);

/* The live counters (how = AC_RELAY_RUNNING until the end). */
AC_EXTERN void ac_relay_stats_get(const ac_relay *r, ac_relay_stats *out);

/* The dispatcher of side AC_RELAY_A or AC_RELAY_B (for ac_describe,
 * ac_addr, ac_fd); NULL once the relay has ended. */
AC_EXTERN ac_dispatcher *ac_relay_side(const ac_relay *r, int side);

/* The user argument given to ac_relay_new. */
AC_EXTERN void *ac_relay_arg(const ac_relay *r);

/* "clean", "reset", "error", "connect-failed", "connect-timeout",
 * "idle-timeout", "aborted" ("running" for AC_RELAY_RUNNING). */
AC_EXTERN const char *ac_relay_end_name(ac_relay_end how);

/* Release the calling thread's cache of pipes and buffers (a thread that
 * ran relays calls it before it ends, to give the descriptors back). */
AC_EXTERN void ac_relay_cache_release(void);

#ifdef __cplusplus
}
#endif
#endif /* ASYNCORE_RELAY_H */
