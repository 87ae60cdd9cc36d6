/* http_client — the HTTP client of asyncore's documentation, in C.
 *
 *     class HTTPClient(asyncore.dispatcher):
 *         def __init__(self, host, path):
 *             asyncore.dispatcher.__init__(self)
 *             self.create_socket()
 *             self.connect( (host, 80) )
 *             self.buffer = bytes('GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' %
 *                                 (path, host), 'ascii')
 *         def handle_connect(self):
 *             pass
 *         def handle_close(self):
 *             self.close()
 *         def handle_read(self):
 *             print(self.recv(8192))
 *         def writable(self):
 *             return (len(self.buffer) > 0)
 *         def handle_write(self):
 *             sent = self.send(self.buffer)
 *             self.buffer = self.buffer[sent:]
 *
 * The response (headers and body) goes to standard output as it arrives.
 * Exit status: 0 when a response was received and the server closed the
 * connection; 1 when the connection failed, broke or timed out, or the
 * server sent nothing; 2 for bad arguments.
 *
 * usage: http_client [-t SECONDS] HOST PORT PATH
 *        http_client [-t SECONDS] http://HOST[:PORT][/PATH]
 */
#include "example.h"

#include <getopt.h>

struct http_client {
    char buffer[2048]; /* the request; what is left of it to send */
    size_t len;
    const char *where; /* "HOST:PORT", for messages */
    size_t received;
    int status; /* exit status so far */
};

/* Say why, once: poll-style dispatch may call handlers again on a channel
 * closed earlier in the same event (L13). */
static void fail(ac_dispatcher *d, const char *why, int err)
{
    struct http_client *c = ac_user(d);
    if (ac_is_closed(d))
        return;
    fprintf(stderr, "http_client: %s: %s%s%s\n", c->where, why, err ? ": " : "",
            err ? strerror(err) : "");
    c->status = 1;
    ac_close(d);
}

static bool client_writable(ac_dispatcher *d)
{
    struct http_client *c = ac_user(d);
    return c->len > 0;
}

static int client_handle_connect(ac_dispatcher *d)
{
    (void)d; /* nothing to do: handle_write sends the request */
    return 0;
}

static int client_handle_write(ac_dispatcher *d)
{
    struct http_client *c = ac_user(d);
    ssize_t sent = ac_send(d, c->buffer, c->len);
    if (sent < 0)
        return (int)sent; /* raised: handle_error reports it */
    memmove(c->buffer, c->buffer + sent, c->len - (size_t)sent);
    c->len -= (size_t)sent;
    return 0;
}

static int client_handle_read(ac_dispatcher *d)
{
    struct http_client *c = ac_user(d);
    char data[8192];
    ssize_t n = ac_recv(d, data, sizeof data);
    if (n == -EAGAIN)
        return 0;
    if (n <= 0) /* 0: EOF, handle_close has run */
        return (int)n;
    c->received += (size_t)n;
    errno = 0;
    if (fwrite(data, 1, (size_t)n, stdout) != (size_t)n)
        return AC_RAISE(d, errno ? errno : EIO, "write to standard output");
    return 0;
}

static int client_handle_close(ac_dispatcher *d)
{
    struct http_client *c = ac_user(d);
    if (c->len > 0 || c->received == 0) /* fail() closes, and only once */
        fail(d, "connection closed without a response", 0);
    ac_close(d);
    return 0;
}

/* Every failure while dispatching lands here (D19): a refused or broken
 * connection, a failed write to stdout. */
static int client_handle_error(ac_dispatcher *d, const ac_error *e)
{
    char why[96];
    snprintf(why, sizeof why, "%s failed", e->op);
    fail(d, why, e->err);
    return 0;
}

static int client_handle_timeout(ac_dispatcher *d)
{
    fail(d, "timed out", 0);
    return 0;
}

static const ac_handlers http_client = {
    .name = "HTTPClient",
    .writable = client_writable,
    .handle_connect = client_handle_connect,
    .handle_write = client_handle_write,
    .handle_read = client_handle_read,
    .handle_close = client_handle_close,
    .handle_error = client_handle_error,
    .handle_timeout = client_handle_timeout,
};

/* -------------------------------------------------------------- main */

