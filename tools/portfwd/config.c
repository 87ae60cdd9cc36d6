/* portfwd's configuration parser: rinetd.conf (rinetd 0.73) into rules.
 * See config.h for the format.  Libc only: no asyncore here, so that the
 * tests and the fuzzer take this file on its own.
 *
 * The text is split into lines ('\n', an optional '\r' before it dropped),
 * each line is checked for bytes that have no business in it (NUL, a lone
 * '\r', other control characters), its comment is cut off at the first '#'
 * outside double quotes, and what is left is scanned word by word.  The
 * first word decides: a keyword (allow, deny, logfile, pidlogfile / pidfile,
 * logcommon) or else the bind address of a forwarding rule.  Everything is
 * built straight into the caller's struct pf_config, always in a state that
 * pf_config_free() can take, so that an error anywhere is one free. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Longest line accepted, in bytes, without its "\n" or "\r\n".  Real lines
 * are short; anything this long is a binary or a mangled file. */
#define PF_LINE_MAX 4096

/* Words are quoted in messages up to this many bytes, then "...". */
#define PF_QUOTE_MAX 64

/* [timeout=SEC] up to what rinetd's atoi() could hold. */
#define PF_TIMEOUT_MAX 2147483647.0

struct parser {
    const char *name;
    char *err;
    size_t errlen;
    int line;
    struct pf_config *cfg;
    int logfile_line, pidfile_line; /* where each was set, 0 = not yet */
};

/* A piece of the current line. */
struct word {
    const char *p;
    size_t len;
    bool quoted; /* was "..." (p, len: inside the quotes) */
};

/* ------------------------------------------------------------ messages */

#if defined __GNUC__
#define PF_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PF_PRINTF(f, a)
#endif

static int fail(struct parser *ps, const char *fmt, ...) PF_PRINTF(2, 3);
static int fail(struct parser *ps, const char *fmt, ...)
{
    if (ps->err && ps->errlen) {
        int n = ps->name ? snprintf(ps->err, ps->errlen, "%s:%d: ", ps->name, ps->line) : 0;
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
    if (ps->err && ps->errlen && ps->name)
        snprintf(ps->err, ps->errlen, "%s:%d: out of memory", ps->name, ps->line);
    else if (ps->err && ps->errlen)
        snprintf(ps->err, ps->errlen, "out of memory");
    return -ENOMEM;
}

/* "%.*s%s" arguments quoting a word, cut at PF_QUOTE_MAX bytes. */
#define QW(w)                                                                                      \
    (int)((w).len > PF_QUOTE_MAX ? PF_QUOTE_MAX : (w).len), (w).p,                                 \
        ((w).len > PF_QUOTE_MAX ? "..." : "")

/* ------------------------------------------------------------ memory */

static char *dup_word(struct word w)
{
    char *s = malloc(w.len + 1);
    if (s) {
        memcpy(s, w.p, w.len);
        s[w.len] = '\0';
    }
    return s;
}

/* Make room for one more element in an array of n, whose capacity is n
 * rounded up to a power of two (so no capacity needs to be stored). */
static int grow(void **arr, size_t n, size_t size)
{
    if (n & (n - 1)) /* not 0 and not a power of two: room left */
        return 0;
    size_t cap = n ? n * 2 : 1;
    if (cap < n || cap > SIZE_MAX / size)
        return -ENOMEM;
    void *p = realloc(*arr, cap * size);
    if (!p)
        return -ENOMEM;
    *arr = p;
    return 0;
}

static void free_patterns(struct pf_patterns *pt)
{
    for (size_t i = 0; i < pt->nallow; i++)
        free(pt->allow[i]);
    for (size_t i = 0; i < pt->ndeny; i++)
        free(pt->deny[i]);
    free(pt->allow);
    free(pt->deny);
    memset(pt, 0, sizeof *pt);
}

void pf_config_free(struct pf_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->nrules; i++) {
        struct pf_rule *r = &cfg->rules[i];
        free(r->bind_host);
        free(r->bind_port);
        free(r->connect_host);
        free(r->connect_port);
        free(r->source);
        free_patterns(&r->access);
    }
    free(cfg->rules);
    free_patterns(&cfg->access);
    free(cfg->logfile);
    free(cfg->pidfile);
    memset(cfg, 0, sizeof *cfg);
}

