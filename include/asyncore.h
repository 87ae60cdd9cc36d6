/* libasyncore — Python's asyncore in C.
 *
 * A map of channels (dispatchers), a loop that waits on their sockets and
 * turns readiness into handler calls, a buffered sender, a file dispatcher,
 * plus timers, signals and a thread-safe wake-up.  The behaviour follows
 * asyncore rule by rule; rule ids such as L4, D8, S11 or F7 are explained
 * in docs/semantics.md.  Every deliberate deviation from a rule is written
 * next to the function it concerns, marked "Deviation".
 *
 * Conventions
 *   - Functions return >= 0 on success and a negative errno on failure.
 *   - Handlers return 0 (fine), a negative errno ("raised": routed by the
 *     loop's guard, L11/L14), or AC_EXIT_NOW (leave the loop, L16).
 *   - The map owns every dispatcher.  ac_close() closes the descriptor at
 *     once; the memory is released after the current dispatch, right after
 *     the handlers' finalize() has run.  Never free() a dispatcher.
 *   - A map and its dispatchers belong to one thread (X20); only
 *     ac_call_soon_threadsafe() and ac_wakeup() may be called from others.
 *   - The library never prints; everything goes through the log hook.
 */
#ifndef ASYNCORE_H
#define ASYNCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define AC_EXTERN __attribute__((visibility("default")))
#define AC_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define AC_EXTERN
#define AC_PRINTF(f, a)
#endif

#define AC_VERSION_MAJOR 0
#define AC_VERSION_MINOR 1
#define AC_VERSION_PATCH 0
#define AC_VERSION_STRING "0.1.0"

/* The exit request (asyncore's ExitNow, L16).  A handler returns it to
 * abandon the rest of the iteration; ac_loop() then returns it.  It is
 * negative but no errno has this value. */
#define AC_EXIT_NOW (-10000)

/* ac_loop()'s count for "no count" (Python's count=None, L4). */
#define AC_FOREVER (-1L - 0x7fffffffL)

/* Default chunk cap of one send of the buffered sender (S16). */
#define AC_SEND_CHUNK 65536

/* Pollers (L3, L20).  AC_POLLER_DEFAULT is epoll unless the environment
 * variable AC_POLLER names another ("epoll", "poll" or "select"): that is
 * how a test suite runs once per backend.  AC_POLLER_POLL is asyncore's
 * use_poll=True, AC_POLLER_SELECT its use_poll=False.
 *
 * Deviation (L12, W2): select() cannot wait on a descriptor >= FD_SETSIZE,
 * and in asyncore one such channel makes every wait fail, stopping the
 * loop for all.  Here a select map refuses it when it is registered
 * (ac_attach, ac_set_socket, ac_create_socket, ac_add_channel, ac_set_file,
 * ac_map_set_poller): the call fails with -EMFILE, an "error" line naming
 * the descriptor goes to the log hook, and only that channel fails.
 *
 * A descriptor closed behind the library's back (close(2) instead of
 * ac_close, L18) differs by poller: poll reports POLLNVAL, so handle_close
 * runs; select's wait fails with -EBADF, which leaves ac_loop at every
 * iteration; epoll (X8) watches the socket, not the number: if nothing else
 * refers to the socket the kernel drops it silently and the channel never
 * hears of it again, while a socket still open elsewhere (dup, fork) goes
 * on being reported to the channel, whose calls on the closed number then
 * fail with EBADF (a disconnected errno: handle_close), or reach whatever
 * socket got that number since.  Close through the library. */
typedef enum ac_poller_kind {
    AC_POLLER_DEFAULT = 0,
    AC_POLLER_EPOLL,
    AC_POLLER_POLL,
    AC_POLLER_SELECT,
} ac_poller_kind;

typedef struct ac_map ac_map;
typedef struct ac_dispatcher ac_dispatcher;
typedef struct ac_timer ac_timer;

/* The failure being handled (D19, D20, X3): the stand-in for Python's
 * current exception and compact_traceback.  `op` is a static string naming
 * the operation ("recv", "connect", "SO_ERROR", "handle_read", ...). */
typedef struct ac_error {
    int err;          /* positive errno */
    const char *op;   /* operation that failed */
    const char *file; /* where it was raised */
    const char *func;
    int line;
} ac_error;

