#!/usr/bin/env python3
"""Turn the raw lines of bench/run.sh into the markdown table of
docs/BENCHMARKS.md: the median of every (server, row, metric) over the
rounds, and the ratio to the hand-written epoll loop.

usage: report.py RAW_FILE [SERVERS...]

Each raw line is `server=S row=R round=N` followed by loadgen's key=value
output; status=ok lines count, anything else (timeout, fail) does not.
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
    "epoll": "epoll loop (limit)",
    "ac": "libasyncore",
    "libev": "libev",
    "libevent": "libevent",
    "libuv": "libuv",
    "asyncore": "Python asyncore",
}


def load(path):
    runs, groups = {}, {}
    with open(path) as f:
        for line in f:
            kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
            if "server" not in kv or "row" not in kv:
                continue
            groups.setdefault((kv["server"], kv["row"], kv.get("round")), []).append(kv)
    for (server, row, _round), lines in groups.items():
        runs.setdefault((server, row), []).extend(pick(lines))
    return runs


def med(runs, server, row, key):
    vals = [float(r[key]) for r in runs.get((server, row), [])
            if r.get("status") == "ok" and key in r and quiet(r)]
    return (statistics.median(vals), len(vals)) if vals else (None, 0)


def num(v, digits=0):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


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
    raw = sys.argv[1]
    servers = sys.argv[2:] or list(NAMES)
    runs = load(raw)
    others_line(runs)
    attempted = {s for (s, _r) in runs}
    servers = [s for s in servers if s in attempted or s == "ac"]

    def missing(s, row):
        # epoll and libasyncore set TCP_NODELAY themselves: no big100nd run.
        return "pending" if s == "ac" and row != "big100nd" else "—"

    def cell_ratio(row, key, digits=0, base_row=None):
        out = []
        base, _ = med(runs, "epoll", base_row or row, key)
        for s in servers:
            if (s, row) not in runs:
                out.append(missing(s, row))
                continue
            v, n = med(runs, s, row, key)
            if v is None:
                out.append("n/a")
                continue
            text = num(v, digits)
            if base:
                text += f" ({v / base:.2f}x)"
            if n == 1:
                text += " ¹"
            out.append(text)
        return out

    def cell_lat(row):
        out = []
        for s in servers:
            if (s, row) not in runs:
                out.append(missing(s, row))
                continue
            p50, _ = med(runs, s, row, "p50_us")
            p99, _ = med(runs, s, row, "p99_us")
            out.append("n/a" if p50 is None else f"{num(p50)} / {num(p99)}")
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

    def cell_cpu(row):
        out = []
        for s in servers:
            v, _ = med(runs, s, row, "srv_ns_per_op")
            out.append(missing(s, row) if (s, row) not in runs
                       else num(v / 1000.0 if v is not None else None, 1))
        return out

    idle = "10,000"
    for (s, row), rs in runs.items():
        for r in rs:
            if row == "idle" and "idle" in r:
                idle = f"{int(r['idle']):,}"

    lines = []
    lines.append("| row | " + " | ".join(NAMES.get(s, s) for s in servers) + " |")
    lines.append("|---|" + "---|" * len(servers))

    def add(label, cells, row):
        if any((s, row) in runs for s in servers):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")

    for n in (1, 100, 1000):
        row = f"rr{n}"
        c = "connection" if n == 1 else "connections"
        add(f"{n:,} {c}, 64 B: round trips/s", cell_ratio(row, "rate"), row)
        add(f"{n:,} {c}, 64 B: p50 / p99 latency (µs)", cell_lat(row), row)
    add("100 connections, 16 KiB: MB/s", cell_ratio("big100", "mbps"), "big100")
    add("100 connections, 16 KiB: p50 / p99 latency (µs)", cell_lat("big100"), "big100")
    add("100 connections, 16 KiB, peers given TCP_NODELAY: MB/s",
        cell_ratio("big100nd", "mbps", base_row="big100"), "big100nd")
    add(f"1 busy + {idle} idle: round trips/s of the busy one", cell_ratio("idle", "rate"), "idle")
    add(f"1 busy + {idle} idle: busy one vs its own 1-connection figure", cell_own_ratio(), "idle")
    add("new connections/s (connect, one 64 B echo, close; 32 in flight)",
        cell_ratio("connrate", "rate"), "connrate")
    add(f"user-space bytes per idle connection (VmRSS growth / {idle})",
        cell_plain("idle", "bytes_per_idle", unit=" B"), "idle")
    print("\n".join(lines))
    print()
    print("¹ one sample (the row ran in one round only).  n/a: did not run or "
          "did not finish within its time cap.  pending: not built yet.")

    print()
    print("Server CPU time per round trip (µs, user + system, from "
          "/proc/PID/schedstat; lower is better):")
    print()
    print("| row | " + " | ".join(NAMES.get(s, s) for s in servers) + " |")
    print("|---|" + "---|" * len(servers))
    for row, label in (("rr1", "1 connection, 64 B"), ("rr100", "100 connections, 64 B"),
                       ("rr1000", "1,000 connections, 64 B"),
                       ("big100", "100 connections, 16 KiB"),
                       ("idle", f"1 busy + {idle} idle"),
                       ("connrate", "per new connection")):
        if any((s, row) in runs for s in servers):
            print(f"| {label} | " + " | ".join(cell_cpu(row)) + " |")


if __name__ == "__main__":
    main()