/* ------------------------------------------------------------ scanning */

static bool is_space(char c) { return c == ' ' || c == '\t'; }

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static const char *skip_space(const char *s, const char *end)
{
    while (s < end && is_space(*s))
        s++;
    return s;
}

static bool word_is(struct word w, const char *kw)
{
    size_t n = strlen(kw);
    return !w.quoted && w.len == n && memcmp(w.p, kw, n) == 0;
}

/* The next word at *s (after blanks): a run of non-blanks, or "..." (which
 * must then end there).  stop_at_bracket ends a plain word at a '[' too
 * (the connect port, for "80[timeout=5]").  Returns 1 with *w filled, 0 at
 * the end of the line, or an error. */
static int next_word(struct parser *ps, const char **s, const char *end, bool stop_at_bracket,
                     struct word *w)
{
    const char *p = skip_space(*s, end);
    if (p == end) {
        *s = p;
        return 0;
    }
    if (*p == '"') {
        const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
        if (!q)
            return fail(ps, "unterminated quoted string");
        if (q + 1 < end && !is_space(q[1]))
            return fail(ps, "unexpected text after a closing quote");
        w->p = p + 1;
        w->len = (size_t)(q - p - 1);
        w->quoted = true;
        *s = q + 1;
        return 1;
    }
    const char *q = p;
    while (q < end && !is_space(*q) && !(stop_at_bracket && *q == '[' && q > p))
        q++;
    w->p = p;
    w->len = (size_t)(q - p);
    w->quoted = false;
    *s = q;
    return 1;
}

/* Nothing but blanks may follow `what`. */
static int expect_end(struct parser *ps, const char *s, const char *end, const char *what)
{
    struct word w;
    int rc = next_word(ps, &s, end, false, &w);
    if (rc < 0)
        return rc;
    if (rc > 0)
        return fail(ps, "unexpected '%.*s%s' after %s", QW(w), what);
    return 0;
}

/* ------------------------------------------------------------ values */

/* A host: a name or IPv4 literal ([-0-9A-Za-z_.]), an IPv6 literal (hex
 * digits, ':', '.', '%' and a zone), optionally in brackets.  Returns the
 * host without its brackets, or .p = NULL if it is malformed.  Resolving is
 * the caller's business. */
static struct word check_host(struct word w)
{
    struct word bad = {NULL, 0, false};
    if (w.quoted || w.len == 0)
        return bad;
    if (w.p[0] == '[') {
        if (w.len < 3 || w.p[w.len - 1] != ']')
            return bad;
        w.p++;
        w.len -= 2;
        bool colon = false, zone = false;
        for (size_t i = 0; i < w.len; i++) {
            char c = w.p[i];
            if (zone) {
                if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_' && c != '.')
                    return bad;
            } else if (c == '%' && i > 0) {
                zone = true;
                if (i + 1 == w.len)
                    return bad;
            } else if (c == ':') {
                colon = true;
            } else if (!is_hex(c) && c != '.') {
                return bad;
            }
        }
        return colon ? w : bad;
    }
    for (size_t i = 0; i < w.len; i++) {
        char c = w.p[i];
        if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_' && c != '.' && c != ':' &&
            c != '%')
            return bad;
    }
    return w;
}

/* A port: a number 1-65535 or a TCP service name, optionally "/tcp"
 * (dropped).  A bind port may also be 0: the kernel picks one, which
 * portfwd logs (and tests rely on).  "/udp" is refused: portfwd forwards
 * TCP only. */
