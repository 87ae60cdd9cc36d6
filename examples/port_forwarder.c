/* port_forwarder — the asyncore port forwarder recipe, in C.
 *
 * A listening `forwarder` accepts a client; for each client a `receiver`
 * (the client's end) and a `sender` (an outgoing connection to the remote)
 * are paired, each buffering for the other, and either one closing closes
 * its peer.  The Python original (abridged):
 *
 *     class forwarder(asyncore.dispatcher):
 *         def handle_accept(self):
 *             conn, addr = self.accept()
 *             sender(receiver(conn), self.remoteip, self.remoteport)
 *     class receiver(asyncore.dispatcher):
 *         def handle_read(self):
 *             self.from_remote_buffer += self.recv(4096)
 *         def writable(self):
 *             return len(self.to_remote_buffer) > 0
 *         def handle_write(self):
 *             sent = self.send(self.to_remote_buffer)
 *             self.to_remote_buffer = self.to_remote_buffer[sent:]
 *         def handle_close(self):
 *             self.close()
 *             if self.sender:
 *                 self.sender.close()
 *     class sender(asyncore.dispatcher):   # the same, the other way round,
 *         ...                              # after self.connect((ip, port))
 *
 * In C each end is a buffered dispatcher whose user pointer is its peer:
 * what one end reads, the peer's buffer sends.  Two things differ from the
 * recipe: a closing end lets its peer send what it holds first (the recipe
 * drops it), and an end whose peer's buffer is full stops reading until
 * the buffer drains (the recipe's buffers grow without bound).  There is
 * no half-close: as in the recipe, either end closing closes the pair.
 *
 * usage: port_forwarder [-l IP] -p PORT [-r IP] -P PORT
 */
#include "example.h"

#include <getopt.h>
#include <unistd.h>

#define HIGH_WATER (1024 * 1024)
#define LOW_WATER (256 * 1024)

/* ------------------------------------------------- receiver, sender */

static int end_read(ac_dispatcher *d)
{
    char data[65536];
    ssize_t n = ac_recv(d, data, sizeof data);
    if (n <= 0) /* -EAGAIN: nothing yet; 0: EOF, handle_close has run */
        return n == -EAGAIN ? 0 : (int)n;
    ac_dispatcher *peer = ac_user(d);
    return peer ? ac_buffered_send(peer, data, (size_t)n) : 0;
}

/* Close this end now, and its peer once the peer's buffer has drained
 * (close_when_done then calls this again, for the peer, alone). */
static int end_close(ac_dispatcher *d)
{
    ac_dispatcher *peer = ac_user(d);
    ac_close(d);
    if (peer) {
        ac_set_user(d, NULL);
        ac_set_user(peer, NULL);
        ac_set_reading(peer, false);
        ac_close_when_done(peer);
    }
    return 0;
}

/* d's buffer is full: stop reading from the end that fills it (its peer). */
static int end_high_water(ac_dispatcher *d)
{
    if (ac_user(d))
        ac_set_reading(ac_user(d), false);
    return 0;
}

static int end_low_water(ac_dispatcher *d)
{
    if (ac_user(d))
        ac_set_reading(ac_user(d), true);
    return 0;
}

/* The two ends differ only in their names (and in how they got a socket). */
static const ac_handlers receiver = {
    .name = "receiver",
    .handle_read = end_read,
    .handle_close = end_close,
    .handle_high_water = end_high_water,
    .handle_low_water = end_low_water,
};

static const ac_handlers sender = {
    .name = "sender",
    .handle_read = end_read,
    .handle_close = end_close,
    .handle_high_water = end_high_water,
    .handle_low_water = end_low_water,
};

/* -------------------------------------------------------- forwarder */

struct remote {
    struct sockaddr_storage addr;
    socklen_t len;
};

static ac_dispatcher *end_new(ac_map *m, const ac_handlers *kind)
{
    ac_dispatcher *d = ac_buffered_new(m, kind, NULL);
    if (d)
        ac_buffered_set_watermarks(d, LOW_WATER, HIGH_WATER);
    return d;
}

