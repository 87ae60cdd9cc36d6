/* socks5_server — the asyncore SOCKS5 server demo, in C.
 *
 * Three classes, in outline:
 *
 *     class Socks5Listen(asyncore.dispatcher):   # localhost:8081, listen(2048)
 *         def handle_accept(self):
 *             Local(self.accept()[0])
 *     class Local(asyncore.dispatcher_with_send):
 *         def handle_read(self):
 *             # greeting: answer 05 00 ("no authentication"); then the
 *             # request: IPv4 or a domain name, then the port; CONNECT
 *             # makes a Remote, any other command gets reply 7 and a close;
 *             # afterwards: self.remote.send(self.recv(4096))
 *     class Remote(asyncore.dispatcher_with_send):
 *         def __init__(self, local, host, port):
 *             ...; self.connect((host, port))   # a name: a blocking lookup
 *         def handle_connect(self):
 *             # reply 0 with its own address: self.getsockname()
 *         def handle_read(self):
 *             self.local.send(self.recv(4096))
 *         def handle_expt(self):
 *             # reply 5 (connection refused) and close
 *
 * In C each class is a handler table.  A Local's user pointer is its
 * handshake state (with its Remote); a Remote's is its Local.  Like the
 * demo, this serves CONNECT only, without authentication, and resolves a
 * domain name with a blocking getaddrinfo() (first address only): while it
 * waits, every other client waits too.  socks5d (tools/socks5d) is the
 * server that does not.
 *
 * What differs from the demo, each a fix it needs:
 *   - A greeting or a request may arrive in pieces (or together, in one
 *     read): Local collects bytes until the whole message is there.
 *   - Bytes the client sends right after its request (before the reply) are
 *     kept and sent on once the connection is made, not lost.
 *   - A failed connect reaches Remote's handle_error in this library, not
 *     handle_expt: ECONNREFUSED is not a disconnect, so the guard routes it
 *     to handle_error (D8, S8); handle_close replies too, in case.
 *   - A greeting without method 0 gets 05 FF ("no acceptable methods"), an
 *     address type other than IPv4 or a name reply 8, a name that does not
 *     resolve reply 4 (host unreachable); each then closes.
 *   - A bound address that is IPv6 (a name may resolve to ::1) is replied
 *     as IPv6 (address type 4).
 *   - Backpressure and closing as examples/port_forwarder.c does them: an
 *     end whose peer's buffer is full stops reading until it drains, and an
 *     end closing lets its peer send what it holds, then closes it.
 *
 * usage: socks5_server [-l ADDR] [-p PORT]     (default 127.0.0.1:8081)
 */
#include "example.h"

#include <getopt.h>
#include <unistd.h>

#define DEFAULT_PORT "8081"
#define BACKLOG 2048 /* the demo's listen(2048) */
#define HIGH_WATER (1024 * 1024)
#define LOW_WATER (256 * 1024)

enum state { GREETING, REQUEST, CONNECTING, RELAY, DONE };

/* A Local's state.  buf holds a greeting (257 bytes at most) or a request
 * (262) as it arrives, and what the client sent after it. */
struct local {
    ac_dispatcher *remote; /* from the request on; NULL once it has closed */
    enum state state;      /* what the bytes in buf are */
    size_t len;            /* bytes in buf */
    unsigned char buf[1024];
};

static const ac_handlers remote_end;

/* What `from` received goes to `to`'s buffer (or nowhere: `to` is gone). */
static int pass_on(ac_dispatcher *from, ac_dispatcher *to)
{
    char data[65536];
    ssize_t n = ac_recv(from, data, sizeof data);
    if (n <= 0) /* -EAGAIN: nothing yet; 0: EOF, handle_close has run */
        return n == -EAGAIN ? 0 : (int)n;
    return to ? ac_buffered_send(to, data, (size_t)n) : 0;
}

/* `d` closes now; its peer sends what it holds first (port_forwarder). */
static void close_peer_when_done(ac_dispatcher *peer)
{
    ac_set_reading(peer, false);
    ac_close_when_done(peer);
}

/* ------------------------------------------------------------- Local */

