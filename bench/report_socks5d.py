#!/usr/bin/env python3
"""report_socks5d.py RAW [PROXY...] -- the table of bench/run_socks5d.sh.

Reads the raw key=value lines, keeps status=ok ones, and prints one
markdown table: a row per measurement, a column per proxy, each cell the
median over the rounds (a superscript 1 marks a single sample), with the
ratio to direct where direct is the limit.  For the rows measured in
seconds the ratio is direct's time over the proxy's, so that on every row
a higher ratio is better and the issue's targets (bulk >= 0.6x, new
tunnels >= 0.8x, handshakes >= 0.5x) read straight off the table.
"""
import statistics
import sys
from collections import defaultdict

from report_lib import placement_line

NAMES = {
    "direct": "direct (limit)",
    "socks5d": "socks5d",
    "microsocks": "microsocks",
    "dante": "dante",
}

MIB512 = 512 * 1048576


def parse(path):
    recs = []
    for line in open(path):
        if line.startswith("#"):
            continue
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


def idle_metrics(kv):
    """KiB per idle tunnel: the Rss growth of a one-process proxy, the Pss
    growth summed over the processes of one with several (Rss would count
    their shared pages once per process)."""
    out = []
    procs = num(kv, "procs1")
    multi = procs is not None and procs > 1
    b = num(kv, "pss_per_idle" if multi else "rss_per_idle")
    if b is not None:
        out.append(("idle", b / 1024))
    if multi:
        out.append(("note", "Pss"))
    if procs is not None:
        out.append(("procs", procs))
    th = num(kv, "threads1")
    if th is not None:
        out.append(("threads", th))
    n = num(kv, "idle")
    if n is not None:
        out.append(("note", "n=%d" % n))
    return out


def metrics(kv):
    """(metric, value) pairs of one ok record."""
    row, prx = kv.get("row"), kv.get("proxy")
    out = []
    if row in ("bulk", "bulkh"):
        v, cpu, b = num(kv, "mbps"), num(kv, "prx_cpu_s"), num(kv, "bytes")
        if v is not None:
            out.append((row, v))
        if prx != "direct" and cpu is not None and b:
            out.append(("cpu_" + row, cpu * MIB512 / b))
    elif row in ("small", "smallc"):
        v = num(kv, "secs")
        if v is not None:
            out.append((row, v))
    elif row == "hs":
        v = num(kv, "rate")
        if v is not None:
            out.append((row, v))
        ns = num(kv, "srv_ns_per_op")
        if prx != "direct" and ns is not None:
            out.append(("cpu_hs", ns / 1000.0))
    elif row == "idle":
        out = idle_metrics(kv)
    return out


# (metric, label, format, ratio to direct: None, "rate" (proxy / direct)
# or "time" (direct / proxy)).  A row without any value is left out.
ROWS = [
    ("bulk", "bulk, one {big} file, curl --socks5, MB/s", "%.0f", "rate"),
    ("bulkh", "bulk, one {big} file, curl --socks5-hostname, MB/s", "%.0f", "rate"),
    ("cpu_bulk", "proxy CPU s per 512 MiB (--socks5)", "%.2f", None),
    ("cpu_bulkh", "proxy CPU s per 512 MiB (--socks5-hostname)", "%.2f", None),
    ("small", "{files} small files, {par} in flight, keep-alive, s", "%.2f", "time"),
    ("smallc", "{files} small files, {par} in flight, Connection: close (a tunnel each), s",
     "%.2f", "time"),
    ("hs", "SOCKS handshakes/s (greeting + CONNECT, {hsj} in flight)", "%.0f", "rate"),
    ("cpu_hs", "proxy CPU µs per handshake", "%.1f", None),
    ("idle", "KiB per idle tunnel", "%.2f", None),
    ("procs", "processes holding the idle tunnels", "%.0f", None),
    ("threads", "threads holding the idle tunnels", "%.0f", None),
]


def cell(v, base, fmt, ratio, is_direct):
    med = statistics.median(v)
    c = fmt % med
    if len(v) == 1:
        c += "¹"
    if ratio and base and not is_direct and med:
        c += " (%.2fx)" % (med / base if ratio == "rate" else base / med)
    return c


def sizes(recs):
    """The run's sizes, for the row labels, from its records."""
    def first(key, default):
        return next((r[key] for r in recs if key in r), default)
    return {"big": "%d MiB" % (int(first("bytes", MIB512)) // 1048576),
            "files": "{:,}".format(int(first("files", 2000))), "par": first("par", "64"),
            "hsj": first("inflight", "64")}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    placement_line(sys.argv[1], "client on CPU 1; nginx, the echo sink and the proxy on CPU 0")
    recs = [r for r in parse(sys.argv[1]) if r.get("status") == "ok"]
    prxs = sys.argv[2:] or list(NAMES)
    vals, notes = defaultdict(list), defaultdict(set)
    for kv in recs:
        for m, v in metrics(kv):
            if m == "note":
                notes[kv["proxy"]].add(v)
            else:
                vals[(m, kv["proxy"])].append(v)
    fill = sizes(recs)
    print("| | " + " | ".join(NAMES.get(p, p) for p in prxs) + " |")
    print("|---|" + "---:|" * len(prxs))
    for key, label, fmt, ratio in ROWS:
        if not any(vals.get((key, p)) for p in prxs):
            continue
        base = vals.get((key, "direct"))
        bmed = statistics.median(base) if base else None
        cells = []
        for p in prxs:
            v = vals.get((key, p))
            if not v:
                cells.append("—" if p == "direct" else "n/a")
            else:
                cells.append(cell(v, bmed, fmt, ratio, p == "direct"))
        print("| %s | %s |" % (label.format(**fill), " | ".join(cells)))
    print()
    print("Medians of %d counted runs; (x) = ratio to direct, higher is better on every row "
          "(for the rows in seconds: direct's time / the proxy's); ¹ = one sample." % len(recs))
    print("Proxy CPU: user + system time of the proxy's whole process tree (its session: "
          "the CPU clock of each process, which keeps the time of its exited threads, plus "
          "the children they reaped), over the transfer or the window.  Handshakes, direct: "
          "TCP connects/s to the sink (the connect completes).")
    idle = ["%s: %s" % (NAMES.get(p, p), ", ".join(sorted(notes[p]))) for p in prxs if notes.get(p)]
    if idle:
        print("Idle row: growth of the proxy's memory from 1 to 1 + n tunnels, per tunnel (Rss of "
              "the process; Pss summed over the processes where there are several): " +
              "; ".join(idle) + ".")


if __name__ == "__main__":
    main()
