/* SOCKS wire formats: RFC 1928 (SOCKS5), RFC 1929 (username/password),
 * SOCKS4 and SOCKS4a.  Parsing and encoding only, no I/O, so that the
 * parser can be fuzzed and tested on its own.
 *
 * Every parser takes the bytes received so far (buf, len) and returns
 *   > 0   a whole message: that many bytes of buf were used, *out is set;
 *   0     not enough bytes yet (call again with more);
 *   < 0   a malformed message: one of the SP_E_* codes below, which also
 *         says how to answer (the reply code, or a plain close).
 * After 0 or an error, *out holds nothing of use (SP_E_COMMAND aside, see
 * struct sp_request).  A parser never writes into buf, and reads no byte
 * past the message it returns, so bytes a client pipelined after it (the
 * first bytes of the tunnel) stay in buf.  A message split anywhere gives
 * 0 until it is whole, then the same result as in one piece; given
 * SP_MAX_MESSAGE bytes or more, a parser never returns 0.
 *
 * Errors come as early as they can be told when the rest of the message
 * cannot be delimited (a wrong version: SP_E_CLOSE at the first byte; an
 * unknown address type: SP_E_ATYP at the ATYP byte; a SOCKS4 string past
 * 255 bytes once 256 bytes hold no NUL), and only once the whole message
 * is there otherwise (SP_E_NOMETHOD, SP_E_GENERAL, SP_E_COMMAND), so that
 * the client is not reset by unread bytes when the reply is followed by a
 * close.
 *
 * Strict where RFC 1928 leaves room: RSV must be 0 (§4 gives it as X'00';
 * a client that sets it speaks something else), and a name (DOMAIN, the
 * SOCKS4a host) must be 1-255 bytes without a NUL or another control byte
 * (0x00-0x1f, 0x7f), so that a name can be logged and resolved as it is.
 * Lenient in one place: an RFC 1929 password may be empty (PLEN 0), which
 * no user of a users file has, so it is refused as a wrong password.
 */
#ifndef SOCKS5D_PROTO_H
#define SOCKS5D_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SOCKS5_VERSION 5
#define SOCKS4_VERSION 4

/* Methods (RFC 1928 §3). */
#define SOCKS5_METHOD_NONE 0x00
#define SOCKS5_METHOD_USERPASS 0x02
#define SOCKS5_METHOD_REFUSED 0xff

/* Commands (§4; SOCKS4 uses 1 and 2 too). */
#define SOCKS_CMD_CONNECT 1
#define SOCKS_CMD_BIND 2
#define SOCKS_CMD_UDP_ASSOCIATE 3

/* Address types (§5). */
#define SOCKS5_ATYP_IPV4 1
#define SOCKS5_ATYP_DOMAIN 3
#define SOCKS5_ATYP_IPV6 4

/* Replies (§6) and SOCKS4's two. */
enum socks_reply {
    SOCKS5_SUCCEEDED = 0,
    SOCKS5_GENERAL_FAILURE = 1,
    SOCKS5_NOT_ALLOWED = 2,
    SOCKS5_NETWORK_UNREACHABLE = 3,
    SOCKS5_HOST_UNREACHABLE = 4,
    SOCKS5_CONNECTION_REFUSED = 5,
    SOCKS5_TTL_EXPIRED = 6,
    SOCKS5_COMMAND_NOT_SUPPORTED = 7,
    SOCKS5_ATYP_NOT_SUPPORTED = 8,
    SOCKS4_GRANTED = 90,
    SOCKS4_REJECTED = 91,
};

/* Parse errors.  SP_E_CLOSE: answer nothing, close (wrong version, a
 * message that cannot be answered in its own protocol).  The others name
 * the reply to send before closing (sp_error_reply gives it): for SOCKS4
 * every one of them is 91; for RFC 1929's message SP_E_GENERAL is a
 * failure status (sp_auth_reply(out, false)). */
enum sp_error {
    SP_E_CLOSE = -1,    /* close without a reply */
    SP_E_NOMETHOD = -2, /* greeting without an acceptable method: answer 0xff */
    SP_E_GENERAL = -3,  /* reply 1 (e.g. a reserved byte that is not 0, an empty name) */
    SP_E_COMMAND = -4,  /* reply 7 (the whole request was read) */
    SP_E_ATYP = -5,     /* reply 8 (the address cannot be read: close after) */
    SP_E_FRAG = -6,     /* UDP: a fragment (FRAG != 0): drop the datagram */
};

/* Longest message we accept from a client: a SOCKS5 request with a
 * 255-byte name is 262 bytes; a username/password message 513; a SOCKS4a
 * request with a 255-byte user id and a 255-byte host 520. */
