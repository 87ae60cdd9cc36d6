/* socketserver_echo — an echo server in the shape of Python's socketserver.
 *
 * socketserver.TCPServer is a class whose subclasses override hooks:
 *
 *     server = TCPServer(address, Handler)   # server_bind(), server_activate()
 *     ...a client connects:                  # get_request() (accept), then
 *         if verify_request(request, addr):  #   default: True
 *             process_request(request, addr) #   default: Handler(request, ...)
 *         else:
 *             shutdown_request(request)
 *
 * Here the server is a listening dispatcher, the hooks are a table of
 * function pointers (NULL = socketserver's default), and "serve_forever" is
 * ac_loop.  The echo service overrides two hooks: verify_request refuses
 * clients beyond --max-clients, process_request turns the connection into
 * an echo channel.
 *
 * usage: socketserver_echo [-l ADDR] [-p PORT] [-m MAX]  (default 127.0.0.1:7008)
 */
#include "example.h"

#include <getopt.h>
#include <unistd.h>

#define DEFAULT_PORT "7008" /* echo_server's port + 1, so both can run */

/* ------------------------------------------------------- the "class" */

typedef struct tcp_server tcp_server;

typedef struct server_hooks {
    int (*server_bind)(tcp_server *s);     /* default: set_reuse_addr, bind, learn the port */
    int (*server_activate)(tcp_server *s); /* default: listen(request_queue_size) */
    /* false refuses the client.  NULL: accept everyone. */
    bool (*verify_request)(tcp_server *s, int fd, const struct sockaddr *addr);
    /* Takes fd over.  NULL: shutdown_request (closes it). */
    int (*process_request)(tcp_server *s, int fd, const struct sockaddr *addr);
} server_hooks;

struct tcp_server {
    ac_dispatcher *socket; /* the listening dispatcher */
    const server_hooks *hooks;
    struct sockaddr_storage server_address; /* after server_bind: the bound address */
    int request_queue_size;                 /* listen backlog; socketserver's is 5 */
    ac_timer *backoff;                      /* resumes accepting after EMFILE */
    void *user;                             /* the subclass's state */
};

static int tcp_server_bind(tcp_server *s)
{
    ac_set_reuse_addr(s->socket); /* allow_reuse_address = True */
    socklen_t len = s->server_address.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                            : sizeof(struct sockaddr_in);
    int rc = ac_bind(s->socket, (struct sockaddr *)&s->server_address, len);
    return rc < 0 ? rc : (ex_bound_port(ac_fd(s->socket), &s->server_address) < 0 ? -errno : 0);
}

static int tcp_server_activate(tcp_server *s)
{
    return ac_listen(s->socket, s->request_queue_size);
}

/* shutdown_request: the request is refused, or nobody takes it. */
static void tcp_server_shutdown_request(int fd)
{
    shutdown(fd, SHUT_RDWR);
    close(fd);
}

/* The listening dispatcher's handle_accepted: get_request is done (D16). */
static int tcp_server_accepted(ac_dispatcher *d, int fd, const struct sockaddr *addr,
                               socklen_t addrlen)
{
    (void)addrlen;
    tcp_server *s = ac_user(d);
    bool verified = !s->hooks->verify_request || s->hooks->verify_request(s, fd, addr);
    if (!verified || !s->hooks->process_request) {
        tcp_server_shutdown_request(fd);
        return 0;
    }
    return s->hooks->process_request(s, fd, addr);
}

/* An accept failure, EMFILE most likely: socketserver would raise it out
 * of serve_forever, asyncore would close the listener (W15).  Pause. */
static int tcp_server_error(ac_dispatcher *d, const ac_error *e)
{
    tcp_server *s = ac_user(d);
    return ex_pause_accepting(d, s->backoff, "socketserver_echo", e);
}

static void tcp_server_finalize(ac_dispatcher *d)
{
    tcp_server *s = ac_user(d);
    ac_timer_free(s->backoff);
}

static const ac_handlers tcp_server_handlers = {
    .name = "TCPServer",
    .handle_accepted = tcp_server_accepted,
    .handle_error = tcp_server_error,
    .finalize = tcp_server_finalize,
};

/* TCPServer(server_address, ...) with bind_and_activate=True.  0 or -errno. */
static int tcp_server_init(tcp_server *s, ac_map *m, const struct sockaddr_storage *address,
                           const server_hooks *hooks, void *user)
{
    *s = (tcp_server){
        .hooks = hooks, .server_address = *address, .request_queue_size = 5, .user = user};
    s->socket = ac_dispatcher_new(m, &tcp_server_handlers, s);
    if (!s->socket)
        return -ENOMEM;
    s->backoff = ac_timer_new(m, ex_resume_accepting, s->socket);
    if (!s->backoff)
        return -ENOMEM;
    int rc = ac_create_socket(s->socket, address->ss_family, SOCK_STREAM);
    if (rc == 0)
        rc = (hooks->server_bind ? hooks->server_bind : tcp_server_bind)(s);
    if (rc == 0)
        rc = (hooks->server_activate ? hooks->server_activate : tcp_server_activate)(s);
    return rc;
}

