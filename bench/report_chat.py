#!/usr/bin/env python3
"""Turn the raw lines of bench/run_chat.sh into the markdown tables of
docs/BENCHMARKS.md: the median of every (server, row, metric) over the
rounds, and the ratio to the libevent version (issue 4's target).

usage: report_chat.py RAW_FILE [SERVERS...]

Each raw line is `server=S row=NxK round=R` followed by lineload's
key=value output; status=ok lines count, anything else does not.
"""
import sys

from report_lib import (latency_cell, load, med, num, others_line, placement_line, ratio_cell,
                        table_head)

NAMES = {
    "ac": "libasyncore chat channel",
    "acb": "libasyncore, coalesced ²",
    "libevent": "libevent bufferevent + evbuffer_readln",
    "asynchat": "Python asynchat",
}
BASE = "libevent"


def med_lines(runs, server, row, key):
    """A median of lines that counted something: a server that echoed
    nothing has no rate, latency or CPU time per line."""
    return med(runs, server, row, key, skip_empty=True)


def label(row):
    n, k = (int(x) for x in row.split("x"))
    c = "client" if n == 1 else "clients"
    return f"{n:,} {c}, {k} line{'s' if k != 1 else ''} in flight each"


def main():
    runs, rows = load(sys.argv[1])
    placement_line(sys.argv[1], "server on CPU 0, load generator on CPU 1")
    others_line(runs)
    servers = [s for s in (sys.argv[2:] or list(NAMES)) if any(k[0] == s for k in runs)]
    head, rule = table_head(servers, NAMES)

    out = [head, rule]
    for row in rows:
        base, _ = med_lines(runs, BASE, row, "rate")
        cells = [ratio_cell(*med_lines(runs, s, row, "rate"), base) for s in servers]
        out.append(f"| {label(row)}: lines/s | " + " | ".join(cells) + " |")
        cells = [latency_cell(runs, s, row, skip_empty=True) for s in servers]
        out.append(f"| {label(row)}: p50 / p99 line latency (µs) | " + " | ".join(cells) + " |")
    print("\n".join(out))
    print()
    print(f"Ratios are to the {NAMES[BASE]} column.  ¹ one sample.  n/a: did not run or "
          "did not finish.  ² bench/chat_ac.c -b: the same server with "
          "ac_chat_set_coalesce on, so the lines pushed while a read is handled "
          "leave in one sendmsg.")
    print()
    print("Server CPU time per line (µs, user + system, from /proc/PID/schedstat; "
          "lower is better):")
    print()
    print(head)
    print(rule)
    for row in rows:
        cells = []
        for s in servers:
            v, _ = med_lines(runs, s, row, "srv_ns_per_op")
            cells.append(num(v / 1000.0 if v is not None else None, 2))
        print(f"| {label(row)} | " + " | ".join(cells) + " |")
    print()
    print("CPU busy during the window, server / load generator (share of one CPU; "
          "a load generator near 1.00 set the pace, not the server):")
    print()
    print(head)
    print(rule)
    for row in rows:
        cells = []
        for s in servers:
            a, _ = med_lines(runs, s, row, "srv_cpu")
            b, _ = med_lines(runs, s, row, "lg_cpu")
            cells.append(f"{num(a, 2)} / {num(b, 2)}")
        print(f"| {label(row)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
