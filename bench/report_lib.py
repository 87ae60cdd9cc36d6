"""What bench/report.py, report_chat.py and report_portfwd.py share:
reading the raw lines of bench/run*.sh, choosing which attempt of a
measurement counts, medians, and the cells and lines of their tables.

A raw line is `server=S row=R round=N` followed by the load generator's
key=value output; status=ok lines count, anything else (timeout, fail, and
the attempts discarded as steal or busy) does not.
"""
import os
import statistics


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


def load(path):
    """runs: {(server, row): [line, ...]}, each measurement's attempts
    through pick(); rows: the rows in the order they first appear."""
    runs, rows, groups = {}, [], {}
    with open(path) as f:
        for line in f:
            kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
            if "server" not in kv or "row" not in kv:
                continue
            if kv["row"] not in rows:
                rows.append(kv["row"])
            groups.setdefault((kv["server"], kv["row"], kv.get("round")), []).append(kv)
    for (server, row, _round), lines in groups.items():
        runs.setdefault((server, row), []).extend(pick(lines))
    return runs, rows


def med(runs, server, row, key, skip_empty=False):
    """(median of key over the counted lines, how many), or (None, 0).
    skip_empty: lines that counted nothing (count=0) do not count."""
    vals = [float(r[key]) for r in runs.get((server, row), [])
            if r.get("status") == "ok" and key in r and quiet(r)
            and (not skip_empty or float(r.get("count", 1)) > 0)]
    return (statistics.median(vals), len(vals)) if vals else (None, 0)


def num(v, digits=0):
    return "n/a" if v is None else f"{v:,.{digits}f}"


def ratio_cell(v, n, base, digits=0):
    """A median, its ratio to base's, and ¹ when it is one sample."""
    if v is None:
        return "n/a"
    text = num(v, digits)
    if base:
        text += f" ({v / base:.2f}x)"
    if n == 1:
        text += " ¹"
    return text


def latency_cell(runs, server, row, skip_empty=False):
    p50, _ = med(runs, server, row, "p50_us", skip_empty)
    p99, _ = med(runs, server, row, "p99_us", skip_empty)
    return "n/a" if p50 is None else f"{num(p50)} / {num(p99)}"


def table_head(servers, names):
    """The header line and the rule line of a table with a column per
    server."""
    return ("| row | " + " | ".join(names.get(s, s) for s in servers) + " |",
            "|---|" + "---|" * len(servers))


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


def run_info(path):
    """The run's own line that bench/lib.sh writes first (bench=NAME
    placement=pinned|unpinned rounds= secs= warmup= quick=), or {} for a raw
    file written before there was one."""
    with open(path) as f:
        for line in f:
            kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
            if "bench" in kv:
                return kv
    return {}


def placement_line(path, pinned):
    """Which placement the table is (pinned: what the caller's benchmark
    pins where), and whether it was a quick run; nothing for old files."""
    info = run_info(path)
    if not info:
        return
    if info.get("placement") == "pinned":
        text = f"Placement: pinned ({pinned})."
    else:
        text = "Placement: unpinned (NOPIN=1: the scheduler places every process)."
    if info.get("quick", "0") not in ("", "0"):
        text += (f"  Quick run (QUICK=1): {info.get('rounds')} round, {info.get('secs')} s "
                 "windows, no reruns: a before/after check, not figures for docs/.")
    print(text)
    print()
