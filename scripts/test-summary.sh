#!/usr/bin/env bash
# The end of `make test`: sums up the logs it wrote, ctest's of each tree
# ("N% tests passed, F tests failed out of T") and the fuzzers' ("fuzz: P
# passed, F failed"), in one last line that CI reads:
#
#   summary: N passed, N failed
#
# Usage: test-summary.sh LOG...  Logs that do not exist are skipped (a run
# stopped early).  It only reports: `make test`'s exit status is that of
# the runs themselves.
set -u

logs=()
for f in "$@"; do
    [ -f "$f" ] && logs+=("$f")
done

echo "== summary"
if [ ${#logs[@]} -eq 0 ]; then
    echo "summary: 0 passed, 0 failed"
    exit 0
fi
grep -H -e 'tests failed out of' -e '^fuzz: ' "${logs[@]}"
awk '/tests failed out of/ { f += $4; t += $NF }
     /^fuzz: [0-9]+ passed, [0-9]+ failed/ { t += $2 + $4; f += $4 }
     END { printf "summary: %d passed, %d failed\n", t - f, f }' "${logs[@]}"
exit 0