static int check_port(struct parser *ps, struct word w, const char *which, struct word *out,
                      unsigned *num)
{
    if (w.quoted)
        return fail(ps, "bad %s port \"%.*s%s\" (no quotes here)", which, QW(w));
    struct word port = w;
    const char *slash = memchr(w.p, '/', w.len);
    if (slash) {
        struct word proto = {slash + 1, (size_t)(w.p + w.len - slash - 1), false};
        port.len = (size_t)(slash - w.p);
        if (word_is(proto, "udp"))
            return fail(ps,
                        "UDP forwarding (%s port '%.*s%s') is not supported: portfwd forwards "
                        "TCP only",
                        which, QW(w));
        if (!word_is(proto, "tcp"))
            return fail(ps, "bad protocol in %s port '%.*s%s' (only /tcp is supported)", which,
                        QW(w));
    }
    if (port.len == 0)
        return fail(ps, "bad %s port '%.*s%s'", which, QW(w));
    if (is_digit(port.p[0])) {
        unsigned long v = 0;
        for (size_t i = 0; i < port.len; i++) {
            if (!is_digit(port.p[i]))
                return fail(ps, "bad %s port '%.*s%s'", which, QW(w));
            if (v <= 65535)
                v = v * 10 + (unsigned long)(port.p[i] - '0');
        }
        unsigned long lo = strcmp(which, "bind") == 0 ? 0 : 1;
        if (v < lo || v > 65535)
            return fail(ps, "%s port '%.*s%s' is out of range (%lu-65535)", which, QW(w), lo);
        *num = (unsigned)v;
    } else {
        /* A service name, as rinetd: a letter, then letters, digits, '-', '_'. */
        bool ok = is_alpha(port.p[0]);
        for (size_t i = 1; ok && i < port.len; i++)
            ok = is_alpha(port.p[i]) || is_digit(port.p[i]) || port.p[i] == '-' || port.p[i] == '_';
        if (!ok)
            return fail(ps, "bad %s port '%.*s%s'", which, QW(w));
        char name[PF_LINE_MAX + 1];
        memcpy(name, port.p, port.len);
        name[port.len] = '\0';
        struct servent *se = getservbyname(name, "tcp");
        if (!se)
            return fail(ps, "%s port '%.*s%s' is neither a number nor a known TCP service", which,
                        QW(w));
        *num = ntohs((uint16_t)se->s_port);
    }
    *out = port;
    return 0;
}

/* A pattern of allow / deny: an address with '*' and '?'. */
static bool check_pattern(struct word w)
{
    if (w.quoted || w.len == 0)
        return false;
    for (size_t i = 0; i < w.len; i++) {
        char c = w.p[i];
        if (!is_hex(c) && c != '.' && c != ':' && c != '*' && c != '?')
            return false;
    }
    return true;
}

/* Seconds: digits, optionally a '.' and more digits. */
static bool parse_seconds(struct word w, double *out)
{
    double v = 0, scale = 1;
    bool dot = false, digits = false;
    for (size_t i = 0; i < w.len; i++) {
        char c = w.p[i];
        if (c == '.' && !dot && digits) {
            dot = true;
        } else if (is_digit(c)) {
            digits = true;
            if (!dot) {
                if (v <= PF_TIMEOUT_MAX)
                    v = v * 10 + (c - '0');
            } else {
                scale /= 10;
                v += (c - '0') * scale;
            }
        } else {
            return false;
        }
    }
    if (!digits || w.p[w.len - 1] == '.')
        return false;
    *out = v;
    return true;
}

/* ------------------------------------------------------------ lines */

static int add_pattern(struct parser *ps, struct pf_patterns *pt, bool allow, struct word w)
{
    char ***arr = allow ? &pt->allow : &pt->deny;
    size_t *n = allow ? &pt->nallow : &pt->ndeny;
    void *tmp = *arr;
    if (grow(&tmp, *n, sizeof(char *)) < 0)
        return fail_nomem(ps);
    *arr = tmp;
    char *s = dup_word(w);
    if (!s)
        return fail_nomem(ps);
    (*arr)[(*n)++] = s;
    return 0;
}

/* allow PATTERN / deny PATTERN */
static int parse_access(struct parser *ps, struct word kw, const char *s, const char *end)
{
    bool allow = kw.p[0] == 'a';
    const char *what = allow ? "allow" : "deny";
    struct word w;
    int rc = next_word(ps, &s, end, false, &w);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return fail(ps, "'%s' needs a pattern", what);
    if (w.quoted)
        return fail(ps, "bad %s pattern \"%.*s%s\" (no quotes here)", what, QW(w));
    if (!check_pattern(w))
        return fail(ps, "bad %s pattern '%.*s%s' (an IP address, with '*' and '?'; no host names)",
                    what, QW(w));
    rc = expect_end(ps, s, end, allow ? "the allow pattern" : "the deny pattern");
    if (rc < 0)
        return rc;
    struct pf_config *cfg = ps->cfg;
    struct pf_patterns *pt = cfg->nrules ? &cfg->rules[cfg->nrules - 1].access : &cfg->access;
    return add_pattern(ps, pt, allow, w);
}

