#!/usr/bin/env python3
"""Turn the raw lines of bench/run_chat.sh into the markdown tables of
docs/BENCHMARKS.md: the median of every (server, row, metric) over the
rounds, and the ratio to the libevent version (issue 4's target).

usage: report_chat.py RAW_FILE [SERVERS...]

Each raw line is `server=S row=NxK round=R` followed by lineload's
key=value output; status=ok lines count, anything else does not.
"""
import os
import statistics
import sys


def disturbance(r):
    """Percent of the CPUs the window lost to the hypervisor (steal) and to
    the machine's other processes (others)."""
    return float(r.get("steal_pct", 0)) + float(r.get("others_pct", 0))


# QUIET_MAX=PCT in the environment: count only windows that lost at most
# PCT percent of the CPUs to the hypervisor and other processes (a table of
# the quiet windows alone; cells may then have fewer samples, or none).
QUIET_MAX = float(os.environ["QUIET_MAX"]) if os.environ.get("QUIET_MAX") else None


def quiet(r):
    return QUIET_MAX is None or ("others_pct" in r and disturbance(r) <= QUIET_MAX)


def pick(lines):
    """The lines of one measurement (same server, row and round): the
    attempts bench/run*.sh discarded (steal, busy) and the one it kept.
    The least disturbed attempt counts: the one whose window lost the
    smallest share of the CPUs to the hypervisor and to other processes
    (steal_pct + others_pct); the kept one when those fields are missing."""
    idx = [i for i, r in enumerate(lines) if r.get("status") in ("ok", "busy", "steal")]
    if not idx:
        return lines
    if all("others_pct" in lines[i] and "steal_pct" in lines[i] for i in idx):
        best = min(idx, key=lambda i: disturbance(lines[i]))
    else:
        ok = [i for i in idx if lines[i].get("status") == "ok"]
        if not ok:
            return lines
        best = ok[-1]
    out = [dict(r) for r in lines]
    for i in idx:
        if i == best:
            out[i]["status"] = "ok"
        elif out[i]["status"] == "ok":
            out[i]["status"] = "busy"
    return out

NAMES = {
    "ac": "libasyncore chat channel",
    "acb": "libasyncore, coalesced ²",
    "libevent": "libevent bufferevent + evbuffer_readln",
    "asynchat": "Python asynchat",
}
BASE = "libevent"


def load(path):
    runs, order, groups = {}, [], {}
    with open(path) as f:
        for line in f:
            kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
            if "server" not in kv or "row" not in kv:
                continue
            if kv["row"] not in order:
                order.append(kv["row"])
            groups.setdefault((kv["server"], kv["row"], kv.get("round")), []).append(kv)
    for (server, row, _round), lines in groups.items():
        runs.setdefault((server, row), []).extend(pick(lines))
    return runs, order


def med(runs, server, row, key):
    vals = [float(r[key]) for r in runs.get((server, row), [])
            if r.get("status") == "ok" and key in r and quiet(r) and float(r.get("count", 1)) > 0]
    return (statistics.median(vals), len(vals)) if vals else (None, 0)


def num(v, digits=0):
    return "n/a" if v is None else f"{v:,.{digits}f}"


def label(row):
    n, k = (int(x) for x in row.split("x"))
    c = "client" if n == 1 else "clients"
    return f"{n:,} {c}, {k} line{'s' if k != 1 else ''} in flight each"


def others_line(runs):
    vals = sorted(float(r["others_pct"]) for rs in runs.values() for r in rs
                  if r.get("status") == "ok" and "others_pct" in r)
    if vals:
        dis = sorted(disturbance(r) for rs in runs.values() for r in rs
                     if r.get("status") == "ok" and "others_pct" in r)
        print(f"Counted runs: {len(vals)} (of each measurement's attempts the least "
              f"disturbed one).  CPU share their windows lost to other processes: median "
              f"{statistics.median(vals):.1f}%, max {vals[-1]:.1f}%; to other processes "
              f"and the hypervisor together: median {statistics.median(dis):.1f}%, "
              f"max {dis[-1]:.1f}%.")
        print()

def main():
    runs, rows = load(sys.argv[1])
    others_line(runs)
    servers = [s for s in (sys.argv[2:] or list(NAMES)) if any(k[0] == s for k in runs)]
    head = "| row | " + " | ".join(NAMES.get(s, s) for s in servers) + " |"
    rule = "|---|" + "---|" * len(servers)

    out = [head, rule]
    for row in rows:
        base, _ = med(runs, BASE, row, "rate")
        cells = []
        for s in servers:
            v, n = med(runs, s, row, "rate")
            if v is None:
                cells.append("n/a")
                continue
            t = num(v)
            if base:
                t += f" ({v / base:.2f}x)"
            if n == 1:
                t += " ¹"
            cells.append(t)
        out.append(f"| {label(row)}: lines/s | " + " | ".join(cells) + " |")
        cells = []
        for s in servers:
            p50, _ = med(runs, s, row, "p50_us")
            p99, _ = med(runs, s, row, "p99_us")
            cells.append("n/a" if p50 is None else f"{num(p50)} / {num(p99)}")
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
            v, _ = med(runs, s, row, "srv_ns_per_op")
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
            a, _ = med(runs, s, row, "srv_cpu")
            b, _ = med(runs, s, row, "lg_cpu")
            cells.append(f"{num(a, 2)} / {num(b, 2)}")
        print(f"| {label(row)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
