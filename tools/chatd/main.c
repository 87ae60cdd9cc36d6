/* chatd — a multi-user line chat server: asynchat's classic demo made real.
 *
 * Every connection is a chat channel with "\n" as its terminator.  The
 * lines it collects are commands (/nick, /who, /me, /msg, /quit, /help) or
 * text for the room.  Whatever the room hears goes through room(), in one
 * order for everybody, and each client's output queue is bounded so that
 * a client that stops reading costs the others nothing: past --max-queue
 * bytes it is disconnected.  The protocol is described in chatd.1.
 */
#define _GNU_SOURCE
#include <asynchat.h>

#include "toolkit.h"

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define NAME_MAX_LEN 32
#define PARTING_GRACE 5.0  /* seconds a leaving client gets to read its last line */
#define SHUTDOWN_GRACE 2.0 /* ... and every client, when the server stops */
#define ACCEPT_BACKOFF 0.5 /* pause after accept failed (out of descriptors) */
/* SO_SNDBUF of a client: Linux doubles it; chat lines are small. */
#define SEND_BUFFER (32 * 1024)
#define QUEUE_CEILING 4      /* times --max-queue: past it a client goes at once */
#define TRIM_FLOOR (4 << 20) /* queued bytes worth handing back after a storm */

struct client {
    ac_dispatcher *d;
    struct client *prev, *next;  /* every client, in order of arrival */
    char name[NAME_MAX_LEN + 1]; /* "" until /nick: not in the room yet */
    char peer[64];               /* its address, for the logs */
    bool gone;                   /* out of the list; the channel may still be flushing */
    char *line;                  /* the line being collected */
    size_t len, cap;
    double since;      /* when it connected: the time to take a name runs from here */
    double line_at;    /* when the line being collected began; 0 = none */
    double due;        /* when limit fires, while it is active */
    ac_timer *limit;   /* --nick-timeout and --line-timeout */
    size_t counted;    /* its queue when last looked at, in S.queued */
    double read_at;    /* when its queue was last seen empty */
    bool over;         /* its queue was over --max-queue ... */
    double over_since; /* ... since then */
};

struct notice { /* a line for the room, waiting for its turn */
    struct notice *next;
    size_t len;
    char text[];
};

static struct {
    const char *host; /* options */
    int port;
    long max_clients;
    size_t max_line, max_queue, max_total;
    double idle, nick_timeout, line_timeout, slow_timeout;
    ac_map *map; /* state */
    ac_dispatcher *listener;
    tool_backoff *backoff;
    ac_timer *deadline, *trim;
    size_t queued, peak;    /* every client's queue together (as last seen), and its top */
    struct client *speaker; /* whose line is being handled */
    struct client *head, *tail;
    long clients;
    struct notice *qhead, *qtail;
    bool flushing, stopping;
} S = {
    .host = "127.0.0.1",
    .port = 7000,
    .max_clients = 1000,
    .max_line = 4096,
    .max_queue = 256 * 1024,
    .max_total = 32 << 20,
    .slow_timeout = 10,
    .nick_timeout = 30,
    .line_timeout = 60,
};

/* ------------------------------------------------------------ output */

static void drop(struct client *c, const char *why);

/* fmt and its arguments as one line, "\n" included.  NULL if out of memory. */
static struct notice *notice_new(const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, again);
    va_end(again);
    struct notice *m = n < 0 ? NULL : malloc(sizeof *m + (size_t)n + 1);
    if (!m)
        return NULL;
    vsnprintf(m->text, (size_t)n + 1, fmt, ap);
    m->text[n] = '\n'; /* over the NUL: text is a counted string */
    m->len = (size_t)n + 1;
    m->next = NULL;
    return m;
}

/* c's queue is now pending bytes: S.queued follows.  Between two looks a
 * queue only shrinks (the library sends), so S.queued is never less than
 * the truth; recount() makes it exact.  A queue seen empty means c has
 * been keeping up; one that only got shorter proves little, since the
 * kernel takes a trickle now and then from a client that never reads. */