/* The handler table: asyncore's overridable methods (X1).  Any entry may be
 * NULL, meaning the layer's function (buffered sender S17, chat C19/C20) or
 * else asyncore's default (D12-D19).  Share one `static const` table
 * between dispatchers of a kind.
 *
 * Predicates: a dispatcher whose table has `readable` or `writable` is
 * asked both, once per iteration, in map order (L6).  A dispatcher without
 * them costs nothing per iteration: its interest follows its state (X7):
 * plain = readable and writable unless accepting; buffered = S18; chat =
 * C18; and never while paused (ac_set_reading, ac_set_writing). */
typedef struct ac_handlers {
    const char *name;                    /* kind name for ac_describe (D24) */
    const char *const *ignore_log_types; /* NULL-terminated; NULL = {"warning"} (D22) */

    bool (*readable)(ac_dispatcher *d);
    bool (*writable)(ac_dispatcher *d);
    int (*handle_read)(ac_dispatcher *d);    /* default: log "unhandled read event" (D12) */
    int (*handle_write)(ac_dispatcher *d);   /* D13; buffered: ac_initiate_send (S17) */
    int (*handle_expt)(ac_dispatcher *d);    /* D14 */
    int (*handle_connect)(ac_dispatcher *d); /* D15 */
    int (*handle_accept)(ac_dispatcher *d);  /* D16: accept once, then handle_accepted */
    /* D17.  fd is the accepted connection, owned by the handler from now on
     * (the default closes it).  addr is borrowed for the call. */
    int (*handle_accepted)(ac_dispatcher *d, int fd, const struct sockaddr *addr,
                           socklen_t addrlen);
    int (*handle_close)(ac_dispatcher *d); /* D18: log, then ac_close */
    /* D19.  e is the failure being handled.  A non-zero return leaves
     * ac_loop() with that value at once (L17). */
    int (*handle_error)(ac_dispatcher *d, const ac_error *e);

    /* Beyond asyncore. */
    int (*handle_timeout)(ac_dispatcher *d);    /* idle timeout; default: handle_close */
    int (*handle_high_water)(ac_dispatcher *d); /* buffered output rose above the high mark */
    int (*handle_low_water)(ac_dispatcher *d);  /* ... and fell back to the low mark */

    /* asynchat (asynchat.h): chat channels only. */
    int (*collect_incoming_data)(ac_dispatcher *d, const void *data, size_t len);
    int (*found_terminator)(ac_dispatcher *d);

    /* Last call for d, after it was closed and the dispatch that closed it
     * has ended: free your own state here (X4).  d's memory goes right after. */
    void (*finalize)(ac_dispatcher *d);
} ac_handlers;

/* ---------------------------------------------------------------- maps */

/* Create a map using the given poller (X6).  Stores it in *out; returns 0,
 * -ENOMEM, -EINVAL, or the poller's -errno.  -EINVAL for AC_POLLER_DEFAULT
 * means that AC_POLLER names no poller; the log hook has then received one
 * "error" line (d NULL) that a program can show as it is:
 * "AC_POLLER=bogus is not epoll, poll or select". */
AC_EXTERN int ac_map_new(ac_map **out, ac_poller_kind kind);

/* The process-wide default map (L1), created on first use with
 * AC_POLLER_DEFAULT; NULL if that failed.  Every function taking a map
 * accepts NULL for it.  Like asyncore's socket_map it is shared by the
 * whole process and is not thread-safe (W22): threads use their own maps. */
AC_EXTERN ac_map *ac_default_map(void);

/* Free an empty map (call ac_close_all first).  Runs the finalizers still
 * pending.  Returns 0, or -EBUSY if channels remain or a loop is running.
 * Freeing the default map is allowed; the next use creates a new one. */
AC_EXTERN int ac_map_free(ac_map *m);

/* Switch the map's poller (asyncore's per-call use_poll, L3).  Not from
 * inside a loop (-EBUSY).  Returns 0 or -errno; on failure the old poller
 * stays.  -EMFILE: the map holds a descriptor the new poller cannot wait
 * on (select, see the pollers above). */
AC_EXTERN int ac_map_set_poller(ac_map *m, ac_poller_kind kind);

/* "epoll", "poll" or "select". */
AC_EXTERN const char *ac_map_poller_name(const ac_map *m);

/* Number of channels registered in the map (len(map)). */
AC_EXTERN size_t ac_map_count(const ac_map *m);

