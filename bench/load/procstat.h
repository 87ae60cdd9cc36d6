/* What both load generators (loadgen.c, lineload.c) read off the clock
 * and /proc: the time, the server's CPU time, and how much of the machine
 * the hypervisor and the other processes took during a window. */
#ifndef BENCH_PROCSTAT_H
#define BENCH_PROCSTAT_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The first number of a schedstat file: the task's CPU time in ns. */
static uint64_t schedstat_ns(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    unsigned long long ns = 0;
    if (fscanf(f, "%llu", &ns) != 1)
        ns = 0;
    fclose(f);
    return ns;
}

/* Server CPU time in ns (user + system, as the scheduler counts it). */
static uint64_t server_cpu_ns(int pid)
{
    if (pid <= 0)
        return 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
    return schedstat_ns(path);
}

/* CPU time in ns of every process of session sid (bench/run_portfwd.sh
 * starts each forwarder with setsid): the schedstat of each of their
 * threads, plus their cutime + cstime, the time of the children they have
 * reaped.  A forking forwarder's connection process that exits during a
 * window is then still counted if its parent reaps it (socat); redir's,
 * which double-forks so that init reaps them, is lost.  Read at the start
 * and the end of a window only (it walks /proc). */
static inline uint64_t session_cpu_ns(int sid)
{
    DIR *proc = opendir("/proc");
    if (!proc || sid <= 0) {
        if (proc)
            closedir(proc);
        return 0;
    }
    long hz = sysconf(_SC_CLK_TCK);
    uint64_t ns = 0;
    struct dirent *e;
    while ((e = readdir(proc)) != NULL) {
        char path[600], buf[1024];
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        int session = 0;
        unsigned long long cut = 0, cst = 0;
        if (!p ||
            sscanf(p + 1, " %*c %*d %*d %d %*d %*d %*u %*u %*u %*u %*u %*u %*u %llu %llu", &session,
                   &cut, &cst) != 3 ||
            session != sid)
            continue;
        if (hz > 0)
            ns += (cut + cst) * 1000000000ull / (unsigned long long)hz;
        snprintf(path, sizeof path, "/proc/%s/task", e->d_name);
        DIR *tasks = opendir(path);
        struct dirent *t;
        while (tasks && (t = readdir(tasks)) != NULL) {
            if (t->d_name[0] < '1' || t->d_name[0] > '9')
                continue;
            snprintf(path, sizeof path, "/proc/%s/task/%s/schedstat", e->d_name, t->d_name);
            ns += schedstat_ns(path);
        }
        if (tasks)
            closedir(tasks);
    }
    closedir(proc);
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