/* logfile PATH / pidlogfile PATH / pidfile PATH */
static int parse_path(struct parser *ps, const char *kw, char **dst, int *first, const char *s,
                      const char *end)
{
    struct word w;
    int rc = next_word(ps, &s, end, false, &w);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return fail(ps, "'%s' needs a path", kw);
    if (w.len == 0)
        return fail(ps, "'%s' has an empty path", kw);
    rc = expect_end(ps, s, end, "the path (quote a path with blanks in it)");
    if (rc < 0)
        return rc;
    if (*first)
        return fail(ps, "'%s' given twice (first on line %d)", kw, *first);
    if (!(*dst = dup_word(w)))
        return fail_nomem(ps);
    *first = ps->line;
    return 0;
}

/* The bracketed options after a rule, from the '[' at *s to the matching
 * ']' (which must end the line): "timeout=SEC" and "src=ADDR", separated
 * by commas, blanks allowed around '=' and ','.  src may be a bracketed
 * IPv6 literal itself. */
static int parse_options(struct parser *ps, struct pf_rule *r, const char *s, const char *end)
{
    const char *open = s;
    int depth = 0;
    const char *close = NULL;
    for (const char *p = s; p < end; p++) {
        if (*p == '[') {
            depth++;
        } else if (*p == ']' && --depth == 0) {
            close = p;
            break;
        }
    }
    if (!close)
        return fail(ps, "missing ']' after the options");
    int rc = expect_end(ps, close + 1, end, "the options");
    if (rc < 0)
        return rc;
    const char *p = skip_space(open + 1, close);
    if (p == close)
        return fail(ps, "empty option list '[]'");
    bool have_timeout = false;
    for (;;) {
        struct word key = {p, 0, false};
        while (p < close && (is_alpha(*p) || is_digit(*p) || *p == '_' || *p == '-'))
            p++;
        key.len = (size_t)(p - key.p);
        if (key.len == 0) {
            struct word junk = {p, 1, false};
            if (p < close && *p != ',' && *p != '=')
                return fail(ps, "bad option at '%.*s%s'", QW(junk));
            return fail(ps, "missing option name in [...]");
        }
        bool timeout = word_is(key, "timeout"), src = word_is(key, "src");
        if (!timeout && !src)
            return fail(ps, "unknown option '%.*s%s' (portfwd knows timeout=SEC and src=ADDR)",
                        QW(key));
        p = skip_space(p, close);
        if (p == close || *p != '=')
            return fail(ps, "option '%.*s%s' needs a value (%s)", QW(key),
                        timeout ? "timeout=SEC" : "src=ADDR");
        p = skip_space(p + 1, close);
        struct word val = {p, 0, false};
        if (p < close && *p == '[') {
            const char *q = memchr(p, ']', (size_t)(close - p));
            p = q ? q + 1 : close;
        } else {
            while (p < close && !is_space(*p) && *p != ',')
                p++;
        }
        val.len = (size_t)(p - val.p);
        if (val.len == 0)
            return fail(ps, "option '%.*s%s' has an empty value", QW(key));
        if (timeout) {
            if (have_timeout)
                return fail(ps, "option 'timeout' given twice");
            if (!parse_seconds(val, &r->timeout))
                return fail(ps, "bad timeout '%.*s%s' (seconds)", QW(val));
            if (r->timeout > PF_TIMEOUT_MAX)
                return fail(ps, "timeout '%.*s%s' is too large (at most %.0f seconds)", QW(val),
                            PF_TIMEOUT_MAX);
            have_timeout = true;
        } else {
            if (r->source)
                return fail(ps, "option 'src' given twice");
            struct word host = check_host(val);
            if (!host.p)
                return fail(ps, "bad source address '%.*s%s'", QW(val));
            if (!(r->source = dup_word(host)))
                return fail_nomem(ps);
        }
        p = skip_space(p, close);
        if (p == close)
            return 0;
        if (*p != ',') {
            struct word junk = {p, (size_t)(close - p), false};
            return fail(ps, "expected ',' between options, got '%.*s%s'", QW(junk));
        }
        p = skip_space(p + 1, close);
    }
}