static void observe(struct client *c, size_t pending)
{
    if (pending == 0)
        c->read_at = ac_now(S.map);
    S.queued = S.queued - c->counted + pending;
    c->counted = pending;
}

/* Every queue looked at again; returns the client furthest behind: the
 * one that has gone longest without reading, not the longest queue, which
 * may be a reader's burst.  The client whose lines are being handled is
 * last in line: what is queued for it now waits for the end of its read
 * (coalesced sending), not for it. */
static struct client *recount(void)
{
    struct client *worst = NULL;
    for (struct client *c = S.head; c; c = c->next) {
        observe(c, ac_chat_pending(c->d));
        if (c->counted && (!worst || (worst == S.speaker && c != S.speaker) ||
                           (c != S.speaker && c->read_at < worst->read_at)))
            worst = c;
    }
    return worst;
}

/* Too slow is behind for some time, not at one instant (issue 8 item 14):
 * a client that reads can fall past --max-queue in a burst, or while its
 * machine is busy, and catch up.  It is let go when its queue has stayed
 * over the limit for --slow-timeout, or would pass QUEUE_CEILING times it.
 * Queues grow only here, so seeing one at or under the limit means it has
 * not been over it all along. */
static bool too_slow(struct client *c, size_t pending, size_t len)
{
    double now = ac_now(S.map);
    if (pending <= S.max_queue)
        c->over = false;
    if (pending + len <= S.max_queue)
        return false;
    if (!c->over) {
        c->over = true;
        c->over_since = now;
    }
    return pending + len > QUEUE_CEILING * S.max_queue || now - c->over_since > S.slow_timeout;
}

/* All queues together would pass --max-total-queue (issue 8 item 13): let
 * the clients furthest behind go until len more bytes fit.  False when c
 * was one of them.  Dropping clients other than c is safe inside the walk
 * of flush_room: their memory stays until the dispatch is over. */
static bool make_room(struct client *c, size_t len)
{
    struct client *worst;
    while ((worst = recount()) && S.queued + len > S.max_total) {
        drop(worst, "too slow");
        if (worst == c)
            return false;
    }
    return true;
}

/* Glibc keeps freed memory for later: after a storm of lines for clients
 * that did not read, 276 MB stayed with nobody left.  Once the queues are
 * down to a quarter of their peak, hand it back. */
static double trim_memory(ac_timer *t, void *arg)
{
    (void)t, (void)arg;
    recount();
    if (S.queued > S.peak / 4)
        return 1.0; /* still busy: look again in a second */
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    S.peak = S.queued;
    return -1;
}

/* Queue a line for c, unless c is too slow, or all the queues together
 * are full: a client that does not read is let go, not waited for. */
static void deliver(struct client *c, const char *text, size_t len)
{
    if (c->gone)
        return;
    size_t pending = ac_chat_pending(c->d);
    observe(c, pending);
    if (too_slow(c, pending, len)) {
        drop(c, "too slow");
        return;
    }
    if (S.queued + len > S.max_total && !make_room(c, len))
        return;
    if (ac_chat_push(c->d, text, len) < 0)
        drop(c, "out of memory");
    else if (!c->gone) /* the push may have sent, or failed and closed c */
        observe(c, ac_chat_pending(c->d));
    if (S.queued > S.peak)
        S.peak = S.queued;
    if (S.peak >= TRIM_FLOOR && !ac_timer_is_active(S.trim))
        ac_timer_start(S.trim, 1.0);
}

static void vtell(struct client *c, const char *fmt, va_list ap)
{
    struct notice *m = notice_new(fmt, ap);
    if (m)
        deliver(c, m->text, m->len);
    free(m);
}

static void tell(struct client *c, const char *fmt, ...) AC_PRINTF(2, 3);
static void tell(struct client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vtell(c, fmt, ap);
    va_end(ap);
}

/* Everything the room hears goes out in the order it was said.  Delivering
 * can drop a client (its queue is full, its send failed), and its leave
 * notice is said from inside the walk below: it waits in the queue, so the
 * walk never meets a freed neighbour and nobody sees lines out of order. */
