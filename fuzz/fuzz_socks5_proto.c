/* libFuzzer target: socks5d's wire formats (tools/socks5d/proto.c,
 * included whole).  The input is what a client sent, given to every
 * parser: the greeting, RFC 1929's message, the SOCKS5 and SOCKS4
 * requests, and a UDP datagram.  For each parser:
 *   - the result is 0, a length <= the input, or an SP_E_* code the
 *     parser may return; given SP_MAX_MESSAGE bytes or more, never 0;
 *   - every prefix of the input (each copied to the end of a heap buffer,
 *     so that ASan catches any read past it) gives 0 until the result
 *     shows, then the same result and the same output: a message split
 *     anywhere parses as in one piece, and nothing past it is read; a
 *     length is the very prefix where the result first shows;
 *   - what it filled is sane: strings NUL-terminated, names 1-255 bytes
 *     without control bytes, an address of the family its ATYP says.
 * The encoders are fed the parsed addresses and their output is parsed
 * again: a reply (whose layout is a request's) and a UDP header give back
 * the address (IPv4-mapped IPv6 as IPv4), a SOCKS4 reply the port and IP.
 * Any broken invariant aborts.
 *
 * Build: `make fuzz` (or clang -fsanitize=fuzzer,address,undefined
 *        -Itools fuzz/fuzz_socks5_proto.c -o /tmp/fz && /tmp/fz)
 * Seeds: fuzz/corpus/fuzz_socks5_proto/, dictionary fuzz_socks5_proto.dict. */
#include "socks5d/proto.c"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_socks5_proto: %s:%d: check failed: %s\n", __FILE__, __LINE__,    \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

enum { P_GREETING, P_AUTH, P_REQUEST, P_SOCKS4, P_UDP, P_COUNT };

union fz_out {
    struct sp_greeting g;
    struct sp_auth a;
    struct sp_request r;
    struct sp_udp u;
};

static int fz_parse(int which, const uint8_t *buf, size_t len, union fz_out *o)
{
    switch (which) {
    case P_GREETING: return sp_parse_greeting(buf, len, &o->g);
    case P_AUTH: return sp_parse_auth(buf, len, &o->a);
    case P_REQUEST: return sp_parse_request(buf, len, &o->r);
    case P_SOCKS4: return sp_parse_socks4(buf, len, &o->r);
    default: return sp_parse_udp(buf, len, &o->u);
    }
}

static size_t fz_out_size(int which)
{
    switch (which) {
    case P_GREETING: return sizeof(struct sp_greeting);
    case P_AUTH: return sizeof(struct sp_auth);
    case P_REQUEST:
    case P_SOCKS4: return sizeof(struct sp_request);
    default: return sizeof(struct sp_udp);
    }
}

/* The codes each parser may return. */
static bool fz_code_ok(int which, int rc)
{
    switch (rc) {
    case SP_E_CLOSE: return which != P_UDP;
    case SP_E_NOMETHOD: return which == P_GREETING;
    case SP_E_GENERAL: return which != P_GREETING;
    case SP_E_COMMAND: return which == P_REQUEST || which == P_SOCKS4;
    case SP_E_ATYP: return which == P_REQUEST || which == P_UDP;
    case SP_E_FRAG: return which == P_UDP;
    default: return rc >= 0;
    }
}

static bool fz_name_ok(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* An address as a parser leaves it (atyp, port, addr, addrlen, host). */
static void fz_check_address(int atyp, uint16_t port, const struct sockaddr_storage *ss,
                             socklen_t addrlen, const char *host)
{
    CHECK(memchr(host, 0, 256) != NULL);
    if (atyp == SOCKS5_ATYP_IPV4) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        CHECK(addrlen == sizeof *in && in->sin_family == AF_INET && ntohs(in->sin_port) == port);
        CHECK(host[0] == '\0');
    } else if (atyp == SOCKS5_ATYP_IPV6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        CHECK(addrlen == sizeof *in6 && in6->sin6_family == AF_INET6);
        CHECK(ntohs(in6->sin6_port) == port && in6->sin6_scope_id == 0);
        CHECK(host[0] == '\0');
    } else {
        CHECK(atyp == SOCKS5_ATYP_DOMAIN);
        CHECK(addrlen == 0 && ss->ss_family == AF_UNSPEC);
        CHECK(fz_name_ok(host, 255));
    }
}

