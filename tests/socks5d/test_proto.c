/* SOCKS wire formats (tools/socks5d/proto.h): every parser on every
 * prefix of its messages (0 until whole, then the exact length, whatever
 * follows), every error at the byte it is due, and the encoders byte for
 * byte.  Each parse gets a heap copy of exactly the bytes it may read, so
 * that the sanitizer tree catches a read past them. */
#include "proto.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define T(name, desc) Test(socks_proto, name, .timeout = 10, .description = desc)

/* A byte string literal and its length (without the literal's own NUL). */
#define B(s) (const uint8_t *)(s), (sizeof(s) - 1)

/* Each parser behind one signature, for the prefix loops. */
typedef int parse_fn(const uint8_t *buf, size_t len, void *out);
static int p_greeting(const uint8_t *b, size_t n, void *o) { return sp_parse_greeting(b, n, o); }
static int p_auth(const uint8_t *b, size_t n, void *o) { return sp_parse_auth(b, n, o); }
static int p_request(const uint8_t *b, size_t n, void *o) { return sp_parse_request(b, n, o); }
static int p_socks4(const uint8_t *b, size_t n, void *o) { return sp_parse_socks4(b, n, o); }
static int p_udp(const uint8_t *b, size_t n, void *o) { return sp_parse_udp(b, n, o); }

/* Parse a heap copy of exactly len bytes of msg. */
static int parse_copy(parse_fn *fn, const uint8_t *msg, size_t len, void *out)
{
    uint8_t *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    if (len)
        memcpy(copy, msg, len);
    int rc = fn(copy, len, out);
    cr_assert(len == 0 || memcmp(copy, msg, len) == 0, "the parser wrote into its input");
    free(copy);
    return rc;
}

/* Every prefix of msg shorter than `first` gives 0; from `first` bytes on,
 * up to the whole of msg and with 16 bytes of 0x00, then of 0xff, appended
 * (pipelined data), the result is rc and *out the same (out_size bytes;
 * compared when rc > 0 or rc == SP_E_COMMAND). *out is left as the whole
 * message leaves it. */
static void prefixes(parse_fn *fn, const uint8_t *msg, size_t len, size_t first, int rc, void *out,
                     size_t out_size)
{
    uint8_t *want = malloc(out_size), *ext = malloc(len + 16);
    cr_assert(want && ext);
    for (size_t p = 0; p < first; p++) {
        int r = parse_copy(fn, msg, p, out);
        cr_assert_eq(r, 0, "prefix of %zu bytes (of %zu): %d, want 0", p, len, r);
    }
    cr_assert_eq(parse_copy(fn, msg, len, out), rc, "whole message (%zu bytes)", len);
    memcpy(want, out, out_size);
    bool compare = rc > 0 || rc == SP_E_COMMAND;
    for (size_t p = first; p <= len + 16; p++) {
        for (int fill = 0; fill < 2; fill++) {
            memcpy(ext, msg, len);
            memset(ext + len, fill ? 0xff : 0x00, 16);
            int r = parse_copy(fn, ext, p, out);
            cr_assert_eq(r, rc, "%zu bytes (message %zu, fill %d): %d, want %d", p, len, fill, r,
                         rc);
            if (compare)
                cr_assert_arr_eq(out, want, out_size, "%zu bytes: different output", p);
        }
    }
    memcpy(out, want, out_size);
    free(want);
    free(ext);
}

/* A valid message: 0 for every prefix, then its length. */
#define VALID(fn, msg, out)                                                                        \
    prefixes(fn, B(msg), sizeof(msg) - 1, (int)(sizeof(msg) - 1), out, sizeof *(out))
/* An error due once `first` bytes are there. */
#define ERROR_AT(fn, msg, first, rc, out) prefixes(fn, B(msg), first, rc, out, sizeof *(out))
/* An error due once the whole message is there. */
#define ERROR_WHOLE(fn, msg, rc, out) ERROR_AT(fn, msg, sizeof(msg) - 1, rc, out)

static void assert_ipv4(const struct sp_request *r, const char *ip, uint16_t port)
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)&r->addr;
    char text[INET_ADDRSTRLEN];
    cr_assert_eq(r->atyp, SOCKS5_ATYP_IPV4);
    cr_assert_eq(r->port, port);
    cr_assert_eq(r->addrlen, sizeof(struct sockaddr_in));
    cr_assert_eq(in->sin_family, AF_INET);
    cr_assert_eq(ntohs(in->sin_port), port);
    cr_assert_not_null(inet_ntop(AF_INET, &in->sin_addr, text, sizeof text));
    cr_assert_str_eq(text, ip);
    cr_assert_str_eq(r->host, "");
}

static void assert_ipv6(const struct sp_request *r, const char *ip, uint16_t port)
{
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&r->addr;
    char text[INET6_ADDRSTRLEN];
    cr_assert_eq(r->atyp, SOCKS5_ATYP_IPV6);
    cr_assert_eq(r->port, port);
    cr_assert_eq(r->addrlen, sizeof(struct sockaddr_in6));
    cr_assert_eq(in6->sin6_family, AF_INET6);
    cr_assert_eq(ntohs(in6->sin6_port), port);
    cr_assert_eq(in6->sin6_scope_id, 0);
    cr_assert_eq(in6->sin6_flowinfo, 0);
    cr_assert_not_null(inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text));
    cr_assert_str_eq(text, ip);
    cr_assert_str_eq(r->host, "");
}

