#!/usr/bin/env bash
# Every C file in git agrees with .clang-format (issue 9 item 7).
# Usage: format.sh SOURCE_DIR.  Exit 0 clean, 1 with the files that are
# not, 77 (skipped) when clang-format is not the version the tree was
# formatted with: another version lays some constructs out differently.
# To fix: clang-format -i FILE (or the whole list this prints).
set -euo pipefail
cd "${1:-.}"

want=14
if ! command -v clang-format >/dev/null; then
    echo "format.sh: clang-format is not installed (Debian: apt-get install clang-format)" >&2
    exit 1
fi
have=$(clang-format --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p')
if [ "$have" != "$want" ]; then
    echo "format.sh: skipped: clang-format $have here, the tree follows clang-format $want"
    exit 77
fi

bad=()
while IFS= read -r -d '' f; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files -z '*.c' '*.h' 2>/dev/null || find src include tests tools examples fuzz bench -name '*.[ch]' -print0)

if [ ${#bad[@]} -gt 0 ]; then
    echo "format.sh: ${#bad[@]} file(s) disagree with .clang-format; run:" >&2
    echo "  clang-format -i ${bad[*]}" >&2
    exit 1
fi
echo "format.sh: every C file follows .clang-format"