/* The bind address of r as a socket address, when its host is an address
 * literal (names are resolved later, by the caller); AF_UNSPEC otherwise. */
static void literal_bind(struct pf_rule *r, unsigned port)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)&r->bind_addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&r->bind_addr;
    memset(&r->bind_addr, 0, sizeof r->bind_addr);
    if (inet_pton(AF_INET, r->bind_host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, r->bind_host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
    }
}

/* Two rules cannot listen on one address: without SO_REUSEPORT the second
 * fails with EADDRINUSE, with it (--threads) the kernel would split the
 * clients between both (issue 8 item 6).  Say so now, naming both lines;
 * checked once the whole file is read. */
static int check_duplicates(struct parser *ps)
{
    struct pf_config *cfg = ps->cfg;
    const struct sockaddr **addrs = malloc((cfg->nrules + 1) * sizeof *addrs);
    if (!addrs)
        return fail_nomem(ps);
    for (size_t i = 0; i < cfg->nrules; i++)
        addrs[i] = (const struct sockaddr *)&cfg->rules[i].bind_addr;
    size_t a, b;
    int rc = pf_first_overlap(addrs, cfg->nrules, &a, &b);
    free(addrs);
    if (rc < 0)
        return fail_nomem(ps);
    if (rc == 0)
        return 0;
    const struct pf_rule *o = &cfg->rules[a], *r = &cfg->rules[b];
    ps->line = r->line;
    return fail(ps, "%s port %s overlaps line %d's %s port %s (one rule per address)", r->bind_host,
                r->bind_port, o->line, o->bind_host, o->bind_port);
}

/* A rule from its four words, checked and appended to the configuration. */
static int add_rule(struct parser *ps, const struct word w[4])
{
    struct word bind_host = check_host(w[0]), connect_host = check_host(w[2]);
    struct word bind_port, connect_port;
    unsigned bind_num = 0, connect_num = 0;
    if (!bind_host.p)
        return fail(ps, "bad bind address '%.*s%s'", QW(w[0]));
    if (w[2].quoted)
        return fail(ps, "bad connect address \"%.*s%s\" (no quotes here)", QW(w[2]));
    int rc = check_port(ps, w[1], "bind", &bind_port, &bind_num);
    if (rc < 0)
        return rc;
    if (!connect_host.p)
        return fail(ps, "bad connect address '%.*s%s'", QW(w[2]));
    rc = check_port(ps, w[3], "connect", &connect_port, &connect_num);
    if (rc < 0)
        return rc;

    struct pf_config *cfg = ps->cfg;
    void *tmp = cfg->rules;
    if (grow(&tmp, cfg->nrules, sizeof *cfg->rules) < 0)
        return fail_nomem(ps);
    cfg->rules = tmp;
    struct pf_rule *r = &cfg->rules[cfg->nrules++];
    memset(r, 0, sizeof *r);
    r->line = ps->line;
    if (!(r->bind_host = dup_word(bind_host)) || !(r->bind_port = dup_word(bind_port)) ||
        !(r->connect_host = dup_word(connect_host)) || !(r->connect_port = dup_word(connect_port)))
        return fail_nomem(ps);
    literal_bind(r, bind_num);
    return 0;
}

/* bindaddress bindport connectaddress connectport [options] */
static int parse_rule(struct parser *ps, struct word first, const char *s, const char *end)
{
    struct word w[4];
    w[0] = first;
    int n = 1;
    for (; n < 4; n++) {
        int rc = next_word(ps, &s, end, n == 3, &w[n]);
        if (rc < 0)
            return rc;
        if (rc == 0)
            break;
    }
    if (n < 4) {
        bool ident = !first.quoted && first.len > 0;
        for (size_t i = 0; ident && i < first.len; i++)
            ident = is_alpha(first.p[i]);
        if (n <= 2 && ident)
            return fail(ps, "unknown keyword '%.*s%s'", QW(first));
        return fail(ps,
                    "incomplete forwarding rule: expected bindaddress bindport "
                    "connectaddress connectport [options], got %d word%s",
                    n, n == 1 ? "" : "s");
    }
    int rc = add_rule(ps, w);
    if (rc < 0)
        return rc;
    s = skip_space(s, end);
    if (s == end)
        return 0;
    if (*s != '[') {
        struct word extra;
        rc = next_word(ps, &s, end, false, &extra);
        if (rc < 0)
            return rc;
        return fail(ps, "unexpected '%.*s%s' after the connect port (options go in [...])",
                    QW(extra));
    }
    return parse_options(ps, &ps->cfg->rules[ps->cfg->nrules - 1], s, end);
}

