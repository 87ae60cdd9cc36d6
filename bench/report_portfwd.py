#!/usr/bin/env python3
"""report_portfwd.py RAW [FWD...] -- the table of bench/run_portfwd.sh.

Reads the raw key=value lines, keeps status=ok ones, and prints one
markdown table: a row per measurement, a column per forwarder, each cell
the median over the rounds (a superscript 1 marks a single sample), with
the ratio to direct where direct is the limit.  Each rate row is followed
by the forwarder's CPU per operation; the table says its placement.
"""
import statistics
import sys
from collections import defaultdict

from report_lib import placement_line

FWD_NAMES = {
    "direct": "direct (limit)",
    "portfwd": "portfwd",
    "portfwd-ns": "portfwd --no-splice",
    "socat": "socat",
    "rinetd": "rinetd",
    "redir": "redir",
    "haproxy": "haproxy",
    "asyncore": "Python asyncore",
}


def parse(path):
    recs = []
    for line in open(path):
        kv = {}
        for tok in line.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                kv.setdefault(k, v)  # first occurrence wins
        recs.append(kv)
    return recs


def num(kv, k):
    try:
        return float(kv[k])
    except (KeyError, ValueError):
        return None


# Forwarders that fork a process per connection.  Their CPU per round
# trip or connection counts only when loadgen summed the forwarder's
# session (srv_scope=session, bench/load/procstat.h); redir's connection
# processes, which init reaps, take their time with them when they exit,
# so its CPU per connection cannot be had that way.
FORKING = ("socat", "redir")
NO_CPU = {("redir", "connrate")}


def metrics(kv):
    """(metric, value) pairs of one ok record."""
    row = kv.get("row")
    fwd = kv.get("fwd")
    out = []
    if row in ("rr1", "rr50", "connrate") and fwd != "direct" and (fwd, row) not in NO_CPU:
        ns = num(kv, "srv_ns_per_op")
        if ns is not None and (fwd not in FORKING or kv.get("srv_scope") == "session"):
            out.append(("cpu_" + row, ns / 1000.0))
    if row == "syscalls":
        v = num(kv, "per_conn")
        if v is not None:
            out.append((row, v))
    elif row in ("bulk1", "bulk4", "bulk1R"):
        g = num(kv, "gbps")
        if g is not None:
            out.append((row, g))
        cpu, moved = num(kv, "fwd_cpu_s"), num(kv, "moved_bytes")
        if row in ("bulk1", "bulk1R") and kv.get("fwd") != "direct" and cpu is not None and moved:
            out.append(("cpu_" + row, cpu / (moved / 1e9)))
    elif row in ("rr1", "rr50", "connrate"):
        r = num(kv, "rate")
        if r is not None:
            out.append((row, r))
    elif row == "idle":
        idle = num(kv, "idle")
        if kv.get("kids") not in (None, "0"):
            # One process per relayed connection (the busy one included):
            # the children's Pss sum per child, plus the parent's growth.
            pss, kids = num(kv, "kids_pss_kb"), num(kv, "kids")
            b = num(kv, "bytes_per_idle") or 0.0
            if pss is not None and kids:
                out.append(("idle", (pss * 1024 / kids + b) / 1024))
                out.append(("idle_note", "children Pss"))
        else:
            b = num(kv, "bytes_per_idle")
            if b is not None:
                out.append(("idle", b / 1024))
        if idle is not None:
            out.append(("idle_n", idle))
    return out


