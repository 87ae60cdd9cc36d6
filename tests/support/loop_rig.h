/* The loop tests' rig (tests/conformance/test_loop_*.c): channels whose
 * predicates and handlers do what a struct lp in the node says (answer
 * readable/writable, raise an errno or the exit request, close or not,
 * stop the loop) and trace it as "name:event" tokens, e.g. "a:read:3"
 * (handle_read received 3 bytes), "a:write", "a:expt:1" (handle_expt read
 * one urgent byte), "a:close", "a:error:EPROTO", and "a:readable" /
 * "a:writable" for predicate calls when a test asks for them; and checks
 * of a trace's grouping by phase (select-style, L10) or by channel
 * (poll-style, L13).  Built on ac_testkit.h; everything is static, so
 * each test file gets its own copy. */
#ifndef AC_LOOP_RIG_H
#define AC_LOOP_RIG_H

#include "ac_testkit.h"

#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>

/* ---------------------------------------------------------- channel state */

/* Per-channel knobs, kept in the node's `extra` (freed by tk_finish). */
struct lp {
    bool r, w;          /* what readable() / writable() answer */
    bool trace_preds;   /* put "x:readable" / "x:writable" in the trace */
    int rcalls, wcalls; /* predicate calls */
    /* What a handler "raises": 0 = behave normally, AC_EXIT_NOW, or a
     * positive errno (raised with AC_RAISE). */
    int read_ret, write_ret, expt_ret, close_ret;
    bool close_ret_once;               /* close_ret applies to the first call only */
    int error_ret;                     /* handle_error's result: 0, AC_EXIT_NOW or -errno */
    bool error_closes;                 /* handle_error closes the channel */
    bool keep_open;                    /* handle_close does not close */
    bool no_recv;                      /* handle_read reads nothing */
    bool stop_in_read;                 /* handle_read calls ac_loop_stop */
    int close_at_write;                /* handle_write closes the channel at this write */
    int exit_at_write;                 /* handle_write returns AC_EXIT_NOW at this write */
    bool set_acc_in_w, clear_acc_in_w; /* writable() changes accepting */
    bool close_in_r;                   /* readable() closes the channel */
    int pred_ret;                      /* set_poller attempted from a handler: result */
};

static TK_UNUSED struct lp *lp(ac_dispatcher *d) { return tk_node(d)->extra; }

static TK_UNUSED int raise_as(ac_dispatcher *d, int v, const char *op)
{
    if (v == AC_EXIT_NOW)
        return v;
    return AC_RAISE(d, v, op);
}

static TK_UNUSED bool h_readable(ac_dispatcher *d)
{
    struct lp *s = lp(d);
    s->rcalls++;
    if (s->trace_preds)
        tk_tr("%s:readable", tk_name(d));
    if (s->close_in_r)
        ac_close(d);
    return s->r;
}

static TK_UNUSED bool h_writable(ac_dispatcher *d)
{
    struct lp *s = lp(d);
    s->wcalls++;
    if (s->trace_preds)
        tk_tr("%s:writable", tk_name(d));
    if (s->set_acc_in_w)
        ac_set_accepting(d, true);
    if (s->clear_acc_in_w)
        ac_set_accepting(d, false);
    return s->w;
}

static TK_UNUSED int h_read(ac_dispatcher *d)
{
    struct lp *s = lp(d);
    struct tk_node *n = tk_node(d);
    n->reads++;
    if (s->stop_in_read)
        ac_loop_stop(ac_map_of(d));
    if (s->read_ret || s->no_recv) {
        tk_tr("%s:read", tk_name(d));
        return s->read_ret ? raise_as(d, s->read_ret, "test read") : 0;
    }
    char buf[4096];
    ssize_t r = ac_recv(d, buf, sizeof(buf));
    if (r >= 0)
        tk_tr("%s:read:%zd", tk_name(d), r);
    else
        tk_tr("%s:read:-%s", tk_name(d), strerrorname_np((int)-r));
    return r < 0 ? (int)r : 0;
}

static TK_UNUSED int h_write(ac_dispatcher *d)
{
    struct lp *s = lp(d);
    struct tk_node *n = tk_node(d);
    n->writes++;
    tk_tr("%s:write", tk_name(d));
    if (s->close_at_write && n->writes == s->close_at_write)
        return ac_close(d);
    if (s->exit_at_write && n->writes == s->exit_at_write)
        return AC_EXIT_NOW;
    return s->write_ret ? raise_as(d, s->write_ret, "test write") : 0;
}

static TK_UNUSED int h_expt(ac_dispatcher *d)
{
    struct lp *s = lp(d);
    tk_node(d)->expts++;
    if (s->expt_ret || s->no_recv) {
        tk_tr("%s:expt", tk_name(d));
        return s->expt_ret ? raise_as(d, s->expt_ret, "test expt") : 0;
    }
    char buf[16];
    ssize_t r = recv(ac_fd(d), buf, sizeof(buf), MSG_OOB);
    if (r >= 0)
        tk_tr("%s:expt:%zd", tk_name(d), r);
    else
        tk_tr("%s:expt:-%s", tk_name(d), strerrorname_np(errno));
    return 0;
}

