/* echo_server — the echo server of asyncore's documentation, in C.
 *
 *     class EchoHandler(asyncore.dispatcher_with_send):
 *         def handle_read(self):
 *             data = self.recv(8192)
 *             if data:
 *                 self.send(data)
 *
 *     class EchoServer(asyncore.dispatcher):
 *         def __init__(self, host, port):
 *             asyncore.dispatcher.__init__(self)
 *             self.create_socket()
 *             self.set_reuse_addr()
 *             self.bind((host, port))
 *             self.listen(5)
 *         def handle_accepted(self, sock, addr):
 *             print('Incoming connection from %s' % repr(addr))
 *             handler = EchoHandler(sock)
 *
 * Two things the seed leaves out are added: what a client sent before it
 * closed is still echoed (flush, then close), and a client that sends
 * without reading cannot grow our memory (reading pauses while more than
 * HIGH_WATER bytes wait to go back).
 *
 * "Incoming connection" goes to stdout, as the seed's print does, and is
 * buffered as Python buffers it: by line on a terminal, by block into a
 * file or a pipe (flushed at exit).  Unbuffered, it would be one write(2)
 * per connection, the costliest part of accepting one.
 *
 * usage: echo_server [-l ADDR] [-p PORT]     (default 127.0.0.1:7007)
 */
#include "example.h"

#include <getopt.h>
#include <unistd.h>

#define DEFAULT_PORT "7007" /* asyncore's docs use 8080; 7 is echo's own port */
#define READ_SIZE 65536     /* the sender's chunk cap: what arrived goes back in one send */
#define HIGH_WATER (1024 * 1024)
#define LOW_WATER (256 * 1024)

/* ------------------------------------------------------- EchoHandler */

static int echo_read(ac_dispatcher *d)
{
    char data[READ_SIZE];
    ssize_t n = ac_recv(d, data, sizeof data);
    if (n == -EAGAIN)
        return 0;
    if (n <= 0) /* 0: EOF, handle_close has run; < 0: raise it */
        return (int)n;
    return ac_buffered_send(d, data, (size_t)n);
}

/* EOF, or the connection broke.  The first time, stop reading and let the
 * echo drain; `closing` (an asyncore flag that is ours to use) says we did.
 * close_when_done calls us again once the buffer is empty. */
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

static int echo_pause(ac_dispatcher *d)
{
    ac_set_reading(d, false);
    return 0;
}

static int echo_resume(ac_dispatcher *d)
{
    if (!ac_is_closing(d))
        ac_set_reading(d, true);
    return 0;
}

static const ac_handlers echo_handler = {
    .name = "EchoHandler",
    .handle_read = echo_read,
    .handle_close = echo_close,
    .handle_high_water = echo_pause,
    .handle_low_water = echo_resume,
};

/* -------------------------------------------------------- EchoServer */

static int server_accepted(ac_dispatcher *server, int fd, const struct sockaddr *addr,
                           socklen_t addrlen)
{
    (void)addrlen;
    char name[80];
    printf("echo_server: incoming connection from %s\n", ex_addr(addr, name, sizeof name));
    ac_dispatcher *handler = ac_buffered_new(ac_map_of(server), &echo_handler, NULL);
    if (!handler || ac_attach(handler, fd) < 0) {
        close(fd); /* still ours: ac_attach failed or never ran */
        if (handler)
            ac_close(handler);
        return 0;
    }
    ac_buffered_set_watermarks(handler, LOW_WATER, HIGH_WATER);
    return 0;
}

/* An accept failure, EMFILE most likely: pause, do not close (W15). */
static int server_error(ac_dispatcher *server, const ac_error *e)
{
    return ex_pause_accepting(server, ac_user(server), "echo_server", e);
}

static void server_finalize(ac_dispatcher *server) { ac_timer_free(ac_user(server)); }

static const ac_handlers echo_server = {
    .name = "EchoServer",
    .handle_accepted = server_accepted,
    .handle_error = server_error,
    .finalize = server_finalize,
};

/* EchoServer(host, port): create_socket, set_reuse_addr, bind, listen. */
static int server_open(ac_dispatcher *server, const struct sockaddr_storage *ss, socklen_t len)
{
    int rc = ac_create_socket(server, ss->ss_family, SOCK_STREAM);
    if (rc < 0)
        return rc;
    ac_set_reuse_addr(server);
    rc = ac_bind(server, (const struct sockaddr *)ss, len);
    return rc < 0 ? rc : ac_listen(server, EX_BACKLOG);
}

/* -------------------------------------------------------------- main */

static const char usage[] =
    "usage: echo_server [-l ADDR] [-p PORT]\n"
    "Echo every byte back to its sender (asyncore's echo server).\n\n"
    "  -l, --listen ADDR  address to listen on (default 127.0.0.1)\n"
    "  -p, --port PORT    port to listen on (default 7007; 0 = any free port)\n"
    "  -h, --help         show this help\n"
    "  -V, --version      show the version\n";

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *host = "127.0.0.1", *port_s = DEFAULT_PORT;
    int c;
    ex_name(argv, "echo_server");
    while ((c = getopt_long(argc, argv, "l:p:hV", opts, NULL)) != -1) {
        if (c == 'l')
            host = optarg;
        else if (c == 'p')
            port_s = optarg;
        else
            return ex_usage(c, "echo_server", usage);
    }
    struct sockaddr_storage ss;
    socklen_t len;
    int port = ex_port(port_s);
    if (optind < argc)
        return ex_bad_usage("echo_server", "unexpected argument '%s'", argv[optind]);
    if (port < 0)
        return ex_bad_usage("echo_server", "'%s' is not a port (0-65535)", port_s);
    if (ex_resolve(host, port, true, &ss, &len) != 0)
        return ex_bad_usage("echo_server", "'%s' is not a numeric IPv4 or IPv6 address", host);

    ac_map *m = ex_map_new("echo_server", NULL);
    if (!m)
        return 1;
    ac_dispatcher *server = ac_dispatcher_new(m, &echo_server, NULL);
    ac_timer *backoff = server ? ac_timer_new(m, ex_resume_accepting, server) : NULL;
    if (backoff)
        ac_set_user(server, backoff);
    int rc = backoff ? server_open(server, &ss, len) : -ENOMEM;
    if (rc == 0) {
        char name[80];
        port = ex_bound_port(ac_fd(server), &ss); /* the kernel's choice for -p 0 */
        fprintf(stderr, "echo_server: listening on %s; try: nc %s %d\n",
                ex_addr((struct sockaddr *)&ss, name, sizeof name), host, port);
    } else {
        fprintf(stderr, "echo_server: cannot listen on %s port %d: %s\n", host, port,
                strerror(-rc));
    }
    return ex_serve(m, "echo_server", rc);
}
