/* The dispatcher: socket methods (S1-S13), event translation (D6-D9), the
 * guards of one dispatch (L11, L13, L14) and the default handlers (D12-D19). */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* L15 */
static bool is_disconnected(int err)
{
    return err == ECONNRESET || err == ENOTCONN || err == ESHUTDOWN || err == ECONNABORTED ||
           err == EPIPE || err == EBADF;
}

/* D1 addr := a copy of a.  An IPv4 address is kept in d itself; a longer
 * one gets its own allocation.  A length no socket call accepts (0, or
 * more than a sockaddr_storage) leaves no address: the call then fails. */
static int set_addr(ac_dispatcher *d, const struct sockaddr *a, socklen_t len)
{
    if (len == 0 || len > sizeof(struct sockaddr_storage))
        len = 0;
    struct sockaddr *out = NULL;
    if (len > AC__ADDR_INLINE) {
        out = malloc(len);
        if (!out)
            return -ENOMEM;
        memcpy(out, a, len);
    }
    if (d->addrlen > AC__ADDR_INLINE)
        free(d->addr.out);
    if (out)
        d->addr.out = out;
    else if (len)
        memcpy(d->addr.in, a, len);
    d->addrlen = (uint8_t)len;
    return 0;
}

/* ------------------------------------------------------ getting a socket */

int ac_set_socket(ac_dispatcher *d, int fd)
{
    if (d->closed)
        return -EBADF;
    if (fd < 0)
        return -EBADF;
    int rc = ac__fd_fits(d, fd); /* before anything changes: d keeps what it had */
    if (rc < 0)
        return rc;
    ac__unregister(d);
    d->fd = fd;
    return ac__register(d);
}

/* Deviation from W16: the socket d already has is unregistered and closed
 * rather than leaked.  If socket() has just handed out that very number,
 * the old descriptor was closed behind the library's back, and closing "it"
 * would close the new socket (issue 8 item 2): only its entry goes. */
static void drop_old_socket(ac_dispatcher *d, int fresh)
{
    if (d->fd < 0)
        return;
    ac__unregister(d);
    if (d->fd != fresh)
        close(d->fd);
    d->fd = -1;
}

int ac_create_socket(ac_dispatcher *d, int family, int type)
{
    if (d->closed)
        return -EBADF;
    int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return AC_RAISE(d, errno, "socket");
    int rc = ac__fd_fits(d, fd); /* refused: d keeps its old socket */
    if (rc < 0) {
        close(fd);
        return rc;
    }
    struct ac_rare *r = ac__rare(d);
    if (!r) {
        close(fd);
        return -ENOMEM;
    }
    drop_old_socket(d, fd);
    r->family = family;
    r->type = type;
    rc = ac_set_socket(d, fd);
    if (rc < 0) {
        close(fd);
        d->fd = -1;
    }
    return rc;
}

/* D4 makes the socket non-blocking.  The descriptor the library has just
 * accepted, attached inside the handle_accepted it was given to, is so
 * already (accept4 with SOCK_NONBLOCK): no fcntl then (issue 10).  Taken
 * once, so a second attach of that number asks the kernel.  getpeername
 * stays: a connection reset in the accept queue must come out not
 * connected and without addr (D4, S9). */
static int make_nonblocking(ac_dispatcher *d, int fd)
{
    if (fd == d->map->accepted_fd) {
        d->map->accepted_fd = -1;
        return 0;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || ((fl & O_NONBLOCK) == 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0))
        return AC_RAISE(d, errno, "fcntl");
    return 0;
}

int ac_attach(ac_dispatcher *d, int fd)
{
    if (d->closed || fd < 0)
        return -EBADF;
    int rc = make_nonblocking(d, fd);
    if (rc < 0)
        return rc;
    rc = ac_set_socket(d, fd);
    if (rc < 0) {
        d->fd = -1;
        return rc;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
        rc = set_addr(d, (struct sockaddr *)&ss, len);
        if (rc == 0)
            d->connected = true;
    } else if (errno != ENOTCONN && errno != EINVAL) {
        rc = AC_RAISE(d, errno, "getpeername"); /* D4: construction fails */
    }
    if (rc < 0) {
        ac__unregister(d);
        d->fd = -1;
        return rc;
    }
    ac__touch(d);
    return 0;
}

