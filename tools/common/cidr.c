/* Address ranges (CIDR): parsing and matching (cidr.h).
 *
 * Everything is kept in the IPv6 form: an IPv4 address a.b.c.d is
 * ::ffff:a.b.c.d and its prefix p is 96 + p, so that one comparison serves
 * both families and a dual-stack client (an IPv4 peer of a "::" listener,
 * seen as ::ffff:a.b.c.d) meets the IPv4 rules it belongs to. */
#include "cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* The 12 bytes in front of an IPv4 address in its IPv6 form (RFC 4291
 * 2.5.5.2, "IPv4-mapped IPv6 address"). */
static const uint8_t v4_mapped_prefix[12] = {[10] = 0xff, [11] = 0xff};

/* "0".."128" without sign, blanks or leading zeros, up to max. */
static int parse_prefix(const char *s, unsigned max, unsigned *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 3 || (s[0] == '0' && n > 1))
        return -EINVAL;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* Clear every bit past the prefix. */
static void clear_host_bits(uint8_t addr[16], unsigned prefix)
{
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = prefix > i * 8 ? prefix - i * 8 : 0; /* bits kept in byte i */
        if (keep < 8)
            addr[i] &= (uint8_t)(0xff00u >> keep);
    }
}

int cidr_parse(const char *text, struct cidr *out)
{
    /* inet_pton() takes only "a.b.c.d" (no fewer parts, no octal, no
     * blanks) and the forms of RFC 4291 (no zone): no further check of the
     * address itself is needed. */
    char addr[INET6_ADDRSTRLEN + 1];
    if (!text)
        return -EINVAL;
    const char *slash = strchr(text, '/');
    size_t n = slash ? (size_t)(slash - text) : strlen(text);
    if (n == 0 || n >= sizeof addr)
        return -EINVAL;
    memcpy(addr, text, n);
    addr[n] = '\0';

    struct cidr c = {{0}, 0};
    unsigned prefix, offset;
    if (inet_pton(AF_INET, addr, &c.addr[12]) == 1) {
        memcpy(c.addr, v4_mapped_prefix, sizeof v4_mapped_prefix);
        offset = 96;
    } else if (inet_pton(AF_INET6, addr, c.addr) == 1) {
        offset = 0;
    } else {
        return -EINVAL;
    }
    if (!slash)
        prefix = 128 - offset;
    else if (parse_prefix(slash + 1, 128 - offset, &prefix) < 0)
        return -EINVAL;
    c.prefix = prefix + offset;
    clear_host_bits(c.addr, c.prefix);
    *out = c;
    return 0;
}

int cidr_list_add(struct cidr_list *l, const char *text)
{
    struct cidr c;
    if (cidr_parse(text, &c) < 0)
        return -EINVAL;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        if (cap > SIZE_MAX / sizeof *l->v)
            return -ENOMEM;
        struct cidr *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = c;
    return 0;
}

void cidr_list_free(struct cidr_list *l)
{
    if (!l)
        return;
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

bool cidr_ipv6_form(const struct sockaddr *sa, uint8_t out[16])
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memcpy(out, v4_mapped_prefix, sizeof v4_mapped_prefix);
        memcpy(out + 12, &in->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

static bool match_form(const struct cidr *c, const uint8_t a[16])
{
    unsigned whole = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(a, c->addr, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff00u >> rest);
    return (a[whole] & mask) == c->addr[whole];
}

bool cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
    uint8_t a[16];
    return c && cidr_ipv6_form(sa, a) && match_form(c, a);
}

bool cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa)
{
    uint8_t a[16];
    if (!l || !cidr_ipv6_form(sa, a))
        return false;
    for (size_t i = 0; i < l->n; i++)
        if (match_form(&l->v[i], a))
            return true;
    return false;
}

bool cidr_same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
    uint8_t x[16], y[16];
    return cidr_ipv6_form(a, x) && cidr_ipv6_form(b, y) && memcmp(x, y, sizeof x) == 0;
}