/* The channel registered under fd, or NULL (map[fd]). */
AC_EXTERN ac_dispatcher *ac_map_get(const ac_map *m, int fd);

/* Monotonic time in seconds, as of the start of the current iteration. */
AC_EXTERN double ac_now(const ac_map *m);

/* ---------------------------------------------------------------- loop */

/* asyncore.loop (L3-L9, L16, X3).  Iterate until the map is empty, or count
 * iterations have run (count <= 0 runs none; AC_FOREVER means no count).
 * timeout is in seconds for each wait, 0 = do not block, negative = wait
 * without limit.  Returns 0 when the map emptied or the count ran out;
 * AC_EXIT_NOW when a handler returned it or ac_loop_stop() was called; a
 * negative errno when the wait failed (L12: e.g. -EBADF for a descriptor
 * closed behind the library's back under select; a descriptor >=
 * FD_SETSIZE never gets into a select map, see the pollers above) or a
 * handle_error returned non-zero (L17).  Channels stay in the map; a later
 * call carries on.
 *
 * Deviation (L8, allowed): poll and epoll round a sub-millisecond remainder
 * of the timeout up, not down, so a short timeout never busy-polls (W18).
 * The wait is also cut short by the next timer due.
 * Deviation (X19): calling it from a handler of the same map returns
 * -EBUSY. */
AC_EXTERN int ac_loop(ac_map *m, double timeout, long count);

/* One iteration (asyncore.poll / poll2, L5-L14).  Same results as ac_loop. */
AC_EXTERN int ac_poll(ac_map *m, double timeout);

/* Ask the running loop to return AC_EXIT_NOW as soon as the current handler
 * returns: the rest of the iteration is abandoned (L16). */
AC_EXTERN void ac_loop_stop(ac_map *m);

/* asyncore.close_all (L21).  ac_close() every channel of a snapshot of the
 * map (no handler runs).  A close failing with EBADF is ignored; another
 * failure is ignored when ignore_all, else returned at once with the rest
 * left open and the map not cleared.  Channels without a descriptor that
 * belong to the map are closed too.  Returns 0 or -errno. */
AC_EXTERN int ac_close_all(ac_map *m, bool ignore_all);

/* -------------------------------------------------------- dispatchers */

/* A dispatcher without a socket (D3): not in the map yet, all flags false.
 * m NULL = the default map.  user is yours (ac_user).  Returns NULL only
 * when out of memory. */
AC_EXTERN ac_dispatcher *ac_dispatcher_new(ac_map *m, const ac_handlers *h, void *user);

/* Adopt a socket the way asyncore's dispatcher(sock) does (D4): make fd
 * non-blocking, register it (S2), then connected = true and addr = peer
 * address; if getpeername fails with ENOTCONN or EINVAL, connected stays
 * false and addr none.  Returns 0 or -errno; on failure d is unregistered
 * again and fd is still the caller's.  On success fd belongs to d.
 * -EMFILE: d's map uses select and fd >= FD_SETSIZE (deviation from L12,
 * see the pollers above): close fd, and only this connection fails.
 * The fd given to handle_accepted by the default handle_accept, attached
 * in that call, is non-blocking already: no fcntl is made for it.  (So a
 * handle_accepted that closes that fd must not attach a new descriptor
 * that got the same number without making it non-blocking itself.) */
AC_EXTERN int ac_attach(ac_dispatcher *d, int fd);

/* create_socket (S1): a close-on-exec, non-blocking socket of the given
 * family (AF_INET, AF_INET6, AF_UNIX) and type (SOCK_STREAM, SOCK_DGRAM),
 * registered in d's map.  Returns 0 or -errno; -EMFILE when the map uses
 * select and the new descriptor is >= FD_SETSIZE (deviation from L12, see
 * the pollers above; the new socket is closed, d keeps what it had).
 * Deviation (W16): a socket d already has is unregistered and closed once
 * the new one exists — unless the new one got the very same number, which
 * means the old descriptor was closed already (outside the library): then
 * only its map entry goes. */
AC_EXTERN int ac_create_socket(ac_dispatcher *d, int family, int type);

/* set_socket (S2): take fd as d's descriptor and register it.  Neither the
 * blocking mode nor any flag changes.  Returns 0 or -errno; -EMFILE as for
 * ac_attach, with d unchanged. */
