/* The resolver tests' rig: a fake DNS server in the test's own loop (a UDP
 * dispatcher answering A and AAAA for the names it was given, NXDOMAIN for
 * the others, or nothing at all when silent) that counts the datagrams it
 * gets, so that a test can prove that no query was sent; and descriptor
 * counting.  The DNS wire format (RFC 1035 4.1) is written here by hand:
 * a header, the question echoed, one answer per address. */
#ifndef RESOLVER_RIG_H
#define RESOLVER_RIG_H

#include "ac_testkit.h"
#include "asyncore_resolver.h"

#include <ctype.h>
#include <dirent.h>

/* Open descriptors of the process. */
static TK_UNUSED int rig_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    cr_assert_not_null(dir);
    int n = 0;
    while (readdir(dir))
        n++;
    closedir(dir);
    return n;
}

#define RIG_NAMES 8
#define RIG_ADDRS 4

struct rig_name {
    const char *name;
    const char *v4[RIG_ADDRS];
    const char *v6[RIG_ADDRS];
};

struct fake_dns {
    ac_dispatcher *d;
    uint16_t port;
    char servers[64]; /* "127.0.0.1:port" for ac_resolver_config */
    bool silent;      /* never answer */
    bool truncate;    /* answer UDP with TC set and nothing in it: ask again over TCP */
    int tcp_queries;  /* queries that came over TCP (fake_dns_tcp) */
    int datagrams;    /* queries received */
    int answered;
    struct rig_name names[RIG_NAMES];
    int nnames;
    /* Names "h<N>.many" answer A 10.N/256.N%256.1 and AAAA fd00::N. */
    bool many;
};

static TK_UNUSED void fake_dns_add(struct fake_dns *f, struct rig_name n)
{
    cr_assert_lt(f->nnames, RIG_NAMES);
    f->names[f->nnames++] = n;
}

/* The question's name, dotted and lower case; the offset past the
 * question's type and class, or 0 if malformed. */
static size_t dns_question(const unsigned char *p, size_t len, char *name, size_t cap,
                           uint16_t *qtype)
{
    size_t i = 12, o = 0;
    while (i < len && p[i]) {
        size_t l = p[i++];
        if (l > 63 || i + l > len || o + l + 2 > cap)
            return 0;
        if (o)
            name[o++] = '.';
        for (size_t k = 0; k < l; k++)
            name[o++] = (char)tolower(p[i + k]);
        i += l;
    }
    name[o] = '\0';
    if (i + 5 > len)
        return 0;
    *qtype = (uint16_t)(p[i + 1] << 8 | p[i + 2]);
    return i + 5;
}

/* The addresses of one type for name; false if the name is unknown. */
static bool dns_lookup(struct fake_dns *f, const char *name, uint16_t qtype,
                       unsigned char out[][16], size_t *n)
{
    *n = 0;
    unsigned num;
    char tail[16];
    if (f->many && sscanf(name, "h%u.%15s", &num, tail) == 2 && !strcmp(tail, "many")) {
        if (qtype == 1) {
            unsigned char a[4] = {10, (unsigned char)(num >> 8), (unsigned char)num, 1};
            memcpy(out[(*n)++], a, 4);
        } else if (qtype == 28) {
            struct in6_addr a6;
            char text[64];
            snprintf(text, sizeof(text), "fd00::%x", num);
            inet_pton(AF_INET6, text, &a6);
            memcpy(out[(*n)++], &a6, 16);
        }
        return true;
    }
    for (int i = 0; i < f->nnames; i++) {
        if (strcmp(f->names[i].name, name))
            continue;
        const char *const *list = qtype == 1 ? f->names[i].v4 : f->names[i].v6;
        for (int k = 0; (qtype == 1 || qtype == 28) && k < RIG_ADDRS && list[k]; k++)
            cr_assert_eq(inet_pton(qtype == 1 ? AF_INET : AF_INET6, list[k], out[(*n)++]), 1);
        return true;
    }
    return false;
}

static void dns_put16(unsigned char *p, size_t *o, unsigned v)
{
    p[(*o)++] = (unsigned char)(v >> 8);
    p[(*o)++] = (unsigned char)v;
}

