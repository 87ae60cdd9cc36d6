/* socks5d's users (users.h): the --users file, -u/-P, and the check of an
 * RFC 1929 name and password.  Libc only, for the tests and the fuzzer.
 *
 * A file is parsed line by line into a scratch list; only when every line
 * is good and no user is given twice is the list merged into the caller's
 * users, so that an error leaves them as they were.  Passwords are kept in
 * fixed 256-byte slots, zero-padded, so that checking one reads the same
 * bytes whatever it holds. */
#include "users.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct user {
    char name[USERS_FIELD_MAX + 1];    /* NUL-terminated */
    uint8_t pass[USERS_FIELD_MAX + 1]; /* zero-padded */
    size_t passlen;                    /* 1..USERS_FIELD_MAX */
    int line;                          /* where the file gave it; 0 = users_add */
};

/* Names are quoted in messages up to this many bytes, then "...". */
#define QUOTE_MAX 64

struct parser {
    const char *name;
    char *err;
    size_t errlen;
    int line;
};

static int fail(struct parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct parser *ps, const char *fmt, ...)
{
    if (ps->err && ps->errlen) {
        int n = snprintf(ps->err, ps->errlen, "%s:%d: ", ps->name, ps->line);
        if (n >= 0 && (size_t)n < ps->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(ps->err + n, ps->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -EINVAL;
}

static int fail_nomem(struct parser *ps)
{
    if (ps->err && ps->errlen)
        snprintf(ps->err, ps->errlen, "out of memory");
    return -ENOMEM;
}

/* s for a message: printable ASCII as it is, any other byte (and '\'
 * and '\'') as \xNN, cut after QUOTE_MAX bytes of s.  out: 4 * QUOTE_MAX + 4. */
static const char *quote(const char *s, char *out)
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    size_t i;
    for (i = 0; s[i] && i < QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') {
            *o++ = (char)c;
        } else {
            *o++ = '\\';
            *o++ = 'x';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    strcpy(o, s[i] ? "..." : "");
    return out;
}

/* ------------------------------------------------------------ lists */

/* Room for `more` entries past n. */
static int reserve(struct users *u, size_t more)
{
    if (u->cap - u->n >= more)
        return 0;
    size_t cap = u->cap ? u->cap : 8;
    while (cap - u->n < more) {
        if (cap > SIZE_MAX / 2 / sizeof *u->v)
            return -ENOMEM;
        cap *= 2;
    }
    struct user *v = realloc(u->v, cap * sizeof *v);
    if (!v)
        return -ENOMEM;
    u->v = v;
    u->cap = cap;
    return 0;
}

void users_free(struct users *u)
{
    if (!u)
        return;
    if (u->v)
        explicit_bzero(u->v, u->cap * sizeof *u->v);
    free(u->v);
    u->v = NULL;
    u->n = u->cap = 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct user *)a)->name, ((const struct user *)b)->name);
}

/* By name, then line: a user given twice ends up next to itself, the
 * first line first. */
static int by_name_line(const void *a, const void *b)
{
    const struct user *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

static const struct user *find(const struct users *u, const char *name)
{
    if (!u->n)
        return NULL;
    struct user key;
    size_t n = strnlen(name, sizeof key.name);
    if (n >= sizeof key.name)
        return NULL;
    memcpy(key.name, name, n + 1);
    return bsearch(&key, u->v, u->n, sizeof *u->v, by_name);
}

/* Fill e from a user and a password already checked for length. */
static void set_entry(struct user *e, const char *user, size_t ulen, const char *pass, size_t plen,
                      int line)
{
    memset(e, 0, sizeof *e);
    memcpy(e->name, user, ulen);
    memcpy(e->pass, pass, plen);
    e->passlen = plen;
    e->line = line;
}

/* ------------------------------------------------------------ -u / -P */

int users_add(struct users *u, const char *user, const char *pass)
{
    if (!u || !user || !pass)
        return -EINVAL;
    size_t ulen = strnlen(user, USERS_FIELD_MAX + 1), plen = strnlen(pass, USERS_FIELD_MAX + 1);
    if (ulen == 0 || ulen > USERS_FIELD_MAX || plen == 0 || plen > USERS_FIELD_MAX)
        return -EINVAL;
    /* The first entry whose name sorts after user: it goes there. */
    size_t lo = 0, hi = u->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(u->v[mid].name, user);
        if (c == 0)
            return -EEXIST;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (reserve(u, 1) < 0)
        return -ENOMEM;
    memmove(&u->v[lo + 1], &u->v[lo], (u->n - lo) * sizeof *u->v);
    set_entry(&u->v[lo], user, ulen, pass, plen, 0);
    u->n++;
    return 0;
}

/* ------------------------------------------------------------ checking */

bool users_check(const struct users *u, const char *user, const char *pass)
{
    /* An unknown user is compared with `nobody` all the same, so that the
     * password comparison costs the same either way.  Every one of the 256
     * bytes of both slots is read and the differences OR-ed together: no
     * early exit at the first byte that differs. */
    static const struct user nobody;
    if (!u || !user || !pass)
        return false;
    const struct user *e = find(u, user);
    const struct user *cmp = e ? e : &nobody;
    uint8_t given[USERS_FIELD_MAX + 1] = {0};
    size_t glen = strnlen(pass, sizeof given); /* sizeof given: too long, never equal */
    memcpy(given, pass, glen < sizeof given ? glen : sizeof given - 1);
    unsigned diff = (unsigned)(glen ^ cmp->passlen);
    for (size_t i = 0; i < sizeof given; i++)
        diff |= (unsigned)(given[i] ^ cmp->pass[i]);
    explicit_bzero(given, sizeof given);
    return e != NULL && diff == 0;
}

/* ------------------------------------------------------------ the file */

/* One line, without its "\n" or "\r\n": skipped, or one entry of list. */
static int parse_line(struct parser *ps, const char *line, size_t n, struct users *list)
{
    if (memchr(line, '\0', n))
        return fail(ps, "NUL byte in the line");
    size_t i = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i == n || line[i] == '#')
        return 0;
    const char *colon = memchr(line, ':', n);
    if (!colon)
        return fail(ps, "no ':' in the line");
    size_t ulen = (size_t)(colon - line), plen = n - ulen - 1;
    if (ulen == 0)
        return fail(ps, "empty user name");
    if (ulen > USERS_FIELD_MAX)
        return fail(ps, "user name longer than %d bytes", USERS_FIELD_MAX);
    if (plen == 0)
        return fail(ps, "empty password");
    if (plen > USERS_FIELD_MAX)
        return fail(ps, "password longer than %d bytes", USERS_FIELD_MAX);
    if (reserve(list, 1) < 0)
        return fail_nomem(ps);
    set_entry(&list->v[list->n++], line, ulen, colon + 1, plen, ps->line);
    return 0;
}