static void assert_domain(const struct sp_request *r, const char *host, uint16_t port)
{
    cr_assert_eq(r->atyp, SOCKS5_ATYP_DOMAIN);
    cr_assert_eq(r->port, port);
    cr_assert_eq(r->addrlen, 0);
    cr_assert_eq(r->addr.ss_family, AF_UNSPEC);
    cr_assert_str_eq(r->host, host);
}

/* n bytes of 'a'..'z' over and over, NUL-terminated, in a static buffer. */
static char *letters(size_t n)
{
    static char s[1024];
    cr_assert_lt(n, sizeof s);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + i % 26);
    s[n] = '\0';
    return s;
}

/* ------------------------------------------------------------ version */

T(version, "the first byte tells SOCKS4 from SOCKS5; nothing yet is 0; anything else closes")
{
    cr_assert_eq(sp_version(NULL, 0), 0);
    cr_assert_eq(sp_version(B("\x04")), 4);
    cr_assert_eq(sp_version(B("\x05\x01\x00")), 5);
    cr_assert_eq(sp_version(B("\x00")), SP_E_CLOSE);
    cr_assert_eq(sp_version(B("\x06")), SP_E_CLOSE);
    cr_assert_eq(sp_version(B("G")), SP_E_CLOSE, "an HTTP request");
    cr_assert_eq(sp_version(B("\x16\x03\x01")), SP_E_CLOSE, "a TLS hello");
}

/* ------------------------------------------------------------ greeting */

T(greeting_valid, "RFC 1928 §3: VER NMETHODS METHODS at every split, pipelined bytes untouched")
{
    struct sp_greeting g;
    VALID(p_greeting, "\x05\x01\x00", &g);
    cr_assert(g.none && !g.userpass);
    VALID(p_greeting, "\x05\x01\x02", &g);
    cr_assert(!g.none && g.userpass);
    VALID(p_greeting, "\x05\x02\x00\x02", &g);
    cr_assert(g.none && g.userpass);
    VALID(p_greeting, "\x05\x04\x80\x01\x02\xfe", &g);
    cr_assert(!g.none && g.userpass, "unknown methods beside a known one are ignored");
    VALID(p_greeting, "\x05\x03\x00\x00\x00", &g);
    cr_assert(g.none && !g.userpass);
    /* A greeting with a request pipelined after it (curl does not, some do). */
    cr_assert_eq(sp_parse_greeting(B("\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50"), &g),
                 3);
}

T(greeting_255_methods, "NMETHODS 255: the longest greeting, 257 bytes")
{
    uint8_t msg[257] = {5, 255};
    for (size_t i = 2; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i + 100); /* 102..356 mod 256: 0x00 and 0x02 among them */
    struct sp_greeting g;
    prefixes(p_greeting, msg, sizeof msg, sizeof msg, (int)sizeof msg, &g, sizeof g);
    cr_assert(g.none && g.userpass);
}

T(greeting_errors, "no method, no known method (once whole), wrong version (at once)")
{
    struct sp_greeting g;
    ERROR_WHOLE(p_greeting, "\x05\x00", SP_E_NOMETHOD, &g);
    ERROR_WHOLE(p_greeting, "\x05\x01\x01", SP_E_NOMETHOD, &g);
    ERROR_WHOLE(p_greeting, "\x05\x03\x01\x03\xff", SP_E_NOMETHOD, &g);
    ERROR_AT(p_greeting, "\x04\x01\x00", 1, SP_E_CLOSE, &g);
    ERROR_AT(p_greeting, "\x00\x01\x00", 1, SP_E_CLOSE, &g);
    ERROR_AT(p_greeting, "\xff", 1, SP_E_CLOSE, &g);
}

/* ------------------------------------------------------------ RFC 1929 */

T(auth_valid, "RFC 1929 §2: VER ULEN UNAME PLEN PASSWD at every split")
{
    struct sp_auth a;
    VALID(p_auth,
          "\x01\x03"
          "bob"
          "\x06"
          "secret",
          &a);
    cr_assert_str_eq(a.user, "bob");
    cr_assert_str_eq(a.pass, "secret");
    VALID(p_auth,
          "\x01\x01"
          "u"
          "\x01"
          ":",
          &a);
    cr_assert_str_eq(a.user, "u");
    cr_assert_str_eq(a.pass, ":");
    VALID(p_auth,
          "\x01\x04"
          "\xc3\xa9t\xc3"
          "\x03"
          "\xff\x01\x7f",
          &a);
    cr_assert_str_eq(a.user, "\xc3\xa9t\xc3", "any byte but NUL");
    cr_assert_str_eq(a.pass, "\xff\x01\x7f");
}

