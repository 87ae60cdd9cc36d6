/* libasyncore — Python's asynchat in C: chat channels, terminators and
 * producers (spec section 6, rules C1-C25).
 *
 * A chat channel is a dispatcher (every asyncore.h call works on it) whose
 * input is split by a terminator and handed to the table's
 * collect_incoming_data / found_terminator, and whose output is a queue of
 * byte strings and producers.  Its table defaults are handle_read = C5,
 * handle_write = C19 (ac_initiate_send), handle_close = C20 (ac_close, no
 * log line), readable/writable = C18 without any per-iteration cost.
 * Rule ids such as C5 or C18 are explained in docs/semantics.md.
 */
#ifndef ASYNCHAT_H
#define ASYNCHAT_H

#include "asyncore.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Default ac_in_buffer_size and ac_out_buffer_size (C1). */
#define AC_CHAT_BUFFER_SIZE 65536

/* The terminator's kind (C3).  UNSET until the first set call (C4). */
typedef enum ac_term_kind {
    AC_TERM_UNSET = 0,
    AC_TERM_NONE,  /* None: everything is collected, found_terminator never runs */
    AC_TERM_BYTES, /* a byte string of any length, NUL bytes allowed; "" = none (C6a) */
    AC_TERM_COUNT, /* an integer: that many bytes, then found_terminator (C7) */
} ac_term_kind;

/* ------------------------------------------------------------ producers */

typedef struct ac_producer ac_producer;

/* A producer is a table of two functions and a context (X18).  more()
 * points *data at the next piece and returns its length; 0 means finished
 * (C16.4: a producer that returns 0 once is removed); a negative errno is a
 * failure (it reaches handle_error).  The piece must stay valid until the
 * next more() or release(), which runs once when the producer is dropped. */
typedef struct ac_producer_ops {
    ssize_t (*more)(void *ctx, const void **data);
    void (*release)(void *ctx);
} ac_producer_ops;

/* Wrap ops and ctx in a producer.  NULL when out of memory. */
AC_EXTERN ac_producer *ac_producer_new(const ac_producer_ops *ops, void *ctx);

/* simple_producer (C22): a copy of data handed out buffer_size bytes at a
 * time; the last piece holds everything left.  buffer_size 0 = 512. */
AC_EXTERN ac_producer *ac_simple_producer_new(const void *data, size_t len, size_t buffer_size);

/* Streams fd (a file, a pipe) with read(2) in pieces of up to buffer_size
 * (0 = 65536) until EOF; fd is closed on release when close_fd.  A pipe
 * that would block reports -EAGAIN (use regular files). */
AC_EXTERN ac_producer *ac_file_producer_new(int fd, size_t buffer_size, bool close_fd);

/* Ask for the next piece (what the queue does, exported for tests). */
AC_EXTERN ssize_t ac_producer_more(ac_producer *p, const void **data);

/* Release a producer that was not given to a channel. */
AC_EXTERN void ac_producer_free(ac_producer *p);

/* --------------------------------------------------------- chat channel */

/* async_chat (C1): a dispatcher without a socket (use ac_attach,
 * ac_create_socket + ac_connect, ...), empty buffers and queue, terminator
 * unset.  NULL when out of memory. */
AC_EXTERN ac_dispatcher *ac_chat_new(ac_map *m, const ac_handlers *h, void *user);

/* set_terminator (C3) as a byte string (copied; len 0 is the empty
 * string), a count, or none.  -EINVAL for a non-chat dispatcher or a
 * negative count (the terminator is then unchanged), -ENOMEM.
 *
 * Deviation (C6b, C7): when collect_incoming_data sets a terminator while
 * a count is partway through (the piece it was given does not complete
 * the count), the change is overwritten: the old count minus the bytes
 * just read is stored.  asynchat stores the new terminator minus those
 * bytes instead, and fails with TypeError (handle_error: by default a
 * close) when the new one is a string or none.  A change made in
 * found_terminator, or by a collect call that completes the count, takes
 * effect as in asynchat. */
AC_EXTERN int ac_chat_set_terminator(ac_dispatcher *d, const void *term, size_t len);
AC_EXTERN int ac_chat_set_terminator_count(ac_dispatcher *d, long long count);
AC_EXTERN int ac_chat_set_terminator_none(ac_dispatcher *d);

/* get_terminator (C3).  For BYTES *data and *len give the string; for COUNT
 * *len is the count still remaining (C7).  Either pointer may be NULL. */
AC_EXTERN ac_term_kind ac_chat_get_terminator(const ac_dispatcher *d, const void **data,
                                              size_t *len);

/* push (C13): queue a copy of data, cut into pieces of ac_out_buffer_size,
 * then ac_initiate_send once.  An empty push queues an empty entry.
 * Returns 0, -ENOMEM, -EINVAL (not a chat channel, or data NULL with len
 * > 0), or what handle_error returned for a send failure (C16).  After
 * close_when_done pushes are queued but never sent (C15).
 *
 * Deviation (C16.2, allowed by X18): the empty entry is removed without a
 * zero-length send.  So an empty push no longer detects a dead peer:
 * asynchat's zero-length send fails with EPIPE there and handle_close runs
 * at once; here the channel notices at its next real send or read. */