int ac_add_channel(ac_dispatcher *d)
{
    if (d->fd < 0)
        return -EBADF;
    return ac__register(d);
}

int ac_del_channel(ac_dispatcher *d)
{
    if (d->fd < 0)
        return -EBADF;
    ac__unregister(d);
    return 0;
}

/* ----------------------------------------------------- socket methods */

void ac_set_reuse_addr(ac_dispatcher *d)
{
    int on = 1;
    (void)setsockopt(d->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
}

int ac_bind(ac_dispatcher *d, const struct sockaddr *addr, socklen_t len)
{
    int rc = set_addr(d, addr, len); /* S6: addr first */
    if (rc < 0)
        return rc;
    if (bind(d->fd, addr, len) < 0)
        return AC_RAISE(d, errno, "bind");
    return 0;
}

int ac_listen(ac_dispatcher *d, int backlog)
{
    d->accepting = true; /* S5: before the call, kept if it fails */
    ac__touch(d);
    if (listen(d->fd, backlog) < 0)
        return AC_RAISE(d, errno, "listen");
    return 0;
}

int ac_connect(ac_dispatcher *d, const struct sockaddr *addr, socklen_t len)
{
    d->connected = false;
    d->connecting = true;
    ac__touch(d);
    int err = connect(d->fd, addr, len) == 0 ? 0 : errno;
    /* S7; EINTR counts as in progress (W20, allowed deviation). */
    if (err == EINPROGRESS || err == EALREADY || err == EAGAIN || err == EWOULDBLOCK ||
        err == EINTR)
        return set_addr(d, addr, len);
    if (err == 0 || err == EISCONN) {
        int rc = set_addr(d, addr, len);
        return rc < 0 ? rc : ac_handle_connect_event(d);
    }
    return AC_RAISE(d, err, "connect");
}

int ac_accept(ac_dispatcher *d, struct sockaddr *addr, socklen_t *len)
{
    for (;;) {
        int fd = accept4(d->fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno == EINTR)
            continue;
        /* S9: these three mean "nothing" */
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED)
            return -EAGAIN;
        return AC_RAISE(d, errno, "accept");
    }
}

/* S10 for one or more buffers, through d's transport: the buffered sender
 * and the chat channel use it for their chains. */
ssize_t ac__sendv(ac_dispatcher *d, const struct iovec *iov, int iovcnt)
{
    struct ac_transport *tp = ac__tp(d);
    ssize_t n = tp->ops->sendv(tp, d->fd, iov, iovcnt);
    if (n >= 0) {
        if (n > 0 && d->has_idle)
            ac__idle_activity(d);
        return n;
    }
    int err = (int)-n;
    if (err == EAGAIN || err == EWOULDBLOCK)
        return 0;
    if (is_disconnected(err)) {
        int rc = AC__FN(d, handle_close)(d);
        return rc < 0 ? rc : 0;
    }
    return AC_RAISE(d, err, "send");
}

ssize_t ac_send(ac_dispatcher *d, const void *buf, size_t len)
{
    struct iovec iov = {(void *)buf, len};
    return ac__sendv(d, &iov, 1);
}