T(auth_empty_password, "PLEN 0 parses (lenient) as an empty password, which no user has")
{
    struct sp_auth a;
    VALID(p_auth,
          "\x01\x03"
          "bob"
          "\x00",
          &a);
    cr_assert_str_eq(a.user, "bob");
    cr_assert_str_eq(a.pass, "");
}

T(auth_longest, "a 255-byte user and a 255-byte password: 513 bytes")
{
    uint8_t msg[513];
    msg[0] = 1;
    msg[1] = 255;
    memcpy(msg + 2, letters(255), 255);
    msg[257] = 255;
    memset(msg + 258, 'P', 255);
    struct sp_auth a;
    prefixes(p_auth, msg, sizeof msg, sizeof msg, 513, &a, sizeof a);
    cr_assert_eq(strlen(a.user), 255);
    cr_assert_eq(memcmp(a.user, letters(255), 256), 0);
    cr_assert_eq(strlen(a.pass), 255);
    cr_assert_eq(a.pass[0], 'P');
    cr_assert_eq(a.pass[254], 'P');
}

T(auth_errors, "ULEN 0 and a NUL in either field: reply 1 once whole; VER != 1 closes at once")
{
    struct sp_auth a;
    ERROR_WHOLE(p_auth,
                "\x01\x00\x06"
                "secret",
                SP_E_GENERAL, &a);
    ERROR_WHOLE(p_auth, "\x01\x00\x00", SP_E_GENERAL, &a);
    ERROR_WHOLE(p_auth,
                "\x01\x03"
                "b\0b"
                "\x06"
                "secret",
                SP_E_GENERAL, &a);
    ERROR_WHOLE(p_auth,
                "\x01\x03"
                "bob"
                "\x06"
                "sec\0et",
                SP_E_GENERAL, &a);
    ERROR_WHOLE(p_auth,
                "\x01\x03"
                "bob"
                "\x06"
                "secre\0",
                SP_E_GENERAL, &a);
    ERROR_WHOLE(p_auth,
                "\x01\x03"
                "bob"
                "\x01"
                "\0",
                SP_E_GENERAL, &a);
    ERROR_AT(p_auth,
             "\x05\x03"
             "bob"
             "\x01"
             "x",
             1, SP_E_CLOSE, &a);
    ERROR_AT(p_auth,
             "\x00\x03"
             "bob"
             "\x01"
             "x",
             1, SP_E_CLOSE, &a);
    ERROR_AT(p_auth, "\x02", 1, SP_E_CLOSE, &a);
}

/* ------------------------------------------------------------ requests */

T(request_ipv4, "§4: CONNECT 127.0.0.1:80 at every split, then pipelined data")
{
    struct sp_request r;
    VALID(p_request, "\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50", &r);
    cr_assert_eq(r.version, 5);
    cr_assert_eq(r.cmd, SOCKS_CMD_CONNECT);
    assert_ipv4(&r, "127.0.0.1", 80);
    cr_assert_str_eq(r.userid, "");
    /* The request and the tunnel's first bytes in one read. */
    cr_assert_eq(
        sp_parse_request(B("\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50GET / HTTP/1.1\r\n"), &r), 10);
    assert_ipv4(&r, "127.0.0.1", 80);
}

T(request_ipv6, "§4: ATYP 4, a 16-byte address")
{
    struct sp_request r;
    VALID(p_request,
          "\x05\x02\x00\x04\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
          "\xff\xff",
          &r);
    cr_assert_eq(r.cmd, SOCKS_CMD_BIND);
    assert_ipv6(&r, "2001:db8::1", 65535);
}

T(request_ipv6_mapped, "an IPv4-mapped IPv6 destination stays IPv6 as the client wrote it")
{
    struct sp_request r;
    VALID(p_request,
          "\x05\x01\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x0a\x00\x00\x01"
          "\x00\x16",
          &r);
    assert_ipv6(&r, "::ffff:10.0.0.1", 22);
}

T(request_domain, "§4: ATYP 3, a length byte and the name; UDP ASSOCIATE")
{
    struct sp_request r;
    VALID(p_request,
          "\x05\x01\x00\x03\x0b"
          "example.com"
          "\x01\xbb",
          &r);
    cr_assert_eq(r.cmd, SOCKS_CMD_CONNECT);
    assert_domain(&r, "example.com", 443);
    VALID(p_request,
          "\x05\x03\x00\x03\x01"
          "a"
          "\x00\x00",
          &r);
    cr_assert_eq(r.cmd, SOCKS_CMD_UDP_ASSOCIATE);
    assert_domain(&r, "a", 0);
    VALID(p_request,
          "\x05\x01\x00\x03\x09"
          "127.0.0.1"
          "\x1f\x90",
          &r);
    assert_domain(&r, "127.0.0.1", 8080);
}

T(request_domain_255, "a 255-byte name: the longest request, 262 bytes")
{
    uint8_t msg[262] = {5, 1, 0, 3, 255};
    memcpy(msg + 5, letters(255), 255);
    msg[260] = 0x12;
    msg[261] = 0x34;
    struct sp_request r;
    prefixes(p_request, msg, sizeof msg, sizeof msg, 262, &r, sizeof r);
    assert_domain(&r, letters(255), 0x1234);
}

