/* The relay (asyncore_relay.h): two sockets joined into one stream, with
 * bounded buffers, half-close, reset propagation and splice(2).
 *
 * Built on the public API only.  Each side is a plain dispatcher whose
 * interest the relay sets with ac_set_reading and ac_set_writing: read
 * while the direction has room, write while bytes wait for the side.  No
 * predicate, which would be asked every iteration (L6, DESIGN decision 5).
 * The bytes themselves move with raw system calls on the descriptors, so
 * that the relay knows exactly why a side ended (EOF, reset, which errno),
 * which ac_recv's "handle_close was called" does not say, and so that it
 * can splice.
 *
 * Direction i carries what side i sends to side !i.  Its bytes wait either
 * in a ring buffer (buffered path) or in a pipe (splice path), never in
 * both at once: a direction reads into the pipe only while its ring is
 * empty and into the ring only while its pipe is empty, so the order of
 * the bytes is kept whichever path moves them.
 *
 * A direction starts on the buffered path (small messages cost less
 * copied than spliced: a splice moves pages through a pipe) and switches
 * to splice for good after one read of at least AC_RELAY_SPLICE_AFTER
 * bytes, or one that filled the ring: bulk.  splice_always skips the
 * buffered start.
 *
 * The relay never relies on the descriptors' O_NONBLOCK: every recv and
 * send says MSG_DONTWAIT, so a descriptor the caller left blocking (or
 * that another process sharing it made blocking) cannot block the map.
 * splice(2) has no such flag for the socket end, so the first direction
 * to splice makes both sockets non-blocking then: one fcntl pair per
 * relay that carries bulk, none for the others. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* splice, pipe2, F_SETPIPE_SZ */
#endif

#include "asyncore_relay.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

struct dir {
    char *buf;          /* ring of r->cap bytes; NULL while empty */
    size_t head, len;   /* first byte held, bytes held */
    int pipe[2];        /* splice pipe (read end, write end); -1 while none */
    size_t inpipe;      /* bytes in the pipe */
    bool eof : 1;       /* the source sent EOF */
    bool shut : 1;      /* SHUT_WR sent to the sink: this direction is over */
    bool splicing : 1;  /* reads go to the pipe (see the top) */
    bool no_splice : 1; /* splice refused once: the buffered path for good */
    bool pipe_full : 1; /* the pipe took no more: wait until it drains */
    bool moved : 1;     /* bytes were read (ac_relay_push is refused after) */
};

struct ac_relay {
    ac_map *map;
    ac_dispatcher *d[2];
    struct dir dir[2];
    size_t cap;      /* bytes held per direction at most */
    ac_timer *timer; /* connect, then idle timeout; NULL if neither */
    double connect_timeout, idle_timeout;
    double last; /* map time of the last byte moved */
    ac_relay_done_fn done;
    void *arg;
    ac_relay_stats st;
    int refs;        /* sides not finalized yet */
    bool connecting; /* side b's connect is in progress */
    bool ended;
    bool splice_ok;      /* splice may be tried (config; then SIGPIPE safe, non-blocking) */
    bool splice_checked; /* splice_ok was settled at the first switch */
    bool splice_always;  /* start on the splice path */
};

/* ------------------------------------------------- per-thread caches */

/* Pipes and ring buffers are lent to a direction while it holds bytes and
 * come back when it drains, so an idle relay holds neither.  The caches are
 * per thread because maps are (DESIGN decision 8). */
#define PIPE_CACHE 32
#define BUF_CACHE 8

struct cached_buf {
    char *p;
    size_t cap;
};

static _Thread_local int pipe_cache[PIPE_CACHE][2];
static _Thread_local int npipes;
static _Thread_local struct cached_buf buf_cache[BUF_CACHE];
static _Thread_local int nbufs;

static char *buf_get(size_t cap)
{
    while (nbufs > 0) {
        nbufs--;
        if (buf_cache[nbufs].cap == cap)
            return buf_cache[nbufs].p;
        free(buf_cache[nbufs].p); /* another relay's size: not worth keeping */
    }
    return malloc(cap);
}

