/* echo_libuv — the echo server as libuv's guide writes it
 * (docs/code/tcp-echo-server): uv_read_start with an allocator that mallocs
 * the suggested 64 KiB, and a uv_write of that same buffer, freed in the
 * write callback.
 *
 * Like the guide it leaves Nagle on: `-n` calls uv_tcp_nodelay on accepted
 * sockets (used by the supplementary row of bench/run.sh).
 *
 * usage: echo_libuv [-n] [PORT]   (0 = any; prints "PORT <n>" first)
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "../bench_util.h"

typedef struct {
    uv_write_t req;
    uv_buf_t buf;
} write_req;

static uv_loop_t *loop;
static bool nodelay;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = suggested;
}

static void on_close(uv_handle_t *h) { free(h); }

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    write_req *wr = (write_req *)req;
    free(wr->buf.base);
    free(wr);
}

static void on_read(uv_stream_t *client, ssize_t nread, const uv_buf_t *buf)
{
    if (nread > 0) {
        write_req *wr = malloc(sizeof *wr);
        wr->buf = uv_buf_init(buf->base, (unsigned)nread);
        uv_write(&wr->req, client, &wr->buf, 1, on_written);
        return;
    }
    if (nread < 0 && !uv_is_closing((uv_handle_t *)client))
        uv_close((uv_handle_t *)client, on_close);
    free(buf->base);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    uv_tcp_t *client = malloc(sizeof *client);
    uv_tcp_init(loop, client);
    if (uv_accept(server, (uv_stream_t *)client) != 0) {
        uv_close((uv_handle_t *)client, on_close);
        return;
    }
    if (nodelay)
        uv_tcp_nodelay(client, 1);
    uv_read_start((uv_stream_t *)client, on_alloc, on_read);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    uv_stop(s->loop);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "-n")) {
        nodelay = true;
        argc--, argv++;
    }
    int port = bench_port_arg(argc, argv);
    bench_raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();

    uv_tcp_t server;
    uv_tcp_init(loop, &server);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    int r = uv_listen((uv_stream_t *)&server, BENCH_BACKLOG, on_connection);
    if (r) {
        fprintf(stderr, "echo_libuv: listen: %s\n", uv_strerror(r));
        return 1;
    }
    uv_os_fd_t fd;
    uv_fileno((uv_handle_t *)&server, &fd);
    bench_print_port(fd);

    uv_signal_t sint, sterm;
    uv_signal_init(loop, &sint);
    uv_signal_init(loop, &sterm);
    uv_signal_start(&sint, on_signal, SIGINT);
    uv_signal_start(&sterm, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