T(request_udp_any, "UDP ASSOCIATE with 0.0.0.0:0 (the client does not know its address yet)")
{
    struct sp_request r;
    VALID(p_request, "\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00", &r);
    cr_assert_eq(r.cmd, SOCKS_CMD_UDP_ASSOCIATE);
    assert_ipv4(&r, "0.0.0.0", 0);
}

T(request_version, "a request whose VER is not 5 closes at its first byte")
{
    struct sp_request r;
    ERROR_AT(p_request, "\x04\x01\x00\x01\x7f\x00\x00\x01\x00\x50", 1, SP_E_CLOSE, &r);
    ERROR_AT(p_request, "\x01\x01\x00\x01\x7f\x00\x00\x01\x00\x50", 1, SP_E_CLOSE, &r);
    ERROR_AT(p_request, "\x00", 1, SP_E_CLOSE, &r);
}

T(request_atyp, "§5: an unknown ATYP is reply 8 at the ATYP byte (the rest cannot be delimited)")
{
    struct sp_request r;
    ERROR_AT(p_request, "\x05\x01\x00\x02\x7f\x00\x00\x01\x00\x50", 4, SP_E_ATYP, &r);
    ERROR_AT(p_request, "\x05\x01\x00\x00", 4, SP_E_ATYP, &r);
    ERROR_AT(p_request, "\x05\x01\x00\x05", 4, SP_E_ATYP, &r);
    ERROR_AT(p_request, "\x05\x01\x00\xff", 4, SP_E_ATYP, &r);
    /* An unknown command too: the address still cannot be read, so 8. */
    ERROR_AT(p_request, "\x05\x09\x00\x07\x00", 4, SP_E_ATYP, &r);
    /* RSV bad too: same. */
    ERROR_AT(p_request, "\x05\x01\x01\x07\x00", 4, SP_E_ATYP, &r);
}

T(request_command, "an unknown command with a readable address: reply 7 after the whole request")
{
    struct sp_request r;
    ERROR_WHOLE(p_request, "\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x50", SP_E_COMMAND, &r);
    assert_ipv4(&r, "127.0.0.1", 80);
    cr_assert_eq(r.cmd, 0);
    cr_assert_eq(r.version, 5);
    ERROR_WHOLE(p_request,
                "\x05\x04\x00\x03\x04"
                "host"
                "\x00\x50",
                SP_E_COMMAND, &r);
    cr_assert_eq(r.cmd, 4);
    assert_domain(&r, "host", 80);
    ERROR_WHOLE(p_request,
                "\x05\xff\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
                "\x00\x01",
                SP_E_COMMAND, &r);
    cr_assert_eq(r.cmd, 255);
    assert_ipv6(&r, "::1", 1);
}

T(request_rsv, "strict: RSV != 0 is reply 1, once the whole request is there")
{
    struct sp_request r;
    ERROR_WHOLE(p_request, "\x05\x01\x01\x01\x7f\x00\x00\x01\x00\x50", SP_E_GENERAL, &r);
    ERROR_WHOLE(p_request,
                "\x05\x01\xff\x03\x01"
                "h"
                "\x00\x50",
                SP_E_GENERAL, &r);
    /* Both RSV and the command wrong: malformed before unsupported. */
    ERROR_WHOLE(p_request, "\x05\x09\x01\x01\x7f\x00\x00\x01\x00\x50", SP_E_GENERAL, &r);
}

T(request_bad_names, "a name of length 0, with a NUL or a control byte: reply 1 once whole")
{
    struct sp_request r;
    ERROR_WHOLE(p_request, "\x05\x01\x00\x03\x00\x00\x50", SP_E_GENERAL, &r);
    ERROR_WHOLE(p_request,
                "\x05\x01\x00\x03\x04"
                "ho\0t"
                "\x00\x50",
                SP_E_GENERAL, &r);
    ERROR_WHOLE(p_request,
                "\x05\x01\x00\x03\x04"
                "hos\0"
                "\x00\x50",
                SP_E_GENERAL, &r);
    ERROR_WHOLE(p_request,
                "\x05\x01\x00\x03\x05"
                "a\nb.c"
                "\x00\x50",
                SP_E_GENERAL, &r);
    ERROR_WHOLE(p_request,
                "\x05\x01\x00\x03\x03"
                "a\x7f"
                "b"
                "\x00\x50",
                SP_E_GENERAL, &r);
    ERROR_WHOLE(p_request,
                "\x05\x01\x00\x03\x03"
                "\x1b[m"
                "\x00\x50",
                SP_E_GENERAL, &r);
    cr_assert_str_eq(r.host, "");
    /* A name error comes before an unknown command (the name is malformed). */
    ERROR_WHOLE(p_request, "\x05\x09\x00\x03\x00\x00\x50", SP_E_GENERAL, &r);
    /* Bytes >= 0x80 are not control bytes: an IDN in UTF-8 is a name. */
    VALID(p_request,
          "\x05\x01\x00\x03\x06"
          "\xc3\xa9t\xc3\xa9s"
          "\x00\x50",
          &r);
    assert_domain(&r, "\xc3\xa9t\xc3\xa9s", 80);
}

