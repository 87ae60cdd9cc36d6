/* Logging (D21, D22, X15), descriptions (D24) and the current failure
 * (D19, D20, D25). */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

static void default_hook(ac_dispatcher *d, const char *type, const char *msg, void *ctx)
{
    (void)d;
    (void)ctx;
    fprintf(stderr, "%s: %s\n", type ? type : "log", msg);
}

static ac_log_fn hook = default_hook;
static void *hook_ctx;

void ac_set_log_hook(ac_log_fn fn, void *ctx)
{
    hook = fn ? fn : default_hook;
    hook_ctx = fn ? ctx : NULL;
}

void ac_log(ac_dispatcher *d, const char *msg) { hook(d, NULL, msg, hook_ctx); }

static const char *const default_ignored[] = {"warning", NULL};

static bool ignored(const ac_dispatcher *d, const char *type)
{
    const char *const *list = default_ignored;
    if (d && d->rare && d->rare->ignore_log_types)
        list = d->rare->ignore_log_types;
    else if (d && d->h->ignore_log_types)
        list = d->h->ignore_log_types;
    else if (d && d->layer->h.ignore_log_types)
        list = d->layer->h.ignore_log_types;
    for (; *list; list++)
        if (!strcmp(*list, type))
            return true;
    return false;
}

void ac_log_info(ac_dispatcher *d, const char *msg, const char *type)
{
    type = type ? type : "info";
    if (!ignored(d, type))
        hook(d, type, msg, hook_ctx);
}

void ac_log_infof(ac_dispatcher *d, const char *type, const char *fmt, ...)
{
    if (ignored(d, type ? type : "info"))
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    ac_log_info(d, buf, type);
}

int ac_set_ignore_log_types(ac_dispatcher *d, const char *const *types)
{
    if (!types && !d->rare)
        return 0;
    struct ac_rare *r = ac__rare(d);
    if (!r)
        return -ENOMEM;
    r->ignore_log_types = types;
    return 0;
}

/* ------------------------------------------------------------ describe */

static int format_addr(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        return snprintf(buf, size, "%s:%u", host, ntohs(in->sin_port));
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        return snprintf(buf, size, "[%s]:%u", host, ntohs(in6->sin6_port));
    }
    if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const void *)sa;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        int n = len > off ? (int)(len - off) : 0;
        if (n > 0 && un->sun_path[0] == '\0') /* abstract: shown with '@' */
            return snprintf(buf, size, "'@%.*s'", n - 1, un->sun_path + 1);
        return snprintf(buf, size, "'%.*s'", (int)strnlen(un->sun_path, (size_t)n), un->sun_path);
    }
    return snprintf(buf, size, "<family %d>", sa->sa_family);
}

size_t ac_describe(const ac_dispatcher *d, char *buf, size_t size)
{
    const char *name = d->h->name ? d->h->name : d->layer->h.name;
    socklen_t len;
    const struct sockaddr *sa = ac_addr(d, &len);
    /* Python's `accepting and addr`: an unnamed AF_UNIX address is '' (false). */
    bool named = sa && !(sa->sa_family == AF_UNIX && len <= sizeof(sa_family_t));
    const char *status = d->accepting && named ? " listening" : d->connected ? " connected" : "";
    char addr[160] = "";
    if (sa) {
        addr[0] = ' ';
        format_addr(sa, len, addr + 1, sizeof(addr) - 1);
    }
    int n = snprintf(buf, size, "<%s%s%s at %p>", name, status, addr, (const void *)d);
    return n < 0 ? 0 : (size_t)n;
}

/* ------------------------------------------------------------- errors */

int ac_raise(ac_dispatcher *d, int err, const char *op, const char *file, const char *func,
             int line)
{
    err = err < 0 ? -err : err;
    const char *slash = file ? strrchr(file, '/') : NULL;
    if (d)
        d->map->err = (ac_error){err, op, slash ? slash + 1 : file, func, line};
    return -err;
}

const ac_error *ac_current_error(const ac_dispatcher *d) { return &d->map->err; }

const char *ac_errno_name(int err) { return strerrorname_np(err < 0 ? -err : err); }

/* D19: one "error" line naming the channel and the failure, then close. */
int ac_default_handle_error(ac_dispatcher *d, const ac_error *e)
{
    char desc[256];
    ac_describe(d, desc, sizeof(desc));
    const char *name = ac_errno_name(e->err);
    char where[200] = "";
    if (e->file)
        snprintf(where, sizeof(where), " [%s|%s|%d]", e->file, e->func ? e->func : "?", e->line);
    ac_log_infof(d, "error", "uncaptured error, closing channel %s (%s:%s%s in %s)", desc,
                 name ? name : "?", strerror(e->err), where, e->op ? e->op : "?");
    return AC__FN(d, handle_close)(d);
}