static int parse_line(struct parser *ps, const char *s, size_t len)
{
    if (len > PF_LINE_MAX)
        return fail(ps, "line too long (more than %d bytes)", PF_LINE_MAX);
    if (memchr(s, '\0', len))
        return fail(ps, "NUL byte in line");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r')
            return fail(ps, "carriage return inside a line");
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return fail(ps, "control character 0x%02x in line", c);
    }
    /* The words end at a '#', except inside a "..." that starts a word
     * (as next_word() reads it; an unterminated one is its to report). */
    const char *end = s;
    while (end < s + len && *end != '#') {
        if (*end == '"' && (end == s || is_space(end[-1]))) {
            const char *q = memchr(end + 1, '"', (size_t)(s + len - end - 1));
            if (!q) {
                end = s + len;
                break;
            }
            end = q;
        }
        end++;
    }

    struct word kw;
    int rc = next_word(ps, &s, end, false, &kw);
    if (rc <= 0)
        return rc; /* blank or comment, or an error */
    if (word_is(kw, "allow") || word_is(kw, "deny"))
        return parse_access(ps, kw, s, end);
    if (word_is(kw, "logfile"))
        return parse_path(ps, "logfile", &ps->cfg->logfile, &ps->logfile_line, s, end);
    if (word_is(kw, "pidlogfile"))
        return parse_path(ps, "pidlogfile", &ps->cfg->pidfile, &ps->pidfile_line, s, end);
    if (word_is(kw, "pidfile"))
        return parse_path(ps, "pidfile", &ps->cfg->pidfile, &ps->pidfile_line, s, end);
    if (word_is(kw, "logcommon")) {
        ps->cfg->logcommon = true;
        return expect_end(ps, s, end, "'logcommon'");
    }
    if (kw.quoted)
        return fail(ps, "unexpected quoted string \"%.*s%s\"", QW(kw));
    return parse_rule(ps, kw, s, end);
}

int pf_config_parse(const char *text, size_t len, const char *name, struct pf_config *out,
                    char *err, size_t errlen)
{
    struct parser ps = {
        .name = name ? name : "(config)",
        .err = err,
        .errlen = errlen,
        .cfg = out,
    };
    if (err && errlen)
        err[0] = '\0';
    memset(out, 0, sizeof *out);
    if (!text)
        len = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        if (n && line[n - 1] == '\r')
            n--;
        if (ps.line == INT_MAX) {
            pf_config_free(out);
            return fail(&ps, "too many lines");
        }
        ps.line++;
        int rc = parse_line(&ps, line, n);
        if (rc < 0) {
            pf_config_free(out);
            return rc;
        }
    }
    int rc = check_duplicates(&ps);
    if (rc < 0)
        pf_config_free(out);
    return rc;
}

int pf_config_load(const char *path, struct pf_config *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int e = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        e = errno;
    } else {
        for (;;) {
            if (len == cap) {
                size_t ncap = cap ? cap * 2 : 8192;
                char *nbuf = ncap > cap ? realloc(buf, ncap) : NULL;
                if (!nbuf) {
                    e = ENOMEM;
                    break;
                }
                buf = nbuf;
                cap = ncap;
            }
            ssize_t n = read(fd, buf + len, cap - len);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                e = errno;
                break;
            }
            if (n == 0)
                break;
            len += (size_t)n;
        }
        close(fd);
    }
    if (e) {
        free(buf);
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    int rc = pf_config_parse(buf, len, path, out, err, errlen);
    free(buf);
    return rc;
}