T(request_not_socks4, "a SOCKS4 request given to the SOCKS5 parser, and the reverse, close")
{
    struct sp_request r;
    cr_assert_eq(sp_parse_request(B("\x04\x01\x00\x50\x7f\x00\x00\x01\x00"), &r), SP_E_CLOSE);
    cr_assert_eq(sp_parse_socks4(B("\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50"), &r), SP_E_CLOSE);
}

/* ------------------------------------------------------------ SOCKS4 */

T(socks4_connect, "SOCKS4: VN CD DSTPORT DSTIP USERID NUL at every split, then pipelined data")
{
    struct sp_request r;
    VALID(p_socks4,
          "\x04\x01\x00\x50\x7f\x00\x00\x01"
          "fred\0",
          &r);
    cr_assert_eq(r.version, 4);
    cr_assert_eq(r.cmd, SOCKS_CMD_CONNECT);
    assert_ipv4(&r, "127.0.0.1", 80);
    cr_assert_str_eq(r.userid, "fred");
    cr_assert_eq(sp_parse_socks4(B("\x04\x01\x00\x50\x7f\x00\x00\x01\0GET /"), &r), 9);
    cr_assert_str_eq(r.userid, "");
}

T(socks4_bind, "SOCKS4 BIND, an empty user id; 0.0.0.0 is an IPv4 address, not 4a")
{
    struct sp_request r;
    VALID(p_socks4, "\x04\x02\x1f\x90\x0a\x01\x02\x03\0", &r);
    cr_assert_eq(r.cmd, SOCKS_CMD_BIND);
    assert_ipv4(&r, "10.1.2.3", 8080);
    VALID(p_socks4,
          "\x04\x01\x00\x50\x00\x00\x00\x00"
          "u\0",
          &r);
    assert_ipv4(&r, "0.0.0.0", 80);
    cr_assert_str_eq(r.userid, "u");
    VALID(p_socks4, "\x04\x01\x00\x50\x00\x00\x01\x01\0", &r);
    assert_ipv4(&r, "0.0.1.1", 80);
}

T(socks4a, "SOCKS4a: DSTIP 0.0.0.x (x != 0), the host after the user id")
{
    struct sp_request r;
    VALID(p_socks4,
          "\x04\x01\x01\xbb\x00\x00\x00\x01"
          "fred\0"
          "example.com\0",
          &r);
    cr_assert_eq(r.version, 4);
    cr_assert_eq(r.cmd, SOCKS_CMD_CONNECT);
    assert_domain(&r, "example.com", 443);
    cr_assert_str_eq(r.userid, "fred");
    VALID(p_socks4, "\x04\x01\x00\x50\x00\x00\x00\xff\0localhost\0", &r);
    assert_domain(&r, "localhost", 80);
    cr_assert_str_eq(r.userid, "");
    cr_assert_eq(sp_parse_socks4(B("\x04\x01\x00\x50\x00\x00\x00\x07\0h\0\x16\x03"), &r), 11);
    assert_domain(&r, "h", 80);
}

T(socks4_longest, "a 255-byte user id and a 255-byte 4a host: 520 bytes, SP_MAX_MESSAGE")
{
    uint8_t msg[520] = {4, 1, 0, 80, 0, 0, 0, 1};
    memcpy(msg + 8, letters(255), 256);
    memset(msg + 264, 'h', 255);
    msg[519] = 0;
    cr_assert_eq(sizeof msg, SP_MAX_MESSAGE);
    struct sp_request r;
    prefixes(p_socks4, msg, sizeof msg, sizeof msg, 520, &r, sizeof r);
    cr_assert_eq(strlen(r.userid), 255);
    cr_assert_eq(strlen(r.host), 255);
    cr_assert_eq(r.atyp, SOCKS5_ATYP_DOMAIN);
}

T(socks4_too_long, "a user id or 4a host of 256 bytes: rejected as soon as 256 bytes hold no NUL")
{
    uint8_t msg[600] = {4, 1, 0, 80, 127, 0, 0, 1};
    memset(msg + 8, 'u', 256);
    msg[264] = 0;
    struct sp_request r;
    prefixes(p_socks4, msg, 265, 8 + 256, SP_E_GENERAL, &r, sizeof r);

    uint8_t a4[600] = {4, 1, 0, 80, 0, 0, 0, 9, 'u', 0};
    memset(a4 + 10, 'h', 256);
    a4[266] = 0;
    prefixes(p_socks4, a4, 267, 10 + 256, SP_E_GENERAL, &r, sizeof r);
}