/* The answer to query q (qlen bytes) in r; its length, 0 to ignore q. */
static size_t dns_answer(struct fake_dns *f, const unsigned char *q, size_t qlen, unsigned char *r)
{
    char name[256];
    uint16_t qtype;
    size_t end = qlen >= 12 ? dns_question(q, qlen, name, sizeof(name), &qtype) : 0;
    if (!end)
        return 0;
    unsigned char addrs[RIG_ADDRS][16];
    size_t n;
    bool known = dns_lookup(f, name, qtype, addrs, &n);
    memcpy(r, q, end);           /* id, then the question as asked */
    r[2] = 0x81 | (q[2] & 0x01); /* QR, opcode 0, RD copied */
    if (f->truncate) {           /* TC, no answer: the client asks over TCP */
        r[2] |= 0x02;
        n = 0;
    }
    r[3] = known ? 0x80 : 0x83;        /* RA; rcode 0 or 3 (NXDOMAIN) */
    r[4] = 0, r[5] = 1;                /* QDCOUNT */
    r[6] = 0, r[7] = (unsigned char)n; /* ANCOUNT */
    memset(r + 8, 0, 4);               /* NSCOUNT, ARCOUNT: no OPT echoed */
    size_t o = end;
    size_t alen = qtype == 1 ? 4 : 16;
    for (size_t i = 0; i < n; i++) {
        dns_put16(r, &o, 0xc00c); /* the question's name */
        dns_put16(r, &o, qtype);
        dns_put16(r, &o, 1); /* IN */
        dns_put16(r, &o, 0); /* TTL 60 */
        dns_put16(r, &o, 60);
        dns_put16(r, &o, (unsigned)alen);
        memcpy(r + o, addrs[i], alen);
        o += alen;
    }
    return o;
}

static int fake_dns_read(ac_dispatcher *d)
{
    struct fake_dns *f = ac_user(d);
    for (int batch = 0;;) {
        unsigned char q[512], r[1024];
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof(from);
        ssize_t n = ac_recvfrom(d, q, sizeof(q), (struct sockaddr *)&from, &fromlen);
        if (n < 0)
            return 0;
        f->datagrams++;
        if (f->silent)
            continue;
        size_t len = dns_answer(f, q, (size_t)n, r);
        if (len && ac_sendto(d, r, len, (struct sockaddr *)&from, fromlen) == (ssize_t)len)
            f->answered++;
        if (++batch == 32)
            return 0; /* the client's socket gets its turn before it overflows */
    }
}

static const ac_handlers fake_dns_handlers = {.name = "fake_dns", .handle_read = fake_dns_read};

/* DNS over TCP (RFC 1035 4.2.2): each message after its 2-byte length.
 * One connection's buffer is its dispatcher's user data. */
struct tcp_conn {
    struct fake_dns *f;
    unsigned char buf[600];
    size_t len;
};

static int tcp_conn_read(ac_dispatcher *d)
{
    struct tcp_conn *t = ac_user(d);
    ssize_t n = ac_recv(d, t->buf + t->len, sizeof(t->buf) - t->len);
    if (n <= 0)
        return (int)n; /* EOF: handle_close ran */
    t->len += (size_t)n;
    while (t->len >= 2 && t->len >= 2u + (size_t)(t->buf[0] << 8 | t->buf[1])) {
        size_t qlen = (size_t)(t->buf[0] << 8 | t->buf[1]);
        unsigned char r[1024];
        bool saved = t->f->truncate;
        t->f->truncate = false;
        size_t alen = dns_answer(t->f, t->buf + 2, qlen, r + 2);
        t->f->truncate = saved;
        t->f->tcp_queries++;
        r[0] = (unsigned char)(alen >> 8);
        r[1] = (unsigned char)alen;
        cr_assert_eq(ac_send(d, r, alen + 2), (ssize_t)alen + 2);
        memmove(t->buf, t->buf + 2 + qlen, t->len - 2 - qlen);
        t->len -= 2 + qlen;
    }
    return 0;
}

static void tcp_conn_finalize(ac_dispatcher *d) { free(ac_user(d)); }

static const ac_handlers tcp_conn_handlers = {
    .name = "fake_dns_tcp", .handle_read = tcp_conn_read, .finalize = tcp_conn_finalize};

static int tcp_accepted(ac_dispatcher *d, int fd, const struct sockaddr *a, socklen_t len)
{
    (void)a, (void)len;
    struct tcp_conn *t = calloc(1, sizeof(*t));
    cr_assert_not_null(t);
    t->f = ac_user(d);
    ac_dispatcher *c = ac_dispatcher_new(ac_map_of(d), &tcp_conn_handlers, t);
    cr_assert_eq(ac_attach(c, fd), 0);
    ac_set_writing(c, false);
    return 0;
}

static const ac_handlers tcp_listen_handlers = {.name = "fake_dns_listen",
                                                .handle_accepted = tcp_accepted};