/* http://HOST[:PORT][/PATH] into its parts, written into url itself; the
 * path without its leading '/'.  An IPv6 HOST is written in brackets. */
static bool split_url(char *url, char **host, char **port, char **path)
{
    if (strncmp(url, "http://", 7) != 0)
        return false;
    char *h = url + 7, *end;
    if (*h == '[' && (end = strchr(h, ']'))) {
        *end++ = '\0';
        h++;
    } else {
        end = h + strcspn(h, ":/");
    }
    char *slash = strchr(end, '/');
    *port = *end == ':' ? end + 1 : "80";
    *path = slash ? slash + 1 : "";
    if (slash)
        *slash = '\0';
    *end = '\0';
    *host = h;
    return *h != '\0';
}

static const char usage[] =
    "usage: http_client [-t SECONDS] HOST PORT PATH\n"
    "       http_client [-t SECONDS] http://HOST[:PORT][/PATH]\n"
    "Send GET PATH HTTP/1.0 and print the whole response (asyncore's HTTP client).\n\n"
    "  -t, --timeout SECONDS  give up after SECONDS without traffic (default 30)\n"
    "  -h, --help             show this help\n"
    "  -V, --version          show the version\n";

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"timeout", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    double timeout = 30.0;
    int opt;
    char *end;
    while ((opt = getopt_long(argc, argv, "t:hV", opts, NULL)) != -1) {
        if (opt != 't')
            return ex_usage(opt, "http_client", usage);
        timeout = strtod(optarg, &end);
        if (end == optarg || *end || !(timeout > 0)) {
            fprintf(stderr, "http_client: bad timeout '%s'\n", optarg);
            return 2;
        }
    }
    char *host, *port_s, *path;
    if (argc - optind == 3 && argv[optind + 2][0] == '/') {
        host = argv[optind], port_s = argv[optind + 1], path = argv[optind + 2] + 1;
    } else if (argc - optind != 1 || !split_url(argv[optind], &host, &port_s, &path)) {
        fprintf(stderr, "http_client: give HOST PORT /PATH, or an http:// URL\n");
        return ex_usage('?', "http_client", usage);
    }
    int port = ex_port(port_s);
    if (port <= 0 || strpbrk(path, " \r\n")) {
        fprintf(stderr, "http_client: bad port '%s' or path '/%s'\n", port_s, path);
        return 2;
    }

    struct sockaddr_storage ss;
    socklen_t sslen;
    int rc = ex_resolve(host, port, false, &ss, &sslen);
    if (rc) {
        fprintf(stderr, "http_client: %s: %s\n", host, gai_strerror(rc));
        return 1;
    }
    char where[300];
    snprintf(where, sizeof where, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    struct http_client client = {.where = where};
    int n = snprintf(client.buffer, sizeof client.buffer, "GET /%s HTTP/1.0\r\nHost: %s\r\n\r\n",
                     path, where);
    if (n < 0 || (size_t)n >= sizeof client.buffer) {
        fprintf(stderr, "http_client: the request is too long\n");
        return 2;
    }
    client.len = (size_t)n;

    int signo = 0;
    ac_map *m = ex_map_new("http_client", &signo);
    if (!m)
        return 1;
    ac_dispatcher *d = ac_dispatcher_new(m, &http_client, &client);
    rc = d ? ac_create_socket(d, ss.ss_family, SOCK_STREAM) : -ENOMEM;
    if (rc == 0)
        rc = ac_set_idle_timeout(d, timeout);
    if (rc == 0)
        rc = ac_connect(d, (struct sockaddr *)&ss, sslen);
    if (rc < 0) { /* failed at once; a later failure reaches handle_error */
        fprintf(stderr, "http_client: %s: connect failed: %s\n", where, strerror(-rc));
        client.status = 1;
    }
    if (ex_serve(m, "http_client", rc) != 0)
        client.status = 1;
    if (signo) {
        fprintf(stderr, "http_client: interrupted by %s\n", strsignal(signo));
        client.status = 128 + signo;
    }
    if (fflush(stdout) != 0 && client.status == 0) {
        fprintf(stderr, "http_client: standard output: %s\n", strerror(errno));
        client.status = 1;
    }
    return client.status;
}