T(socks4_errors, "VN != 4 closes; an empty or bad 4a host is 91; CD 3 or 0 is 91 after the whole")
{
    struct sp_request r;
    ERROR_AT(p_socks4, "\x00\x01\x00\x50\x7f\x00\x00\x01\0", 1, SP_E_CLOSE, &r);
    ERROR_WHOLE(p_socks4, "\x04\x01\x00\x50\x00\x00\x00\x01\0\0", SP_E_GENERAL, &r);
    ERROR_WHOLE(p_socks4, "\x04\x01\x00\x50\x00\x00\x00\x01\0a\tb\0", SP_E_GENERAL, &r);
    cr_assert_str_eq(r.host, "");
    ERROR_WHOLE(p_socks4,
                "\x04\x03\x00\x50\x7f\x00\x00\x01"
                "me\0",
                SP_E_COMMAND, &r);
    cr_assert_eq(r.cmd, 3);
    assert_ipv4(&r, "127.0.0.1", 80);
    cr_assert_str_eq(r.userid, "me");
    ERROR_WHOLE(p_socks4, "\x04\x00\x00\x50\x00\x00\x00\x01\0x.y\0", SP_E_COMMAND, &r);
    assert_domain(&r, "x.y", 80);
}

/* ------------------------------------------------------------ UDP */

T(udp_headers, "§7: RSV FRAG ATYP DST.ADDR DST.PORT, the payload left alone")
{
    struct sp_udp u;
    cr_assert_eq(sp_parse_udp(B("\0\0\0\x01\x7f\x00\x00\x01\x00\x35payload"), &u), 10);
    cr_assert_eq(u.atyp, SOCKS5_ATYP_IPV4);
    cr_assert_eq(u.port, 53);
    cr_assert_eq(u.addrlen, sizeof(struct sockaddr_in));
    cr_assert_eq(((struct sockaddr_in *)&u.addr)->sin_port, htons(53));
    cr_assert_eq(((struct sockaddr_in *)&u.addr)->sin_addr.s_addr, htonl(0x7f000001));

    cr_assert_eq(sp_parse_udp(B("\0\0\0\x04\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\x12\x34x"), &u), 22);
    cr_assert_eq(u.atyp, SOCKS5_ATYP_IPV6);
    cr_assert_eq(u.port, 0x1234);
    cr_assert_eq(u.addrlen, sizeof(struct sockaddr_in6));
    cr_assert(IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&u.addr)->sin6_addr));

    cr_assert_eq(sp_parse_udp(B("\0\0\0\x03\x09localhost\x00\x07"), &u), 16, "an empty payload");
    cr_assert_eq(u.atyp, SOCKS5_ATYP_DOMAIN);
    cr_assert_str_eq(u.host, "localhost");
    cr_assert_eq(u.port, 7);
    cr_assert_eq(u.addrlen, 0);
}

T(udp_prefixes, "a datagram cut short of its header is 0 (drop), at every length")
{
    struct sp_udp u;
    VALID(p_udp, "\0\0\0\x01\x7f\x00\x00\x01\x00\x35", &u);
    VALID(p_udp, "\0\0\0\x03\x01x\x00\x35", &u);
    cr_assert_str_eq(u.host, "x");
}

T(udp_errors, "FRAG != 0 is SP_E_FRAG; RSV != 0, a bad name: SP_E_GENERAL; bad ATYP: SP_E_ATYP")
{
    struct sp_udp u;
    ERROR_AT(p_udp, "\0\0\x01\x01\x7f\x00\x00\x01\x00\x35", 3, SP_E_FRAG, &u);
    ERROR_AT(p_udp, "\0\0\x80\x01\x7f\x00\x00\x01\x00\x35", 3, SP_E_FRAG, &u);
    ERROR_AT(p_udp, "\0\x01\0\x01\x7f\x00\x00\x01\x00\x35", 3, SP_E_GENERAL, &u);
    ERROR_AT(p_udp, "\x01\0\0\x01\x7f\x00\x00\x01\x00\x35", 3, SP_E_GENERAL, &u);
    ERROR_AT(p_udp, "\0\0\0\x02\x7f\x00\x00\x01\x00\x35", 4, SP_E_ATYP, &u);
    ERROR_WHOLE(p_udp, "\0\0\0\x03\x00\x00\x35", SP_E_GENERAL, &u);
    ERROR_WHOLE(p_udp, "\0\0\0\x03\x02\0x\x00\x35", SP_E_GENERAL, &u);
}

/* ------------------------------------------------------------ encoders */