ssize_t ac_recv(ac_dispatcher *d, void *buf, size_t len)
{
    if (len == 0)
        return AC_RAISE(d, EINVAL, "recv"); /* W21, allowed deviation */
    struct ac_transport *tp = ac__tp(d);
    ssize_t n = tp->ops->recv(tp, d->fd, buf, len);
    if (n > 0) {
        if (d->has_idle)
            ac__idle_activity(d);
        return n;
    }
    /* S11: EOF and the disconnected set close; EAGAIN propagates (W9). */
    if (n == 0 || is_disconnected((int)-n)) {
        int rc = AC__FN(d, handle_close)(d);
        /* asyncore calls handle_close for EOF inside the try block that
         * catches recv's own failures: a disconnected errno raised by
         * handle_close is caught the same way, handle_close once more
         * and an empty result (issue 8 item 2b). */
        if (n == 0 && rc < 0 && is_disconnected(-rc))
            rc = AC__FN(d, handle_close)(d);
        return rc < 0 ? rc : 0;
    }
    return AC_RAISE(d, (int)-n, "recv");
}

ssize_t ac_sendto(ac_dispatcher *d, const void *buf, size_t len, const struct sockaddr *to,
                  socklen_t tolen)
{
    for (;;) {
        ssize_t n = sendto(d->fd, buf, len, MSG_NOSIGNAL, to, tolen);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return AC_RAISE(d, errno, "sendto");
    }
}

ssize_t ac_recvfrom(ac_dispatcher *d, void *buf, size_t len, struct sockaddr *from,
                    socklen_t *fromlen)
{
    for (;;) {
        ssize_t n = recvfrom(d->fd, buf, len, 0, from, fromlen);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return AC_RAISE(d, errno, "recvfrom");
    }
}

int ac_shutdown(ac_dispatcher *d, int how)
{
    struct ac_transport *tp = ac__tp(d);
    int rc = tp->ops->shutdown(tp, d->fd, how);
    return rc < 0 ? AC_RAISE(d, -rc, "shutdown") : 0;
}

int ac_socket_error(ac_dispatcher *d)
{
    if (ac__tp(d) == &ac__file_transport)
        return 0; /* F3: files answer 0, even once closed (F8) */
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return AC_RAISE(d, errno, "SO_ERROR");
    return err;
}

/* The end common to ac_close and ac_detach, once d has no descriptor:
 * closed, into the graveyard, then the close hook (run once). */
static void end(ac_dispatcher *d)
{
    d->closed = true;
    ac__bury(d);
    if (!d->has_hook)
        return;
    ac_close_hook_fn fn = d->rare->close_hook;
    void *arg = d->rare->close_arg;
    d->rare->close_hook = NULL;
    d->has_hook = false;
    fn(d, arg);
}

int ac_close(ac_dispatcher *d)
{
    /* S12: the flags are cleared by every close, also a second one (after
     * D8 set connected on a channel that handle_connect closed, W11). */
    d->connected = d->accepting = d->connecting = false;
    if (d->closed)
        return 0;
    ac__unregister(d); /* out of the poller before the close (X8) */
    ac__idle_release(d);
    int rc = 0;
    if (d->fd >= 0) {
        /* The descriptor is gone whatever close says (X11). */
        struct ac_transport *tp = ac__tp(d);
        int err = -tp->ops->close(tp, d->fd);
        if (err > 0 && err != ENOTCONN && err != EBADF && err != EINTR)
            rc = AC_RAISE(d, err, "close");
        d->fd = -1;
    }
    end(d);
    return rc;
}

int ac_detach(ac_dispatcher *d)
{
    if (d->closed)
        return -EINVAL;
    if (d->fd < 0)
        return -EBADF;
    /* The plain socket and a file's duplicate have no state of their own;
     * another transport (TLS) would lose its session. */
    if (d->has_tp && d->rare->tp != &ac__file_transport)
        return -EINVAL;
    if (d->layer->holds_bytes && d->layer->holds_bytes(d))
        return -EBUSY;
    int fd = d->fd;
    d->connected = d->accepting = d->connecting = false;
    ac__unregister(d);
    ac__idle_release(d);
    d->fd = -1;
    end(d);
    return fd;
}

