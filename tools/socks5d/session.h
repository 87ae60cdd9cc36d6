/* socks5d's sessions: one per client connection, from the first byte to
 * the end of its tunnel.
 *
 * A session reads the handshake (SOCKS5 greeting, RFC 1929 username and
 * password, request; or a SOCKS4/4a request), applies the rules, carries
 * out the command (CONNECT through the resolver's connect by name, BIND
 * through a listening socket of its own, UDP ASSOCIATE through udp.c),
 * sends the reply, and hands the two sockets to a relay.  When the request
 * ends, one "request" line is logged.
 *
 * main.c owns the options (s5_opt), the listeners and the workers; a
 * worker gives each accepted client to s5_session_start.
 */
#ifndef SOCKS5D_SESSION_H
#define SOCKS5D_SESSION_H

#include "cidr.h"
#include "proto.h"
#include "users.h"

#include <asyncore.h>
#include <netinet/in.h>
#include <asyncore_resolver.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* What every session reads: set by main.c before the workers start, read
 * only afterwards. */
struct s5_options {
    struct users users;                /* -u/-P and --users FILE */
    bool auth;                         /* users to check: username/password is required */
    bool auth_once;                    /* -1: an IP that authenticated once may use "none" */
    struct cidr_list allow;            /* --allow: clients let in (empty: everyone) */
    struct cidr_list deny_dest;        /* --deny-dest: destinations refused */
    struct sockaddr_storage bind_addr; /* -b: source address of outgoing connections */
    socklen_t bind_len;                /* 0: none */
    double handshake_timeout, connect_timeout, idle_timeout;
    size_t buffer; /* relay bytes per direction (0: the relay's default) */
};
extern struct s5_options s5_opt;

/* Counters over every worker (SIGUSR1, exit). */
#define S5_NREPLIES 10 /* SOCKS5 replies 0..8 (SOCKS4's 90 counts as 0), then SOCKS4's 91 */
struct s5_stats {
    atomic_ulong connections; /* clients accepted */
    atomic_long active;       /* sessions alive (--max-conns counts these) */
    atomic_ulong refused;     /* turned away at --max-conns */
    atomic_ulong auth_failed; /* wrong username or password */
    atomic_ulong dropped;     /* left before a request: timeout, bad handshake, EOF */
    atomic_ulong replies[S5_NREPLIES];
    atomic_ullong up, down; /* tunnel bytes, client -> destination and back */
};
extern struct s5_stats s5_stats;

struct s5_session;

/* The sessions of one map (one per worker thread). */
struct s5_worker {
    ac_map *map;
    ac_resolver *resolver;
    struct s5_session *sessions; /* every live session, for s5_sessions_abort */
};

/* Serve the client fd (accepted from a listener of w's map, non-blocking);
 * fd is the session's from now on, whatever happens.  peer: its address. */
void s5_session_start(struct s5_worker *w, int fd, const struct sockaddr *peer, socklen_t len);

/* End every session of w now (each logs its line): before ac_close_all on
 * the map, so that no session outlives the sockets it holds. */
void s5_sessions_abort(struct s5_worker *w);

/* Forget the IPs that -1 trusts (at exit). */
void s5_trusted_free(void);

/* ------------------------------------------- between session.c and bind.c */

enum s5_state {
    ST_FIRST,      /* nothing read: the first byte tells SOCKS4 from SOCKS5 */
    ST_GREETING,   /* SOCKS5 methods */
    ST_AUTH,       /* RFC 1929 username and password */
    ST_REQUEST,    /* the SOCKS5 or SOCKS4 request */
    ST_CONNECTING, /* CONNECT: resolving and connecting (reading paused) */
    ST_BINDING,    /* BIND: looking DST.ADDR up, or waiting for the peer (reading paused) */
    ST_UDP,        /* UDP ASSOCIATE: the connection is read, and what comes dropped */
    ST_CLOSING,    /* a last reply going out, then reading until EOF */
    ST_RELAY,      /* the relay has the sockets */
};

enum s5_cmd {
    S5_CMD_NONE, /* no request yet */
    S5_CMD_CONNECT,
    S5_CMD_BIND,
    S5_CMD_UDP,
    S5_CMD_S4_CONNECT,
    S5_CMD_S4_BIND,
    S5_CMD_UNKNOWN, /* a request with a command we do not know */
};

#define S5_HS_IN 1024  /* handshake bytes read ahead: more than any message (SP_MAX_MESSAGE) */
#define S5_HS_OUT 600  /* replies queued: method, auth, and BIND's two */
#define S5_BIND_FROM 4 /* BIND: addresses of DST.ADDR's name the peer may come from */

/* What only the handshake needs: freed when the relay starts. */
struct s5_handshake {
    ac_timer *timer;         /* handshake timeout; BIND's wait; the polite close */
    ac_connect_req *connect; /* CONNECT in flight */
    ac_resolve_req *lookup;  /* BIND: DST.ADDR's name being looked up */
    ac_dispatcher *listener; /* BIND: waiting for the peer */
    struct sockaddr_storage from[S5_BIND_FROM]; /* BIND: the peer's IP must be one (nfrom 0: any) */
    size_t nfrom;
    struct sp_request req;
    size_t inlen, outlen;
    uint8_t in[S5_HS_IN];   /* read, not parsed yet (after the request: the tunnel's) */
    uint8_t out[S5_HS_OUT]; /* replies the socket has not taken yet */
};

struct s5_session {
    struct s5_session *prev, *next; /* w->sessions */
    struct s5_worker *w;
    ac_dispatcher *d;        /* the client's socket, until the relay takes it */
    struct s5_handshake *hs; /* NULL once the relay runs */
    struct ac_relay *relay;
    struct s5_udp *udp;
    char *user; /* authenticated as, or NULL */
    char *dest; /* "host:port" of the request, NULL before it */
    double start;
    uint64_t replied; /* reply bytes given to the relay: not tunnel bytes */
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } client; /* never IPv4-mapped */
    socklen_t clen;
    int reply;     /* the reply sent (SOCKS5 code, or 90/91); -1 none yet */
    uint8_t state; /* enum s5_state */
    uint8_t cmd;   /* enum s5_cmd */
    bool version4; /* a SOCKS4 or 4a client */
    bool denied;   /* not in --allow: every request gets "not allowed" */
    bool linked;   /* in w->sessions */
    bool ended;    /* session_end ran */
    bool logged;   /* its request line is out */
    bool shut;     /* ST_CLOSING: our sending half is shut */
};

socklen_t s5_unmap(const struct sockaddr *sa, socklen_t len, struct sockaddr_storage *out);
int s5_reply_for(int err);
size_t s5_encode_reply(const struct s5_session *s, uint8_t *out, int rep,
                       const struct sockaddr *addr);
const char *s5_dest_host(const struct sp_request *r, char *buf, size_t size);
void s5_send(struct s5_session *s, const void *data, size_t len);
void s5_close_after(struct s5_session *s, const void *data, size_t len);
void s5_fail(struct s5_session *s, int rep);
void s5_handoff(struct s5_session *s, int fd_b, const uint8_t *reply, size_t len);
void s5_log_request(struct s5_session *s, uint64_t up, uint64_t down);

/* bind.c: BIND (RFC 1928 §4; SOCKS4's BIND too).  start: from the parsed
 * request to the first reply; stop: cancel a lookup, close the listener
 * (no reply; the session goes on to whatever it does next). */
void s5_bind_start(struct s5_session *s);
void s5_bind_stop(struct s5_handshake *h);

#endif /* SOCKS5D_SESSION_H */