AC_EXTERN int ac_set_socket(ac_dispatcher *d, int fd);

/* add_channel / del_channel (S3).  add: map[fd] = d, replacing any entry
 * (the replaced channel is left out of the map, still open).  del: remove
 * d's entry; d keeps its descriptor.  Deviation (X4): del removes the entry
 * only if it is d's.  Both return 0, or -EBADF when d has no descriptor;
 * add returns -EMFILE as ac_attach does (d keeps its descriptor). */
AC_EXTERN int ac_add_channel(ac_dispatcher *d);
AC_EXTERN int ac_del_channel(ac_dispatcher *d);

/* set_reuse_addr (S4): SO_REUSEADDR on; failures are ignored. */
AC_EXTERN void ac_set_reuse_addr(ac_dispatcher *d);

/* bind (S6): addr is set first, then bind.  Returns 0 or -errno (addr
 * keeps the requested address). */
AC_EXTERN int ac_bind(ac_dispatcher *d, const struct sockaddr *addr, socklen_t len);

/* listen (S5): accepting = true first, then listen.  0 or -errno. */
AC_EXTERN int ac_listen(ac_dispatcher *d, int backlog);

/* connect (S7).  connected = false, connecting = true, then a non-blocking
 * connect.  In progress: addr is set, returns 0; completion arrives through
 * D6-D8.  Completed at once: addr set, D8 runs before this returns
 * (handle_connect is called; an SO_ERROR failure is returned).  Failed at
 * once: returns -errno with connecting left true and d still in the map;
 * the caller closes it.  Deviation (S7 allowed, W20): EINTR counts as in
 * progress.  No name resolution: pass an address. */
AC_EXTERN int ac_connect(ac_dispatcher *d, const struct sockaddr *addr, socklen_t len);

/* accept (S9).  Returns the new descriptor (close-on-exec, non-blocking,
 * yours) and, if addr is not NULL, its peer address in *addr / *len (set
 * *len to the size of addr first).  -EAGAIN means "nothing" (EAGAIN,
 * EWOULDBLOCK and ECONNABORTED); other failures are -errno (W15). */
AC_EXTERN int ac_accept(ac_dispatcher *d, struct sockaddr *addr, socklen_t *len);

/* send (S10).  One attempt (MSG_NOSIGNAL, X12).  Returns the bytes the
 * kernel took; 0 when it would block; 0 after calling handle_close for an
 * errno of the disconnected set (L15) — or what handle_close returned if
 * that was not 0; other failures -errno.  On a file dispatcher it writes
 * to the descriptor (F8). */
AC_EXTERN ssize_t ac_send(ac_dispatcher *d, const void *buf, size_t len);

/* recv (S11).  One receive of at most len bytes.  Returns the byte count;
 * 0 after calling handle_close on EOF or an errno of the disconnected set
 * (or handle_close's non-zero result); -EAGAIN and other failures -errno.
 * At EOF, a handle_close that fails with an errno of the disconnected set
 * is treated like such a recv failure, as asyncore's try block does:
 * handle_close runs once more and its result counts.
 * Deviation (S11 allowed, W21): len == 0 returns -EINVAL without calling
 * handle_close. */
AC_EXTERN ssize_t ac_recv(ac_dispatcher *d, void *buf, size_t len);

/* Datagram calls, passed straight to the socket as asyncore does through
 * its attribute delegation: -errno on every failure, no handler runs. */
AC_EXTERN ssize_t ac_sendto(ac_dispatcher *d, const void *buf, size_t len,
                            const struct sockaddr *to, socklen_t tolen);
AC_EXTERN ssize_t ac_recvfrom(ac_dispatcher *d, void *buf, size_t len, struct sockaddr *from,
                              socklen_t *fromlen);

/* shutdown(2) on d's socket (SHUT_RD, SHUT_WR, SHUT_RDWR).  0 or -errno. */
AC_EXTERN int ac_shutdown(ac_dispatcher *d, int how);

/* The socket's pending error (SO_ERROR, which reading clears): 0 or a
 * positive errno; -errno if it cannot be read.  Always 0 for files (F3). */
AC_EXTERN int ac_socket_error(ac_dispatcher *d);