int ac_set_close_hook(ac_dispatcher *d, ac_close_hook_fn fn, void *arg)
{
    if (!fn) {
        if (d->has_hook)
            d->rare->close_hook = NULL;
        d->has_hook = false;
        return 0;
    }
    if (d->closed)
        return -EBADF;
    if (d->has_hook)
        return -EBUSY;
    struct ac_rare *r = ac__rare(d);
    if (!r)
        return -ENOMEM;
    r->close_hook = fn;
    r->close_arg = arg;
    d->has_hook = true;
    return 0;
}

/* ------------------------------------------------------------- state */

bool ac_is_connected(const ac_dispatcher *d) { return d->connected; }
bool ac_is_accepting(const ac_dispatcher *d) { return d->accepting; }
bool ac_is_connecting(const ac_dispatcher *d) { return d->connecting; }
bool ac_is_closing(const ac_dispatcher *d) { return d->closing; }
bool ac_is_closed(const ac_dispatcher *d) { return d->closed; }

void ac_set_connected(ac_dispatcher *d, bool on)
{
    d->connected = on;
    ac__touch(d);
}

void ac_set_accepting(ac_dispatcher *d, bool on)
{
    d->accepting = on;
    ac__touch(d);
}

void ac_set_connecting(ac_dispatcher *d, bool on)
{
    d->connecting = on;
    ac__touch(d);
}

void ac_set_closing(ac_dispatcher *d, bool on) { d->closing = on; }

int ac_fd(const ac_dispatcher *d) { return d->fd; }

const struct sockaddr *ac_addr(const ac_dispatcher *d, socklen_t *len)
{
    if (len)
        *len = d->addrlen;
    if (!d->addrlen)
        return NULL;
    return d->addrlen > AC__ADDR_INLINE ? d->addr.out : (const struct sockaddr *)d->addr.in;
}

int ac_family(const ac_dispatcher *d) { return d->rare ? d->rare->family : 0; }
int ac_socktype(const ac_dispatcher *d) { return d->rare ? d->rare->type : 0; }
void *ac_user(const ac_dispatcher *d) { return d->user; }
void ac_set_user(ac_dispatcher *d, void *user) { d->user = user; }
ac_map *ac_map_of(const ac_dispatcher *d) { return d->map; }
const ac_handlers *ac_handlers_of(const ac_dispatcher *d) { return d->h; }
void ac_set_debug(ac_dispatcher *d, bool on) { d->debug = on; }

void ac_set_reading(ac_dispatcher *d, bool on)
{
    d->read_paused = !on;
    ac__touch(d);
}

bool ac_is_reading(const ac_dispatcher *d) { return !d->read_paused; }

void ac_set_writing(ac_dispatcher *d, bool on)
{
    if (d->write_paused == !on)
        return; /* the poller is told only when interest changes (X7) */
    d->write_paused = !on;
    ac__touch(d);
}

bool ac_is_writing(const ac_dispatcher *d) { return !d->write_paused; }

/* ------------------------------------------------------------- events */

int ac_handle_connect_event(ac_dispatcher *d)
{
    /* D8 reads SO_ERROR; a poll event that said writable with no error or
     * hang-up has already told (asyncore.h, ac_handle_connect_event). */
    int err = d->map->connect_ok == d ? 0 : ac_socket_error(d);
    if (err < 0)
        return err;
    if (err > 0)
        return AC_RAISE(d, err, "connect"); /* D8: flags unchanged */
    int rc = AC__FN(d, handle_connect)(d);
    if (rc < 0)
        return rc;
    /* D8: set after handle_connect returns, even if it closed d (W11). */
    d->connected = true;
    d->connecting = false;
    ac__touch(d);
    return 0;
}

int ac_handle_read_event(ac_dispatcher *d)
{
    if (d->accepting)
        return AC__FN(d, handle_accept)(d);
    if (!d->connected && d->connecting) {
        int rc = ac_handle_connect_event(d);
        if (rc < 0)
            return rc;
    }
    return AC__FN(d, handle_read)(d);
}