AC_EXTERN int ac_chat_push(ac_dispatcher *d, const void *data, size_t len);

/* push_with_producer (C14): queue p as one entry (the channel owns it from
 * now on, also when this fails), then ac_initiate_send once. */
AC_EXTERN int ac_chat_push_with_producer(ac_dispatcher *d, ac_producer *p);

/* close_when_done (C15) and initiate_send (C16) are ac_close_when_done and
 * ac_initiate_send of asyncore.h, which act on chat channels as C15/C16 say:
 * the close marker does not call initiate_send; entries queued after it are
 * never sent.  Deviation (C16.2, allowed): an empty entry ends the
 * initiate_send call without a zero-length system call. */

/* discard_buffers (C21): empty the input buffer, the collected pieces and
 * the output queue (close marker included). */
AC_EXTERN void ac_chat_discard_buffers(ac_dispatcher *d);

/* ac_in_buffer_size / ac_out_buffer_size (C1, C24).  0 leaves one as it
 * is.  -EINVAL for a non-chat dispatcher. */
AC_EXTERN int ac_chat_set_buffer_sizes(ac_dispatcher *d, size_t in_size, size_t out_size);

/* Bytes queued for sending in byte-string entries (producers not counted). */
AC_EXTERN size_t ac_chat_pending(const ac_dispatcher *d);

/* Bounded input (beyond asyncore, W3): at most max bytes may be collected
 * for one record, i.e. since the last found_terminator.  Past it the bytes
 * are not collected: the input is discarded, reading stops, and the
 * failure EMSGSIZE (op "max_input") reaches handle_error — whose default
 * closes the channel; an override must close it (for instance after
 * pushing an error line and ac_close_when_done).  0 = no bound (asyncore). */
AC_EXTERN int ac_chat_set_max_input(ac_dispatcher *d, size_t max);

/* Output backpressure (beyond asyncore): when the queued bytes rise above
 * high, reading stops and handle_high_water runs; when they fall to low or
 * less, reading resumes and handle_low_water runs.  high 0 = off;
 * -EINVAL if low > high; a mark above 2 GiB - 1 counts as 2 GiB - 1. */
AC_EXTERN int ac_chat_set_watermarks(ac_dispatcher *d, size_t low, size_t high);

/* Coalesced sending (beyond asynchat, opt-in; off by default): asynchat
 * sends each pushed entry with its own send (C13, C16), one system call
 * per line when a read brings many (W13).  With coalescing on,
 *   - pushes made while the channel's own ac_chat_handle_read runs (from
 *     collect_incoming_data and found_terminator) are queued, and sent
 *     together once the read's records have all been handled;
 *   - initiate_send sends the head's run of byte entries, up to
 *     ac_out_buffer_size bytes, in one sendmsg, and drops empty entries
 *     instead of ending the call on them (C16.2).
 * The bytes that leave, their order, producers and the close marker are as
 * C16 says.  What differs is when bytes leave, and so how many have left
 * when the channel ends (deviations from C13 and C16):
 *   - a reply pushed in found_terminator (or collect_incoming_data) and
 *     followed, in the same read, by ac_close() or ac_chat_discard_buffers()
 *     is lost, where asynchat sent it during the push.  To close after a
 *     reply, use ac_close_when_done(): the marker waits for the reply;
 *   - more of the queue can have left by the time the channel closes (a
 *     run of entries per send instead of one entry, e.g. what is still
 *     queued when the peer's EOF arrives);
 *   - or less: the read's pushes leave in one send capped at
 *     ac_out_buffer_size in all, where asynchat made one send per push, so
 *     with a small output buffer fewer bytes have left before a close that
 *     follows the read.
 * -EINVAL for a non-chat dispatcher. */
AC_EXTERN int ac_chat_set_coalesce(ac_dispatcher *d, bool on);

/* The chat layer's handlers (C5, C19, C20), callable from an override. */
AC_EXTERN int ac_chat_handle_read(ac_dispatcher *d);
AC_EXTERN int ac_chat_handle_close(ac_dispatcher *d);

/* The opt-in collector of C2: use it as collect_incoming_data to append
 * every piece to the channel's `incoming`; ac_chat_get_data returns their
 * concatenation (malloc'd, NUL-terminated, yours to free; *len its length)
 * and empties it.  NULL only when out of memory. */
AC_EXTERN int ac_chat_collect_incoming_data(ac_dispatcher *d, const void *data, size_t len);
AC_EXTERN char *ac_chat_get_data(ac_dispatcher *d, size_t *len);

/* find_prefix_at_end (C12): the length of the longest proper prefix of
 * needle with which haystack ends; 0 if none. */
AC_EXTERN size_t ac_find_prefix_at_end(const void *haystack, size_t hlen, const void *needle,
                                       size_t nlen);

#ifdef __cplusplus
}
#endif
#endif /* ASYNCHAT_H */