/* close (S12).  connected, accepting, connecting = false; out of the map
 * and the poller; the descriptor is closed now (a failure other than
 * ENOTCONN/EBADF is returned, the descriptor is gone anyway).  No handler
 * runs.  Closing again clears the three flags again (a handler may have set
 * them, or D8 after a handle_connect that closed) and returns 0; nothing
 * else happens.  d stays a valid object
 * until the current dispatch ends (S13: its calls fail with EBADF); then
 * finalize runs and the memory is released.  Outside a loop that happens
 * at the next ac_loop/ac_poll call or ac_map_free.  Deviation: a closed
 * dispatcher cannot get a new socket (-EBADF). */
AC_EXTERN int ac_close(ac_dispatcher *d);

/* Take d's descriptor back (beyond asyncore): d leaves the map and the
 * poller and ends as if closed (ac_is_closed is true, no handler runs,
 * finalize runs later as usual, its close hook runs now), but its
 * descriptor stays open and is returned, the caller's from now on, with
 * its flags unchanged (a socket of the library stays non-blocking).  This
 * is how a handshake hands its socket to another object (ac_relay_new).
 * -EBADF: d has no descriptor.  -EINVAL: d is closed, or its transport has
 * state of its own that cannot be handed over (TLS).  -EBUSY: d's layer
 * still holds bytes (a buffered dispatcher's or chat channel's output, a
 * chat channel's input not yet handed over): wait until they are gone
 * (ac_buffered_pending or ac_chat_pending 0), so nothing is dropped
 * silently.  On failure d is unchanged. */
AC_EXTERN int ac_detach(ac_dispatcher *d);

/* The close hook (beyond asyncore), meant for modules that keep a pointer
 * to a dispatcher they do not own (the resolver's ac_connect_name): fn(d,
 * arg) runs once, when d gets closed -- by ac_close, ac_close_all, a
 * default handler, ac_detach, ac_map_free -- right after its descriptor is
 * closed (d has none then, and ac_is_closed is true), so that the module
 * knows it may not call into d any more; d's memory stays valid until its
 * finalize.  The hook may close other dispatchers; it must not free d's
 * map or run a loop.  One slot per dispatcher: 0, -EBUSY when a hook is
 * set already (set NULL first), -EBADF on a closed d, -ENOMEM.  fn NULL
 * empties the slot (0).  A dispatcher without a hook pays nothing. */
typedef void (*ac_close_hook_fn)(ac_dispatcher *d, void *arg);
AC_EXTERN int ac_set_close_hook(ac_dispatcher *d, ac_close_hook_fn fn, void *arg);

/* ----------------------------------------------------- state accessors */

/* The flags of D1/D2.  The library sets them as D5 says; you may set them
 * too (D2), e.g. accepting for an adopted listening socket (D4). */
AC_EXTERN bool ac_is_connected(const ac_dispatcher *d);
AC_EXTERN bool ac_is_accepting(const ac_dispatcher *d);
AC_EXTERN bool ac_is_connecting(const ac_dispatcher *d);
AC_EXTERN bool ac_is_closing(const ac_dispatcher *d);
AC_EXTERN void ac_set_connected(ac_dispatcher *d, bool on);
AC_EXTERN void ac_set_accepting(ac_dispatcher *d, bool on);
AC_EXTERN void ac_set_connecting(ac_dispatcher *d, bool on);
AC_EXTERN void ac_set_closing(ac_dispatcher *d, bool on);

/* True once ac_close() ran on d (its memory goes after this dispatch). */
AC_EXTERN bool ac_is_closed(const ac_dispatcher *d);

/* The descriptor, -1 if none (fileno). */
AC_EXTERN int ac_fd(const ac_dispatcher *d);

/* addr (D1, D5): NULL if none, else the address with its length in *len. */
AC_EXTERN const struct sockaddr *ac_addr(const ac_dispatcher *d, socklen_t *len);

/* The family and type given to ac_create_socket (0, 0 if none). */
AC_EXTERN int ac_family(const ac_dispatcher *d);
AC_EXTERN int ac_socktype(const ac_dispatcher *d);

AC_EXTERN void *ac_user(const ac_dispatcher *d);
AC_EXTERN void ac_set_user(ac_dispatcher *d, void *user);
AC_EXTERN ac_map *ac_map_of(const ac_dispatcher *d);
AC_EXTERN const ac_handlers *ac_handlers_of(const ac_dispatcher *d);
/* Replace the handler table (e.g. after a protocol handshake).  0, or
 * -ENOMEM when the new table brings predicates and the bookkeeping for
 * them cannot be allocated (d keeps its old table). */
