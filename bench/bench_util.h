/* Shared bits of the benchmark's echo servers (bench/peers/echo_*.c and
 * bench/echo_ac.c).  Header-only so that every server stays one translation unit. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>

/* The benchmark opens 10,000 idle connections: raise the soft descriptor
 * limit to the hard one. */
static inline void bench_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* argv[1] is the port (0 = the kernel picks), default 0.  Exits on junk. */
static inline int bench_port_arg(int argc, char **argv)
{
    if (argc < 2)
        return 0;
    char *end;
    long p = strtol(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end != '\0' || p < 0 || p > 65535) {
        fprintf(stderr, "usage: %s [PORT]   (0 = any free port)\n", argv[0]);
        exit(64);
    }
    return (int)p;
}

/* First line on stdout: "PORT <n>", the port actually bound, so that the
 * runner needs no fixed ports. */
static inline void bench_print_port(int fd)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    if (getsockname(fd, (struct sockaddr *)&sin, &len) == 0) {
        printf("PORT %d\n", ntohs(sin.sin_port));
        fflush(stdout);
    }
}

/* Listen backlog of every server: SOMAXCONN's value on current kernels.
 * The idle row opens 10,000 connections with 256 connects in flight; a
 * small backlog would drop SYNs and add 1 s retransmission stalls. */
#define BENCH_BACKLOG 4096

#endif