static void fz_check_out(int which, int rc, const uint8_t *data, const union fz_out *o)
{
    if (which == P_GREETING && rc > 0) {
        CHECK(o->g.none || o->g.userpass);
        CHECK(rc == 2 + data[1]);
    } else if (which == P_AUTH && rc > 0) {
        CHECK(strlen(o->a.user) == data[1] && strlen(o->a.pass) == data[2 + data[1]]);
        CHECK(rc == 3 + data[1] + data[2 + data[1]]);
        CHECK(memcmp(o->a.user, data + 2, data[1]) == 0);
    } else if ((which == P_REQUEST || which == P_SOCKS4) && (rc > 0 || rc == SP_E_COMMAND)) {
        const struct sp_request *r = &o->r;
        CHECK(r->version == (which == P_REQUEST ? 5 : 4) && r->cmd == data[1]);
        bool known = r->cmd == SOCKS_CMD_CONNECT || r->cmd == SOCKS_CMD_BIND ||
                     (which == P_REQUEST && r->cmd == SOCKS_CMD_UDP_ASSOCIATE);
        CHECK(known == (rc > 0));
        CHECK(memchr(r->userid, 0, sizeof r->userid) != NULL);
        CHECK(which == P_SOCKS4 || r->userid[0] == '\0');
        CHECK(which == P_REQUEST || r->atyp != SOCKS5_ATYP_IPV6);
        fz_check_address(r->atyp, r->port, &r->addr, r->addrlen, r->host);
    } else if (which == P_UDP && rc > 0) {
        CHECK(data[0] == 0 && data[1] == 0 && data[2] == 0);
        fz_check_address(o->u.atyp, o->u.port, &o->u.addr, o->u.addrlen, o->u.host);
    }
}

/* Every prefix of data up to limit bytes, each at the end of buf (limit
 * bytes on the heap): 0 until the result shows, then `full` and the same
 * output. */
static void fz_prefixes(int which, const uint8_t *data, size_t limit, int full, uint8_t *buf)
{
    union fz_out o, first;
    size_t size = fz_out_size(which);
    bool seen = false;
    for (size_t p = 0; p <= limit; p++) {
        uint8_t *at = buf + limit - p;
        memcpy(at, data, p);
        int rc = fz_parse(which, at, p, &o);
        if (!seen) {
            if (rc == 0)
                continue;
            seen = true;
            first = o;
            CHECK(rc <= 0 || (size_t)rc == p); /* whole at exactly its length */
        }
        CHECK(rc == full);
        if (rc > 0 || rc == SP_E_COMMAND)
            CHECK(memcmp(&o, &first, size) == 0);
    }
    CHECK(seen || full == 0);
}

/* sa's address and port as they come back from a reply or a header:
 * IPv4 for AF_INET and a mapped AF_INET6, IPv6 otherwise. */
static void fz_check_same(const struct sockaddr *sa, const struct sockaddr_storage *back)
{
    if (sa->sa_family == AF_INET) {
        CHECK(memcmp(back, sa, sizeof(struct sockaddr_in)) == 0);
        return;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    if (is_v4_mapped(in6)) {
        const struct sockaddr_in *b = (const struct sockaddr_in *)back;
        CHECK(b->sin_family == AF_INET && b->sin_port == in6->sin6_port);
        CHECK(memcmp(&b->sin_addr, in6->sin6_addr.s6_addr + 12, 4) == 0);
        return;
    }
    const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)back;
    CHECK(b->sin6_family == AF_INET6 && b->sin6_port == in6->sin6_port);
    CHECK(memcmp(&b->sin6_addr, &in6->sin6_addr, 16) == 0);
}

/* The encoders on a parsed address (NULL: none), and their output parsed
 * back.  rep: any byte, for sp_reply4's mapping and the names. */