static void buf_put(char *p, size_t cap)
{
    if (nbufs < BUF_CACHE)
        buf_cache[nbufs++] = (struct cached_buf){p, cap};
    else
        free(p);
}

static int pipe_get(int fds[2], size_t cap)
{
    if (npipes > 0) {
        npipes--;
        fds[0] = pipe_cache[npipes][0];
        fds[1] = pipe_cache[npipes][1];
        return 0;
    }
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return -errno;
    /* The default pipe holds 64 KiB; a bigger one is best effort (it may
     * exceed /proc/sys/fs/pipe-max-size).  A smaller pipe still works:
     * a full pipe pauses the reader like a full ring. */
    if (cap > 65536)
        (void)fcntl(fds[1], F_SETPIPE_SZ, (int)(cap > (1u << 20) ? 1u << 20 : cap));
    return 0;
}

/* Give a pipe back; one that still holds bytes is closed (they are lost
 * only when the relay was aborted or failed). */
static void pipe_put(int fds[2], bool empty)
{
    if (fds[0] < 0)
        return;
    if (empty && npipes < PIPE_CACHE) {
        pipe_cache[npipes][0] = fds[0];
        pipe_cache[npipes][1] = fds[1];
        npipes++;
    } else {
        close(fds[0]);
        close(fds[1]);
    }
    fds[0] = fds[1] = -1;
}

void ac_relay_cache_release(void)
{
    while (npipes > 0) {
        npipes--;
        close(pipe_cache[npipes][0]);
        close(pipe_cache[npipes][1]);
    }
    while (nbufs > 0)
        free(buf_cache[--nbufs].p);
}

/* ----------------------------------------------------------- helpers */

static size_t held(const struct dir *dr) { return dr->len + dr->inpipe; }

static int side_of(const ac_relay *r, const ac_dispatcher *d)
{
    return r->d[AC_RELAY_B] == d ? AC_RELAY_B : AC_RELAY_A;
}

static void touch(ac_relay *r) { r->last = ac_now(r->map); }

/* splice(2) into a socket raises SIGPIPE when the peer is gone (there is
 * no MSG_NOSIGNAL for it), so it is only used when that cannot kill the
 * process: SIGPIPE ignored, handled, or blocked in this thread. */
static bool sigpipe_is_safe(void)
{
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL)
        return true;
    sigset_t set;
    return pthread_sigmask(SIG_BLOCK, NULL, &set) == 0 && sigismember(&set, SIGPIPE) == 1;
}

/* Make fd non-blocking (splice needs it; see the top). */
static int nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* Direction i would splice from now on: the first time in this relay,
 * check that splice is safe here (SIGPIPE, O_NONBLOCK on both sockets).
 * The check is made when splice is about to be used, so a disposition
 * changed since the relay began counts; once made it holds for the
 * relay, as the creation-time check did before. */
static void start_splice(ac_relay *r, int i)
{
    if (!r->splice_checked) {
        r->splice_checked = true;
        r->splice_ok = r->splice_ok && sigpipe_is_safe() && nonblocking(ac_fd(r->d[0])) == 0 &&
                       nonblocking(ac_fd(r->d[1])) == 0;
    }
    if (r->splice_ok && !r->dir[i].no_splice)
        r->dir[i].splicing = true;
}

static bool is_reset(int err)
{
    return err == ECONNRESET || err == EPIPE || err == ECONNABORTED || err == ENOTCONN;
}

/* ------------------------------------------------------------ ending */

static void release_dir(struct dir *dr, size_t cap)
{
    if (dr->buf) {
        buf_put(dr->buf, cap);
        dr->buf = NULL;
    }
    dr->len = 0;
    pipe_put(dr->pipe, dr->inpipe == 0);
    dr->inpipe = 0;
}

/* End the relay: close both sides (rst[s]: with SO_LINGER 0, so that side
 * sees a reset), give back buffers and pipes, report. */