static void flush_room(void)
{
    if (S.flushing)
        return;
    S.flushing = true;
    while (S.qhead) {
        struct notice *m = S.qhead;
        if (!(S.qhead = m->next))
            S.qtail = NULL;
        for (struct client *c = S.head, *next; c; c = next) {
            next = c->next; /* deliver may unlink c, next or others: see make_room */
            if (c->name[0])
                deliver(c, m->text, m->len);
        }
        free(m);
    }
    S.flushing = false;
}

static void room(const char *fmt, ...) AC_PRINTF(1, 2);
static void room(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    struct notice *m = notice_new(fmt, ap);
    va_end(ap);
    if (!m)
        return;
    if (S.qtail)
        S.qtail->next = m;
    else
        S.qhead = m;
    S.qtail = m;
    flush_room();
}

/* ---------------------------------------------------- joining, leaving */

/* Take c out of the list and tell the room: why is NULL when it left by
 * itself.  Closing the channel is the caller's part, now or once flushed. */
static void leave(struct client *c, const char *why)
{
    if (c->gone)
        return;
    c->gone = true;
    ac_timer_stop(c->limit);
    observe(c, 0); /* what it still holds is not counted (at most PARTING_GRACE) */
    *(c->prev ? &c->prev->next : &S.head) = c->next;
    *(c->next ? &c->next->prev : &S.tail) = c->prev;
    S.clients--;
    tool_log(TOOL_INFO, "%s %s left%s%s", c->peer, c->name[0] ? c->name : "(no name)",
             why ? ": " : "", why ? why : "");
    if (!c->name[0] || S.stopping)
        return;
    if (why)
        room("* %s was disconnected (%s)", c->name, why);
    else
        room("* %s has left", c->name);
}

/* Now, whatever is still queued for c.  The queue is freed here, not once
 * the dispatch is over: a storm can drop hundreds in one. */
static void drop(struct client *c, const char *why)
{
    leave(c, why);
    if (!ac_is_closed(c->d))
        ac_chat_discard_buffers(c->d);
    ac_close(c->d);
}

/* A last line for c, then close once it is sent, within PARTING_GRACE. */
static void part(struct client *c, const char *why, const char *fmt, ...) AC_PRINTF(3, 4);
static void part(struct client *c, const char *why, const char *fmt, ...)
{
    if (c->gone)
        return;
    va_list ap;
    va_start(ap, fmt);
    vtell(c, fmt, ap);
    va_end(ap);
    leave(c, why);
    if (ac_is_closed(c->d)) /* the last line did not fit */
        return;
    ac_set_reading(c->d, false);
    if (ac_close_when_done(c->d) < 0 || ac_set_idle_timeout(c->d, PARTING_GRACE) < 0)
        ac_close(c->d);
}

/* ---------------------------------------------------------- commands */

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN || s[0] == '-')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return false;
    return true;
}

/* Names are unique regardless of case. */
static struct client *find(const char *name)
{
    for (struct client *c = S.head; c; c = c->next)
        if (c->name[0] && !strcasecmp(c->name, name))
            return c;
    return NULL;
}

static void cmd_nick(struct client *c, char *name)
{
    if (!valid_name(name)) {
        tell(c, "! invalid name: use 1-%d letters, digits, '-' or '_'", NAME_MAX_LEN);
        return;
    }
    struct client *other = find(name);
    if (other && other != c) {
        tell(c, "! name taken: %s", other->name);
        return;
    }
    char old[NAME_MAX_LEN + 1];
    strcpy(old, c->name);
    strcpy(c->name, name);
    tool_log(TOOL_DEBUG, "%s is %s", c->peer, name);
    if (!old[0])
        room("* %s has joined", name);
    else if (strcmp(old, name))
        room("* %s is now known as %s", old, name);
}

