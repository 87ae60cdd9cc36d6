/* portfwd — a TCP port forwarder: the seed's asyncore forwarder as a tool
 * that reads rinetd's configuration.
 *
 * Each rule is a listener; each accepted client gets a non-blocking connect
 * to the rule's remote and the two sockets become a relay
 * (asyncore_relay.h), which moves the bytes with bounded buffers,
 * half-close and reset propagation.  With --threads N there are N workers,
 * each a map in its own thread with its own SO_REUSEPORT listeners; the
 * main thread is worker 0 and also receives the signals.
 *
 * Rules live in a ruleset, made from the command line or the config file.
 * SIGHUP makes a new ruleset and hands it to every worker, which keeps the
 * listeners whose address is unchanged (their backlog survives) and
 * replaces the others.  Listeners and relays keep pointing at the rule they
 * started under, so a ruleset is counted: it is freed, and its logfile
 * closed, when no listener, connection or reload uses it any more
 * (logrotate sends a SIGHUP a day).  A rule's counters are kept by name
 * (bind -> connect), so they survive reloads that keep the rule. */
#define _GNU_SOURCE
#include "config.h"
#include "toolkit.h"

#include <asyncore.h>
#include <asyncore_relay.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ACCEPT_BACKOFF 0.1 /* seconds accept pauses after EMFILE and the like */
#define MAX_THREADS 64

struct stats { /* per rule name, shared by the workers and by every ruleset with that rule */
    struct stats *next;          /* S.stats */
    char name[160];              /* "bindhost:port -> connecthost:port" */
    long rules;                  /* rules using it (under S.lock); freed at 0 */
    const struct ruleset *claim; /* the ruleset being loaded that took it */
    atomic_long active, total, refused, errors;
    atomic_long spliced;   /* connections whose bytes moved with splice(2) */
    atomic_ullong in, out; /* client -> remote, remote -> client */
};

struct rule {
    struct pf_rule *src; /* its line in the ruleset's config */
    struct ruleset *rs;  /* the ruleset it belongs to */
    struct sockaddr_storage bind, remote, source;
    socklen_t bind_len, remote_len, source_len; /* source_len 0: none */
    double idle_timeout;
    char name[160]; /* "bindhost:port -> connecthost:port" */
    struct stats *st;
};

struct ruleset {
    struct pf_config cfg;
    struct rule *rules;
    size_t n;
    atomic_long refs;     /* S.rs, listeners, connections, reloads on their way */
    struct ruleset *next; /* S.all */
    int logfd;            /* the config's logfile, -1 if none */
};

struct worker {
    int id;
    ac_map *map;
    pthread_t thread;
    tool_backoff *backoff;
    ac_timer *drain;
    struct listener *listeners;
    struct conn *waiting; /* accepted, no descriptor yet for their remote */
    bool stopping;
};

struct listener {
    struct listener *next;
    struct worker *w;
    struct rule *rule;
    ac_dispatcher *d;
};

struct conn {          /* what a relay's done callback needs */
    struct rule *rule; /* holds a reference on rule->rs */
    char client[INET6_ADDRSTRLEN + 8];
    int fd; /* the client, while it waits in worker->waiting */
    struct conn *next;
};

static struct {
    /* options */
    const char *config_path;
    const char *local_ip, *local_port, *remote_ip, *remote_port, *source;
    int backlog;
    double connect_timeout, idle_timeout, drain_timeout;
    bool keepalive;
    enum { SPLICE_AUTO, SPLICE_ALWAYS, SPLICE_NEVER } splice;
    long max_conns;
    size_t buffer;
    int threads;
    /* state */
    struct ruleset *rs;   /* what the listeners serve */
    pthread_mutex_t lock; /* S.all and S.stats: rulesets die in any worker */
    struct ruleset *all;  /* every ruleset still in use */
    struct stats *stats;
    bool serving; /* the loops ran: the exit prints the stats */
    struct worker workers[MAX_THREADS];
    atomic_long active; /* relays, all rules, all workers */
    int stop_signals;
} S = {
    .local_ip = "127.0.0.1",
    .backlog = 128,
    .connect_timeout = 10,
    .drain_timeout = 10,
    .max_conns = 10000,
    .threads = 1,
    .lock = PTHREAD_MUTEX_INITIALIZER,
};

/* ------------------------------------------------------------ logging */

/* One line per connection: to the config's logfile when there is one, in
 * rinetd's tab-separated form or its "common" form (logcommon), which web
 * log tools read; else to stderr at level debug (-v) only.  A forwarder
 * serving thousands of connections a second should not pay a write(2)
 * per connection for a line nobody asked for: the counters (SIGUSR1, and
 * at exit) say how many there were; -v or a logfile names each. */