static TK_UNUSED int h_close(ac_dispatcher *d)
{
    struct lp *s = lp(d);
    tk_node(d)->closes++;
    tk_tr("%s:close", tk_name(d));
    if (s->close_ret) {
        int v = s->close_ret;
        if (s->close_ret_once)
            s->close_ret = 0;
        return raise_as(d, v, "test close");
    }
    if (s->keep_open)
        return 0;
    return ac_close(d);
}

static TK_UNUSED int h_error(ac_dispatcher *d, const ac_error *e)
{
    struct lp *s = lp(d);
    struct tk_node *n = tk_node(d);
    n->errors++;
    n->last_err = e->err;
    tk_tr("%s:error:%s", tk_name(d), strerrorname_np(e->err));
    if (s->error_ret)
        return s->error_ret;
    if (s->error_closes)
        return ac_close(d);
    return 0;
}

/* With predicates: asked every iteration (L6). */
static TK_UNUSED const ac_handlers ph = {
    .readable = h_readable,
    .writable = h_writable,
    .handle_read = h_read,
    .handle_write = h_write,
    .handle_expt = h_expt,
    .handle_close = h_close,
    .handle_error = h_error,
    .finalize = tk_finalize,
};

/* Without predicates: plain interest (readable, writable unless accepting). */
static TK_UNUSED const ac_handlers nph = {
    .handle_read = h_read,
    .handle_write = h_write,
    .handle_expt = h_expt,
    .handle_close = h_close,
    .handle_error = h_error,
    .finalize = tk_finalize,
};

/* A traced channel; fd >= 0 is adopted (D4), -1 leaves it without socket. */
static TK_UNUSED ac_dispatcher *mk(ac_map *m, const ac_handlers *h, const char *name, int fd,
                                   bool r, bool w)
{
    ac_dispatcher *d = tk_new(m, h, name);
    struct lp *s = calloc(1, sizeof(*s));
    cr_assert_not_null(s);
    s->r = r;
    s->w = w;
    tk_node(d)->extra = s;
    if (fd >= 0)
        cr_assert_eq(ac_attach(d, fd), 0);
    return d;
}

/* The peer resets the connection (RST instead of FIN). */
static TK_UNUSED void reset_peer(int peer, int mine)
{
    struct linger lg = {1, 0};
    cr_assert_eq(setsockopt(peer, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(peer);
    cr_assert(tk_wait_fd(mine, POLLIN, 1000));
}

static TK_UNUSED void send_oob(int peer, int mine)
{
    cr_assert_eq(send(peer, "!", 1, MSG_OOB), 1);
    cr_assert(tk_wait_fd(mine, POLLPRI, 1000), "urgent data did not arrive");
}

/* Close a map that is not the test's main one; its finalizers run. */
static TK_UNUSED void free_other_map(ac_map *m)
{
    cr_assert_eq(ac_close_all(m, true), 0);
    cr_assert_eq(ac_map_free(m), 0);
}

/* ------------------------------------------------------- trace checking */

struct tok {
    char name[16];
    char ev[32];
};

static TK_UNUSED int split_trace(struct tok *out, int max)
{
    char copy[sizeof(tk_trace)];
    snprintf(copy, sizeof(copy), "%s", tk_trace);
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        cr_assert_lt(n, max, "trace too long: %s", tk_trace);
        char *colon = strchr(t, ':');
        cr_assert_not_null(colon, "bad token %s", t);
        *colon = '\0';
        snprintf(out[n].name, sizeof(out[n].name), "%s", t);
        snprintf(out[n].ev, sizeof(out[n].ev), "%s", colon + 1);
        n++;
    }
    return n;
}

/* The trace holds, for each of the nch channels, the events evs[0..nev-1].
 * by_phase (select-style, L10): all evs[0] first (one per channel, any
 * channel order), then all evs[1], ...  Otherwise (poll-style, L13): one
 * channel's events in order, then the next channel's. */
static TK_UNUSED void assert_grouped(const char *const *evs, int nev, int nch, bool by_phase)
{
    struct tok t[64];
    int n = split_trace(t, 64);
    cr_assert_eq(n, nev * nch, "trace: %s", tk_trace);
    for (int i = 0; i < n; i++) {
        int ev = by_phase ? i / nch : i % nev;
        cr_assert_str_eq(t[i].ev, evs[ev], "token %d of \"%s\"", i, tk_trace);
        if (!by_phase && i % nev)
            cr_assert_str_eq(t[i].name, t[i - 1].name, "mixed channels: %s", tk_trace);
    }
    /* Every channel appears once per event kind. */
    for (int e = 0; e < nev; e++)
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
                if (!strcmp(t[i].ev, evs[e]) && !strcmp(t[j].ev, evs[e]))
                    cr_assert_str_neq(t[i].name, t[j].name, "twice: %s", tk_trace);
}

static TK_UNUSED int count_tokens(const char *ev)
{
    struct tok t[64];
    int n = split_trace(t, 64), k = 0;
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].ev, ev))
            k++;
    return k;
}

#endif /* AC_LOOP_RIG_H */
