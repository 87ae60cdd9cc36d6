#!/usr/bin/env python3
"""Turn the raw lines of bench/run.sh into the markdown table of
docs/BENCHMARKS.md: the median of every (server, row, metric) over the
rounds, and the ratio to the hand-written epoll loop.

usage: report.py RAW_FILE [SERVERS...]

Each raw line is `server=S row=R round=N` followed by loadgen's key=value
output; status=ok lines count, anything else (timeout, fail) does not.
"""
import sys

from report_lib import (latency_cell, load, med, num, others_line, placement_line, ratio_cell,
                        table_head)

NAMES = {
    "epoll": "epoll loop (limit)",
    "ac": "libasyncore",
    "example": "examples/echo_server",
    "libev": "libev",
    "libevent": "libevent",
    "libuv": "libuv",
    "asyncore": "Python asyncore",
}


def main():
    raw = sys.argv[1]
    servers = sys.argv[2:] or list(NAMES)
    runs, _rows = load(raw)
    placement_line(raw, "server on CPU 0, load generator on CPU 1")
    others_line(runs)
    attempted = {s for (s, _r) in runs}
    servers = [s for s in servers if s in attempted or s == "ac"]

    def missing(s, row):
        # epoll and libasyncore set TCP_NODELAY themselves, the example is
        # measured as shipped: no big100nd run.
        return "pending" if s == "ac" and row != "big100nd" else "—"

    def cell_ratio(row, key, digits=0, base_row=None):
        out = []
        base, _ = med(runs, "epoll", base_row or row, key)
        for s in servers:
            if (s, row) not in runs:
                out.append(missing(s, row))
                continue
            v, n = med(runs, s, row, key)
            out.append(ratio_cell(v, n, base, digits))
        return out

    def cell_lat(row):
        out = []
        for s in servers:
            if (s, row) not in runs:
                out.append(missing(s, row))
                continue
            out.append(latency_cell(runs, s, row))
        return out

    def cell_plain(row, key, digits=0, unit=""):
        out = []
        for s in servers:
            if (s, row) not in runs:
                out.append(missing(s, row))
                continue
            v, n = med(runs, s, row, key)
            out.append("n/a" if v is None else num(v, digits) + unit + (" ¹" if n == 1 else ""))
        return out

    def cell_own_ratio():
        out = []
        for s in servers:
            busy, _ = med(runs, s, "idle", "rate")
            alone, _ = med(runs, s, "rr1", "rate")
            if (s, "idle") not in runs:
                out.append(missing(s, "idle"))
            elif busy is None or not alone:
                out.append("n/a")
            else:
                out.append(f"{busy / alone:.2f}x")
        return out

    def cell_cpu(row, base_row=None):
        """Server CPU µs per operation, and its ratio to the epoll loop's."""
        out = []
        base, _ = med(runs, "epoll", base_row or row, "srv_ns_per_op")
        for s in servers:
            if (s, row) not in runs:
                out.append(missing(s, row))
                continue
            v, n = med(runs, s, row, "srv_ns_per_op")
            us = None if v is None else v / 1000.0
            out.append(ratio_cell(us, n, base / 1000.0 if base else None, 1))
        return out

    idle = "10,000"
    for (s, row), rs in runs.items():
        for r in rs:
            if row == "idle" and "idle" in r:
                idle = f"{int(r['idle']):,}"

    head = table_head(servers, NAMES)
    lines = list(head)

    def add(label, cells, row):
        if any((s, row) in runs for s in servers):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")

    cpu_rt = "server CPU µs per round trip"
    for n in (1, 100, 1000):
        row = f"rr{n}"
        c = "connection" if n == 1 else "connections"
        add(f"{n:,} {c}, 64 B: round trips/s", cell_ratio(row, "rate"), row)
        add(f"{n:,} {c}, 64 B: {cpu_rt}", cell_cpu(row), row)
        add(f"{n:,} {c}, 64 B: p50 / p99 latency (µs)", cell_lat(row), row)
    add("100 connections, 16 KiB: MB/s", cell_ratio("big100", "mbps"), "big100")
    add(f"100 connections, 16 KiB: {cpu_rt}", cell_cpu("big100"), "big100")
    add("100 connections, 16 KiB: p50 / p99 latency (µs)", cell_lat("big100"), "big100")
    add("100 connections, 16 KiB, peers given TCP_NODELAY: MB/s",
        cell_ratio("big100nd", "mbps", base_row="big100"), "big100nd")
    add(f"100 connections, 16 KiB, peers given TCP_NODELAY: {cpu_rt}",
        cell_cpu("big100nd", base_row="big100"), "big100nd")
    add(f"1 busy + {idle} idle: round trips/s of the busy one", cell_ratio("idle", "rate"), "idle")
    add(f"1 busy + {idle} idle: {cpu_rt} of the busy one", cell_cpu("idle"), "idle")
    add(f"1 busy + {idle} idle: busy one vs its own 1-connection figure", cell_own_ratio(), "idle")
    add("new connections/s (connect, one 64 B echo, close; 32 in flight)",
        cell_ratio("connrate", "rate"), "connrate")
    add("new connections: server CPU µs per connection", cell_cpu("connrate"), "connrate")
    add(f"user-space bytes per idle connection (VmRSS growth / {idle})",
        cell_plain("idle", "bytes_per_idle", unit=" B"), "idle")
    print("\n".join(lines))
    print()
    print("(x): ratio to the epoll loop.  Server CPU µs: user + system time of the "
          "server over the window (/proc/PID/schedstat) divided by the round trips "
          "or connections; lower is better, and it holds when the load generator, not "
          "the server, sets the pace.  ¹ one sample (the row ran in one round only).  "
          "n/a: did not run or did not finish within its time cap.  pending: not "
          "built yet.")


if __name__ == "__main__":
    main()
