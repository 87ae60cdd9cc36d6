#!/usr/bin/env python3
"""Every spec rule id the tree cites has an entry in docs/semantics.md (issue 9 item 1).

Usage: rule_ids.py SOURCE_DIR [--list]

Reads the text files under src/ include/ tests/ tools/ examples/ fuzz/ bench/
(not fuzz/corpus: fuzzer inputs cite nothing), collects the rule ids they cite
and compares them with the entries of docs/semantics.md, one heading each
("### L13").  Exit 0 when every cited id has an entry, 1 otherwise, with each
missing id and where it is cited.  --list prints every cited id, its number of
citations and its first place, then exits 0.

What counts as a citation: a letter the spec uses for rules (L D S F C W X)
followed by a number without a leading zero, standing alone ("L13", "(D8)",
"S11:", "C16.2", "C6b", "C6(a)"): not inside a word or a number ("x86_64",
"IPv4", "0xD1", "s6_addr"), not a shell variable ("$P1", "S1=").  A range of
one letter ("L5-L14", "C5–C11") cites every id in it.  Sub-items (C6b, C16.2)
count as their rule (C6, C16).  The spans in ALLOW are not citations.
"""
import os
import re
import sys

DIRS = ("src", "include", "tests", "tools", "examples", "fuzz", "bench")
SKIP_DIRS = {".git", "corpus", "__pycache__"}
SELF = {os.path.join("tests", "checks", "rule_ids.py"), os.path.join("tests", "checks", "rule_ids.sh")}
DOC = os.path.join("docs", "semantics.md")

# Spans that look like rule ids and are not (regex, why).  Keep it short:
# prefer rewording a comment over growing this list.
ALLOW = [
    # "C0, DEL and the C1 range", "C0 but tab, DEL, C1", "C1 controls": the
    # control-character sets of ISO 6429 (chatd).
    (r"\bC0\b[^.;]{0,30}?\bC1\b|\bC1 controls?\b", "control-character sets"),
    (r"\b[LD][1-3] (data )?cache", "CPU caches"),
    (r"\b(ISO |std=|ANSI )C(89|99|11|17|23)\b", "C language standards"),
]

ID = r"(?<![A-Za-z0-9_$.{])([LDSFCWX])([1-9][0-9]{0,2})(?:[a-d]|\.[0-9]+|\([a-d]\))?(?![A-Za-z0-9_=])"
RANGE = re.compile(ID + r"\s*[-\u2013]\s*" + ID)
SINGLE = re.compile(ID)
ALLOW_RE = [re.compile(a) for a, _ in ALLOW]
ENTRY = re.compile(r"^#{2,4}\s+([LDSFCWX][0-9]+)\b", re.M)


def text_of(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None  # binary
    return data.decode("utf-8", "replace")


def files(root):
    for top in DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("build"))
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                if rel not in SELF:
                    yield rel, path


def blank(text):
    """text with the allowed spans blanked (line ends kept, so lines keep their numbers)."""
    for rx in ALLOW_RE:
        text = rx.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    return text


def cited(root):
    """{id: [place, ...]} for every id cited under root."""
    out = {}

    def add(ident, place):
        out.setdefault(ident, []).append(place)

    for rel, path in files(root):
        text = text_of(path)
        if text is None:
            continue
        # Allowed spans may run over a line end (a comment that wraps).
        text = blank(text)
        for no, line in enumerate(text.split("\n"), 1):
            place = "%s:%d" % (rel, no)
            taken = []
            for m in RANGE.finditer(line):
                (a, lo, b, hi) = m.group(1, 2, 3, 4)
                lo, hi = int(lo), int(hi)
                if a == b and lo < hi <= lo + 30:
                    for n in range(lo, hi + 1):
                        add("%s%d" % (a, n), place)
                    taken.append(m.span())
            for m in SINGLE.finditer(line):
                if any(s <= m.start() < e for s, e in taken):
                    continue
                add(m.group(1) + m.group(2), place)
    return out


def key(ident):
    return ("LDSFCWX".index(ident[0]), int(ident[1:]))


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    root = args[0] if args else "."
    refs = cited(root)
    if "--list" in argv:
        for ident in sorted(refs, key=key):
            print("%-4s %4d  %s" % (ident, len(refs[ident]), refs[ident][0]))
        print("rule_ids: %d ids cited" % len(refs))
        return 0
    doc = text_of(os.path.join(root, DOC))
    if doc is None:
        print("rule_ids: %s is missing; the tree cites %d rule ids" % (DOC, len(refs)),
              file=sys.stderr)
        return 1
    entries = set(ENTRY.findall(doc))
    missing = sorted((i for i in refs if i not in entries), key=key)
    if not missing:
        print("rule_ids: all %d cited rule ids have an entry in %s (%d entries)"
              % (len(refs), DOC, len(entries)))
        return 0
    for ident in missing:
        places = refs[ident]
        more = " and %d more" % (len(places) - 5) if len(places) > 5 else ""
        print("rule_ids: %s has no entry in %s; cited at %s%s"
              % (ident, DOC, ", ".join(places[:5]), more), file=sys.stderr)
    print("rule_ids: %d of %d cited ids have no entry: add a '### ID' entry to %s, "
          "or fix the citation" % (len(missing), len(refs), DOC), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