static void finish(ac_relay *r, ac_relay_end how, int side, int err, bool rst_a, bool rst_b)
{
    if (r->ended)
        return;
    r->ended = true;
    r->st.how = how;
    r->st.side = side;
    r->st.err = err;
    r->st.end = ac_now(r->map);
    if (r->timer) {
        ac_timer_free(r->timer); /* safe inside its own callback */
        r->timer = NULL;
    }
    bool rst[2] = {rst_a, rst_b};
    for (int s = 0; s < 2; s++) {
        int fd = ac_fd(r->d[s]);
        if (rst[s] && fd >= 0) {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        ac_close(r->d[s]);
    }
    for (int i = 0; i < 2; i++)
        release_dir(&r->dir[i], r->cap);
    if (r->done)
        r->done(r, &r->st, r->arg);
}

/* Side s failed with err: the other side gets a reset, except when the
 * failure is b's connect (a plain close tells a client as much). */
static void fail(ac_relay *r, int s, int err)
{
    if (r->connecting && s == AC_RELAY_B) {
        finish(r, AC_RELAY_CONNECT_FAILED, s, err, false, false);
        return;
    }
    ac_relay_end how = is_reset(err) ? AC_RELAY_RESET : AC_RELAY_ERROR;
    finish(r, how, s, err, s != AC_RELAY_A, s != AC_RELAY_B);
}

/* --------------------------------------------------------- interest */

/* Bring both sides' interest in line with the state: read while the
 * direction has room, write while bytes wait for the side. */
static void update(ac_relay *r)
{
    if (r->ended)
        return;
    for (int s = 0; s < 2; s++) {
        const struct dir *in = &r->dir[s], *out = &r->dir[!s];
        bool rd =
            !in->eof && held(in) < r->cap && !in->pipe_full && !(r->connecting && s == AC_RELAY_A);
        ac_set_reading(r->d[s], rd);
        if (!(r->connecting && s == AC_RELAY_B)) /* D7: its connect needs write events */
            ac_set_writing(r->d[s], held(out) > 0 && !out->shut);
    }
}

/* ----------------------------------------------------------- moving */

/* Read once from side i into the pipe.  Returns bytes, 0 at EOF, -EAGAIN,
 * -EINVAL when splice cannot be used here, or -errno. */
static ssize_t splice_in(ac_relay *r, int i)
{
    struct dir *dr = &r->dir[i];
    if (dr->pipe[0] < 0 && pipe_get(dr->pipe, r->cap) < 0)
        return -EINVAL; /* no pipe (EMFILE): the ring this time */
    int fd = ac_fd(r->d[i]);
    for (;;) {
        ssize_t n = splice(fd, NULL, dr->pipe[1], NULL, r->cap - dr->inpipe,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n >= 0) {
            dr->inpipe += (size_t)n;
            return n;
        }
        if (errno == EINTR)
            continue;
        int err = errno;
        if (err == EAGAIN && dr->inpipe > 0)
            dr->pipe_full = true; /* a pipe counts pages, not bytes: it may fill early */
        if (err == EINVAL || err == ENOSYS || err == EOPNOTSUPP) {
            dr->no_splice = true;
            if (dr->inpipe == 0)
                pipe_put(dr->pipe, true);
            return -EINVAL;
        }
        return -err;
    }
}

/* Read once from side i into the ring. */
static ssize_t recv_in(ac_relay *r, int i)
{
    struct dir *dr = &r->dir[i];
    if (!dr->buf) {
        dr->buf = buf_get(r->cap);
        if (!dr->buf)
            return -ENOMEM;
        dr->head = dr->len = 0;
    }
    size_t tail = (dr->head + dr->len) % r->cap, room = r->cap - dr->len;
    size_t first = room < r->cap - tail ? room : r->cap - tail;
    struct iovec iov[2] = {{dr->buf + tail, first}, {dr->buf, room - first}};
    for (;;) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = room > first ? 2 : 1};
        ssize_t n = recvmsg(ac_fd(r->d[i]), &msg, MSG_DONTWAIT);
        if (n >= 0) {
            dr->len += (size_t)n;
            return n;
        }
        if (errno != EINTR)
            return -errno;
    }
}

/* Read once from side i, through the pipe or the ring.  Returns bytes, 0
 * at EOF, or -errno (-EAGAIN: nothing now, or the pipe must drain first). */
