#!/usr/bin/env python3
"""report_portfwd.py RAW [FWD...] -- the table of bench/run_portfwd.sh.

Reads the raw key=value lines, keeps status=ok ones, and prints one
markdown table: a row per measurement, a column per forwarder, each cell
the median over the rounds (a superscript 1 marks a single sample), with
the ratio to direct where direct is the limit.
"""
import statistics
import sys
from collections import defaultdict

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


def metrics(kv):
    """(metric, value) pairs of one ok record."""
    row = kv.get("row")
    out = []
    if row in ("bulk1", "bulk4", "bulk1R"):
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


ROWS = [
    ("bulk1", "bulk, 1 stream, Gbit/s", "%.2f", True),
    ("bulk4", "bulk, 4 streams (-P 4), Gbit/s", "%.2f", True),
    ("bulk1R", "bulk, 1 stream reversed (-R), Gbit/s", "%.2f", True),
    ("rr1", "64 B round trips/s, 1 connection", "%.0f", True),
    ("rr50", "64 B round trips/s, 50 connections", "%.0f", True),
    ("connrate", "connections/s (connect, 64 B echo, close)", "%.0f", True),
    ("cpu_bulk1", "forwarder CPU s per GB (bulk 1 stream)", "%.2f", False),
    ("cpu_bulk1R", "forwarder CPU s per GB (bulk reversed)", "%.2f", False),
    ("idle", "user-space KiB per idle relayed connection", "%.1f", False),
]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
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
    print("| | " + " | ".join(FWD_NAMES.get(f, f) for f in fwds) + " |")
    print("|---|" + "---:|" * len(fwds))
    for key, label, fmt, ratio in ROWS:
        cells = []
        base = vals.get((key, "direct"))
        bmed = statistics.median(base) if base else None
        for f in fwds:
            v = vals.get((key, f))
            if not v:
                cells.append("n/a" if not (f == "direct" and not ratio) else "—")
                continue
            med = statistics.median(v)
            c = fmt % med
            if len(v) == 1:
                c += "¹"
            if ratio and bmed and f != "direct":
                c += " (%.2fx)" % (med / bmed)
            cells.append(c)
        print("| %s | %s |" % (label, " | ".join(cells)))
    idle_notes = []
    for f in fwds:
        if notes.get(f):
            idle_notes.append("%s: %s" % (FWD_NAMES.get(f, f), ", ".join(sorted(notes[f]))))
    print()
    print("Medians of %d counted runs; (x) = ratio to direct; ¹ = one sample." % len(recs))
    if idle_notes:
        print("Idle row, connections held per forwarder: " + "; ".join(idle_notes) + ".")


if __name__ == "__main__":
    main()