AC_EXTERN int ac_set_handlers(ac_dispatcher *d, const ac_handlers *h);

/* debug (D23): only the buffered sender's send reads it (S15). */
AC_EXTERN void ac_set_debug(ac_dispatcher *d, bool on);

/* Pause (false) or resume (true) reading for a dispatcher whose table has
 * no readable predicate: its read interest is dropped until resumed.  This
 * is the input half of backpressure.  Beyond asyncore. */
AC_EXTERN void ac_set_reading(ac_dispatcher *d, bool on);

/* Whether reading is on, i.e. not paused by ac_set_reading (a chat channel
 * also pauses it at its high water mark and past its max input).  Says
 * nothing about a readable predicate's answer.  Beyond asyncore. */
AC_EXTERN bool ac_is_reading(const ac_dispatcher *d);

/* Pause (false) or resume (true) writing for a dispatcher whose table has
 * no writable predicate: while paused it has no write interest whatever
 * its layer's rule says (plain: always writable, L6; buffered: S18; chat:
 * C18), and resuming gives that rule back.  This is how a program that
 * moves its own bytes asks for write events only while it has some to
 * write, at no cost per iteration (X7) and without a predicate that would
 * be asked every iteration (L6).  A write event already reported still
 * runs (D7).  Pausing a connecting dispatcher leaves its connect to be
 * noticed by a read event (D6) only.  A predicate in the table decides
 * alone.  On by default.  Beyond asyncore. */
AC_EXTERN void ac_set_writing(ac_dispatcher *d, bool on);

/* Whether writing is on (not paused by ac_set_writing).  Beyond asyncore. */
AC_EXTERN bool ac_is_writing(const ac_dispatcher *d);

/* Describe d like asyncore's repr (D24): "<kind listening|connected addr
 * at 0xPTR>".  IPv4 "a.b.c.d:port", IPv6 "[addr]:port", AF_UNIX 'path'.
 * Writes at most size bytes (NUL included); returns the full length. */
AC_EXTERN size_t ac_describe(const ac_dispatcher *d, char *buf, size_t size);

/* ------------------------------------------------------------- events */

/* The event translation, exported so tests can drive it directly (X1).
 * Each returns 0 or what the handler or the failing step returned; no guard
 * is applied (the caller routes failures). */
AC_EXTERN int ac_handle_read_event(ac_dispatcher *d);  /* D6 */
AC_EXTERN int ac_handle_write_event(ac_dispatcher *d); /* D7 */
/* D8.  Deviation: inside the loop under poll and epoll, when the event
 * said writable with no error and no hang-up, SO_ERROR is not read (on
 * Linux it is 0 then: a failed connect is reported as an error or hang-up,
 * and under select SO_ERROR is always read).  An error that arrives between
 * the wait and the dispatch is seen by the next recv or send instead. */
AC_EXTERN int ac_handle_connect_event(ac_dispatcher *d);
AC_EXTERN int ac_handle_expt_event(ac_dispatcher *d); /* D9 */

/* Guarded single dispatches, as the loop does them.  select-style (L11):
 * read-, write- or expt-dispatch, any failure to handle_error.
 * poll-style (L13, L14): the steps for revents (POLLIN, POLLOUT, POLLPRI,
 * POLLHUP|POLLERR|POLLNVAL) with no re-check between steps; a disconnected
 * errno goes to handle_close, others to handle_error.  Return 0,
 * AC_EXIT_NOW, or handle_error's / handle_close's non-zero result (L17). */
AC_EXTERN int ac_read(ac_dispatcher *d);
AC_EXTERN int ac_write(ac_dispatcher *d);
AC_EXTERN int ac_exception(ac_dispatcher *d);
AC_EXTERN int ac_readwrite(ac_dispatcher *d, short revents);

/* asyncore's default handlers (section 3), callable from an override the
 * way a Python subclass calls its base class. */
AC_EXTERN int ac_default_handle_read(ac_dispatcher *d);
AC_EXTERN int ac_default_handle_write(ac_dispatcher *d);
AC_EXTERN int ac_default_handle_expt(ac_dispatcher *d);
AC_EXTERN int ac_default_handle_connect(ac_dispatcher *d);
AC_EXTERN int ac_default_handle_accept(ac_dispatcher *d);
AC_EXTERN int ac_default_handle_accepted(ac_dispatcher *d, int fd, const struct sockaddr *addr,
                                         socklen_t addrlen);