/* An IPv4 or IPv6 socket address as IPv6 (IPv4 mapped); false for others. */
static bool as_ipv6(const struct sockaddr *sa, struct sockaddr_in6 *out)
{
    memset(out, 0, sizeof *out);
    if (sa->sa_family == AF_INET6) {
        memcpy(out, sa, sizeof *out);
        return true;
    }
    if (sa->sa_family != AF_INET)
        return false;
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
    out->sin6_family = AF_INET6;
    out->sin6_port = v4->sin_port;
    out->sin6_addr.s6_addr[10] = out->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&out->sin6_addr.s6_addr[12], &v4->sin_addr, 4);
    return true;
}

int pf_config_add_rule(struct pf_config *cfg, const char *bind_host, const char *bind_port,
                       const char *connect_host, const char *connect_port, char *err, size_t errlen)
{
    struct parser ps = {.name = NULL, .err = err, .errlen = errlen, .cfg = cfg};
    const char *v[4] = {bind_host, bind_port, connect_host, connect_port};
    struct word w[4];
    if (err && errlen)
        err[0] = '\0';
    for (int i = 0; i < 4; i++) {
        w[i] = (struct word){v[i] ? v[i] : "", v[i] ? strlen(v[i]) : 0, false};
        if (w[i].len > PF_LINE_MAX) /* check_port copies a name into a line-sized buffer */
            return fail(&ps, "'%.*s%s' is too long", QW(w[i]));
    }
    return add_rule(&ps, w);
}

/* A port and an index, to sort the addresses by port. */
struct port_index {
    unsigned port;
    size_t i;
};