/* The UDP server on 127.0.0.1:port (0: the kernel's); false if that port
 * is taken. */
static bool fake_dns_udp(struct fake_dns *f, ac_map *m, uint16_t port)
{
    f->d = ac_dispatcher_new(m, &fake_dns_handlers, f);
    cr_assert_not_null(f->d);
    cr_assert_eq(ac_create_socket(f->d, AF_INET, SOCK_DGRAM), 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(AF_INET, &ss);
    ((struct sockaddr_in *)&ss)->sin_port = htons(port);
    if (ac_bind(f->d, (struct sockaddr *)&ss, len) < 0) {
        ac_close(f->d);
        return false;
    }
    /* Room for every query of a burst of hundreds (root may pass rmem_max). */
    int size = 4 << 20;
    if (setsockopt(ac_fd(f->d), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
        (void)setsockopt(ac_fd(f->d), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    len = sizeof(ss);
    cr_assert_eq(getsockname(ac_fd(f->d), (struct sockaddr *)&ss, &len), 0);
    f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    snprintf(f->servers, sizeof(f->servers), "127.0.0.1:%u", f->port);
    ac_set_writing(f->d, false);
    return true;
}

/* Start the server on 127.0.0.1, port from the kernel. */
static TK_UNUSED void fake_dns_start(struct fake_dns *f, ac_map *m)
{
    cr_assert(fake_dns_udp(f, m, 0));
}

/* A TCP listener on 127.0.0.1:port (0: the kernel's), or NULL. */
static ac_dispatcher *tcp_listener(struct fake_dns *f, ac_map *m, uint16_t port, uint16_t *out)
{
    ac_dispatcher *l = ac_dispatcher_new(m, &tcp_listen_handlers, f);
    cr_assert_eq(ac_create_socket(l, AF_INET, SOCK_STREAM), 0);
    struct sockaddr_storage ss;
    socklen_t len = tk_loopback(AF_INET, &ss);
    ((struct sockaddr_in *)&ss)->sin_port = htons(port);
    if (ac_bind(l, (struct sockaddr *)&ss, len) < 0) {
        ac_close(l);
        return NULL;
    }
    cr_assert_eq(ac_listen(l, 16), 0);
    len = sizeof(ss);
    cr_assert_eq(getsockname(ac_fd(l), (struct sockaddr *)&ss, &len), 0);
    *out = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return l;
}

/* Listen for DNS over TCP on the UDP server's port too.  When another
 * TCP socket holds that number, both move to a port free for both: make
 * the resolver after this. */
static TK_UNUSED void fake_dns_tcp(struct fake_dns *f, ac_map *m)
{
    uint16_t port;
    if (tcp_listener(f, m, f->port, &port))
        return;
    ac_close(f->d);
    for (int i = 0; i < 100; i++) {
        ac_dispatcher *l = tcp_listener(f, m, 0, &port);
        cr_assert_not_null(l);
        if (fake_dns_udp(f, m, port))
            return;
        ac_close(l);
    }
    cr_assert_fail("no port free for both UDP and TCP");
}

/* A resolver of m that asks f only, with a short timeout. */
static TK_UNUSED ac_resolver *rig_resolver(ac_map *m, struct fake_dns *f, double timeout, int tries)
{
    ac_resolver_config cfg = {.timeout = timeout, .tries = tries, .servers = f->servers};
    ac_resolver *r = NULL;
    int rc = ac_resolver_new(&r, m, &cfg);
    cr_assert_eq(rc, 0, "ac_resolver_new: %d", rc);
    return r;
}

/* Run iterations until *count reaches want, or seconds pass. */
static TK_UNUSED bool rig_wait_count(ac_map *m, int *count, int want, double seconds)
{
    double end = tk_clock() + seconds;
    while (*count < want) {
        if (tk_clock() > end)
            return false;
        int rc = ac_poll(m, 0.02);
        cr_assert(rc == 0 || rc == AC_EXIT_NOW, "ac_poll returned %d", rc);
    }
    return true;
}

/* Text of an address, "a.b.c.d:port" or "[v6]:port". */
static TK_UNUSED const char *rig_addr(const struct sockaddr *sa, char *buf, size_t cap)
{
    char host[48];
    if (!sa) {
        snprintf(buf, cap, "none");
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(buf, cap, "%s:%u", host, ntohs(in->sin_port));
    } else {
        const struct sockaddr_in6 *in6 = (const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(buf, cap, "[%s]:%u", host, ntohs(in6->sin6_port));
    }
    return buf;
}

#endif