static void log_connection(const struct rule *r, const char *client, unsigned long long in,
                           unsigned long long out, double secs, const char *result)
{
    const struct pf_rule *p = r->src;
    const struct ruleset *rs = r->rs;
    if (rs->logfd < 0) {
        tool_log(TOOL_DEBUG, "%s via %s: %llu bytes in, %llu out, %.3f s, %s", client, r->name, in,
                 out, secs, result);
        return;
    }
    char when[64], line[1024];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    int n;
    if (rs->cfg.logcommon) {
        strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S %z", &tm);
        n = snprintf(line, sizeof line,
                     "%s - - [%s] \"GET /rinetd-services/%s/%s/%s/%s/%s HTTP/1.0\" 200 %llu - - - "
                     "%llu\n",
                     client, when, p->bind_host, p->bind_port, p->connect_host, p->connect_port,
                     result, out, in);
    } else {
        strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S", &tm);
        n = snprintf(line, sizeof line, "%s\t%s\t%s\t%s\t%s\t%s\t%llu\t%llu\t%s\n", when, client,
                     p->bind_host, p->bind_port, p->connect_host, p->connect_port, in, out, result);
    }
    /* One write per line on an O_APPEND descriptor: lines from several
     * workers never interleave. */
    if (n > 0 && write(rs->logfd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line) < 0)
        tool_log(TOOL_WARNING, "logfile: %s", strerror(errno));
}

/* ---------------------------------------------------------- rulesets */

static int resolve(const char *host, const char *port, bool passive, struct sockaddr_storage *ss,
                   socklen_t *len, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = passive ? AI_PASSIVE : 0};
    struct addrinfo *ai;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai) {
        snprintf(err, errlen, "cannot resolve %s port %s: %s", host ? host : "*", port ? port : "0",
                 gai_strerror(gai));
        return -1;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* The counters of the rule called name, shared with the rules of that
 * name in older rulesets (under S.lock).  Two rules of one ruleset with
 * the same name (two "port 0" rules) get one each.  NULL: out of memory. */
static struct stats *stats_get(const char *name, const struct ruleset *rs)
{
    struct stats *st = S.stats;
    while (st && (strcmp(st->name, name) || st->claim == rs))
        st = st->next;
    if (!st && (st = calloc(1, sizeof *st))) {
        snprintf(st->name, sizeof st->name, "%s", name);
        st->next = S.stats;
        S.stats = st;
    }
    if (st) {
        st->claim = rs;
        st->rules++;
    }
    return st;
}

static void stats_put(struct stats *st) /* under S.lock */
{
    if (!st || --st->rules > 0)
        return;
    struct stats **pp = &S.stats;
    while (*pp != st)
        pp = &(*pp)->next;
    *pp = st->next;
    free(st);
}

static void ruleset_destroy(struct ruleset *rs)
{
    pthread_mutex_lock(&S.lock);
    for (struct ruleset **pp = &S.all; *pp; pp = &(*pp)->next)
        if (*pp == rs) {
            *pp = rs->next;
            break;
        }
    for (size_t i = 0; rs->rules && i < rs->cfg.nrules; i++)
        stats_put(rs->rules[i].st);
    pthread_mutex_unlock(&S.lock);
    if (rs->logfd >= 0)
        close(rs->logfd);
    free(rs->rules);
    pf_config_free(&rs->cfg);
    free(rs);
}

static struct ruleset *ruleset_ref(struct ruleset *rs)
{
    atomic_fetch_add(&rs->refs, 1);
    return rs;
}

/* The last user of a ruleset frees it, in whichever worker that is. */
static void ruleset_unref(struct ruleset *rs)
{
    if (rs && atomic_fetch_sub(&rs->refs, 1) == 1)
        ruleset_destroy(rs);
}

/* The command line's one rule: -l, -p, -r and -P each checked whole, never
 * pasted into a config line (issue 8 item 10: "-r '127.0.0.1 80 #'" would
 * forward to port 80). */
static int cmdline_config(struct pf_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    if (!S.local_port || !S.remote_ip || !S.remote_port) {
        snprintf(err, errlen, "give -p, -r and -P (or -c FILE)");
        return -EINVAL;
    }
    int rc =
        pf_config_add_rule(cfg, S.local_ip, S.local_port, S.remote_ip, S.remote_port, err, errlen);
    if (rc < 0)
        pf_config_free(cfg);
    return rc;
}

/* Two rules whose host names resolve to overlapping addresses (the parser
 * has caught the literal ones): an error naming both lines (item 6). */
static int check_resolved_binds(const struct ruleset *rs, char *err, size_t errlen)
{
    const struct sockaddr **addrs = calloc(rs->cfg.nrules, sizeof *addrs);
    size_t a, b;
    if (!addrs) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < rs->cfg.nrules; i++)
        addrs[i] = (const struct sockaddr *)&rs->rules[i].bind;
    int rc = pf_first_overlap(addrs, rs->cfg.nrules, &a, &b);
    free(addrs);
    if (rc <= 0) {
        if (rc < 0)
            snprintf(err, errlen, "out of memory");
        return rc;
    }
    const struct pf_rule *x = rs->rules[a].src, *y = rs->rules[b].src;
    snprintf(err, errlen, "%s:%d: %s port %s overlaps line %d's %s port %s (one rule per address)",
             S.config_path, y->line, y->bind_host, y->bind_port, x->line, x->bind_host,
             x->bind_port);
    return -EINVAL;
}

/* Load (or build) the configuration and resolve every address in it.  All
 * of it is checked before anything listens; a failure leaves nothing. */