static int by_port(const void *a, const void *b)
{
    const struct port_index *x = a, *y = b;
    if (x->port != y->port)
        return x->port < y->port ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static unsigned port_of(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

int pf_first_overlap(const struct sockaddr *const *addrs, size_t n, size_t *first, size_t *second)
{
    /* Only addresses on the same port can overlap: sorted by port (then
     * index), each run of one port is compared pair by pair. */
    struct port_index *v = malloc((n + 1) * sizeof *v);
    if (!v)
        return -ENOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (port_of(addrs[i]))
            v[m++] = (struct port_index){port_of(addrs[i]), i};
    qsort(v, m, sizeof *v, by_port);
    bool found = false;
    for (size_t run = 0, end; run < m; run = end) {
        for (end = run + 1; end < m && v[end].port == v[run].port; end++)
            ;
        for (size_t j = run + 1; j < end; j++) {
            if (found && v[j].i >= *second)
                break; /* only an earlier second line can win */
            for (size_t k = run; k < j; k++)
                if (pf_binds_overlap(addrs[v[k].i], addrs[v[j].i])) {
                    *first = v[k].i, *second = v[j].i;
                    found = true;
                    break;
                }
        }
    }
    free(v);
    return found;
}

bool pf_binds_overlap(const struct sockaddr *a, const struct sockaddr *b)
{
    struct sockaddr_in6 x, y;
    if (!as_ipv6(a, &x) || !as_ipv6(b, &y) || x.sin6_port != y.sin6_port || !x.sin6_port)
        return false;
    /* A "::" listener takes IPv4 too (IPV6_V6ONLY is off); "0.0.0.0" is
     * ::ffff:0.0.0.0 here, the IPv4 part of it. */
    static const unsigned char any4[16] = {[10] = 0xff, [11] = 0xff};
    bool x4 = IN6_IS_ADDR_V4MAPPED(&x.sin6_addr), y4 = IN6_IS_ADDR_V4MAPPED(&y.sin6_addr);
    if (IN6_IS_ADDR_UNSPECIFIED(&x.sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&y.sin6_addr))
        return true;
    if (x4 != y4)
        return false;
    if (!memcmp(&x.sin6_addr, any4, 16) || !memcmp(&y.sin6_addr, any4, 16))
        return true;
    return !memcmp(&x.sin6_addr, &y.sin6_addr, 16) && x.sin6_scope_id == y.sin6_scope_id;
}

/* ------------------------------------------------------------ access */

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

bool pf_pattern_match(const char *pattern, const char *text)
{
    if (!pattern || !text)
        return false;
    /* Greedy with one backtrack point, the last '*': O(len(p) * len(t)). */
    const char *p = pattern, *t = text, *star = NULL, *mark = NULL;
    while (*t) {
        if (*p == '*') {
            star = p++;
            mark = t;
        } else if (*p && (*p == '?' || lower(*p) == lower(*t))) {
            p++;
            t++;
        } else if (star) {
            p = star + 1;
            t = ++mark;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

/* The client as the patterns see it.  IPv4 keeps rinetd's text matching
 * on its dotted form; IPv6 has several correct spellings, and a wildcard
 * pattern may match any of them: RFC 5952's ("fe80::1"), all eight groups
 * ("fe80:0:0:0:0:0:0:1") and all eight padded ("fe80:0000:...:0001").  An
 * IPv4-mapped client ("::ffff:127.0.0.1", an IPv4 client of a "::"
 * listener) is its IPv4 address, so that "deny 127.*" stops it there too.
 * A pattern without wildcards that is an address is compared as one, so
 * "0:0:0:0:0:0:0:1" is "::1". */
struct client {
    bool is_addr; /* addr holds it (IPv4 as ::ffff:a.b.c.d) */
    struct in6_addr addr;
    int nforms;
    char forms[3][48];
};

static void client_forms(const char *text, struct client *c)
{
    memset(c, 0, sizeof *c);
    char s[INET6_ADDRSTRLEN + 1];
    size_t n = strcspn(text, "%"); /* a zone ("fe80::1%eth0") names no address */
    struct in_addr v4;
    if (n < sizeof s) {
        memcpy(s, text, n);
        s[n] = '\0';
        if (inet_pton(AF_INET, s, &v4) == 1) {
            c->addr.s6_addr[10] = c->addr.s6_addr[11] = 0xff;
            memcpy(&c->addr.s6_addr[12], &v4, 4);
            c->is_addr = true;
        } else {
            c->is_addr = inet_pton(AF_INET6, s, &c->addr) == 1;
        }
    }
    if (!c->is_addr) {
        snprintf(c->forms[c->nforms++], sizeof c->forms[0], "%s", text);
        return;
    }
    const unsigned char *b = c->addr.s6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&c->addr)) {
        inet_ntop(AF_INET, b + 12, c->forms[c->nforms++], sizeof c->forms[0]);
        return;
    }
    inet_ntop(AF_INET6, &c->addr, c->forms[c->nforms++], sizeof c->forms[0]);
    for (int padded = 0; padded < 2; padded++) {
        char *o = c->forms[c->nforms++];
        for (int g = 0; g < 8; g++)
            o += sprintf(o, padded ? "%s%04x" : "%s%x", g ? ":" : "", b[2 * g] << 8 | b[2 * g + 1]);
    }
}

/* A pattern without wildcards that is an IPv4 or IPv6 address, as an
 * IPv6 address (IPv4 mapped); false for anything else. */
static bool pattern_addr(const char *pattern, struct in6_addr *a)
{
    struct in_addr v4;
    if (strpbrk(pattern, "*?"))
        return false;
    if (inet_pton(AF_INET, pattern, &v4) == 1) {
        memset(a, 0, sizeof *a);
        a->s6_addr[10] = a->s6_addr[11] = 0xff;
        memcpy(&a->s6_addr[12], &v4, 4);
        return true;
    }
    return inet_pton(AF_INET6, pattern, a) == 1;
}

static bool client_match(const char *pattern, const struct client *c)
{
    struct in6_addr a;
    if (c->is_addr && pattern_addr(pattern, &a))
        return memcmp(&a, &c->addr, sizeof a) == 0;
    for (int i = 0; i < c->nforms; i++)
        if (pf_pattern_match(pattern, c->forms[i]))
            return true;
    return false;
}

static bool any_match(char *const *patterns, size_t n, const struct client *c)
{
    for (size_t i = 0; i < n; i++)
        if (client_match(patterns[i], c))
            return true;
    return false;
}

static bool patterns_allow(const struct pf_patterns *pt, const struct client *c)
{
    if (pt->nallow && !any_match(pt->allow, pt->nallow, c))
        return false;
    return !any_match(pt->deny, pt->ndeny, c);
}

bool pf_allowed(const struct pf_config *cfg, const struct pf_rule *rule, const char *client)
{
    struct client c;
    client_forms(client ? client : "", &c);
    if (cfg && !patterns_allow(&cfg->access, &c))
        return false;
    if (rule && !patterns_allow(&rule->access, &c))
        return false;
    return true;
}