#define SP_MAX_MESSAGE 520
/* SOCKS4: the user id and the 4a host name are NUL-terminated strings;
 * longer than this and the request is rejected (91). */
#define SP_MAX_SOCKS4_STRING 255

/* A SOCKS5 greeting: which of the methods we know the client offers
 * (at least one: a greeting offering neither is SP_E_NOMETHOD; whether the
 * one offered is acceptable, e.g. "none" when users are required, is the
 * caller's choice). */
struct sp_greeting {
    bool none;     /* 0x00 offered */
    bool userpass; /* 0x02 offered */
};

/* An RFC 1929 username/password message: NUL-terminated copies (a user
 * of 1-255 bytes, a password of 0-255, neither holding a NUL: one that
 * does is SP_E_GENERAL, never a shorter string). */
struct sp_auth {
    char user[256];
    char pass[256];
};

/* A SOCKS4, SOCKS4a or SOCKS5 request.  With SP_E_COMMAND it is filled
 * as on success (the request can still be logged). */
struct sp_request {
    int version; /* 4 or 5 */
    int cmd;     /* SOCKS_CMD_* (SOCKS4: CONNECT or BIND; others: SP_E_COMMAND) */
    int atyp;    /* SOCKS5_ATYP_*; SOCKS4 gives IPV4, SOCKS4a DOMAIN */
    uint16_t port;
    struct sockaddr_storage addr; /* IPV4 / IPV6: the address with the port */
    socklen_t addrlen;            /* 0 (and AF_UNSPEC) for DOMAIN */
    char host[256];               /* DOMAIN: the name, NUL-terminated ("" otherwise) */
    char userid[256];             /* SOCKS4's user id (empty for SOCKS5) */
};

/* A SOCKS5 UDP datagram's header (§7). */
struct sp_udp {
    int atyp;
    uint16_t port;
    struct sockaddr_storage addr; /* IPV4 / IPV6 */
    socklen_t addrlen;
    char host[256]; /* DOMAIN */
};

/* The first byte of a connection tells the protocol: 4, 5, 0 (no byte
 * yet), or SP_E_CLOSE (neither). */
int sp_version(const uint8_t *buf, size_t len);

int sp_parse_greeting(const uint8_t *buf, size_t len, struct sp_greeting *out);
int sp_parse_auth(const uint8_t *buf, size_t len, struct sp_auth *out);
int sp_parse_request(const uint8_t *buf, size_t len, struct sp_request *out);
int sp_parse_socks4(const uint8_t *buf, size_t len, struct sp_request *out);
/* A whole datagram: returns the header's length (the payload follows).
 * <= 0: drop the datagram (0: shorter than its header; SP_E_FRAG: FRAG is
 * not 0; SP_E_GENERAL: RSV is not 0 or a bad name; SP_E_ATYP). */
int sp_parse_udp(const uint8_t *buf, size_t len, struct sp_udp *out);

/* Encoders: each writes into out (at least SP_REPLY_MAX bytes) and returns
 * the length.  addr may be NULL (0.0.0.0 port 0, as is any family but
 * AF_INET and AF_INET6); an IPv4-mapped IPv6 address is written as IPv4.
 * sp_reply4 writes VN 0, CD, DSTPORT and DSTIP (8 bytes): cd is 90-93, or
 * a SOCKS5 reply (0 -> 90, any other -> 91); an IPv6 address that is not
 * mapped has no SOCKS4 form and is written as 0.0.0.0 port 0. */
#define SP_REPLY_MAX 262
size_t sp_method_reply(uint8_t *out, int method);
size_t sp_auth_reply(uint8_t *out, bool ok);
size_t sp_reply5(uint8_t *out, int rep, const struct sockaddr *addr);
size_t sp_reply4(uint8_t *out, int cd, const struct sockaddr *addr);
/* The header of a datagram sent back to the client (FRAG 0). */
size_t sp_udp_header(uint8_t *out, const struct sockaddr *from);

/* The SOCKS5 reply for a parser's error: SP_E_GENERAL 1, SP_E_COMMAND 7,
 * SP_E_ATYP 8; -1 for the others (nothing to send; SP_E_NOMETHOD is
 * answered by sp_method_reply(out, SOCKS5_METHOD_REFUSED)).  For SOCKS4,
 * sp_reply4 turns any of these into 91. */
int sp_error_reply(int err);

/* "succeeded", "general-failure", "not-allowed", ... "granted", "rejected";
 * "unknown" for any other value.  Static strings. */
const char *sp_reply_name(int rep);

#endif /* SOCKS5D_PROTO_H */