/* +----+-----+-------+------+----------+----------+
 * |VER | REP |  RSV  | ATYP | BND.ADDR | BND.PORT |   RFC 1928, section 6
 * +----+-----+-------+------+----------+----------+
 * bound NULL: 0.0.0.0 port 0. */
static int reply(ac_dispatcher *d, int rep, const struct sockaddr_storage *bound)
{
    unsigned char b[22] = {5, (unsigned char)rep, 0, 1};
    size_t n = 10;
    if (bound && bound->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)bound;
        b[3] = 4;
        memcpy(b + 4, &in6->sin6_addr, 16);
        memcpy(b + 20, &in6->sin6_port, 2);
        n = 22;
    } else if (bound) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)bound;
        memcpy(b + 4, &in->sin_addr, 4);
        memcpy(b + 8, &in->sin_port, 2);
    }
    return ac_buffered_send(d, b, n);
}

/* Say no (a reply code, or -1 for none) and close once it has gone. */
static size_t refuse(ac_dispatcher *d, struct local *l, int rep)
{
    if (rep >= 0)
        reply(d, rep, NULL);
    l->state = DONE;
    close_peer_when_done(d);
    return 0;
}

/* +----+----------+----------+
 * |VER | NMETHODS | METHODS  |   RFC 1928, section 3
 * +----+----------+----------+
 * The bytes the greeting took, or 0 while it is incomplete (or refused). */
static size_t greeting(ac_dispatcher *d, struct local *l)
{
    if (l->buf[0] != 5)
        return refuse(d, l, -1);
    if (l->len < 2 || l->len < 2u + l->buf[1])
        return 0;
    bool no_auth = memchr(l->buf + 2, 0, l->buf[1]) != NULL;
    unsigned char answer[2] = {5, no_auth ? 0x00 : 0xFF};
    ac_buffered_send(d, answer, sizeof answer);
    if (!no_auth)
        return refuse(d, l, -1);
    l->state = REQUEST;
    return 2u + l->buf[1];
}

/* Make the Remote and start its connect; reply 5 if that fails at once. */
static void connect_remote(ac_dispatcher *d, struct local *l, struct sockaddr_storage *ss,
                           socklen_t len)
{
    ac_dispatcher *r = ac_buffered_new(ac_map_of(d), &remote_end, d);
    int rc = r ? ac_create_socket(r, ss->ss_family, SOCK_STREAM) : -ENOMEM;
    if (rc < 0) {
        if (r)
            ac_close(r);
        refuse(d, l, 1);
        return;
    }
    ac_buffered_set_watermarks(r, LOW_WATER, HIGH_WATER);
    l->remote = r;
    l->state = CONNECTING;
    ac_set_reading(d, false); /* what follows the request waits in the kernel */
    if (ac_connect(r, (struct sockaddr *)ss, len) < 0) {
        ac_close(r);
        l->remote = NULL;
        refuse(d, l, 5);
    }
}

/* +----+-----+-------+------+----------+----------+
 * |VER | CMD |  RSV  | ATYP | DST.ADDR | DST.PORT |   RFC 1928, section 4
 * +----+-----+-------+------+----------+----------+
 * The bytes the request took, or 0 while it is incomplete (or refused). */
static size_t request(ac_dispatcher *d, struct local *l)
{
    const unsigned char *b = l->buf;
    if (l->len < 5) /* enough to know the length: a name's is b[4] */
        return 0;
    if (b[0] != 5)
        return refuse(d, l, -1);
    size_t need = b[3] == 1 ? 4 + 4 + 2 : b[3] == 3 ? 5u + b[4] + 2 : 0;
    if (need == 0)
        return refuse(d, l, 8);
    if (l->len < need)
        return 0;
    if (b[1] != 1) /* only CONNECT */
        return refuse(d, l, 7);
    int port = b[need - 2] << 8 | b[need - 1];
    struct sockaddr_storage ss = {0};
    socklen_t len = sizeof(struct sockaddr_in);
    if (b[3] == 1) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, b + 4, 4);
        in->sin_port = htons((uint16_t)port);
    } else {
        char host[256];
        memcpy(host, b + 5, b[4]);
        host[b[4]] = '\0';
        if (ex_resolve(host, port, false, &ss, &len) != 0) /* blocks, as the demo's */
            return refuse(d, l, 4);
    }
    connect_remote(d, l, &ss, len);
    return need;
}

