#!/usr/bin/env bash
# Install the build tree as the README says and build against it as a user
# would.  Usage: run.sh BUILD_DIR   (AC_VERSION: expected version)
#
# First the README's five-minute tour, word for word (issue 8 item 15): its
# C code and its two command blocks are taken from README.md, so they
# cannot drift, and tour.sh runs each block, then checks that the program
# starts and echoes.  The /usr/local block runs only where we may make
# /usr/local and /etc private (root, unshare -m), so that the machine's own
# are never touched.  Then tests/install/hello.c through pkg-config (shared,
# then fully static) and CMake's find_package, and hello_resolver.c the
# same ways (libasyncore-resolver).
set -euo pipefail

build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
want="asyncore ${AC_VERSION:?} ok"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ac-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

check() { # name output
    if [ "$2" != "$want" ]; then
        echo "FAIL $1: got '$2', want '$want'" >&2
        exit 1
    fi
    echo "ok $1"
}

# tour.sh maps `make install` to this recipe: it must still be the Makefile's.
grep -qxF $'\tcmake --install build --prefix $(PREFIX)' "$src/Makefile" ||
    { echo "FAIL: the Makefile's install recipe changed; update tour.sh" >&2; exit 1; }
grep -qxF 'PREFIX ?= /usr/local' "$src/Makefile" ||
    { echo "FAIL: the Makefile's PREFIX default changed; update tour.sh" >&2; exit 1; }

# The tour's section: its ```c block, and its ```sh blocks one file each.
awk -v dir="$tmp" '
    /^## / { in_tour = ($0 == "## A five-minute tour") }
    in_tour && /^```c$/ { out = dir "/echo.c"; next }
    in_tour && /^```sh$/ { out = dir "/block" ++n ".sh"; next }
    /^```$/ { out = ""; next }
    out != "" { print > out }
' "$src/README.md"
for f in echo.c block1.sh block2.sh; do
    [ -s "$tmp/$f" ] || { echo "FAIL: no $f in the README's tour" >&2; exit 1; }
done
grep -q 'htons(7007)' "$tmp/echo.c" || { echo "FAIL: the tour's port is not 7007" >&2; exit 1; }
sed -i 's/htons(7007)/htons(0)/' "$tmp/echo.c"

# Block 1, system-wide: in a mount namespace with a tmpfs on /usr/local and
# /etc as an overlay whose writes (ld.so.cache) land in $tmp.
if [ "$(id -u)" -eq 0 ] && unshare -m true 2>/dev/null; then
    mkdir "$tmp/ov"
    unshare -m bash -c '
        set -e
        mount --make-rprivate /
        mount -t tmpfs tmpfs "$1" && mkdir "$1/up" "$1/work"
        mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/up,workdir=$1/work" /etc
        mount -t tmpfs tmpfs /usr/local
        shift
        exec bash "$@"' _ "$tmp/ov" "$here/tour.sh" "$build" "$tmp/echo.c" "$tmp/block1.sh" \
        "$tmp/tour1"
else
    echo "skip tour (block 1, /usr/local): needs root and unshare -m"
fi
# Block 2, a prefix of one's own: $HOME/.local, with HOME in $tmp.
HOME=$tmp/home bash "$here/tour.sh" "$build" "$tmp/echo.c" "$tmp/block2.sh" "$tmp/tour2"

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log"

# GNUInstallDirs picks lib/ or lib/<multiarch>/: take the .pc where it is.
pc=$(find "$prefix" -name asyncore.pc -print -quit)
[ -n "$pc" ] || { echo "FAIL: asyncore.pc not installed" >&2; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir asyncore)
[ "$(pkg-config --modversion asyncore)" = "$AC_VERSION" ] || {
    echo "FAIL: pkg-config version $(pkg-config --modversion asyncore)" >&2; exit 1; }

# shellcheck disable=SC2046  # word splitting of pkg-config's flags is wanted
cc -o "$tmp/hello_pc" "$here/hello.c" $(pkg-config --cflags --libs asyncore)
# No LD_LIBRARY_PATH: the .pc's rpath finds the library in a scratch prefix.
check pkgconfig-shared "$("$tmp/hello_pc")"
[ "$(readelf -d "$tmp/hello_pc" | grep -c "R.*PATH.*\[$libdir\]")" -eq 1 ] ||
    { echo "FAIL: hello_pc has no rpath to $libdir" >&2; exit 1; }

# Fully static: runs without LD_LIBRARY_PATH, which proves libasyncore.a
# (with its Libs.private) was linked and not the .so beside it.
# shellcheck disable=SC2046
cc -static -o "$tmp/hello_pc_static" "$here/hello.c" \
    $(pkg-config --static --cflags --libs asyncore)
check pkgconfig-static "$("$tmp/hello_pc_static")"

# The resolver library (libasyncore-resolver on c-ares), both ways.
# shellcheck disable=SC2046
cc -o "$tmp/resolver_pc" "$here/hello_resolver.c" $(pkg-config --cflags --libs asyncore-resolver)
check pkgconfig-resolver-shared "$("$tmp/resolver_pc")"
# shellcheck disable=SC2046
cc -static -o "$tmp/resolver_pc_static" "$here/hello_resolver.c" \
    $(pkg-config --static --cflags --libs asyncore-resolver)
check pkgconfig-resolver-static "$("$tmp/resolver_pc_static")"

cmake -S "$here/consumer" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
    >"$tmp/consumer.log" || { cat "$tmp/consumer.log" >&2; exit 1; }
cmake --build "$tmp/consumer" >>"$tmp/consumer.log" || { cat "$tmp/consumer.log" >&2; exit 1; }
# CMake gives the build-tree executable an RPATH to the imported library.
check cmake-shared "$("$tmp/consumer/hello_shared")"
check cmake-static "$("$tmp/consumer/hello_static")"
check cmake-resolver-shared "$("$tmp/consumer/hello_resolver_shared")"
check cmake-resolver-static "$("$tmp/consumer/hello_resolver_static")"