static void cmd_who(struct client *c, char *arg)
{
    (void)arg;
    size_t n = 0, size = 32;
    for (struct client *o = S.head; o; o = o->next)
        if (o->name[0])
            n++, size += strlen(o->name) + 1;
    char *s = malloc(size);
    if (!s)
        return;
    size_t off = (size_t)snprintf(s, size, "* users (%zu):", n);
    for (struct client *o = S.head; o; o = o->next)
        if (o->name[0])
            off += (size_t)snprintf(s + off, size - off, " %s", o->name);
    tell(c, "%s", s);
    free(s);
}

/* An action goes after "<name>" like anything else a user says: a line
 * that starts with "* " or "! " is the server's own, and "/me was
 * disconnected (too slow)" must not read as one (issue 8 item 12). */
static void cmd_me(struct client *c, char *text)
{
    if (*text)
        room("<%s> * %s", c->name, text);
    else
        tell(c, "! usage: /me TEXT");
}

static void cmd_msg(struct client *c, char *arg)
{
    char *text = arg + strcspn(arg, " ");
    if (*text)
        *text++ = '\0';
    text += strspn(text, " ");
    struct client *to = *arg && *text ? find(arg) : NULL;
    if (!*arg || !*text)
        tell(c, "! usage: /msg NAME TEXT");
    else if (!to)
        tell(c, "! no such user: %s", arg);
    else {
        tell(to, "*%s* %s", c->name, text);
        tell(c, "-> *%s* %s", to->name, text);
    }
}

static void cmd_quit(struct client *c, char *arg)
{
    (void)arg;
    part(c, NULL, "* bye");
}

static void cmd_help(struct client *c, char *arg)
{
    (void)arg;
    tell(c, "* commands: /nick NAME, /who, /me TEXT, /msg NAME TEXT, /quit, /help");
}

static void command(struct client *c, char *cmd)
{
    static const struct {
        const char *name;
        void (*fn)(struct client *c, char *arg);
        bool named; /* only once c has a name */
    } table[] = {{"nick", cmd_nick, false}, {"who", cmd_who, false},   {"me", cmd_me, true},
                 {"msg", cmd_msg, true},    {"quit", cmd_quit, false}, {"help", cmd_help, false}};
    char *arg = cmd + strcspn(cmd, " ");
    if (*arg)
        *arg++ = '\0';
    arg += strspn(arg, " ");
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcasecmp(cmd, table[i].name))
            continue;
        if (table[i].named && !c->name[0])
            tell(c, "! pick a name first: /nick NAME");
        else
            table[i].fn(c, arg);
        return;
    }
    tell(c, "! unknown command: /%s (try /help)", cmd);
}

/* The code point of the UTF-8 sequence at s (n bytes left) in *cp, and its
 * length; 0 if it is not UTF-8 (overlong, a surrogate, past U+10FFFF, cut
 * short), so that no control can hide in a malformed sequence. */