static void fz_encode(const struct sockaddr *sa, int rep)
{
    uint8_t out[SP_REPLY_MAX + 1];
    out[SP_REPLY_MAX] = 0xa5;
    size_t n = sp_reply5(out, rep, sa);
    CHECK(n == 10 || n == 22);
    CHECK(out[0] == 5 && out[1] == (uint8_t)rep && out[2] == 0);
    out[1] = SOCKS_CMD_CONNECT; /* a reply is laid out as a request */
    struct sp_request r;
    CHECK(sp_parse_request(out, n, &r) == (int)n);
    if (sa)
        fz_check_same(sa, &r.addr);
    else
        CHECK(r.atyp == SOCKS5_ATYP_IPV4 && r.port == 0);

    struct sp_udp u;
    CHECK(sp_udp_header(out, sa) == n);
    CHECK(sp_parse_udp(out, n, &u) == (int)n);
    CHECK(u.addrlen == r.addrlen && memcmp(&u.addr, &r.addr, r.addrlen) == 0);

    CHECK(sp_reply4(out, rep, sa) == 8);
    CHECK(out[0] == 0 && out[1] >= 90 && out[1] <= 93);
    CHECK(out[1] == (rep == 0 ? 90 : rep >= 90 && rep <= 93 ? rep : 91));
    if (r.atyp == SOCKS5_ATYP_IPV4 && !(out[4] == 0 && out[5] == 0 && out[6] == 0 && out[7])) {
        uint8_t req[9] = {4, 1, out[2], out[3], out[4], out[5], out[6], out[7], 0};
        CHECK(sp_parse_socks4(req, sizeof req, &r) == (int)sizeof req);
        CHECK(memcmp(&r.addr, &u.addr, sizeof(struct sockaddr_in)) == 0);
    }
    CHECK(sp_method_reply(out, rep) == 2 && out[0] == 5 && out[1] == (uint8_t)rep);
    CHECK(sp_auth_reply(out, rep & 1) == 2 && out[0] == 1 && out[1] == !(rep & 1));
    CHECK(out[SP_REPLY_MAX] == 0xa5);
    CHECK(sp_reply_name(rep) != NULL && sp_reply_name(rep)[0] != '\0');
    CHECK(sp_error_reply(rep) == -1 || (rep < 0 && sp_error_reply(rep) > 0));
}

static void fz_encode_parsed(int which, int rc, const union fz_out *o, int rep)
{
    const struct sockaddr_storage *ss = NULL;
    if ((which == P_REQUEST || which == P_SOCKS4) && (rc > 0 || rc == SP_E_COMMAND))
        ss = o->r.addrlen ? &o->r.addr : NULL;
    else if (which == P_UDP && rc > 0)
        ss = o->u.addrlen ? &o->u.addr : NULL;
    else
        return;
    fz_encode((const struct sockaddr *)ss, rep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Prefixes up to a little past the longest message. */
    size_t limit = size < SP_MAX_MESSAGE + 8 ? size : SP_MAX_MESSAGE + 8;
    uint8_t *whole = malloc(size ? size : 1), *buf = malloc(limit ? limit : 1);
    if (!whole || !buf) {
        free(whole);
        free(buf);
        return 0;
    }
    if (size)
        memcpy(whole, data, size);
    int v = sp_version(whole, size);
    CHECK(size == 0 ? v == 0 : v == (data[0] == 4 || data[0] == 5 ? data[0] : SP_E_CLOSE));

    for (int which = 0; which < P_COUNT; which++) {
        union fz_out o;
        int rc = fz_parse(which, whole, size, &o);
        CHECK(fz_code_ok(which, rc));
        CHECK(rc <= 0 || (size_t)rc <= size);
        CHECK(size < SP_MAX_MESSAGE || rc != 0);
        fz_check_out(which, rc, data, &o);
        fz_prefixes(which, data, limit, rc, buf);
        fz_encode_parsed(which, rc, &o, size > 1 ? (int)data[size - 1] : -which);
        if (rc < 0)
            (void)sp_error_reply(rc);
    }
    free(whole);
    free(buf);
    return 0;
}
