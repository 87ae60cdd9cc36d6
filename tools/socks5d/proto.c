/* SOCKS wire formats (proto.h): incremental parsers and the encoders of
 * the replies.  Libc only, no I/O, so that tests/socks5d and the fuzz
 * target take this file on its own.
 *
 * Every parser works the same way: check what the bytes so far can tell
 * (the version at once), find where the message ends from its length
 * fields, return 0 until that many bytes are there, then check the rest
 * and copy it out.  No byte at or past the end of the message is read, so
 * the result depends on the message alone, however it was split. */
#include "proto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* RFC 1929 §2: the version of the subnegotiation, not of SOCKS. */
#define AUTH_VERSION 1

/* SOCKS4: VN CD DSTPORT(2) DSTIP(4), then the user id. */
#define SOCKS4_HEADER 8

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

int sp_version(const uint8_t *buf, size_t len)
{
    if (len == 0)
        return 0;
    if (buf[0] == SOCKS4_VERSION || buf[0] == SOCKS5_VERSION)
        return buf[0];
    return SP_E_CLOSE;
}

/* ------------------------------------------------------------ addresses */

/* A host name as we take it: 1-255 bytes, no NUL, no control byte. */
static bool name_ok(const uint8_t *p, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] == 0x7f)
            return false;
    return true;
}