/* Before the relay: collect bytes, take each whole message off the front. */
static int local_read(ac_dispatcher *d)
{
    struct local *l = ac_user(d);
    if (l->state == RELAY)
        return pass_on(d, l->remote);
    if (l->state >= CONNECTING) /* reading is paused: an event already reported */
        return 0;
    ssize_t n = ac_recv(d, l->buf + l->len, sizeof l->buf - l->len);
    if (n <= 0)
        return n == -EAGAIN ? 0 : (int)n;
    l->len += (size_t)n;
    size_t used;
    while (l->state < CONNECTING &&
           (used = l->state == GREETING ? greeting(d, l) : request(d, l)) > 0) {
        l->len -= used;
        memmove(l->buf, l->buf + used, l->len);
    }
    return 0;
}

static int local_close(ac_dispatcher *d)
{
    struct local *l = ac_user(d);
    ac_dispatcher *r = l->remote;
    ac_close(d);
    if (r) {
        l->remote = NULL;
        ac_set_user(r, NULL);
        close_peer_when_done(r);
    }
    return 0;
}

/* Local's buffer is full: stop reading from the Remote that fills it. */
static int local_high_water(ac_dispatcher *d)
{
    struct local *l = ac_user(d);
    if (l->remote)
        ac_set_reading(l->remote, false);
    return 0;
}

static int local_low_water(ac_dispatcher *d)
{
    struct local *l = ac_user(d);
    if (l->remote)
        ac_set_reading(l->remote, true);
    return 0;
}

static void local_finalize(ac_dispatcher *d) { free(ac_user(d)); }

static const ac_handlers local_end = {
    .name = "Local",
    .handle_read = local_read,
    .handle_close = local_close,
    .handle_high_water = local_high_water,
    .handle_low_water = local_low_water,
    .finalize = local_finalize,
};

/* ------------------------------------------------------------ Remote */

/* The success reply, with the address the Remote's socket got; then what
 * came after the request, and the Local reads again. */
static int remote_connect(ac_dispatcher *r)
{
    ac_dispatcher *d = ac_user(r);
    if (!d) /* the client left while we connected */
        return 0;
    struct local *l = ac_user(d);
    struct sockaddr_storage bound;
    socklen_t len = sizeof bound;
    if (getsockname(ac_fd(r), (struct sockaddr *)&bound, &len) < 0)
        return AC_RAISE(r, errno, "getsockname");
    l->state = RELAY;
    int rc = reply(d, 0, &bound);
    if (rc == 0 && l->len > 0)
        rc = ac_buffered_send(r, l->buf, l->len);
    l->len = 0;
    ac_set_reading(d, true);
    return rc;
}

static int remote_read(ac_dispatcher *r) { return pass_on(r, ac_user(r)); }

/* Close, and the Local after what it holds has gone: after a reply 5 when
 * the connect failed (the demo's handle_expt). */
static int remote_close(ac_dispatcher *r)
{
    ac_dispatcher *d = ac_user(r);
    ac_close(r);
    if (!d)
        return 0;
    struct local *l = ac_user(d);
    ac_set_user(r, NULL);
    l->remote = NULL;
    if (l->state == CONNECTING) {
        refuse(d, l, 5);
        return 0;
    }
    close_peer_when_done(d);
    return 0;
}

/* D8, S8: a refused connect is raised here (ECONNREFUSED is not in the
 * disconnected set), and so is any other failure of the Remote. */
static int remote_error(ac_dispatcher *r, const ac_error *e)
{
    (void)e;
    return remote_close(r);
}

static int remote_high_water(ac_dispatcher *r)
{
    if (ac_user(r))
        ac_set_reading(ac_user(r), false);
    return 0;
}

static int remote_low_water(ac_dispatcher *r)
{
    if (ac_user(r))
        ac_set_reading(ac_user(r), true);
    return 0;
}

static const ac_handlers remote_end = {
    .name = "Remote",
    .handle_connect = remote_connect,
    .handle_read = remote_read,
    .handle_close = remote_close,
    .handle_error = remote_error,
    .handle_high_water = remote_high_water,
    .handle_low_water = remote_low_water,
};

/* ------------------------------------------------------ Socks5Listen */