static int forwarder_accepted(ac_dispatcher *fwd, int conn, const struct sockaddr *addr,
                              socklen_t addrlen)
{
    (void)addr, (void)addrlen;
    struct remote *remote = ac_user(fwd);
    ac_dispatcher *r = end_new(ac_map_of(fwd), &receiver);
    ac_dispatcher *s = end_new(ac_map_of(fwd), &sender);
    int rc = r && s ? ac_attach(r, conn) : -ENOMEM;
    if (rc < 0)
        close(conn); /* not r's: attaching failed */
    if (rc == 0)
        rc = ac_create_socket(s, remote->addr.ss_family, SOCK_STREAM);
    if (rc == 0)
        rc = ac_connect(s, (struct sockaddr *)&remote->addr, remote->len);
    if (rc < 0) { /* e.g. refused at once: give up on this client */
        fprintf(stderr, "port_forwarder: cannot connect to the remote: %s\n", strerror(-rc));
        if (r)
            ac_close(r);
        if (s)
            ac_close(s);
        return 0;
    }
    ac_set_user(r, s);
    ac_set_user(s, r);
    return 0;
}

static const ac_handlers forwarder = {.name = "forwarder", .handle_accepted = forwarder_accepted};

/* -------------------------------------------------------------- main */

static const char usage[] =
    "usage: port_forwarder [-l IP] -p PORT [-r IP] -P PORT\n"
    "Forward every TCP connection made to the local address on to the remote one.\n\n"
    "  -l, --local-ip IP       address to listen on (default 127.0.0.1)\n"
    "  -p, --local-port PORT   port to listen on (0 = any free port)\n"
    "  -r, --remote-ip IP      address to forward to (default 127.0.0.1)\n"
    "  -P, --remote-port PORT  port to forward to\n"
    "  -h, --help, -V, --version\n";

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"local-ip", required_argument, NULL, 'l'},
                                         {"local-port", required_argument, NULL, 'p'},
                                         {"remote-ip", required_argument, NULL, 'r'},
                                         {"remote-port", required_argument, NULL, 'P'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *local_ip = "127.0.0.1", *remote_ip = "127.0.0.1";
    const char *local_s = NULL, *remote_s = NULL;
    int c;
    ex_name(argv, "port_forwarder");
    while ((c = getopt_long(argc, argv, "l:p:r:P:hV", opts, NULL)) != -1) {
        if (c == 'l')
            local_ip = optarg;
        else if (c == 'p')
            local_s = optarg;
        else if (c == 'r')
            remote_ip = optarg;
        else if (c == 'P')
            remote_s = optarg;
        else
            return ex_usage(c, "port_forwarder", usage);
    }
    if (optind < argc)
        return ex_bad_usage("port_forwarder", "unexpected argument '%s'", argv[optind]);
    if (!local_s || !remote_s)
        return ex_bad_usage("port_forwarder", "%s", "give both -p PORT and -P PORT");
    int local_port = ex_port(local_s), remote_port = ex_port(remote_s);
    if (local_port < 0)
        return ex_bad_usage("port_forwarder", "'%s' is not a port (0-65535)", local_s);
    if (remote_port <= 0)
        return ex_bad_usage("port_forwarder", "'%s' is not a remote port (1-65535)", remote_s);
    struct remote remote;
    if (ex_resolve(remote_ip, remote_port, true, &remote.addr, &remote.len) != 0)
        return ex_bad_usage("port_forwarder", "'%s' is not a numeric IPv4 or IPv6 address",
                            remote_ip);
    ac_map *m = ex_map_new("port_forwarder", NULL);
    if (!m)
        return 1;
    ac_dispatcher *fwd = ac_dispatcher_new(m, &forwarder, &remote);
    int rc = fwd ? ex_listen(fwd, "port_forwarder", local_ip, local_port) : -ENOMEM;
    if (rc == 0) {
        char from[80], to[80];
        struct sockaddr_storage local;
        ex_bound_port(ac_fd(fwd), &local); /* the kernel's choice for -p 0 */
        fprintf(stderr, "port_forwarder: forwarding %s to %s\n",
                ex_addr((struct sockaddr *)&local, from, sizeof from),
                ex_addr((struct sockaddr *)&remote.addr, to, sizeof to));
    }
    return ex_serve(m, "port_forwarder", rc);
}