AC_EXTERN int ac_default_handle_close(ac_dispatcher *d);
AC_EXTERN int ac_default_handle_error(ac_dispatcher *d, const ac_error *e);

/* Record a failure as the current one (X3) and return -err, for handlers:
 *     return AC_RAISE(d, EPROTO, "parse");
 * The loop's guard then passes it to handle_error (or handle_close). */
#define AC_RAISE(d, err, op) ac_raise((d), (err), (op), __FILE__, __func__, __LINE__)
AC_EXTERN int ac_raise(ac_dispatcher *d, int err, const char *op, const char *file,
                       const char *func, int line);

/* The failure raised in the current dispatch of d's map (D19/D20): each
 * guarded dispatch (ac_read, ac_write, ac_exception, ac_readwrite, and so
 * the loop's) starts with none.  err 0 if none. */
AC_EXTERN const ac_error *ac_current_error(const ac_dispatcher *d);

/* The symbolic name of an errno ("ECONNRESET"), or NULL (D25). */
AC_EXTERN const char *ac_errno_name(int err);

/* ------------------------------------------------------------ logging */

/* The log hook (X15).  type is NULL for ac_log (D21), else the log_info
 * type.  d may be NULL for messages about the map.  The default hook
 * writes "log: msg" / "type: msg" lines to stderr.  Deviation (D22):
 * log_info goes to the hook's stderr, not standard output. */
typedef void (*ac_log_fn)(ac_dispatcher *d, const char *type, const char *msg, void *ctx);

/* Install a hook for the whole process (NULL restores the default).  Set it
 * before starting threads. */
AC_EXTERN void ac_set_log_hook(ac_log_fn fn, void *ctx);

/* log (D21): always passed to the hook. */
AC_EXTERN void ac_log(ac_dispatcher *d, const char *msg);

/* log_info (D22): dropped when type is in d's ignore_log_types; type NULL
 * means "info". */
AC_EXTERN void ac_log_info(ac_dispatcher *d, const char *msg, const char *type);
AC_EXTERN void ac_log_infof(ac_dispatcher *d, const char *type, const char *fmt, ...)
    AC_PRINTF(3, 4);

/* Replace d's ignore_log_types (NULL-terminated, kept by reference: keep
 * it alive).  NULL goes back to the table's, else {"warning"}.  0, or
 * -ENOMEM (the list is kept out of line, allocated at the first call). */
AC_EXTERN int ac_set_ignore_log_types(ac_dispatcher *d, const char *const *types);

/* --------------------------------------------------- buffered sending */

/* dispatcher_with_send (S14-S19): a dispatcher with an output buffer.
 * handle_write defaults to ac_initiate_send; interest follows S18 at no
 * per-iteration cost.  The buffer is a chain of blocks sent with one
 * sendmsg of up to the chunk cap per attempt (X16), so partial sends never
 * copy.  NULL when out of memory. */
AC_EXTERN ac_dispatcher *ac_buffered_new(ac_map *m, const ac_handlers *h, void *user);

/* send (S15): append a copy of data, then ac_initiate_send once.  Returns 0
 * or a propagated failure (-errno).  Logs "sending ..." when debug is on.
 * -EINVAL on a dispatcher that is not buffered; -ENOMEM. */
AC_EXTERN int ac_buffered_send(ac_dispatcher *d, const void *data, size_t len);

/* initiate_send (S16; chat: C16).  One send attempt of at most the chunk
 * cap from the front of the buffer.  Returns 0 or -errno; -EINVAL on a
 * dispatcher without an output buffer (plain, file). */
AC_EXTERN int ac_initiate_send(ac_dispatcher *d);

/* Bytes waiting in the buffer. */
AC_EXTERN size_t ac_buffered_pending(const ac_dispatcher *d);

/* The chunk cap of one send (S16, default AC_SEND_CHUNK). */
AC_EXTERN int ac_buffered_set_chunk(ac_dispatcher *d, size_t chunk);