static struct ruleset *ruleset_load(char *err, size_t errlen)
{
    struct ruleset *rs = calloc(1, sizeof *rs);
    if (!rs) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rs->logfd = -1;
    atomic_init(&rs->refs, 1);
    pthread_mutex_lock(&S.lock);
    rs->next = S.all;
    S.all = rs;
    pthread_mutex_unlock(&S.lock);
    int rc = S.config_path ? pf_config_load(S.config_path, &rs->cfg, err, errlen)
                           : cmdline_config(&rs->cfg, err, errlen);
    if (rc == 0 && rs->cfg.nrules == 0) {
        snprintf(err, errlen, "%s: no forwarding rule", S.config_path);
        rc = -EINVAL;
    }
    if (rc == 0 && !(rs->rules = calloc(rs->cfg.nrules, sizeof *rs->rules))) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < rs->cfg.nrules; i++) {
        struct pf_rule *p = &rs->cfg.rules[i];
        struct rule *r = &rs->rules[i];
        r->src = p;
        r->rs = rs;
        r->idle_timeout = p->timeout > 0 ? p->timeout : S.idle_timeout;
        snprintf(r->name, sizeof r->name, "%s:%s -> %s:%s", p->bind_host, p->bind_port,
                 p->connect_host, p->connect_port);
        pthread_mutex_lock(&S.lock);
        r->st = stats_get(r->name, rs);
        pthread_mutex_unlock(&S.lock);
        if (!r->st) {
            snprintf(err, errlen, "out of memory");
            rc = -ENOMEM;
            break;
        }
        const char *source = p->source ? p->source : S.source;
        char why[400];
        if (resolve(p->bind_host, p->bind_port, true, &r->bind, &r->bind_len, why, sizeof why) ||
            resolve(p->connect_host, p->connect_port, false, &r->remote, &r->remote_len, why,
                    sizeof why) ||
            (source && resolve(source, NULL, true, &r->source, &r->source_len, why, sizeof why))) {
            if (S.config_path)
                snprintf(err, errlen, "%s:%d: %s", S.config_path, p->line, why);
            else
                snprintf(err, errlen, "%s", why);
            rc = -EINVAL;
        }
    }
    pthread_mutex_lock(&S.lock);
    for (size_t i = 0; rs->rules && i < rs->cfg.nrules; i++)
        if (rs->rules[i].st)
            rs->rules[i].st->claim = NULL; /* the next load may take it again */
    pthread_mutex_unlock(&S.lock);
    if (rc == 0)
        rc = check_resolved_binds(rs, err, errlen);
    if (rc == 0 && rs->cfg.logfile) {
        rs->logfd = open(rs->cfg.logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (rs->logfd < 0) {
            snprintf(err, errlen, "%s: %s", rs->cfg.logfile, strerror(errno));
            rc = -errno;
        }
    }
    if (rc < 0) {
        ruleset_unref(rs);
        return NULL;
    }
    rs->n = rs->cfg.nrules;
    return rs;
}

/* -------------------------------------------------------- connections */

static const char *result_name(const ac_relay_stats *st)
{
    switch (st->how) {
    case AC_RELAY_CLEAN:
        /* rinetd's words: "remote" is the client, "local" the forwarded-to
         * server; the side that finished first is named. */
        return st->first_eof == AC_RELAY_A ? "done-remote-closed" : "done-local-closed";
    case AC_RELAY_CONNECT_FAILED: return "local-connect-failed";
    default: return ac_relay_end_name(st->how);
    }
}

static void relay_done(ac_relay *relay, const ac_relay_stats *st, void *arg)
{
    (void)relay;
    struct conn *c = arg;
    struct stats *rs = c->rule->st;
    atomic_fetch_sub(&rs->active, 1);
    atomic_fetch_sub(&S.active, 1);
    atomic_fetch_add(&rs->in, st->bytes[AC_RELAY_AB]);
    atomic_fetch_add(&rs->out, st->bytes[AC_RELAY_BA]);
    if (st->how != AC_RELAY_CLEAN)
        atomic_fetch_add(&rs->errors, 1);
    if (st->spliced[AC_RELAY_AB] || st->spliced[AC_RELAY_BA])
        atomic_fetch_add(&rs->spliced, 1);
    const char *why = result_name(st);
    if (st->err)
        tool_log(TOOL_DEBUG, "%s via %s: %s: %s", c->client, c->rule->name, why, strerror(st->err));
    log_connection(c->rule, c->client, (unsigned long long)st->bytes[AC_RELAY_AB],
                   (unsigned long long)st->bytes[AC_RELAY_BA], st->end - st->start, why);
    ruleset_unref(c->rule->rs);
    free(c);
}

/* A client that never got a relay: closed, counted and logged as `how`. */
static void conn_fail(struct conn *c, ac_relay_end how, int err)
{
    close(c->fd);
    ac_relay_stats st = {.how = how, .err = err, .first_eof = -1, .side = -1};
    relay_done(NULL, &st, c);
}