static struct sockaddr_storage sa_of(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
    } else {
        cr_assert_eq(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
    }
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

/* out (n bytes, of an SP_REPLY_MAX buffer) is exactly the literal. */
#define BYTES_EQ(out, n, lit)                                                                      \
    do {                                                                                           \
        cr_assert_eq((n), sizeof(lit) - 1, "length %zu, want %zu", (size_t)(n), sizeof(lit) - 1);  \
        cr_assert_arr_eq((out), (lit), sizeof(lit) - 1);                                           \
    } while (0)

T(encode_method_auth, "§3 method selection and RFC 1929 status, two bytes each")
{
    uint8_t out[SP_REPLY_MAX];
    BYTES_EQ(out, sp_method_reply(out, SOCKS5_METHOD_NONE), "\x05\x00");
    BYTES_EQ(out, sp_method_reply(out, SOCKS5_METHOD_USERPASS), "\x05\x02");
    BYTES_EQ(out, sp_method_reply(out, SOCKS5_METHOD_REFUSED), "\x05\xff");
    BYTES_EQ(out, sp_auth_reply(out, true), "\x01\x00");
    BYTES_EQ(out, sp_auth_reply(out, false), "\x01\x01");
}

T(encode_reply5, "§6: VER REP RSV ATYP BND.ADDR BND.PORT for IPv4, IPv6, mapped IPv4, none")
{
    uint8_t out[SP_REPLY_MAX];
    struct sockaddr_storage v4 = sa_of("192.168.1.2", 1080), v6 = sa_of("2001:db8::7", 443),
                            mapped = sa_of("::ffff:10.0.0.1", 8080), any6 = sa_of("::", 0);
    BYTES_EQ(out, sp_reply5(out, SOCKS5_SUCCEEDED, SA(v4)),
             "\x05\x00\x00\x01\xc0\xa8\x01\x02\x04\x38");
    BYTES_EQ(out, sp_reply5(out, SOCKS5_SUCCEEDED, SA(v6)),
             "\x05\x00\x00\x04\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x07\x01\xbb");
    BYTES_EQ(out, sp_reply5(out, SOCKS5_SUCCEEDED, SA(mapped)),
             "\x05\x00\x00\x01\x0a\x00\x00\x01\x1f\x90");
    BYTES_EQ(out, sp_reply5(out, SOCKS5_SUCCEEDED, SA(any6)),
             "\x05\x00\x00\x04\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
    BYTES_EQ(out, sp_reply5(out, SOCKS5_CONNECTION_REFUSED, NULL), "\x05\x05\x00\x01\0\0\0\0\0\0");
    BYTES_EQ(out, sp_reply5(out, SOCKS5_ATYP_NOT_SUPPORTED, NULL), "\x05\x08\x00\x01\0\0\0\0\0\0");
    struct sockaddr_un un = {.sun_family = AF_UNIX, .sun_path = "/x"};
    BYTES_EQ(out, sp_reply5(out, SOCKS5_GENERAL_FAILURE, (const struct sockaddr *)&un),
             "\x05\x01\x00\x01\0\0\0\0\0\0");
}

T(encode_reply4, "SOCKS4: VN 0, CD, DSTPORT, DSTIP; SOCKS5 codes turn into 90 / 91")
{
    uint8_t out[SP_REPLY_MAX];
    struct sockaddr_storage v4 = sa_of("10.1.2.3", 80), v6 = sa_of("2001:db8::7", 443),
                            mapped = sa_of("::ffff:127.0.0.1", 1080);
    BYTES_EQ(out, sp_reply4(out, SOCKS4_GRANTED, SA(v4)), "\x00\x5a\x00\x50\x0a\x01\x02\x03");
    BYTES_EQ(out, sp_reply4(out, SOCKS4_REJECTED, NULL), "\x00\x5b\0\0\0\0\0\0");
    BYTES_EQ(out, sp_reply4(out, SOCKS4_GRANTED, SA(mapped)), "\x00\x5a\x04\x38\x7f\x00\x00\x01");
    BYTES_EQ(out, sp_reply4(out, SOCKS4_GRANTED, SA(v6)), "\x00\x5a\0\0\0\0\0\0");
    BYTES_EQ(out, sp_reply4(out, SOCKS5_SUCCEEDED, SA(v4)), "\x00\x5a\x00\x50\x0a\x01\x02\x03");
    for (int rep = SOCKS5_GENERAL_FAILURE; rep <= SOCKS5_ATYP_NOT_SUPPORTED; rep++)
        BYTES_EQ(out, sp_reply4(out, rep, NULL), "\x00\x5b\0\0\0\0\0\0");
    BYTES_EQ(out, sp_reply4(out, 92, NULL), "\x00\x5c\0\0\0\0\0\0");
    BYTES_EQ(out, sp_reply4(out, 93, NULL), "\x00\x5d\0\0\0\0\0\0");
    BYTES_EQ(out, sp_reply4(out, 94, NULL), "\x00\x5b\0\0\0\0\0\0");
    BYTES_EQ(out, sp_reply4(out, -1, NULL), "\x00\x5b\0\0\0\0\0\0");
}

T(encode_udp_header, "§7: a header naming the source, FRAG 0, mapped IPv4 as IPv4")
{
    uint8_t out[SP_REPLY_MAX];
    struct sockaddr_storage v4 = sa_of("127.0.0.1", 53), v6 = sa_of("::1", 5353),
                            mapped = sa_of("::ffff:1.2.3.4", 9);
    BYTES_EQ(out, sp_udp_header(out, SA(v4)), "\0\0\0\x01\x7f\0\0\x01\x00\x35");
    BYTES_EQ(out, sp_udp_header(out, SA(v6)),
             "\0\0\0\x04\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\x14\xe9");
    BYTES_EQ(out, sp_udp_header(out, SA(mapped)), "\0\0\0\x01\x01\x02\x03\x04\x00\x09");
    BYTES_EQ(out, sp_udp_header(out, NULL), "\0\0\0\x01\0\0\0\0\0\0");
}

T(round_trips, "an encoded reply reads back as a request (same layout); a header as a header")
{
    const char *ips[] = {"127.0.0.1", "2001:db8::7", "::ffff:10.9.8.7", "::", "0.0.0.0"};
    for (size_t i = 0; i < sizeof ips / sizeof *ips; i++) {
        struct sockaddr_storage ss = sa_of(ips[i], (uint16_t)(1000 + i));
        uint8_t out[SP_REPLY_MAX];
        size_t n = sp_reply5(out, SOCKS5_HOST_UNREACHABLE, SA(ss));
        struct sp_request r;
        /* REP 4 stands where CMD does: not a command, but read whole. */
        cr_assert_eq(sp_parse_request(out, n, &r), SP_E_COMMAND);
        out[1] = SOCKS_CMD_CONNECT;
        cr_assert_eq(sp_parse_request(out, n, &r), (int)n);
        cr_assert_eq(r.port, 1000 + i);
        struct sp_udp u;
        size_t h = sp_udp_header(out, SA(ss));
        cr_assert_eq(h, n);
        cr_assert_eq(sp_parse_udp(out, h, &u), (int)h);
        cr_assert_eq(u.addrlen, r.addrlen);
        cr_assert_arr_eq(&u.addr, &r.addr, r.addrlen);
        if (strncmp(ips[i], "::ffff:", 7) == 0) {
            cr_assert_eq(r.atyp, SOCKS5_ATYP_IPV4, "%s read back as IPv4", ips[i]);
            assert_ipv4(&r, ips[i] + 7, (uint16_t)(1000 + i));
        }
    }
}

T(error_replies, "sp_error_reply: 1, 7, 8, and -1 where nothing is sent")
{
    cr_assert_eq(sp_error_reply(SP_E_GENERAL), SOCKS5_GENERAL_FAILURE);
    cr_assert_eq(sp_error_reply(SP_E_COMMAND), SOCKS5_COMMAND_NOT_SUPPORTED);
    cr_assert_eq(sp_error_reply(SP_E_ATYP), SOCKS5_ATYP_NOT_SUPPORTED);
    cr_assert_eq(sp_error_reply(SP_E_CLOSE), -1);
    cr_assert_eq(sp_error_reply(SP_E_NOMETHOD), -1);
    cr_assert_eq(sp_error_reply(SP_E_FRAG), -1);
    cr_assert_eq(sp_error_reply(0), -1);
    cr_assert_eq(sp_error_reply(10), -1);
}

T(reply_names, "every reply code's name for the logs")
{
    static const char *const want[] = {
        "succeeded",           "general-failure",       "not-allowed",
        "network-unreachable", "host-unreachable",      "connection-refused",
        "ttl-expired",         "command-not-supported", "address-type-not-supported",
    };
    for (int i = 0; i < 9; i++)
        cr_assert_str_eq(sp_reply_name(i), want[i]);
    cr_assert_str_eq(sp_reply_name(SOCKS4_GRANTED), "granted");
    cr_assert_str_eq(sp_reply_name(SOCKS4_REJECTED), "rejected");
    cr_assert_str_eq(sp_reply_name(9), "unknown");
    cr_assert_str_eq(sp_reply_name(-1), "unknown");
    cr_assert_str_eq(sp_reply_name(255), "unknown");
}

/* ------------------------------------------------------------ bounds */

/* xorshift32: the same "random" bytes on every run. */
static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

T(never_stuck, "given SP_MAX_MESSAGE bytes, no parser asks for more, and none uses more than len")
{
    uint32_t seed = 0x2545f491;
    uint8_t buf[SP_MAX_MESSAGE];
    union {
        struct sp_greeting g;
        struct sp_auth a;
        struct sp_request r;
        struct sp_udp u;
    } o;
    for (int round = 0; round < 20000; round++) {
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (uint8_t)next_rand(&seed);
        /* Mostly NUL-free, to reach the SOCKS4 string limits; keep the
         * right version byte and a known ATYP more often than not. */
        if (round % 2)
            for (size_t i = 0; i < sizeof buf; i++)
                buf[i] = buf[i] ? buf[i] : 'x';
        static const uint8_t first[] = {5, 1, 4, 0};
        buf[0] = first[round % 4];
        buf[3] = (uint8_t)(round % 5);
        if (round % 3 == 0)
            buf[1] = buf[2] = 0;
        int rc[5] = {
            sp_parse_greeting(buf, sizeof buf, &o.g), sp_parse_auth(buf, sizeof buf, &o.a),
            sp_parse_request(buf, sizeof buf, &o.r),  sp_parse_socks4(buf, sizeof buf, &o.r),
            sp_parse_udp(buf, sizeof buf, &o.u),
        };
        for (int k = 0; k < 5; k++) {
            cr_assert_neq(rc[k], 0, "round %d parser %d asks for more", round, k);
            cr_assert_leq(rc[k], (int)sizeof buf);
            cr_assert_geq(rc[k], SP_E_FRAG);
        }
    }
}