/* The first line (in file order) that gives a user again, within list
 * (sorted here) or already in u. */
static int check_duplicates(struct parser *ps, struct users *list, const struct users *u)
{
    if (list->n == 0) /* and list->v NULL, which qsort may not take */
        return 0;
    qsort(list->v, list->n, sizeof *list->v, by_name_line);
    const struct user *dup = NULL;
    int first = 0; /* the line dup repeats; 0: given before this file */
    for (size_t i = 0; i < list->n; i++) {
        const struct user *e = &list->v[i];
        if (dup && e->line >= dup->line)
            continue;
        if (find(u, e->name)) {
            dup = e;
            first = 0;
        } else if (i > 0 && strcmp(list->v[i - 1].name, e->name) == 0) {
            dup = e;
            first = list->v[i - 1].line;
        }
    }
    if (!dup)
        return 0;
    char q[4 * QUOTE_MAX + 4];
    ps->line = dup->line;
    if (first)
        return fail(ps, "user '%s' given twice (first on line %d)", quote(dup->name, q), first);
    return fail(ps, "user '%s' was given before this file", quote(dup->name, q));
}

static int parse_lines(struct parser *ps, const char *text, size_t len, struct users *list)
{
    size_t pos = 0;
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        if (n && line[n - 1] == '\r')
            n--;
        if (ps->line == INT_MAX)
            return fail(ps, "too many lines");
        ps->line++;
        int rc = parse_line(ps, line, n, list);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int users_parse(const char *text, size_t len, const char *name, struct users *u, char *err,
                size_t errlen)
{
    struct parser ps = {.name = name ? name : "(users)", .err = err, .errlen = errlen};
    struct users list = {0};
    if (err && errlen)
        err[0] = '\0';
    if (!text)
        len = 0;
    int rc = parse_lines(&ps, text, len, &list);
    if (rc == 0)
        rc = check_duplicates(&ps, &list, u);
    if (rc == 0 && list.n) {
        if (reserve(u, list.n) < 0) {
            rc = fail_nomem(&ps);
        } else {
            memcpy(&u->v[u->n], list.v, list.n * sizeof *list.v);
            u->n += list.n;
            qsort(u->v, u->n, sizeof *u->v, by_name);
        }
    }
    users_free(&list);
    return rc;
}

/* The whole file into a malloc'd buffer: 0, or -errno. */
static int read_file(const char *path, char **out, size_t *outlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 4096;
            char *nbuf = ncap > cap ? realloc(buf, ncap) : NULL;
            if (!nbuf) {
                rc = -ENOMEM;
                break;
            }
            buf = nbuf;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : 0;
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    if (rc < 0) {
        if (buf)
            explicit_bzero(buf, cap);
        free(buf);
        return rc;
    }
    *out = buf;
    *outlen = len;
    return 0;
}

int users_load(const char *path, struct users *u, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    char *buf = NULL;
    size_t len = 0;
    int rc = read_file(path, &buf, &len);
    if (rc < 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }
    rc = users_parse(buf, len, path, u, err, errlen);
    if (buf)
        explicit_bzero(buf, len);
    free(buf);
    return rc;
}