int ac_handle_write_event(ac_dispatcher *d)
{
    if (d->accepting)
        return 0; /* D7: dropped */
    if (!d->connected && d->connecting) {
        int rc = ac_handle_connect_event(d);
        if (rc < 0)
            return rc;
    }
    return AC__FN(d, handle_write)(d);
}

int ac_handle_expt_event(ac_dispatcher *d)
{
    int err = ac_socket_error(d);
    if (err < 0)
        return err;
    return err ? AC__FN(d, handle_close)(d) : AC__FN(d, handle_expt)(d);
}

/* Pass a failure to handle_error, making sure it is the current one. */
int ac__route_error(ac_dispatcher *d, int rc, const char *op)
{
    ac_error *e = &d->map->err;
    if (e->err != -rc)
        *e = (ac_error){.err = -rc, .op = op};
    return AC__FN(d, handle_error)(d, e);
}

/* L11: one guarded select-style dispatch.  Every failure but the exit
 * request goes to handle_error; what handle_error returns leaves the loop. */
static int guard_select(ac_dispatcher *d, int rc, const char *op)
{
    if (rc >= 0 || rc == AC_EXIT_NOW)
        return rc > 0 ? 0 : rc;
    return ac__route_error(d, rc, op);
}

/* A guarded dispatch starts with no current failure, so that handle_error
 * is never told where an earlier, already handled one arose (D19, D20). */
static ac_dispatcher *fresh(ac_dispatcher *d)
{
    ac_error *e = &d->map->err;
    if (e->err || e->op || e->file) /* mostly clear already: not rewritten per event */
        *e = (ac_error){0};
    return d;
}

int ac_read(ac_dispatcher *d)
{
    return guard_select(d, ac_handle_read_event(fresh(d)), "handle_read_event");
}

int ac_write(ac_dispatcher *d)
{
    return guard_select(d, ac_handle_write_event(fresh(d)), "handle_write_event");
}

int ac_exception(ac_dispatcher *d)
{
    return guard_select(d, ac_handle_expt_event(fresh(d)), "handle_expt_event");
}

/* L13/L14: the steps in order, no re-check between them (not even after a
 * close, W7); the first failure skips the rest and is routed by errno. */
int ac_readwrite(ac_dispatcher *d, short revents)
{
    int rc = 0;
    const char *op = "readwrite";
    fresh(d);
    if (revents & POLLIN) {
        rc = ac_handle_read_event(d);
        op = "handle_read_event";
    }
    if (rc >= 0 && !d->map->exit_rc && (revents & POLLOUT)) {
        rc = ac_handle_write_event(d);
        op = "handle_write_event";
    }
    if (rc >= 0 && !d->map->exit_rc && (revents & POLLPRI)) {
        rc = ac_handle_expt_event(d);
        op = "handle_expt_event";
    }
    if (rc >= 0 && !d->map->exit_rc && (revents & (POLLHUP | POLLERR | POLLNVAL))) {
        rc = AC__FN(d, handle_close)(d);
        op = "handle_close";
    }
    if (rc >= 0 || rc == AC_EXIT_NOW)
        return rc > 0 ? 0 : rc;
    if (is_disconnected(-rc))
        return AC__FN(d, handle_close)(d);
    return ac__route_error(d, rc, op);
}

/* ------------------------------------------------- calls on the layer */

int ac_initiate_send(ac_dispatcher *d)
{
    return d->layer->initiate_send ? d->layer->initiate_send(d) : -EINVAL;
}

int ac_close_when_done(ac_dispatcher *d)
{
    return d->layer->close_when_done ? d->layer->close_when_done(d) : -EINVAL;
}

int ac__marks_set(struct ac_marks *w, size_t low, size_t high)
{
    if (high && low > high)
        return -EINVAL;
    *w = (struct ac_marks){.low = (uint32_t)(low < AC__MARK_MAX ? low : AC__MARK_MAX),
                           .high = (uint32_t)(high < AC__MARK_MAX ? high : AC__MARK_MAX) &
                                   AC__MARK_MAX};
    return 0;
}

