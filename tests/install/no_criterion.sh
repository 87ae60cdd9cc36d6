#!/usr/bin/env bash
# Issue 8 item 16: building and installing needs no test dependency.  A
# scratch tree is configured with pkg-config's search path emptied but for
# c-ares (a build dependency: libasyncore-resolver, issue 11), so Criterion
# (and every other .pc) is invisible; then `all` must build, the
# library and tools must install, and ctest must list the one test that
# stands for the missing suites and must fail.
# Usage: no_criterion.sh SOURCE_DIR
set -euo pipefail

src=$(cd "$1" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ac-no-criterion.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "FAIL no_criterion: $*" >&2
    for f in "$tmp"/*.log; do
        [ -s "$f" ] && { echo "---- $(basename "$f")"; tail -n 30 "$f"; } >&2
    done
    exit 1
}

cares_pc=$(pkg-config --variable=pcfiledir libcares)/libcares.pc
[ -f "$cares_pc" ] || fail "libcares.pc not found (libc-ares-dev)"
mkdir "$tmp/empty"
ln -s "$cares_pc" "$tmp/empty/libcares.pc"
export PKG_CONFIG_LIBDIR=$tmp/empty
PKG_CONFIG_PATH='' pkg-config --exists criterion && fail "Criterion is still visible"

PKG_CONFIG_PATH='' timeout 120 cmake -S "$src" -B "$tmp/b" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$tmp/configure.log" 2>&1 ||
    fail "configure failed without Criterion"
grep -q "Criterion (libcriterion-dev, found through pkg-config) is missing" \
    "$tmp/configure.log" || fail "configure did not warn that Criterion is missing"
echo "ok configure: warns, does not fail"

timeout 240 cmake --build "$tmp/b" >"$tmp/build.log" 2>&1 || fail "build failed without Criterion"
for exe in examples/echo_server tools/chatd/chatd tools/portfwd/portfwd; do
    [ -x "$tmp/b/$exe" ] || fail "$exe was not built"
done
echo "ok build: library, examples and tools"

timeout 60 cmake --install "$tmp/b" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1 ||
    fail "install failed without Criterion"
[ -n "$(find "$tmp/prefix" -name 'libasyncore.so.0' -print -quit)" ] || fail "no libasyncore.so.0"
echo "ok install"

# `make test` runs ctest: it must fail, and say why.
ctest --test-dir "$tmp/b" -N >"$tmp/list.log"
grep -q 'criterion_missing' "$tmp/list.log" || fail "no criterion_missing test"
if ctest --test-dir "$tmp/b" -R '^criterion_missing$' --output-on-failure >"$tmp/ctest.log" 2>&1; then
    fail "criterion_missing passed"
fi
grep -q "'make test' fails" "$tmp/ctest.log" || fail "criterion_missing does not say why"
echo "ok ctest: criterion_missing fails and says why"