/* Water marks (beyond asyncore, W3).  When the buffer grows above high,
 * handle_high_water runs once; when it then drains to low or less,
 * handle_low_water runs.  high 0 turns them off.  -EINVAL if low > high.
 * A mark above 2 GiB - 1 counts as 2 GiB - 1 (they are kept in 8 bytes). */
AC_EXTERN int ac_buffered_set_watermarks(ac_dispatcher *d, size_t low, size_t high);

/* Close once everything queued has gone (asynchat's close_when_done, C15,
 * given to the buffered sender too, W12): when the buffer drains,
 * handle_close runs, once.  If it is empty now, that happens at the next
 * write event.  Nothing sent afterwards is accepted (-EPIPE).  0, -ENOMEM
 * (chat), or -EINVAL on a dispatcher without an output buffer. */
AC_EXTERN int ac_close_when_done(ac_dispatcher *d);

/* ------------------------------------------------------------- files */

/* file_dispatcher(fd) (F1, F7): a dispatcher over a duplicate of fd
 * (close-on-exec), connected = true, and the original fd made
 * non-blocking — which also affects everyone sharing its open file
 * description (W17).  The caller keeps fd.  recv/send read and write the
 * duplicate; SO_ERROR is always 0 (F3, F8).  Writes to a pipe whose reader
 * is gone raise SIGPIPE: the program must ignore SIGPIPE (X12).  Regular
 * files are always ready, also under epoll (F9, X8).  Stores the new
 * dispatcher in *out; returns 0 or -errno. */
AC_EXTERN int ac_file_dispatcher_new(ac_dispatcher **out, ac_map *m, const ac_handlers *h,
                                     void *user, int fd);

/* set_file (F1): make d a file dispatcher over a duplicate of fd and
 * register it; flags and blocking mode are unchanged.  Works on a plain or
 * buffered dispatcher without a descriptor.  0 or -errno. */
AC_EXTERN int ac_set_file(ac_dispatcher *d, int fd);

/* ---------------------------------------------- timers, idle, signals */

/* A timer callback returns the delay in seconds until its next call, or a
 * negative value to stop. */
typedef double (*ac_timer_fn)(ac_timer *t, void *arg);

/* A stopped timer on m (min-heap, X10/W4).  Yours: free it with
 * ac_timer_free (safe inside its own callback).  NULL when out of memory. */
AC_EXTERN ac_timer *ac_timer_new(ac_map *m, ac_timer_fn fn, void *arg);
/* (Re)start: fn runs delay seconds from now (0 = next iteration).  0, or
 * -EINVAL once its map has been freed (the timer is then inert: stop and
 * free still work), or -ENOMEM. */
AC_EXTERN int ac_timer_start(ac_timer *t, double delay);
AC_EXTERN void ac_timer_stop(ac_timer *t);
AC_EXTERN bool ac_timer_is_active(const ac_timer *t);
AC_EXTERN void ac_timer_free(ac_timer *t);

/* Idle timeout: when d has neither received nor sent a byte for seconds,
 * handle_timeout runs (default: handle_close).  0 turns it off.  Costs one
 * timer per dispatcher, re-armed lazily.  0 or -errno. */
AC_EXTERN int ac_set_idle_timeout(ac_dispatcher *d, double seconds);

/* Deliver signo inside m's loop (signalfd): fn runs in the loop thread and
 * may return AC_EXIT_NOW to stop the loop.  The signal is blocked in the
 * calling thread; call this before creating other threads so they inherit
 * the mask.  One watcher per signal per map.  0 or -errno. */
typedef int (*ac_signal_fn)(ac_map *m, int signo, void *arg);
AC_EXTERN int ac_signal_watch(ac_map *m, int signo, ac_signal_fn fn, void *arg);
AC_EXTERN int ac_signal_unwatch(ac_map *m, int signo);

/* Thread-safe hand-over (DESIGN decision 8): queue fn(m, arg) to run in m's
 * loop thread during its next iteration, and wake the loop up.  The only
 * calls (with ac_wakeup) that other threads may make on m.  0 or -ENOMEM. */
typedef void (*ac_call_fn)(ac_map *m, void *arg);
AC_EXTERN int ac_call_soon_threadsafe(ac_map *m, ac_call_fn fn, void *arg);

/* Make a wait in progress on m return now (from any thread). */
AC_EXTERN void ac_wakeup(ac_map *m);

#ifdef __cplusplus
}
#endif
#endif /* ASYNCORE_H */