/* ------------------------------------------------ the echo "subclass" */

struct echo_service {
    int clients;     /* echo channels alive */
    int max_clients; /* 0 = no limit */
};

static int echo_read(ac_dispatcher *d)
{
    char data[8192];
    ssize_t n = ac_recv(d, data, sizeof data);
    if (n == -EAGAIN)
        return 0;
    return n <= 0 ? (int)n : ac_buffered_send(d, data, (size_t)n);
}

/* EOF: stop reading, let the echo drain, then close (we come back here). */
static int echo_close(ac_dispatcher *d)
{
    if (ac_is_closing(d) || ac_buffered_pending(d) == 0) {
        ac_close(d);
        return 0;
    }
    ac_set_closing(d, true);
    ac_set_reading(d, false);
    return ac_close_when_done(d);
}

static void echo_finalize(ac_dispatcher *d)
{
    struct echo_service *svc = ac_user(d);
    svc->clients--;
}

static const ac_handlers echo_handler = {
    .name = "EchoRequestHandler",
    .handle_read = echo_read,
    .handle_close = echo_close,
    .finalize = echo_finalize,
};

static bool echo_verify_request(tcp_server *s, int fd, const struct sockaddr *addr)
{
    (void)fd;
    struct echo_service *svc = s->user;
    if (svc->max_clients == 0 || svc->clients < svc->max_clients)
        return true;
    char name[80];
    fprintf(stderr, "socketserver_echo: refusing %s: %d clients already\n",
            ex_addr(addr, name, sizeof name), svc->clients);
    return false;
}

static int echo_process_request(tcp_server *s, int fd, const struct sockaddr *addr)
{
    (void)addr;
    struct echo_service *svc = s->user;
    ac_dispatcher *h = ac_buffered_new(ac_map_of(s->socket), &echo_handler, svc);
    if (!h) {
        tcp_server_shutdown_request(fd);
        return 0;
    }
    svc->clients++; /* echo_finalize gives it back */
    if (ac_attach(h, fd) < 0) {
        tcp_server_shutdown_request(fd);
        ac_close(h);
    }
    return 0;
}

static const server_hooks echo_server_hooks = {
    .verify_request = echo_verify_request,
    .process_request = echo_process_request,
};

/* -------------------------------------------------------------- main */

static const char usage[] =
    "usage: socketserver_echo [-l ADDR] [-p PORT] [-m MAX]\n"
    "An echo server shaped like Python's socketserver.TCPServer.\n\n"
    "  -l, --listen ADDR      address to listen on (default 127.0.0.1)\n"
    "  -p, --port PORT        port to listen on (default 7008; 0 = any free port)\n"
    "  -m, --max-clients MAX  refuse clients beyond MAX at once (default 0: no limit)\n"
    "  -h, --help             show this help\n"
    "  -V, --version          show the version\n";

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},      {"port", required_argument, NULL, 'p'},
        {"max-clients", required_argument, NULL, 'm'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},           {NULL, 0, NULL, 0}};
    const char *host = "127.0.0.1", *port_s = DEFAULT_PORT, *max_s = "0";
    int c;
    ex_name(argv, "socketserver_echo");
    while ((c = getopt_long(argc, argv, "l:p:m:hV", opts, NULL)) != -1) {
        if (c == 'l')
            host = optarg;
        else if (c == 'p')
            port_s = optarg;
        else if (c == 'm')
            max_s = optarg;
        else
            return ex_usage(c, "socketserver_echo", usage);
    }
    struct sockaddr_storage address;
    socklen_t len;
    int port = ex_port(port_s);
    struct echo_service svc = {.max_clients = ex_port(max_s)}; /* 0-65535 suits a limit too */
    if (optind < argc)
        return ex_bad_usage("socketserver_echo", "unexpected argument '%s'", argv[optind]);
    if (port < 0)
        return ex_bad_usage("socketserver_echo", "'%s' is not a port (0-65535)", port_s);
    if (svc.max_clients < 0)
        return ex_bad_usage("socketserver_echo", "'%s' is not a client limit (0-65535)", max_s);
    if (ex_resolve(host, port, true, &address, &len) != 0)
        return ex_bad_usage("socketserver_echo", "'%s' is not a numeric IPv4 or IPv6 address",
                            host);

    ac_map *m = ex_map_new("socketserver_echo", NULL);
    if (!m)
        return 1;
    tcp_server server;
    int rc = tcp_server_init(&server, m, &address, &echo_server_hooks, &svc);
    if (rc == 0) {
        char name[80];
        fprintf(stderr, "socketserver_echo: serving on %s; try: nc %s %d\n",
                ex_addr((struct sockaddr *)&server.server_address, name, sizeof name), host,
                ex_bound_port(ac_fd(server.socket), &address));
    } else {
        fprintf(stderr, "socketserver_echo: cannot serve on %s port %d: %s\n", host, port,
                strerror(-rc));
    }
    return ex_serve(m, "socketserver_echo", rc); /* serve_forever(), server_close() */
}
