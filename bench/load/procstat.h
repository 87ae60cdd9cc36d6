/* What both load generators (loadgen.c, lineload.c) read off the clock
 * and /proc: the time, the server's CPU time, and how much of the machine
 * the hypervisor and the other processes took during a window. */
#ifndef BENCH_PROCSTAT_H
#define BENCH_PROCSTAT_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Server CPU time in ns (user + system, as the scheduler counts it). */
static uint64_t server_cpu_ns(int pid)
{
    if (pid <= 0)
        return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    unsigned long long ns = 0;
    if (fscanf(f, "%llu", &ns) != 1)
        ns = 0;
    fclose(f);
    return ns;
}

/* Time stolen from this virtual machine by its host, all CPUs, in USER_HZ
 * ticks (the 8th field of /proc/stat's "cpu" line).  A window during which
 * the host took CPU time away is not a measurement of the server. */
static unsigned long long steal_ticks(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    unsigned long long v[8] = {0};
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7]) != 8)
        v[7] = 0;
    fclose(f);
    return v[7];
}

/* User time (user + nice, USER_HZ ticks) of every process but the server
 * and this one: the other users of the machine.  A window in which they
 * took a sizeable share of the CPUs measured them too.  Reported as
 * others_pct; bench/run.sh reruns such a window like a stolen one. */
static unsigned long long proc_utime_ticks(const char *pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ut = 0;
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu", &ut) != 1)
        return 0;
    return ut;
}

static unsigned long long others_ticks(int server_pid)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    unsigned long long user = 0, nice_t = 0;
    if (fscanf(f, "cpu %llu %llu", &user, &nice_t) != 2)
        user = nice_t = 0;
    fclose(f);
    char pid[32];
    snprintf(pid, sizeof pid, "%d", server_pid);
    unsigned long long ours =
        proc_utime_ticks("self") + (server_pid > 0 ? proc_utime_ticks(pid) : 0);
    return user + nice_t - ours;
}

#endif