static void set_ipv4(struct sockaddr_storage *ss, socklen_t *len, const uint8_t *ip, uint16_t port)
{
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    memset(ss, 0, sizeof *ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    memcpy(&in->sin_addr, ip, 4);
    *len = sizeof *in;
}

static void set_ipv6(struct sockaddr_storage *ss, socklen_t *len, const uint8_t *ip, uint16_t port)
{
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    memcpy(&in6->sin6_addr, ip, 16);
    *len = sizeof *in6;
}

/* ATYP, DST.ADDR, DST.PORT from buf[at] (§4, §7; a struct sp_udp is
 * exactly an address).  Returns the offset just past the port, 0 if the
 * bytes are not all there, SP_E_ATYP at once for an unknown type, or
 * SP_E_GENERAL for a bad name once the whole address is there. */
static int read_address(const uint8_t *buf, size_t len, size_t at, struct sp_udp *a)
{
    if (len <= at)
        return 0;
    size_t alen;
    switch (buf[at]) {
    case SOCKS5_ATYP_IPV4: alen = 4; break;
    case SOCKS5_ATYP_IPV6: alen = 16; break;
    case SOCKS5_ATYP_DOMAIN:
        if (len <= at + 1)
            return 0;
        alen = 1 + (size_t)buf[at + 1]; /* the length byte, then the name */
        break;
    default: return SP_E_ATYP;
    }
    size_t end = at + 1 + alen + 2;
    if (len < end)
        return 0;
    const uint8_t *p = buf + at + 1;
    a->atyp = buf[at];
    a->port = get16(buf + end - 2);
    if (a->atyp == SOCKS5_ATYP_IPV4) {
        set_ipv4(&a->addr, &a->addrlen, p, a->port);
    } else if (a->atyp == SOCKS5_ATYP_IPV6) {
        set_ipv6(&a->addr, &a->addrlen, p, a->port);
    } else {
        if (!name_ok(p + 1, p[0]))
            return SP_E_GENERAL;
        memcpy(a->host, p + 1, p[0]);
        a->host[p[0]] = '\0';
    }
    return (int)end;
}

/* ------------------------------------------------------------ SOCKS5 */

int sp_parse_greeting(const uint8_t *buf, size_t len, struct sp_greeting *out)
{
    /* §3: VER NMETHODS METHODS(1-255) */
    memset(out, 0, sizeof *out);
    if (len < 1)
        return 0;
    if (buf[0] != SOCKS5_VERSION)
        return SP_E_CLOSE;
    if (len < 2)
        return 0;
    size_t end = 2 + (size_t)buf[1];
    if (len < end)
        return 0;
    for (size_t i = 2; i < end; i++) {
        if (buf[i] == SOCKS5_METHOD_NONE)
            out->none = true;
        else if (buf[i] == SOCKS5_METHOD_USERPASS)
            out->userpass = true;
    }
    /* NMETHODS 0 offers nothing, as does a list of methods we don't know. */
    if (!out->none && !out->userpass)
        return SP_E_NOMETHOD;
    return (int)end;
}

int sp_parse_auth(const uint8_t *buf, size_t len, struct sp_auth *out)
{
    /* RFC 1929 §2: VER(1) ULEN UNAME(1-255) PLEN PASSWD(1-255) */
    memset(out, 0, sizeof *out);
    if (len < 1)
        return 0;
    if (buf[0] != AUTH_VERSION)
        return SP_E_CLOSE;
    if (len < 2)
        return 0;
    size_t ulen = buf[1];
    if (len < 3 + ulen)
        return 0;
    size_t plen = buf[2 + ulen];
    size_t end = 3 + ulen + plen;
    if (len < end)
        return 0;
    const uint8_t *user = buf + 2, *pass = buf + 3 + ulen;
    /* A NUL would cut the copy short: "ab\0cd" must not pass for "ab". */
    if (ulen == 0 || memchr(user, 0, ulen) || memchr(pass, 0, plen))
        return SP_E_GENERAL;
    memcpy(out->user, user, ulen);
    memcpy(out->pass, pass, plen);
    return (int)end;
}

int sp_parse_request(const uint8_t *buf, size_t len, struct sp_request *out)
{
    /* §4: VER CMD RSV ATYP DST.ADDR DST.PORT */
    memset(out, 0, sizeof *out);
    if (len < 1)
        return 0;
    if (buf[0] != SOCKS5_VERSION)
        return SP_E_CLOSE;
    struct sp_udp a;
    memset(&a, 0, sizeof a);
    int end = read_address(buf, len, 3, &a);
    if (end <= 0)
        return end;
    out->version = SOCKS5_VERSION;
    out->cmd = buf[1];
    out->atyp = a.atyp;
    out->port = a.port;
    out->addr = a.addr;
    out->addrlen = a.addrlen;
    memcpy(out->host, a.host, sizeof out->host);
    if (buf[2] != 0)
        return SP_E_GENERAL;
    if (out->cmd != SOCKS_CMD_CONNECT && out->cmd != SOCKS_CMD_BIND &&
        out->cmd != SOCKS_CMD_UDP_ASSOCIATE)
        return SP_E_COMMAND;
    return end;
}

int sp_parse_udp(const uint8_t *buf, size_t len, struct sp_udp *out)
{
    /* §7: RSV(2) FRAG ATYP DST.ADDR DST.PORT DATA */
    memset(out, 0, sizeof *out);
    if (len < 3)
        return 0;
    if (buf[0] != 0 || buf[1] != 0)
        return SP_E_GENERAL;
    /* §7: "An implementation that does not support fragmentation MUST
     * drop any datagram whose FRAG field is other than X'00'." */
    if (buf[2] != 0)
        return SP_E_FRAG;
    return read_address(buf, len, 3, out);
}

/* ------------------------------------------------------------ SOCKS4 */

/* A NUL-terminated string of at most SP_MAX_SOCKS4_STRING bytes at
 * buf[at], copied into out.  Returns its size with the NUL, 0 if the NUL
 * has not come yet, SP_E_GENERAL once it is too late for it. */
static int read_string(const uint8_t *buf, size_t len, size_t at, char *out)
{
    size_t room = SP_MAX_SOCKS4_STRING + 1; /* the string and its NUL */
    size_t avail = len > at ? len - at : 0;
    const uint8_t *nul = memchr(buf + at, 0, avail < room ? avail : room);
    if (!nul)
        return avail < room ? 0 : SP_E_GENERAL;
    size_t n = (size_t)(nul - (buf + at));
    memcpy(out, buf + at, n);
    out[n] = '\0';
    return (int)n + 1;
}

int sp_parse_socks4(const uint8_t *buf, size_t len, struct sp_request *out)
{
    /* SOCKS4: VN(4) CD DSTPORT DSTIP USERID NUL; SOCKS4a: DSTIP 0.0.0.x
     * with x != 0, and the host after the user id: HOST NUL. */
    memset(out, 0, sizeof *out);
    if (len < 1)
        return 0;
    if (buf[0] != SOCKS4_VERSION)
        return SP_E_CLOSE;
    if (len < SOCKS4_HEADER)
        return 0;
    int n = read_string(buf, len, SOCKS4_HEADER, out->userid);
    if (n <= 0)
        return n;
    size_t end = SOCKS4_HEADER + (size_t)n;
    const uint8_t *ip = buf + 4;
    out->version = SOCKS4_VERSION;
    out->cmd = buf[1];
    out->port = get16(buf + 2);
    if (ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && ip[3] != 0) {
        n = read_string(buf, len, end, out->host);
        if (n <= 0)
            return n;
        end += (size_t)n;
        out->atyp = SOCKS5_ATYP_DOMAIN;
        if (!name_ok((const uint8_t *)out->host, (size_t)n - 1)) {
            out->host[0] = '\0';
            return SP_E_GENERAL;
        }
    } else {
        out->atyp = SOCKS5_ATYP_IPV4;
        set_ipv4(&out->addr, &out->addrlen, ip, out->port);
    }
    if (out->cmd != SOCKS_CMD_CONNECT && out->cmd != SOCKS_CMD_BIND)
        return SP_E_COMMAND;
    return (int)end;
}

/* ------------------------------------------------------------ encoders */

static bool is_v4_mapped(const struct sockaddr_in6 *in6)
{
    static const uint8_t prefix[12] = {[10] = 0xff, [11] = 0xff};
    return memcmp(in6->sin6_addr.s6_addr, prefix, sizeof prefix) == 0;
}

/* ATYP ADDR PORT of sa (§5, §6): IPv4 for AF_INET and a mapped AF_INET6,
 * IPv6 for the rest of AF_INET6, 0.0.0.0 port 0 for anything else. */
static size_t put_address(uint8_t *out, const struct sockaddr *sa)
{
    const uint8_t *ip = NULL;
    uint16_t port = 0;
    out[0] = SOCKS5_ATYP_IPV4;
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        ip = (const uint8_t *)&in->sin_addr;
        port = ntohs(in->sin_port);
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        port = ntohs(in6->sin6_port);
        ip = in6->sin6_addr.s6_addr;
        if (is_v4_mapped(in6)) {
            ip += 12;
        } else {
            out[0] = SOCKS5_ATYP_IPV6;
            memcpy(out + 1, ip, 16);
            put16(out + 17, port);
            return 19;
        }
    }
    if (ip)
        memcpy(out + 1, ip, 4);
    else
        memset(out + 1, 0, 4);
    put16(out + 5, port);
    return 7;
}

