#!/usr/bin/env bash
# Every spec rule id cited in src/ include/ tests/ tools/ examples/ fuzz/
# bench/ has an entry in docs/semantics.md (issue 9 item 1).
# Usage: rule_ids.sh SOURCE_DIR [--list].  Exit 0 when each has one, 1 with
# every id that has none and where it is cited.  --list prints the cited ids.
# To fix: add a "### ID" entry to docs/semantics.md, or correct the citation.
# What counts as a citation, and the few look-alikes that do not, is written
# at the top of rule_ids.py beside this script.
set -euo pipefail
exec python3 "$(dirname "${BASH_SOURCE[0]}")/rule_ids.py" "${1:-.}" "${@:2}"
