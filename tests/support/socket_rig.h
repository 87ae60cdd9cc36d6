/* The socket method tests' rig (tests/conformance/test_socket_*.c):
 * handlers that trace what a dispatcher's socket did ("connect:CN",
 * "read:N" or "read:-ENAME", "close", "error:ENAME:N") and a table of
 * them.  Built on ac_testkit.h; everything is static, so each test file
 * gets its own copy. */
#ifndef AC_SOCKET_RIG_H
#define AC_SOCKET_RIG_H

#include "ac_testkit.h"

#include <signal.h>

/* ---------------------------------------------------------- handlers */

static TK_UNUSED int h_close(ac_dispatcher *d)
{
    tk_node(d)->closes++;
    tk_tr("close");
    return ac_close(d);
}

static TK_UNUSED int h_error(ac_dispatcher *d, const ac_error *e)
{
    struct tk_node *n = tk_node(d);
    n->errors++;
    n->last_err = e->err;
    tk_tr("error:%s:%d", strerrorname_np(e->err), ac_is_connecting(d));
    return ac_default_handle_error(d, e);
}

/* handle_connect sees the flags before D8 updates them: "connect:CN" with
 * C = connected, N = connecting. */
static TK_UNUSED int h_connect(ac_dispatcher *d)
{
    tk_node(d)->connects++;
    tk_tr("connect:%d%d", ac_is_connected(d), ac_is_connecting(d));
    return 0;
}

/* Reads up to node->chunk bytes (default 4096), keeps them, traces the
 * result: "read:N", or "read:-ENAME". */
static TK_UNUSED int h_read(ac_dispatcher *d)
{
    struct tk_node *n = tk_node(d);
    n->reads++;
    size_t want = n->chunk ? n->chunk : 4096;
    char buf[65536];
    if (want > sizeof(buf))
        want = sizeof(buf);
    ssize_t r = ac_recv(d, buf, want);
    if (r > 0) {
        tk_tr("read:%zd", r);
        if (n->buf && n->len + (size_t)r <= n->cap) {
            memcpy(n->buf + n->len, buf, (size_t)r);
            n->len += (size_t)r;
        }
    } else if (r == 0) {
        tk_tr("read:0");
    } else {
        tk_tr("read:-%s", strerrorname_np((int)-r));
    }
    return r < 0 ? (int)r : 0;
}

static TK_UNUSED int h_write_quiet(ac_dispatcher *d)
{
    tk_node(d)->writes++;
    return 0;
}

static TK_UNUSED const ac_handlers traced = {
    .handle_read = h_read,
    .handle_write = h_write_quiet,
    .handle_connect = h_connect,
    .handle_close = h_close,
    .handle_error = h_error,
    .finalize = tk_finalize,
};

/* A listener whose handle_accepted keeps every accepted descriptor in
 * accepted_fds and traces "accepted:<family>". */
static TK_UNUSED int accepted_fds[8];
static TK_UNUSED int n_accepted;

static TK_UNUSED int h_accepted(ac_dispatcher *d, int fd, const struct sockaddr *addr,
                                socklen_t alen)
{
    (void)d;
    tk_tr("accepted:%d", addr ? addr->sa_family : -1);
    (void)alen;
    accepted_fds[n_accepted++] = fd;
    return 0;
}

static TK_UNUSED const ac_handlers listener_h = {
    .handle_accepted = h_accepted,
    .handle_close = h_close,
    .handle_error = h_error,
    .finalize = tk_finalize,
};

static TK_UNUSED bool client_connected(void *arg) { return ac_is_connected(arg); }

#endif /* AC_SOCKET_RIG_H */
