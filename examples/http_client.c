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
 * connection; 1 when the connection failed, broke (a reset, even after
 * the body began) or timed out, the server sent nothing, or the body is
 * shorter than its Content-Length; 2 for bad arguments.
 *
 * usage: http_client [-t SECONDS] HOST PORT PATH
 *        http_client [-t SECONDS] http://HOST[:PORT][/PATH]
 */
#include "example.h"

#include <getopt.h>
#include <strings.h>

struct http_client {
    char buffer[2048]; /* the request; what is left of it to send */
    size_t len;
    const char *where; /* "HOST:PORT", for messages */
    size_t received;
    int status;              /* exit status so far */
    bool in_recv;            /* handle_close runs inside ac_recv: errno says why */
    char head[8192];         /* the response's headers, as they arrive */
    size_t head_len;         /* bytes in head */
    bool in_body;            /* the headers are over (or too long to follow) */
    long long length;        /* Content-Length, or -1 */
    unsigned long long body; /* body bytes received */
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

/* Follow the response as it passes: where the headers end, the
 * Content-Length they give, and how much body came, for handle_close. */
static void follow(struct http_client *c, const char *data, size_t n)
{
    if (c->in_body) {
        c->body += n;
        return;
    }
    size_t room = sizeof c->head - 1 - c->head_len, take = n < room ? n : room;
    memcpy(c->head + c->head_len, data, take);
    c->head_len += take;
    c->head[c->head_len] = '\0';
    char *end = strstr(c->head, "\r\n\r\n");
    if (!end) {
        c->in_body = take < n; /* headers beyond 8 KiB: stop following */
        return;
    }
    c->in_body = true;
    c->body = c->head_len - (size_t)(end + 4 - c->head) + (n - take);
    for (char *line = strstr(c->head, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n"))
        if (strncasecmp(line + 2, "Content-Length:", 15) == 0)
            c->length = strtoll(line + 17, NULL, 10);
}

static int client_handle_read(ac_dispatcher *d)
{
    struct http_client *c = ac_user(d);
    char data[8192];
    errno = 0; /* a clean EOF leaves it 0 for handle_close */
    c->in_recv = true;
    ssize_t n = ac_recv(d, data, sizeof data);
    c->in_recv = false;
    if (n == -EAGAIN)
        return 0;
    if (n <= 0) /* 0: EOF or a reset, handle_close has run (S11) */
        return (int)n;
    c->received += (size_t)n;
    follow(c, data, (size_t)n);
    errno = 0;
    if (fwrite(data, 1, (size_t)n, stdout) != (size_t)n)
        return AC_RAISE(d, errno ? errno : EIO, "write to standard output");
    return 0;
}

/* The end of the response, or not.  ac_recv calls this at EOF and for a
 * reset alike (S11), with recv's errno still set for a reset; poll and
 * epoll call it for POLLHUP/POLLERR (L13), the reset then still pending in
 * SO_ERROR. */
static int client_handle_close(ac_dispatcher *d)
{
    struct http_client *c = ac_user(d);
    int err = c->in_recv ? errno : ac_socket_error(d);
    err = err > 0 ? err : 0;
    char why[96];
    if (c->len > 0 || c->received == 0) { /* fail() closes, and only once */
        fail(d, "connection closed without a response", err);
    } else if (err) {
        fail(d, "connection broken", err);
    } else if (c->length >= 0 && c->body < (unsigned long long)c->length) {
        snprintf(why, sizeof why, "connection closed after %llu of %lld body bytes", c->body,
                 c->length);
        fail(d, why, 0);
    }
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
    ex_name(argv, "http_client");
    while ((opt = getopt_long(argc, argv, "t:hV", opts, NULL)) != -1) {
        if (opt != 't')
            return ex_usage(opt, "http_client", usage);
        timeout = strtod(optarg, &end);
        if (end == optarg || *end || !(timeout > 0))
            return ex_bad_usage("http_client", "'%s' is not a timeout (seconds > 0)", optarg);
    }
    char *host, *port_s, *path;
    if (argc - optind == 3) { /* PATH with or without its leading '/' */
        host = argv[optind], port_s = argv[optind + 1], path = argv[optind + 2];
        path += *path == '/';
    } else if (argc - optind != 1 || !split_url(argv[optind], &host, &port_s, &path)) {
        return ex_bad_usage("http_client", "%s", "give HOST PORT PATH, or an http:// URL");
    }
    int port = ex_port(port_s);
    if (port <= 0)
        return ex_bad_usage("http_client", "'%s' is not a port (1-65535)", port_s);
    if (strpbrk(path, " \r\n"))
        return ex_bad_usage("http_client", "'%s': a path has no spaces or line breaks", path);

    struct sockaddr_storage ss;
    socklen_t sslen;
    int rc = ex_resolve(host, port, false, &ss, &sslen);
    if (rc) {
        fprintf(stderr, "http_client: %s: %s\n", host, gai_strerror(rc));
        return 1;
    }
    char where[300];
    snprintf(where, sizeof where, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    struct http_client client = {.where = where, .length = -1};
    int n = snprintf(client.buffer, sizeof client.buffer, "GET /%s HTTP/1.0\r\nHost: %s\r\n\r\n",
                     path, where);
    if (n < 0 || (size_t)n >= sizeof client.buffer)
        return ex_bad_usage("http_client", "%s", "the request is too long");
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