# (metric, label, format, ratio to direct); a row none of whose cells has a
# value (a row that did not run, or a raw file older than the row) is left
# out.
ROWS = [
    ("bulk1", "bulk, 1 stream, Gbit/s", "%.2f", True),
    ("cpu_bulk1", "forwarder CPU s per GB (bulk 1 stream)", "%.2f", False),
    ("bulk4", "bulk, 4 streams (-P 4), Gbit/s", "%.2f", True),
    ("bulk1R", "bulk, 1 stream reversed (-R), Gbit/s", "%.2f", True),
    ("cpu_bulk1R", "forwarder CPU s per GB (bulk reversed)", "%.2f", False),
    ("rr1", "64 B round trips/s, 1 connection", "%.0f", True),
    ("cpu_rr1", "forwarder CPU µs per round trip, 1 connection", "%.1f", False),
    ("rr50", "64 B round trips/s, 50 connections", "%.0f", True),
    ("cpu_rr50", "forwarder CPU µs per round trip, 50 connections", "%.1f", False),
    ("connrate", "connections/s (connect, 64 B echo, close)", "%.0f", True),
    ("cpu_connrate", "forwarder CPU µs per connection", "%.1f", False),
    ("syscalls", "system calls per relayed connection (strace -c -f, {conns} connections)",
     "%.1f", False),
    ("idle", "user-space KiB per idle relayed connection", "%.1f", False),
]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    placement_line(sys.argv[1], "client on CPU 1; server and forwarder on CPU 0")
    recs = [r for r in parse(sys.argv[1]) if r.get("status") == "ok"]
    fwds = sys.argv[2:] or list(FWD_NAMES)
    vals = defaultdict(list)
    notes = defaultdict(set)
    for kv in recs:
        for m, v in metrics(kv):
            if m == "idle_note":
                notes[kv["fwd"]].add(v)
            elif m == "idle_n":
                notes[kv["fwd"]].add("n=%d" % v)
            else:
                vals[(m, kv["fwd"])].append(v)
    # The syscalls row's connections per run (1,000; a quick run has fewer).
    conns = "/".join(sorted({"{:,}".format(int(r["conns"])) for r in recs
                             if r.get("row") == "syscalls" and "conns" in r})) or "1,000"
    print("| | " + " | ".join(FWD_NAMES.get(f, f) for f in fwds) + " |")
    print("|---|" + "---:|" * len(fwds))
    for key, label, fmt, ratio in ROWS:
        if key.startswith(("cpu_rr", "cpu_conn", "syscalls")) and not any(
                vals.get((key, f)) for f in fwds):
            continue
        cells = []
        base = vals.get((key, "direct"))
        bmed = statistics.median(base) if base else None
        for f in fwds:
            v = vals.get((key, f))
            if not v:
                if f == "direct" and not ratio:
                    cells.append("—")
                elif key.startswith("cpu_") and (f, key[4:]) in NO_CPU:
                    cells.append("n/a ³")
                else:
                    cells.append("n/a")
                continue
            med = statistics.median(v)
            c = fmt % med
            if len(v) == 1:
                c += "¹"
            if ratio and bmed and f != "direct":
                c += " (%.2fx)" % (med / bmed)
            cells.append(c)
        print("| %s | %s |" % (label.format(conns=conns), " | ".join(cells)))
    idle_notes = []
    for f in fwds:
        if notes.get(f):
            idle_notes.append("%s: %s" % (FWD_NAMES.get(f, f), ", ".join(sorted(notes[f]))))
    print()
    print("Medians of %d counted runs; (x) = ratio to direct; ¹ = one sample." % len(recs))
    if any(k[0].startswith(("cpu_rr", "cpu_conn")) for k in vals):
        print("Forwarder CPU µs: user + system time over the window of the forwarder's "
              "session (/proc/PID/task/*/schedstat of each of its processes, plus the "
              "time of the children they reaped) per round trip or connection; lower is "
              "better." + ("  ³ redir double-forks, so init reaps its connection processes "
                           "and their time is lost." if "redir" in fwds else ""))
    if any(k[0] == "syscalls" for k in vals):
        print("System calls: strace -c -f attached to the forwarder (its processes "
              "included) over %s connections of the connection row, in a run of its "
              "own; total calls (epoll_wait included) / connections.  The per-call "
              "counts are in the raw file (# lines)." % conns)
    if idle_notes:
        print("Idle row, connections held per forwarder: " + "; ".join(idle_notes) + ".")


if __name__ == "__main__":
    main()