static ssize_t read_once(ac_relay *r, int i)
{
    struct dir *dr = &r->dir[i];
    ssize_t n = -EINVAL;
    if (dr->splicing && !dr->no_splice && dr->len == 0)
        n = splice_in(r, i);
    if (n != -EINVAL)
        return n;
    if (dr->inpipe > 0) /* splice refused with bytes in the pipe: they go first */
        return -EAGAIN;
    size_t room = r->cap - dr->len;
    n = recv_in(r, i);
    if (n > 0 && !dr->splicing && r->splice_ok &&
        ((size_t)n >= AC_RELAY_SPLICE_AFTER || (size_t)n == room))
        start_splice(r, i); /* bulk: the next read, once the ring is empty, splices */
    return n;
}

/* Write what direction i holds to side !i, as much as the socket takes.
 * Returns 0 (all written or the socket is full) or -errno. */
static int flush_out(ac_relay *r, int i)
{
    struct dir *dr = &r->dir[i];
    int fd = ac_fd(r->d[!i]);
    while (dr->len > 0) {
        size_t first = dr->len < r->cap - dr->head ? dr->len : r->cap - dr->head;
        struct iovec iov[2] = {{dr->buf + dr->head, first}, {dr->buf, dr->len - first}};
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = dr->len > first ? 2 : 1};
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
        }
        dr->head = (dr->head + (size_t)n) % r->cap;
        dr->len -= (size_t)n;
        r->st.bytes[i] += (uint64_t)n;
        r->st.buffered[i] = true;
    }
    while (dr->inpipe > 0) {
        ssize_t n =
            splice(dr->pipe[0], NULL, fd, NULL, dr->inpipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
        }
        if (n == 0)
            break;
        dr->inpipe -= (size_t)n;
        dr->pipe_full = false;
        r->st.bytes[i] += (uint64_t)n;
        r->st.spliced[i] = true;
    }
    return 0;
}

/* Flush direction i; give back what it no longer needs; after its EOF and
 * the last byte, half-close the sink.  Ends the relay on failure and when
 * both directions are over. */
static void flush(ac_relay *r, int i)
{
    struct dir *dr = &r->dir[i];
    if (dr->shut)
        return;
    if (held(dr) > 0) {
        uint64_t before = r->st.bytes[i];
        int rc = flush_out(r, i);
        if (r->st.bytes[i] != before)
            touch(r);
        if (rc < 0) {
            fail(r, !i, -rc);
            return;
        }
    }
    if (dr->len == 0 && dr->buf) {
        buf_put(dr->buf, r->cap);
        dr->buf = NULL;
    }
    if (dr->inpipe == 0 && dr->pipe[0] >= 0)
        pipe_put(dr->pipe, true);
    if (!dr->eof || held(dr) > 0)
        return;
    /* Every byte read before the EOF has gone: pass the EOF on.  When
     * the other direction is over already, the close that ends the relay
     * sends the FIN: no shutdown first (every byte read has been written
     * and both peers sent EOF, so nothing unread makes close reset). */
    if (r->dir[!i].shut) {
        dr->shut = true;
        finish(r, AC_RELAY_CLEAN, -1, 0, false, false);
        return;
    }
    if (shutdown(ac_fd(r->d[!i]), SHUT_WR) < 0 && errno != ENOTCONN) {
        fail(r, !i, errno);
        return;
    }
    dr->shut = true;
}

/* Read once from side i (if the direction has room), then flush it. */
static void pump(ac_relay *r, int i)
{
    struct dir *dr = &r->dir[i];
    if (!dr->eof && !dr->pipe_full && held(dr) < r->cap && !r->connecting) {
        ssize_t n = read_once(r, i);
        if (n > 0) {
            dr->moved = true;
            touch(r);
        } else if (n == 0) {
            dr->eof = true;
            if (r->st.first_eof < 0)
                r->st.first_eof = i;
        } else if (n != -EAGAIN && n != -EWOULDBLOCK) {
            fail(r, i, (int)-n);
            return;
        }
    }
    flush(r, i);
}

/* ---------------------------------------------------------- handlers */