static int listen_accepted(ac_dispatcher *server, int fd, const struct sockaddr *addr,
                           socklen_t addrlen)
{
    (void)addr, (void)addrlen;
    struct local *l = calloc(1, sizeof *l);
    ac_dispatcher *d = l ? ac_buffered_new(ac_map_of(server), &local_end, l) : NULL;
    if (!d || ac_attach(d, fd) < 0) {
        close(fd); /* still ours: ac_attach failed or never ran */
        if (d)
            ac_close(d); /* its finalize frees l */
        else
            free(l);
        return 0;
    }
    ac_buffered_set_watermarks(d, LOW_WATER, HIGH_WATER);
    return 0;
}

/* An accept failure, EMFILE most likely: pause, do not close (W15). */
static int listen_error(ac_dispatcher *server, const ac_error *e)
{
    return ex_pause_accepting(server, ac_user(server), "socks5_server", e);
}

static void listen_finalize(ac_dispatcher *server) { ac_timer_free(ac_user(server)); }

static const ac_handlers socks5_listen = {
    .name = "Socks5Listen",
    .handle_accepted = listen_accepted,
    .handle_error = listen_error,
    .finalize = listen_finalize,
};

/* Socks5Listen(host, port): create_socket, set_reuse_addr, bind, listen. */
static int listen_open(ac_dispatcher *server, const struct sockaddr_storage *ss, socklen_t len)
{
    int rc = ac_create_socket(server, ss->ss_family, SOCK_STREAM);
    if (rc < 0)
        return rc;
    ac_set_reuse_addr(server);
    rc = ac_bind(server, (const struct sockaddr *)ss, len);
    return rc < 0 ? rc : ac_listen(server, BACKLOG);
}

/* -------------------------------------------------------------- main */

static const char usage[] =
    "usage: socks5_server [-l ADDR] [-p PORT]\n"
    "A SOCKS5 proxy for CONNECT without authentication (asyncore's SOCKS5 demo).\n"
    "Host names are resolved with a blocking lookup: every client waits meanwhile.\n\n"
    "  -l, --listen ADDR  address to listen on (default 127.0.0.1)\n"
    "  -p, --port PORT    port to listen on (default 8081; 0 = any free port)\n"
    "  -h, --help         show this help\n"
    "  -V, --version      show the version\n";

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *host = "127.0.0.1", *port_s = DEFAULT_PORT; /* the demo's localhost:8081 */
    int c;
    ex_name(argv, "socks5_server");
    while ((c = getopt_long(argc, argv, "l:p:hV", opts, NULL)) != -1) {
        if (c == 'l')
            host = optarg;
        else if (c == 'p')
            port_s = optarg;
        else
            return ex_usage(c, "socks5_server", usage);
    }
    struct sockaddr_storage ss;
    socklen_t len;
    int port = ex_port(port_s);
    if (optind < argc)
        return ex_bad_usage("socks5_server", "unexpected argument '%s'", argv[optind]);
    if (port < 0)
        return ex_bad_usage("socks5_server", "'%s' is not a port (0-65535)", port_s);
    if (ex_resolve(host, port, true, &ss, &len) != 0)
        return ex_bad_usage("socks5_server", "'%s' is not a numeric IPv4 or IPv6 address", host);

    ac_map *m = ex_map_new("socks5_server", NULL);
    if (!m)
        return 1;
    ac_dispatcher *server = ac_dispatcher_new(m, &socks5_listen, NULL);
    ac_timer *backoff = server ? ac_timer_new(m, ex_resume_accepting, server) : NULL;
    if (backoff)
        ac_set_user(server, backoff);
    int rc = backoff ? listen_open(server, &ss, len) : -ENOMEM;
    if (rc == 0) {
        char name[80];
        ex_bound_port(ac_fd(server), &ss); /* the kernel's choice for -p 0 */
        ex_addr((struct sockaddr *)&ss, name, sizeof name);
        fprintf(stderr, "socks5_server: listening on %s; try: curl --socks5-hostname %s URL\n",
                name, name);
    } else {
        fprintf(stderr, "socks5_server: cannot listen on %s port %d: %s\n", host, port,
                strerror(-rc));
    }
    return ex_serve(m, "socks5_server", rc);
}