int ac__marks_changed(ac_dispatcher *d, struct ac_marks *w, size_t pending,
                      void (*flow)(ac_dispatcher *d, bool above))
{
    if (!w->high)
        return 0;
    if (!w->above && pending > w->high) {
        w->above = true;
        if (flow)
            flow(d, true);
        return AC__FN(d, handle_high_water)(d);
    }
    if (w->above && pending <= w->low) {
        w->above = false;
        if (flow)
            flow(d, false);
        return AC__FN(d, handle_low_water)(d);
    }
    return 0;
}

/* ------------------------------------------------------------ defaults */

static bool default_readable(ac_dispatcher *d) { return !d->read_paused; }
static bool default_writable(ac_dispatcher *d)
{
    (void)d;
    return true;
}

int ac_default_handle_read(ac_dispatcher *d)
{
    ac_log_info(d, "unhandled read event", "warning"); /* D12 */
    return 0;
}

int ac_default_handle_write(ac_dispatcher *d)
{
    ac_log_info(d, "unhandled write event", "warning"); /* D13 */
    return 0;
}

int ac_default_handle_expt(ac_dispatcher *d)
{
    ac_log_info(d, "unhandled incoming priority event", "warning"); /* D14 */
    return 0;
}

int ac_default_handle_connect(ac_dispatcher *d)
{
    ac_log_info(d, "unhandled connect event", "warning"); /* D15 */
    return 0;
}

int ac_default_handle_accept(ac_dispatcher *d)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = ac_accept(d, (struct sockaddr *)&ss, &len); /* D16 */
    if (fd == -EAGAIN)
        return 0;
    if (fd < 0)
        return fd;
    /* For the length of this call ac_attach(fd) may skip its fcntl. */
    ac_map *m = d->map;
    int save = m->accepted_fd;
    m->accepted_fd = fd;
    int rc = AC__FN(d, handle_accepted)(d, fd, (struct sockaddr *)&ss, len);
    m->accepted_fd = save;
    return rc;
}

int ac_default_handle_accepted(ac_dispatcher *d, int fd, const struct sockaddr *addr,
                               socklen_t addrlen)
{
    (void)addr;
    (void)addrlen;
    close(fd); /* D17 */
    ac_log_info(d, "unhandled accepted event", "warning");
    return 0;
}

int ac_default_handle_close(ac_dispatcher *d)
{
    ac_log_info(d, "unhandled close event", "warning"); /* D18 */
    return ac_close(d);
}

static int default_handle_timeout(ac_dispatcher *d) { return AC__FN(d, handle_close)(d); }

static int no_op(ac_dispatcher *d)
{
    (void)d;
    return 0;
}

static int no_collector(ac_dispatcher *d, const void *data, size_t len)
{
    (void)data;
    (void)len;
    return AC_RAISE(d, ENOSYS, "collect_incoming_data"); /* C2 */
}

static int no_terminator(ac_dispatcher *d)
{
    return AC_RAISE(d, ENOSYS, "found_terminator"); /* C2 */
}

const struct ac_layer ac__base_layer = {
    .h =
        {
            .name = "asyncore.dispatcher",
            .readable = default_readable,
            .writable = default_writable,
            .handle_read = ac_default_handle_read,
            .handle_write = ac_default_handle_write,
            .handle_expt = ac_default_handle_expt,
            .handle_connect = ac_default_handle_connect,
            .handle_accept = ac_default_handle_accept,
            .handle_accepted = ac_default_handle_accepted,
            .handle_close = ac_default_handle_close,
            .handle_error = ac_default_handle_error,
            .handle_timeout = default_handle_timeout,
            .handle_high_water = no_op,
            .handle_low_water = no_op,
            .collect_incoming_data = no_collector,
            .found_terminator = no_terminator,
        },
};