/* TCP_NODELAY (always: relayed bytes go out at once) and
 * SO_KEEPALIVE (--keepalive) on a socket.  A listener's settings are
 * inherited by the sockets it accepts (Linux copies the listening socket),
 * so the clients' sockets need no system call of their own: the relay is
 * told to leave TCP_NODELAY alone (nagle), which spares one setsockopt per
 * connection. */
static void sockopts(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (S.keepalive)
        (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}

/* A socket to the rule's remote, its non-blocking connect started.
 * *connecting tells whether it is still in progress.  fd or -errno. */
static int connect_remote(const struct rule *r, bool *connecting)
{
    int fd = socket(r->remote.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (r->source_len && bind(fd, (const struct sockaddr *)&r->source, r->source_len) < 0)
        goto fail;
    sockopts(fd);
    *connecting = connect(fd, (const struct sockaddr *)&r->remote, r->remote_len) < 0;
    if (*connecting && errno != EINPROGRESS)
        goto fail;
    return fd;
fail:;
    int err = errno;
    close(fd);
    return -err;
}

/* Whether a failed step is worth retrying once descriptors or memory are
 * free again.  The relay's -EMFILE is not: its sockets exist, and a map
 * on select refuses a descriptor >= FD_SETSIZE (that client fails, the
 * others go on; waiting would not make its number smaller). */
static bool out_of_resources(int rc, const char *op)
{
    if (rc == -EMFILE && !strcmp(op, "relay"))
        return false;
    return rc == -EMFILE || rc == -ENFILE || rc == -ENOBUFS || rc == -ENOMEM;
}

/* Connect c's client (c->fd) to its rule's remote and relay the two.
 * 0: the relay owns both now.  -errno: c->fd is still open, and *op names
 * the step that failed. */
static int start_relay(ac_map *m, struct conn *c, const char **op)
{
    bool connecting = false;
    int rfd = connect_remote(c->rule, &connecting);
    *op = "socket";
    if (rfd < 0)
        return rfd;
    ac_relay_config cfg = {.buffer_size = S.buffer,
                           .no_splice = S.splice == SPLICE_NEVER,
                           .splice_always = S.splice == SPLICE_ALWAYS,
                           .nagle = true, /* set already: sockopts() */
                           .b_connecting = connecting,
                           .connect_timeout = S.connect_timeout,
                           .idle_timeout = c->rule->idle_timeout};
    *op = "relay";
    int rc = ac_relay_new(NULL, m, c->fd, rfd, &cfg, relay_done, c);
    if (rc < 0)
        close(rfd);
    return rc;
}

/* Relay c, or, when a descriptor for its remote is missing, keep it
 * waiting (accepted, not closed) and pause accepting: the clients behind
 * it wait in the backlog, none is dropped (issue 8 item 7). */
static void serve(struct worker *w, struct conn *c)
{
    const char *op;
    int rc = start_relay(w->map, c, &op);
    if (rc == 0)
        return;
    if (!out_of_resources(rc, op)) {
        conn_fail(c, AC_RELAY_CONNECT_FAILED, -rc); /* the others go on */
        return;
    }
    struct conn **pp = &w->waiting;
    while (*pp)
        pp = &(*pp)->next;
    *pp = c;
    c->next = NULL;
    tool_backoff_pause(w->backoff, c->rule->name, op, -rc); /* all of w's listeners */
}

/* Whether a new client may come in; if not, why (for the log). */
static const char *admission(const struct listener *l, const char *client)
{
    const struct pf_config *cfg = &l->rule->rs->cfg;
    if (!pf_allowed(cfg, NULL, client))
        return "not-allowed";
    if (!pf_allowed(cfg, l->rule->src, client))
        return "denied";
    if (atomic_load(&S.active) >= S.max_conns)
        return "refused";
    return NULL;
}

static int listener_accepted(ac_dispatcher *d, int fd, const struct sockaddr *addr,
                             socklen_t addrlen)
{
    struct listener *l = ac_user(d);
    struct rule *r = l->rule;
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return 0;
    }
    c->rule = r;
    c->fd = fd;
    ruleset_ref(r->rs);
    /* An IPv4 client of a "::" listener is shown, and matched by allow /
     * deny, as a.b.c.d (issue 8 item 5). */
    tool_host_text(addr, addrlen, c->client, sizeof c->client);
    atomic_fetch_add(&r->st->total, 1);
    const char *no = admission(l, c->client);
    if (no) {
        atomic_fetch_add(&r->st->refused, 1);
        close(fd); /* a plain FIN: the client learns at once */
        log_connection(r, c->client, 0, 0, 0, no);
        ruleset_unref(r->rs);
        free(c);
        return 0;
    }
    atomic_fetch_add(&r->st->active, 1);
    atomic_fetch_add(&S.active, 1);
    serve(l->w, c);
    return 0;
}

/* Accepting off or on for all of w's listeners (tool_backoff).  When a
 * pause is over, the clients that waited for a descriptor go first, in
 * order; accepting resumes once they all have one. */
static void set_accepting(void *arg, bool on)
{
    struct worker *w = arg;
    while (on && w->waiting) {
        struct conn *c = w->waiting;
        w->waiting = c->next;
        serve(w, c);
        if (tool_backoff_is_active(w->backoff))
            return; /* still out: serve() queued c again and restarted the pause */
    }
    for (struct listener *l = w->listeners; l; l = l->next)
        ac_set_reading(l->d, on);
}

/* An accept failure that is not "nothing there": EMFILE, ENFILE, ENOBUFS. */
static int listener_error(ac_dispatcher *d, const ac_error *e)
{
    struct listener *l = ac_user(d);
    atomic_fetch_add(&l->rule->st->errors, 1);
    tool_backoff_pause(l->w->backoff, l->rule->name, e->op, e->err);
    return 0;
}

static void listener_finalize(ac_dispatcher *d)
{
    struct listener *l = ac_user(d);
    if (l->rule)
        ruleset_unref(l->rule->rs);
    free(l);
}

/* A listener serves r from now on; it holds a reference on r's ruleset. */
static void listener_set_rule(struct listener *l, struct rule *r)
{
    ruleset_ref(r->rs);
    if (l->rule)
        ruleset_unref(l->rule->rs);
    l->rule = r;
}

static const ac_handlers listener_handlers = {
    .name = "portfwd.listener",
    .handle_accepted = listener_accepted,
    .handle_error = listener_error,
    .finalize = listener_finalize,
};

/* ---------------------------------------------------------- listeners */

static struct listener *listener_open(struct worker *w, struct rule *r, char *err, size_t errlen)
{
    struct listener *l = calloc(1, sizeof *l);
    ac_dispatcher *d = l ? ac_dispatcher_new(w->map, &listener_handlers, l) : NULL;
    if (!d) {
        free(l);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->w = w;
    l->d = d;
    listener_set_rule(l, r);
    int rc = ac_create_socket(d, r->bind.ss_family, SOCK_STREAM);
    if (rc == 0) {
        ac_set_reuse_addr(d);
        int one = 1; /* every worker listens on the same address */
        if (S.threads > 1 && setsockopt(ac_fd(d), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
            rc = -errno;
        sockopts(ac_fd(d)); /* for the accepted sockets, which inherit them */
    }
    if (rc == 0)
        rc = ac_bind(d, (const struct sockaddr *)&r->bind, r->bind_len);
    if (rc == 0)
        rc = ac_listen(d, S.backlog);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s port %s: %s", r->src->bind_host,
                 r->src->bind_port, strerror(-rc));
        ac_close(d); /* finalize frees l */
        return NULL;
    }
    return l;
}

static bool same_bind(const struct rule *a, const struct rule *b)
{
    return a->bind_len == b->bind_len && !memcmp(&a->bind, &b->bind, a->bind_len);
}

/* Listen for every rule of rs.  A listener whose address is in rs too is
 * kept (its backlog survives a reload) and serves the new rule; the rest
 * are closed.  All or nothing: if one address cannot be listened on, the
 * worker keeps exactly what it had. */
static int worker_install(struct worker *w, struct ruleset *rs, char *err, size_t errlen)
{
    struct listener **next = calloc(rs->n, sizeof *next);
    bool *opened = calloc(rs->n, sizeof *opened);
    size_t i = 0;
    for (; next && opened && i < rs->n; i++) {
        for (struct listener **pp = &w->listeners; *pp; pp = &(*pp)->next)
            if (same_bind((*pp)->rule, &rs->rules[i])) {
                next[i] = *pp; /* taken out of the old list */
                *pp = next[i]->next;
                break; /* *pp may be NULL now: no step past it */
            }
        if (!next[i]) {
            next[i] = listener_open(w, &rs->rules[i], err, errlen);
            opened[i] = next[i] != NULL;
            if (!next[i])
                break;
        }
    }
    int rc = i == rs->n ? 0 : -1;
    if (!next || !opened)
        snprintf(err, errlen, "out of memory");
    /* Whatever stays in w->listeners now is closed on success; on failure
     * the new ones are closed and the kept ones go back. */
    for (size_t k = 0; k < i; k++) {
        if (rc < 0 && opened[k]) {
            ac_close(next[k]->d);
        } else if (rc < 0) {
            next[k]->next = w->listeners;
            w->listeners = next[k];
        }
    }
    if (rc == 0) {
        for (struct listener *l = w->listeners; l; l = l->next)
            ac_close(l->d);
        w->listeners = NULL;
        for (size_t k = rs->n; k-- > 0;) {
            listener_set_rule(next[k], &rs->rules[k]);
            next[k]->next = w->listeners;
            w->listeners = next[k];
        }
        for (struct listener *l = w->listeners; l && w->id == 0; l = l->next)
            tool_log_listening(ac_fd(l->d), "forwarding to %s port %s", l->rule->src->connect_host,
                               l->rule->src->connect_port);
    }
    free(next);
    free(opened);
    return rc;
}

/* ------------------------------------------------------------ workers */

static double drain_over(ac_timer *t, void *arg)
{
    (void)t;
    struct worker *w = arg;
    long left = atomic_load(&S.active);
    if (left)
        tool_log(TOOL_INFO, "drain timeout: closing the connections left");
    ac_close_all(w->map, true);
    return -1;
}

/* The clients still waiting for a descriptor are closed (shutdown). */
static void drop_waiting(struct worker *w)
{
    while (w->waiting) {
        struct conn *c = w->waiting;
        w->waiting = c->next;
        conn_fail(c, AC_RELAY_ABORTED, 0);
    }
}

/* Stop accepting; the loop ends once the relays have finished, or the
 * drain timeout closes them. */
static void worker_stop(ac_map *m, void *arg)
{
    (void)m;
    struct worker *w = arg;
    if (w->stopping) {
        ac_close_all(w->map, true); /* asked twice: now */
        return;
    }
    w->stopping = true;
    for (struct listener *l = w->listeners; l; l = l->next)
        ac_close(l->d);
    w->listeners = NULL;
    tool_backoff_stop(w->backoff);
    drop_waiting(w);
    if (S.drain_timeout > 0)
        ac_timer_start(w->drain, S.drain_timeout);
    else
        ac_close_all(w->map, true);
}

/* Another worker's part of a reload that worker 0 has done; it holds a
 * reference on the ruleset, taken for it by on_signal. */
static void worker_reload(ac_map *m, void *arg)
{
    struct worker *w = &S.workers[0];
    for (int i = 0; i < S.threads; i++)
        if (S.workers[i].map == m)
            w = &S.workers[i];
    char err[512];
    if (!w->stopping && worker_install(w, arg, err, sizeof err) < 0)
        tool_log(TOOL_ERROR, "reload: %s (worker %d keeps its listeners)", err, w->id);
    ruleset_unref(arg);
}

static int worker_open(struct worker *w, int id)
{
    w->id = id;
    int rc = tool_map_new(&w->map); /* says why it failed */
    if (rc < 0)
        return rc;
    w->backoff = tool_backoff_new(w->map, ACCEPT_BACKOFF, set_accepting, w);
    w->drain = ac_timer_new(w->map, drain_over, w);
    if (w->backoff && w->drain)
        return 0;
    tool_log(TOOL_ERROR, "cannot create worker %d: %s", id, strerror(ENOMEM));
    return -ENOMEM;
}

static void worker_close(struct worker *w)
{
    if (!w->map)
        return;
    drop_waiting(w);
    ac_close_all(w->map, true);
    tool_backoff_free(w->backoff);
    ac_timer_free(w->drain);
    ac_map_free(w->map); /* runs the finalizers left */
    w->map = NULL;
}

static int worker_run(struct worker *w)
{
    int rc = ac_loop(w->map, -1.0, AC_FOREVER);
    if (rc < 0 && rc != AC_EXIT_NOW) {
        tool_log(TOOL_ERROR, "worker %d: loop: %s", w->id, strerror(-rc));
        return -1;
    }
    return 0;
}

static void *worker_thread(void *arg)
{
    worker_run(arg);
    ac_relay_cache_release();
    return NULL;
}

/* ------------------------------------------------------------ signals */

static void print_one(FILE *f, const struct stats *st, const char *note)
{
    fprintf(f,
            "portfwd:   %s%s: active %ld, total %ld, refused %ld, errors %ld, bytes in %llu, "
            "out %llu, spliced %ld\n",
            st->name, note, atomic_load(&st->active), atomic_load(&st->total),
            atomic_load(&st->refused), atomic_load(&st->errors), atomic_load(&st->in),
            atomic_load(&st->out), atomic_load(&st->spliced));
}

/* The rules that serve (S.rs, in file order), then the rules a reload
 * removed whose connections still run (issue 8 item 9: after a reload
 * that failed, S.rs is still the configuration in use).  One write, so
 * that a reader never sees half a block. */
static void print_stats(const char *when)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return;
    pthread_mutex_lock(&S.lock);
    fprintf(f, "portfwd: stats (%s):\n", when);
    for (size_t i = 0; i < S.rs->n; i++)
        print_one(f, S.rs->rules[i].st, "");
    for (const struct stats *st = S.stats; st; st = st->next) {
        bool current = false;
        for (size_t i = 0; i < S.rs->n && !current; i++)
            current = S.rs->rules[i].st == st;
        if (!current)
            print_one(f, st, " (removed by a reload)");
    }
    pthread_mutex_unlock(&S.lock);
    if (fclose(f) == 0)
        fwrite(text, 1, len, stderr);
    free(text);
}

/* SIGHUP: worker 0 installs the new rules first; when it cannot (an
 * address in use), nothing changes anywhere.  The other workers follow. */
static void reload(void)
{
    char err[512];
    struct ruleset *rs = ruleset_load(err, sizeof err);
    if (rs && worker_install(&S.workers[0], rs, err, sizeof err) < 0) {
        ruleset_unref(rs);
        rs = NULL;
    }
    if (!rs) {
        tool_log(TOOL_ERROR, "reload: %s (the old configuration stays)", err);
        return;
    }
    ruleset_unref(S.rs);
    S.rs = rs;
    tool_log(TOOL_INFO, "SIGHUP: %zu rules loaded", rs->n);
    for (int i = 1; i < S.threads; i++)
        if (ac_call_soon_threadsafe(S.workers[i].map, worker_reload, ruleset_ref(rs)) < 0) {
            tool_log(TOOL_ERROR, "reload: out of memory (worker %d keeps its listeners)", i);
            ruleset_unref(rs);
        }
}

static int on_signal(ac_map *m, int signo, void *arg)
{
    (void)m, (void)arg;
    if (signo == SIGUSR1) {
        print_stats("SIGUSR1");
        return 0;
    }
    if (signo == SIGHUP) {
        if (!S.stop_signals)
            reload();
        return 0;
    }
    if (S.stop_signals++ == 0)
        tool_log(TOOL_INFO, "%s: no new connections; %ld to finish within %g s", strsignal(signo),
                 atomic_load(&S.active), S.drain_timeout);
    worker_stop(S.workers[0].map, &S.workers[0]);
    for (int i = 1; i < S.threads; i++)
        ac_call_soon_threadsafe(S.workers[i].map, worker_stop, &S.workers[i]);
    return 0;
}

/* ------------------------------------------------------------ options */

static const char usage[] =
    "usage: portfwd [OPTIONS] -p PORT -r HOST -P PORT\n"
    "       portfwd [OPTIONS] -c FILE\n"
    "Forward TCP connections from a local address to a remote one.\n"
    "\n"
    "  -l, --local-ip ADDR      address to listen on (default 127.0.0.1)\n"
    "  -p, --local-port PORT    port to listen on (0: any free port, see the log)\n"
    "  -r, --remote-ip HOST     where to connect (a name or an address)\n"
    "  -P, --remote-port PORT   port to connect to\n"
    "  -b, --backlog N          listen backlog (default 128)\n"
    "  -c, --config FILE        rules from a rinetd configuration file\n"
    "  -f, --foreground         accepted for rinetd's sake: portfwd never forks\n"
    "      --connect-timeout S  give up connecting after S seconds (default 10; 0: never)\n"
    "      --idle-timeout S     close connections silent for S seconds (default 0: never)\n"
    "      --keepalive          TCP keepalive on both sides\n"
    "      --max-conns N        connections at once; past it clients are refused\n"
    "                           (default 10000)\n"
    "      --source ADDR        local address of the outgoing connections\n"
    "      --buffer BYTES       bytes held per direction (default 131072)\n"
    "      --splice MODE        auto (default): copy small messages through user\n"
    "                           space, splice(2) a direction once it carries bulk;\n"
    "                           always; never\n"
    "      --no-splice          the same as --splice never\n"
    "      --threads N          worker threads, each with its own listeners (default 1)\n"
    "      --drain-timeout S    on SIGINT/SIGTERM, time left to live connections\n"
    "                           (default 10)\n"
    "  -q, --quiet              warnings and errors only (twice: errors only)\n"
    "  -v, --verbose            also debug messages and a line per connection\n"
    "  -h, --help               show this help\n"
    "  -V, --version            show the version\n"
    "\n"
    "Signals: SIGUSR1 prints the stats, SIGHUP reloads -c FILE, SIGINT/SIGTERM drain and exit.\n";

enum {
    OPT_CONNECT_TIMEOUT = 256,
    OPT_IDLE_TIMEOUT,
    OPT_KEEPALIVE,
    OPT_MAX_CONNS,
    OPT_SOURCE,
    OPT_BUFFER,
    OPT_NO_SPLICE,
    OPT_SPLICE,
    OPT_THREADS,
    OPT_DRAIN_TIMEOUT
};

static const struct option longopts[] = {
    {"local-ip", required_argument, NULL, 'l'},
    {"local-port", required_argument, NULL, 'p'},
    {"remote-ip", required_argument, NULL, 'r'},
    {"remote-port", required_argument, NULL, 'P'},
    {"backlog", required_argument, NULL, 'b'},
    {"config", required_argument, NULL, 'c'},
    {"foreground", no_argument, NULL, 'f'},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"keepalive", no_argument, NULL, OPT_KEEPALIVE},
    {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
    {"source", required_argument, NULL, OPT_SOURCE},
    {"buffer", required_argument, NULL, OPT_BUFFER},
    {"no-splice", no_argument, NULL, OPT_NO_SPLICE},
    {"splice", required_argument, NULL, OPT_SPLICE},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* -1 to go on, else the exit status. */
static int options(int argc, char **argv)
{
    int c;
    bool ok = true;
    unsigned long long v;
    while (ok && (c = getopt_long(argc, argv, "l:p:r:P:b:c:fqvhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'l': S.local_ip = optarg; break;
        case 'p': S.local_port = optarg; break;
        case 'r': S.remote_ip = optarg; break;
        case 'P': S.remote_port = optarg; break;
        case 'b': ok = tool_number(optarg, 1, INT_MAX, &v), S.backlog = (int)v; break;
        case 'c': S.config_path = optarg; break;
        case 'f': break; /* rinetd -f: portfwd stays in the foreground anyway */
        case OPT_CONNECT_TIMEOUT: ok = tool_seconds(optarg, &S.connect_timeout); break;
        case OPT_IDLE_TIMEOUT: ok = tool_seconds(optarg, &S.idle_timeout); break;
        case OPT_KEEPALIVE: S.keepalive = true; break;
        case OPT_MAX_CONNS: ok = tool_number(optarg, 1, LONG_MAX, &v), S.max_conns = (long)v; break;
        case OPT_SOURCE: S.source = optarg; break;
        case OPT_BUFFER: ok = tool_number(optarg, 1024, 1 << 30, &v), S.buffer = (size_t)v; break;
        case OPT_NO_SPLICE: S.splice = SPLICE_NEVER; break;
        case OPT_SPLICE:
            ok = true;
            if (!strcmp(optarg, "auto"))
                S.splice = SPLICE_AUTO;
            else if (!strcmp(optarg, "always"))
                S.splice = SPLICE_ALWAYS;
            else if (!strcmp(optarg, "never"))
                S.splice = SPLICE_NEVER;
            else
                ok = false;
            break;
        case OPT_THREADS: ok = tool_number(optarg, 1, MAX_THREADS, &v), S.threads = (int)v; break;
        case OPT_DRAIN_TIMEOUT: ok = tool_seconds(optarg, &S.drain_timeout); break;
        case 'q': tool_verbosity -= tool_verbosity > TOOL_ERROR; break;
        case 'v': tool_verbosity = TOOL_DEBUG; break;
        default: return tool_option_end(c, usage); /* -h, -V, or getopt said why */
        }
        if (!ok)
            tool_invalid_value(longopts, c, optarg);
    }
    ok = ok && tool_no_operands(argc, argv);
    if (ok && S.config_path && (S.local_port || S.remote_ip || S.remote_port)) {
        fprintf(stderr, "portfwd: -c FILE and -p/-r/-P do not go together\n");
        ok = false;
    }
    if (ok && !S.config_path) {
        /* The command line's rule is checked as a config line would be,
         * but a mistake in it is a usage error. */
        struct pf_config cfg;
        char err[512];
        if (cmdline_config(&cfg, err, sizeof err) < 0) {
            fprintf(stderr, "portfwd: %s\n", err);
            ok = false;
        } else {
            pf_config_free(&cfg);
        }
    }
    return ok ? -1 : tool_option_end('?', usage);
}

/* --------------------------------------------------------------- main */

/* The pidfile written, removed at exit (only this one: a start that failed
 * because another portfwd runs must not remove that one's). */
static char *pidfile;

static bool write_pidfile(const char *path)
{
    FILE *f = path ? fopen(path, "w") : NULL;
    if (path && (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0)) {
        tool_log(TOOL_ERROR, "pidfile %s: %s", path, strerror(errno));
        return false;
    }
    pidfile = path ? strdup(path) : NULL;
    return true;
}

/* Everything before the loops: a failure here exits 1 with nothing
 * listening.  Signals are watched (and so blocked) before the other
 * threads start, so that they inherit the mask and only worker 0 gets
 * them. */
static bool setup(void)
{
    char err[512];
    S.rs = ruleset_load(err, sizeof err);
    if (!S.rs) {
        tool_log(TOOL_ERROR, "%s", err);
        return false;
    }
    tool_raise_nofile();
    /* The relay splices only while SIGPIPE cannot kill the process. */
    signal(SIGPIPE, SIG_IGN);
    ac_set_log_hook(tool_library_log, NULL);
    for (int i = 0; i < S.threads; i++)
        if (worker_open(&S.workers[i], i) < 0)
            return false;
    static const int signals[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1};
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
        if (ac_signal_watch(S.workers[0].map, signals[i], on_signal, NULL) < 0) {
            tool_log(TOOL_ERROR, "cannot watch %s", strsignal(signals[i]));
            return false;
        }
    for (int i = 0; i < S.threads; i++)
        if (worker_install(&S.workers[i], S.rs, err, sizeof err) < 0) {
            tool_log(TOOL_ERROR, "%s", err);
            return false;
        }
    return write_pidfile(S.rs->cfg.pidfile);
}

/* At exit: every ruleset still there (S.rs, and any whose reload call a
 * stopped worker never ran) and every counter. */
static void free_rulesets(void)
{
    ruleset_unref(S.rs);
    S.rs = NULL;
    while (S.all)
        ruleset_destroy(S.all);
}

int main(int argc, char **argv)
{
    tool_start("portfwd", argv);
    int status = options(argc, argv);
    if (status >= 0)
        return status;
    status = 1;
    if (setup()) {
        int started = 1;
        for (; started < S.threads; started++)
            if (pthread_create(&S.workers[started].thread, NULL, worker_thread,
                               &S.workers[started]) != 0) {
                tool_log(TOOL_ERROR, "cannot start worker %d", started);
                break;
            }
        S.serving = started == S.threads;
        if (S.serving && worker_run(&S.workers[0]) == 0)
            status = 0;
        for (int i = 1; i < started; i++) {
            if (status)
                ac_call_soon_threadsafe(S.workers[i].map, worker_stop, &S.workers[i]);
            pthread_join(S.workers[i].thread, NULL);
        }
    }
    for (int i = 0; i < S.threads; i++)
        worker_close(&S.workers[i]);
    ac_relay_cache_release();
    if (S.serving) /* a startup failure prints its error, and no stats */
        print_stats("exit");
    if (pidfile)
        unlink(pidfile);
    free(pidfile);
    free_rulesets();
    return status;
}