static size_t utf8_decode(const unsigned char *s, size_t n, unsigned long *cp)
{
    static const unsigned long least[] = {0, 0, 0x80, 0x800, 0x10000};
    size_t len = s[0] < 0x80   ? 1
                 : s[0] < 0xc2 ? 0
                 : s[0] < 0xe0 ? 2
                 : s[0] < 0xf0 ? 3
                 : s[0] < 0xf5 ? 4
                               : 0;
    if (len == 0 || len > n)
        return 0;
    unsigned long v = len == 1 ? s[0] : s[0] & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < least[len] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

/* Characters a terminal acts on instead of showing: C0 but tab, DEL, C1
 * (U+009B is CSI, as ESC [ is), and the bidi embeddings, overrides and
 * isolates that would reorder the rest of the line on screen. */
static bool is_control(unsigned long cp)
{
    return (cp < 0x20 && cp != '\t') || (cp >= 0x7f && cp <= 0x9f) ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* Make line safe for other people's terminals, in place: each control
 * character and each byte that is not UTF-8 becomes one '?'.  Returns the
 * new length (never more) and NUL-terminates. */
static size_t clean(char *line, size_t len)
{
    unsigned char *s = (unsigned char *)line;
    size_t out = 0;
    for (size_t i = 0; i < len;) {
        unsigned long cp;
        size_t n = utf8_decode(s + i, len - i, &cp);
        if (n && !is_control(cp))
            memmove(s + out, s + i, n), out += n;
        else
            s[out++] = '?';
        i += n ? n : 1;
    }
    s[out] = '\0';
    return out;
}

/* One line from c, terminator gone, NUL-terminated. */
static void on_line(struct client *c, char *line, size_t len)
{
    clean(line, len);
    if (line[0] == '/' && line[1] != '/')
        command(c, line + 1);
    else if (!c->name[0])
        tell(c, "! pick a name first: /nick NAME");
    else
        room("<%s> %s", c->name, line + (line[0] == '/')); /* "//x" says "/x" */
}

/* ------------------------------------------------------- time limits */

/* Slowloris (issue 8 item 11): a connection that never takes a name, or
 * sends a line a byte at a time, would hold one of the --max-clients
 * places for ever, since any byte counts as activity for --idle-timeout.
 * Two deadlines close that: the time to take a name, from connecting, and
 * the time to finish a line, from its first byte.  One timer per client
 * waits for the earlier one. */
static double next_limit(const struct client *c)
{
    double due = HUGE_VAL;
    if (!c->name[0] && S.nick_timeout > 0)
        due = c->since + S.nick_timeout;
    if (c->line_at > 0 && S.line_timeout > 0 && c->line_at + S.line_timeout < due)
        due = c->line_at + S.line_timeout;
    return due;
}

/* Let the timer fire at c's next deadline, unless it already fires sooner:
 * deadlines that have gone (a name taken, a line finished) are noticed
 * when it fires, which saves touching the timer for every line. */
static void arm_limit(struct client *c)
{
    double due = next_limit(c);
    if (due == HUGE_VAL || (ac_timer_is_active(c->limit) && c->due <= due))
        return;
    c->due = due;
    ac_timer_start(c->limit, due - ac_now(S.map));
}

static double limit_fired(ac_timer *t, void *arg)
{
    (void)t;
    struct client *c = arg;
    double now = ac_now(S.map), due = next_limit(c);
    if (c->gone || due == HUGE_VAL)
        return -1;
    if (due > now) { /* an earlier deadline went away: wait for this one */
        c->due = due;
        return due - now;
    }
    if (!c->name[0] && S.nick_timeout > 0 && c->since + S.nick_timeout <= now)
        part(c, "no name", "! no name within %g seconds, bye", S.nick_timeout);
    else
        part(c, "line too slow", "! line not finished within %g seconds, bye", S.line_timeout);
    return -1;
}

/* ---------------------------------------------------- client handlers */

/* The library stops a line at --max-line + 1 bytes (room for a "\r"), so
 * the buffer stays within that. */
static int client_collect(ac_dispatcher *d, const void *data, size_t len)
{
    struct client *c = ac_user(d);
    if (c->len == 0 && len > 0) { /* a line begins: its time starts */
        c->line_at = ac_now(S.map);
        arm_limit(c);
    }
    if (c->len + len + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 128;
        while (cap < c->len + len + 1)
            cap *= 2;
        char *p = realloc(c->line, cap);
        if (!p)
            return AC_RAISE(d, ENOMEM, "collect");
        c->line = p;
        c->cap = cap;
    }
    memcpy(c->line + c->len, data, len);
    c->len += len;
    return 0;
}

static int client_found_terminator(ac_dispatcher *d)
{
    struct client *c = ac_user(d);
    size_t len = c->len;
    c->len = 0;
    c->line_at = 0;
    if (len && c->line[len - 1] == '\r')
        len--;
    if (c->gone || len == 0) /* C11: lines after /quit in the same read */
        return 0;
    if (len > S.max_line) {
        part(c, "line too long", "! line too long (max %zu bytes)", S.max_line);
        return 0;
    }
    c->line[len] = '\0';
    S.speaker = c;
    on_line(c, c->line, len);
    S.speaker = NULL;
    return 0;
}

/* EOF or a reset; also the close marker of part() reaching the front. */
static int client_close(ac_dispatcher *d)
{
    leave(ac_user(d), NULL);
    return ac_close(d);
}

static int client_error(ac_dispatcher *d, const ac_error *e)
{
    struct client *c = ac_user(d);
    if (e->err == EMSGSIZE && !strcmp(e->op, "max_input")) {
        part(c, "line too long", "! line too long (max %zu bytes)", S.max_line);
    } else {
        tool_log(TOOL_WARNING, "%s: %s: %s", c->peer, e->op, strerror(e->err));
        drop(c, "error");
    }
    return 0; /* non-zero would leave the loop */
}

static int client_timeout(ac_dispatcher *d)
{
    struct client *c = ac_user(d);
    if (c->gone) /* PARTING_GRACE is over */
        return ac_close(d);
    part(c, "idle", "! idle for %g seconds, bye", S.idle);
    return 0;
}

static void client_finalize(ac_dispatcher *d)
{
    struct client *c = ac_user(d);
    ac_timer_free(c->limit);
    free(c->line);
    free(c);
}

static const ac_handlers client_handlers = {
    .name = "chatd.client",
    .collect_incoming_data = client_collect,
    .found_terminator = client_found_terminator,
    .handle_close = client_close,
    .handle_error = client_error,
    .handle_timeout = client_timeout,
    .finalize = client_finalize,
};

/* ---------------------------------------------------------- listener */

static void refuse(int fd, const char *peer)
{
    static const char full[] = "! server full, try again later\n";
    /* A fresh socket's buffer takes one line; if it does not, never mind. */
    if (send(fd, full, sizeof full - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        tool_log(TOOL_DEBUG, "%s: %s", peer, strerror(errno));
    close(fd);
    tool_log(TOOL_WARNING, "%s refused: %ld clients already", peer, S.clients);
}

static int listener_accepted(ac_dispatcher *ls, int fd, const struct sockaddr *addr,
                             socklen_t addrlen)
{
    (void)ls;
    char peer[64];
    tool_peer_text(addr, addrlen, peer, sizeof peer);
    if (S.clients >= S.max_clients) {
        refuse(fd, peer);
        return 0;
    }
    struct client *c = calloc(1, sizeof *c);
    if (c && !(c->limit = ac_timer_new(S.map, limit_fired, c)))
        free(c), c = NULL;
    ac_dispatcher *d = c ? ac_chat_new(S.map, &client_handlers, c) : NULL;
    int rc = d ? ac_attach(d, fd) : -ENOMEM;
    if (rc < 0) {
        tool_log(TOOL_WARNING, "%s: %s", peer, strerror(-rc));
        close(fd); /* still ours */
        if (d)
            ac_close(d); /* finalize frees c */
        else if (c)
            ac_timer_free(c->limit), free(c);
        return 0;
    }
    c->d = d;
    strcpy(c->peer, peer);
    int one = 1; /* chat lines are small and should not wait for an ACK */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* What the kernel holds for a client that does not read: autotuned,
     * it grows to tcp_wmem's maximum (4 MiB here) per client. */
    int sndbuf = SEND_BUFFER;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    ac_chat_set_terminator(d, "\n", 1);
    ac_chat_set_max_input(d, S.max_line + 1);
    ac_chat_set_coalesce(d, true); /* a backlog of lines leaves in one sendmsg */
    if (S.idle > 0)
        ac_set_idle_timeout(d, S.idle);
    c->since = c->read_at = ac_now(S.map);
    arm_limit(c);
    c->prev = S.tail;
    *(S.tail ? &S.tail->next : &S.head) = c;
    S.tail = c;
    S.clients++;
    tool_log(TOOL_DEBUG, "%s connected", peer);
    tell(c, "* welcome to chatd; pick a name with /nick NAME");
    return 0;
}

static void set_accepting(void *arg, bool on)
{
    (void)arg;
    ac_set_reading(S.listener, on);
}

/* An accept failure, EMFILE most likely: a pause (tool_backoff). */
static int listener_error(ac_dispatcher *d, const ac_error *e)
{
    (void)d;
    tool_backoff_pause(S.backoff, NULL, e->op, e->err);
    return 0;
}

static const ac_handlers listener_handlers = {
    .name = "chatd.listener",
    .handle_accepted = listener_accepted,
    .handle_error = listener_error,
};

static int listen_on(const char *host, int port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    char serv[8];
    snprintf(serv, sizeof serv, "%d", port);
    int gai = getaddrinfo(host, serv, &hints, &ai);
    if (gai) {
        tool_log(TOOL_ERROR, "cannot resolve %s: %s", host, gai_strerror(gai));
        return -1;
    }
    ac_dispatcher *ls = S.listener = ac_dispatcher_new(S.map, &listener_handlers, NULL);
    int rc = ls ? ac_create_socket(ls, ai->ai_family, SOCK_STREAM) : -ENOMEM;
    if (rc == 0) {
        ac_set_reuse_addr(ls);
        rc = ac_bind(ls, ai->ai_addr, ai->ai_addrlen);
    }
    freeaddrinfo(ai);
    if (rc == 0)
        rc = ac_listen(ls, 1024);
    if (rc < 0) {
        tool_log(TOOL_ERROR, "cannot listen on %s port %d: %s", host, port, strerror(-rc));
        return -1;
    }
    tool_log_listening(ac_fd(ls), "at most %ld clients", S.max_clients);
    return 0;
}

/* ---------------------------------------------------------- shutdown */

static double shutdown_deadline(ac_timer *t, void *arg)
{
    (void)t, (void)arg;
    tool_log(TOOL_DEBUG, "%ld clients did not take the notice in time", S.clients);
    ac_close_all(S.map, true);
    return -1;
}

/* SIGINT, SIGTERM: say goodbye to everybody, let them read it, and let the
 * loop end with the map empty.  A second signal ends it at once. */
static int on_signal(ac_map *m, int signo, void *arg)
{
    (void)m, (void)arg;
    if (S.stopping)
        return AC_EXIT_NOW;
    tool_log(TOOL_INFO, "%s: shutting down", strsignal(signo));
    S.stopping = true;
    tool_backoff_stop(S.backoff);
    ac_close(S.listener);
    S.listener = NULL;
    while (S.head)
        part(S.head, "shutdown", "* server shutting down");
    ac_timer_start(S.deadline, SHUTDOWN_GRACE);
    return 0;
}

/* -------------------------------------------------------------- main */

static const char usage[] =
    "usage: chatd [OPTIONS]\n"
    "A multi-user line chat server (asynchat's demo): connect with nc or telnet.\n\n"
    "  -l, --listen ADDR       address to listen on (default 127.0.0.1; IPv6 too)\n"
    "  -p, --port PORT         port (default 7000; 0 = any free port, see the log)\n"
    "      --max-clients N     refuse connections past N clients (default 1000)\n"
    "      --max-line BYTES    longest line accepted (default 4096)\n"
    "      --max-queue BYTES   output held for one client (default 262144)\n"
    "      --slow-timeout SEC  drop a client as too slow when its output stays\n"
    "                          over --max-queue for SEC seconds, or passes 4\n"
    "                          times it (default 10)\n"
    "      --max-total-queue BYTES\n"
    "                          output held for all clients together; past it the\n"
    "                          clients longest without reading go (default 33554432)\n"
    "      --idle-timeout SEC  drop clients silent for SEC seconds (default 0 = never)\n"
    "      --nick-timeout SEC  drop clients without a name after SEC seconds\n"
    "                          (default 30; 0 = never)\n"
    "      --line-timeout SEC  drop clients that take more than SEC seconds to\n"
    "                          finish a line (default 60; 0 = never)\n"
    "  -q, --quiet             log warnings and errors only (twice: errors only)\n"
    "  -v, --verbose           log every connection and name change too\n"
    "  -h, --help              show this help\n"
    "  -V, --version           show the version\n";

/* Fills S from argv.  Returns -1 to go on, else the exit status. */
static int options(int argc, char **argv)
{
    enum {
        MAX_CLIENTS = 256,
        MAX_LINE,
        MAX_QUEUE,
        MAX_TOTAL,
        SLOW,
        IDLE,
        NICK_TIMEOUT,
        LINE_TIMEOUT
    };
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"port", required_argument, NULL, 'p'},
        {"max-clients", required_argument, NULL, MAX_CLIENTS},
        {"max-line", required_argument, NULL, MAX_LINE},
        {"max-queue", required_argument, NULL, MAX_QUEUE},
        {"max-total-queue", required_argument, NULL, MAX_TOTAL},
        {"slow-timeout", required_argument, NULL, SLOW},
        {"idle-timeout", required_argument, NULL, IDLE},
        {"nick-timeout", required_argument, NULL, NICK_TIMEOUT},
        {"line-timeout", required_argument, NULL, LINE_TIMEOUT},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    unsigned long long v = 0;
    int c;
    bool ok = true;
    while (ok && (c = getopt_long(argc, argv, "l:p:qvhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'l': S.host = optarg; break;
        case 'p': ok = tool_number(optarg, 0, 65535, &v), S.port = (int)v; break;
        case MAX_CLIENTS: ok = tool_number(optarg, 1, 1000000, &v), S.max_clients = (long)v; break;
        case MAX_LINE: ok = tool_number(optarg, 1, 1 << 30, &v), S.max_line = (size_t)v; break;
        case MAX_QUEUE: ok = tool_number(optarg, 1, 1ULL << 40, &v), S.max_queue = (size_t)v; break;
        case MAX_TOTAL: ok = tool_number(optarg, 1, 1ULL << 40, &v), S.max_total = (size_t)v; break;
        case SLOW: ok = tool_seconds(optarg, &S.slow_timeout); break;
        case IDLE: ok = tool_seconds(optarg, &S.idle); break;
        case NICK_TIMEOUT: ok = tool_seconds(optarg, &S.nick_timeout); break;
        case LINE_TIMEOUT: ok = tool_seconds(optarg, &S.line_timeout); break;
        case 'q': tool_verbosity -= tool_verbosity > TOOL_ERROR; break;
        case 'v': tool_verbosity += tool_verbosity < TOOL_DEBUG; break;
        default: return tool_option_end(c, usage); /* -h, -V, or getopt said what is wrong */
        }
        if (!ok)
            tool_invalid_value(longopts, c, optarg);
    }
    ok = ok && tool_no_operands(argc, argv);
    return ok ? -1 : tool_option_end('?', usage);
}

static bool setup(void)
{
    tool_raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    if (tool_map_new(&S.map) < 0)
        return false;
    S.backoff = tool_backoff_new(S.map, ACCEPT_BACKOFF, set_accepting, NULL);
    S.deadline = ac_timer_new(S.map, shutdown_deadline, NULL);
    S.trim = ac_timer_new(S.map, trim_memory, NULL);
    return S.backoff && S.deadline && S.trim &&
           ac_signal_watch(S.map, SIGINT, on_signal, NULL) == 0 &&
           ac_signal_watch(S.map, SIGTERM, on_signal, NULL) == 0 && listen_on(S.host, S.port) == 0;
}

int main(int argc, char **argv)
{
    tool_start("chatd", argv);
    int status = options(argc, argv);
    if (status >= 0)
        return status;
    bool started = setup();
    status = 1;
    if (started) {
        int rc = ac_loop(S.map, -1.0, AC_FOREVER);
        if (rc < 0 && rc != AC_EXIT_NOW)
            tool_log(TOOL_ERROR, "loop: %s", strerror(-rc));
        else
            status = 0;
    }
    if (S.map) {
        ac_close_all(S.map, true);
        tool_backoff_free(S.backoff);
        ac_timer_free(S.deadline);
        ac_timer_free(S.trim);
        ac_map_free(S.map); /* runs the finalizers */
    }
    while (S.qhead) {
        struct notice *m = S.qhead;
        S.qhead = m->next;
        free(m);
    }
    if (started) /* a server that never started has nothing to say goodbye to */
        tool_log(TOOL_INFO, "bye");
    return status;
}