/* b's connect was reported failed with err: was it established first?  A
 * connect the remote refused fails with ECONNREFUSED (a reset answering
 * the SYN), one it never answered with ETIMEDOUT or an ICMP errno; the
 * kernel says ECONNRESET or EPIPE only for a connection that was up.
 * Bytes waiting to be read also prove it.  That case reaches us when the
 * remote accepted, sent and reset before the map first looked at b: D8
 * then reads the reset as the connect's SO_ERROR (and clears it). */
static bool was_established(const ac_relay *r, int err)
{
    if (err == ECONNRESET || err == EPIPE)
        return true;
    char c;
    return recv(ac_fd(r->d[AC_RELAY_B]), &c, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
}

/* End an established b as its ordinary reset path does: what b sent before
 * the error is read once and written to a (as far as a's socket takes it),
 * then a is reset.  Only the error ends the relay, so b's end of stream
 * (the error was cleared by D8) is not passed on as a half-close. */
static void fail_established(ac_relay *r, int err)
{
    r->connecting = false;
    (void)read_once(r, AC_RELAY_B);
    (void)flush_out(r, AC_RELAY_BA); /* a failure here changes nothing: a is reset next */
    ac_relay_end how = is_reset(err) ? AC_RELAY_RESET : AC_RELAY_ERROR;
    finish(r, how, AC_RELAY_B, err, true, false);
}

/* Side s failed with err (handle_close or handle_error): b's connect
 * failing may be an established connection's error. */
static void side_failed(ac_relay *r, int s, int err)
{
    if (r->connecting && s == AC_RELAY_B && was_established(r, err))
        fail_established(r, err);
    else
        fail(r, s, err);
}

static int side_read(ac_dispatcher *d)
{
    ac_relay *r = ac_user(d);
    if (!r || r->ended)
        return 0;
    pump(r, side_of(r, d));
    update(r);
    return 0;
}

static int side_write(ac_dispatcher *d)
{
    ac_relay *r = ac_user(d);
    if (!r || r->ended)
        return 0;
    flush(r, !side_of(r, d));
    update(r);
    return 0;
}

/* b's connect completed (D8).  The handle_read or handle_write that
 * follows at once (D6, D7) brings b's interest in line with the state. */
static int side_connect(ac_dispatcher *d)
{
    ac_relay *r = ac_user(d);
    if (!r || r->ended)
        return 0;
    r->connecting = false;
    if (r->timer) {
        if (r->idle_timeout > 0)
            ac_timer_start(r->timer, r->idle_timeout);
        else
            ac_timer_stop(r->timer);
    }
    touch(r);
    return 0;
}

/* Poll-style hang-up or error (L13 step 4), a disconnected errno, or an
 * SO_ERROR found by D9.  A pending error ends the relay; a hang-up without
 * one means the peer's FIN is in: read and write what can be. */
static int side_close(ac_dispatcher *d)
{
    ac_relay *r = ac_user(d);
    if (!r || r->ended)
        return 0;
    int s = side_of(r, d);
    int err = ac_socket_error(d);
    if (err == 0 && r->connecting && s == AC_RELAY_B) {
        const ac_error *e = ac_current_error(d); /* D8 read SO_ERROR already */
        err = e && e->err ? e->err : ECONNREFUSED;
    }
    if (err != 0) {
        side_failed(r, s, err < 0 ? -err : err);
        return 0;
    }
    pump(r, s);
    if (!r->ended)
        flush(r, !s);
    update(r);
    return 0;
}

static int side_error(ac_dispatcher *d, const ac_error *e)
{
    ac_relay *r = ac_user(d);
    if (r && !r->ended)
        side_failed(r, side_of(r, d), e && e->err ? e->err : EIO);
    return 0;
}

/* TCP urgent data (D9 with no SO_ERROR): pass the byte on as urgent data,
 * best effort, so that the condition clears and the byte is not lost. */
static int side_expt(ac_dispatcher *d)
{
    ac_relay *r = ac_user(d);
    if (!r || r->ended)
        return 0;
    int s = side_of(r, d);
    char c;
    if (recv(ac_fd(d), &c, 1, MSG_OOB | MSG_DONTWAIT) == 1 &&
        send(ac_fd(r->d[!s]), &c, 1, MSG_OOB | MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
        r->st.bytes[s]++;
    return 0;
}

/* A side's memory goes.  The relay's goes with the second one.  A relay
 * still running here had its sides closed under it (ac_close_all). */
static void side_finalize(ac_dispatcher *d)
{
    ac_relay *r = ac_user(d);
    if (!r)
        return;
    if (!r->ended)
        finish(r, AC_RELAY_ABORTED, -1, 0, false, false);
    if (--r->refs == 0)
        free(r);
}

static const ac_handlers side_handlers = {
    .name = "relay",
    .handle_read = side_read,
    .handle_write = side_write,
    .handle_connect = side_connect,
    .handle_close = side_close,
    .handle_error = side_error,
    .handle_expt = side_expt,
    .finalize = side_finalize,
};

/* ------------------------------------------------------------ timers */

static double on_timer(ac_timer *t, void *arg)
{
    (void)t;
    ac_relay *r = arg;
    if (r->connecting && r->connect_timeout > 0) { /* 0: no connect limit, only idle */
        finish(r, AC_RELAY_CONNECT_TIMEOUT, AC_RELAY_B, ETIMEDOUT, false, false);
        return -1;
    }
    if (r->idle_timeout <= 0)
        return -1;
    double left = r->last + r->idle_timeout - ac_now(r->map);
    if (left > 0)
        return left; /* there was traffic: look again then */
    finish(r, AC_RELAY_IDLE_TIMEOUT, -1, 0, false, false);
    return -1;
}

/* ------------------------------------------------------------- public */

/* Give d the descriptor.  The larger descriptor goes first: the map's
 * table then covers both and the second registration cannot fail, so a
 * failure never leaves one descriptor owned and the other not. */
static int attach_both(ac_relay *r, int fd_a, int fd_b)
{
    int first = fd_a > fd_b ? AC_RELAY_A : AC_RELAY_B;
    int fds[2] = {fd_a, fd_b};
    int rc = ac_set_socket(r->d[first], fds[first]);
    if (rc < 0)
        return rc;
    rc = ac_set_socket(r->d[!first], fds[!first]);
    if (rc < 0) {
        /* Not expected (see above).  Swap a duplicate in so that closing
         * the dispatcher leaves the caller's descriptor alone. */
        int dup = fcntl(fds[first], F_DUPFD_CLOEXEC, 0);
        ac_del_channel(r->d[first]);
        if (dup >= 0 && ac_set_socket(r->d[first], dup) < 0)
            close(dup);
    }
    return rc;
}

/* TCP_NODELAY on fd; it also proves fd an open socket.  A socket that
 * is not TCP (AF_UNIX) says EOPNOTSUPP or ENOPROTOOPT: fine. */
static int nodelay(int fd)
{
    int on = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == 0)
        return 0;
    return errno == EBADF || errno == ENOTSOCK ? -EINVAL : 0;
}

int ac_relay_new(ac_relay **out, ac_map *m, int fd_a, int fd_b, const ac_relay_config *cfg,
                 ac_relay_done_fn done, void *arg)
{
    static const ac_relay_config defaults;
    cfg = cfg ? cfg : &defaults;
    if (fd_a < 0 || fd_b < 0 || fd_a == fd_b || cfg->connect_timeout < 0 || cfg->idle_timeout < 0 ||
        (!cfg->nagle && (nodelay(fd_a) < 0 || nodelay(fd_b) < 0)))
        return -EINVAL;
    ac_relay *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->cap = cfg->buffer_size ? cfg->buffer_size : AC_RELAY_BUFFER;
    r->done = done;
    r->arg = arg;
    r->connect_timeout = cfg->b_connecting ? cfg->connect_timeout : 0;
    r->idle_timeout = cfg->idle_timeout;
    r->connecting = cfg->b_connecting;
    r->splice_ok = !cfg->no_splice;
    r->splice_always = cfg->splice_always;
    for (int i = 0; i < 2; i++)
        r->dir[i].pipe[0] = r->dir[i].pipe[1] = -1;
    r->d[0] = ac_dispatcher_new(m, &side_handlers, NULL);
    r->d[1] = ac_dispatcher_new(m, &side_handlers, NULL);
    r->map = r->d[0] ? ac_map_of(r->d[0]) : NULL;
    if (r->map && (r->connect_timeout > 0 || r->idle_timeout > 0))
        r->timer = ac_timer_new(r->map, on_timer, r);
    bool need_timer = r->connect_timeout > 0 || r->idle_timeout > 0;
    int rc =
        !r->d[0] || !r->d[1] || (need_timer && !r->timer) ? -ENOMEM : attach_both(r, fd_a, fd_b);
    if (rc < 0) {
        for (int s = 0; s < 2; s++)
            if (r->d[s])
                ac_close(r->d[s]); /* no user pointer yet: finalize skips r */
        ac_timer_free(r->timer);
        free(r);
        return rc;
    }
    r->refs = 2;
    for (int s = 0; s < 2; s++)
        ac_set_user(r->d[s], r);
    ac_set_connected(r->d[AC_RELAY_A], true);
    if (r->connecting)
        ac_set_connecting(r->d[AC_RELAY_B], true); /* D7/D8 watch it complete */
    else
        ac_set_connected(r->d[AC_RELAY_B], true);
    r->st.first_eof = r->st.side = -1;
    r->st.start = r->last = ac_now(r->map);
    if (r->timer)
        ac_timer_start(r->timer, r->connecting && r->connect_timeout > 0 ? r->connect_timeout
                                                                         : r->idle_timeout);
    if (r->splice_always)
        for (int i = 0; i < 2; i++)
            start_splice(r, i);
    update(r);
    if (out)
        *out = r;
    return 0;
}

int ac_relay_push(ac_relay *r, int to, const void *data, size_t len)
{
    if (to != AC_RELAY_A && to != AC_RELAY_B)
        return -EINVAL;
    if (r->ended)
        return -EPIPE;
    struct dir *dr = &r->dir[!to];
    if (dr->moved || dr->inpipe || dr->eof)
        return -EBUSY;
    if (len > r->cap - dr->len)
        return -ENOBUFS;
    if (len == 0)
        return 0;
    if (!dr->buf) {
        dr->buf = buf_get(r->cap);
        if (!dr->buf)
            return -ENOMEM;
        dr->head = dr->len = 0;
    }
    /* Nothing was read, but an earlier push may have been partly written
     * out already (head > 0): append at the ring's tail, which may wrap. */
    size_t tail = (dr->head + dr->len) % r->cap;
    size_t first = len < r->cap - tail ? len : r->cap - tail;
    memcpy(dr->buf + tail, data, first);
    memcpy(dr->buf, (const char *)data + first, len - first);
    dr->len += len;
    update(r);
    return 0;
}

void ac_relay_abort(ac_relay *r, bool rst)
{
    if (r && !r->ended)
        finish(r, AC_RELAY_ABORTED, -1, 0, rst, rst);
}

void ac_relay_stats_get(const ac_relay *r, ac_relay_stats *out) { *out = r->st; }

ac_dispatcher *ac_relay_side(const ac_relay *r, int side)
{
    if (r->ended || (side != AC_RELAY_A && side != AC_RELAY_B))
        return NULL;
    return r->d[side];
}

void *ac_relay_arg(const ac_relay *r) { return r->arg; }

const char *ac_relay_end_name(ac_relay_end how)
{
    static const char *const names[] = {
        [AC_RELAY_RUNNING] = "running",
        [AC_RELAY_CLEAN] = "clean",
        [AC_RELAY_RESET] = "reset",
        [AC_RELAY_ERROR] = "error",
        [AC_RELAY_CONNECT_FAILED] = "connect-failed",
        [AC_RELAY_CONNECT_TIMEOUT] = "connect-timeout",
        [AC_RELAY_IDLE_TIMEOUT] = "idle-timeout",
        [AC_RELAY_ABORTED] = "aborted",
    };
    unsigned i = (unsigned)how;
    return i < sizeof(names) / sizeof(names[0]) ? names[i] : "unknown";
}