size_t sp_method_reply(uint8_t *out, int method)
{
    out[0] = SOCKS5_VERSION;
    out[1] = (uint8_t)method;
    return 2;
}

size_t sp_auth_reply(uint8_t *out, bool ok)
{
    /* RFC 1929 §2: STATUS 0 is success, anything else a failure. */
    out[0] = AUTH_VERSION;
    out[1] = ok ? 0 : 1;
    return 2;
}

size_t sp_reply5(uint8_t *out, int rep, const struct sockaddr *addr)
{
    out[0] = SOCKS5_VERSION;
    out[1] = (uint8_t)rep;
    out[2] = 0; /* RSV */
    return 3 + put_address(out + 3, addr);
}

size_t sp_reply4(uint8_t *out, int cd, const struct sockaddr *addr)
{
    uint8_t a[19];
    size_t n = put_address(a, addr);
    out[0] = 0; /* VN: the version of the reply, 0 */
    if (cd >= SOCKS4_GRANTED && cd <= SOCKS4_GRANTED + 3)
        out[1] = (uint8_t)cd;
    else
        out[1] = cd == SOCKS5_SUCCEEDED ? SOCKS4_GRANTED : SOCKS4_REJECTED;
    if (n == 7) { /* IPv4: DSTPORT then DSTIP */
        memcpy(out + 2, a + 5, 2);
        memcpy(out + 4, a + 1, 4);
    } else {
        memset(out + 2, 0, 6);
    }
    return 8;
}

size_t sp_udp_header(uint8_t *out, const struct sockaddr *from)
{
    out[0] = out[1] = 0; /* RSV */
    out[2] = 0;          /* FRAG: a whole datagram */
    return 3 + put_address(out + 3, from);
}

int sp_error_reply(int err)
{
    switch (err) {
    case SP_E_GENERAL: return SOCKS5_GENERAL_FAILURE;
    case SP_E_COMMAND: return SOCKS5_COMMAND_NOT_SUPPORTED;
    case SP_E_ATYP: return SOCKS5_ATYP_NOT_SUPPORTED;
    default: return -1;
    }
}

const char *sp_reply_name(int rep)
{
    static const char *const names[] = {
        "succeeded",           "general-failure",       "not-allowed",
        "network-unreachable", "host-unreachable",      "connection-refused",
        "ttl-expired",         "command-not-supported", "address-type-not-supported",
    };
    if (rep >= 0 && rep < (int)(sizeof names / sizeof *names))
        return names[rep];
    if (rep == SOCKS4_GRANTED)
        return "granted";
    if (rep == SOCKS4_REJECTED)
        return "rejected";
    return "unknown";
}
