#!/usr/bin/env bash
# Install the build tree into a scratch prefix and build tests/install/hello.c
# against it as a user would: pkg-config (shared, then fully static) and
# CMake's find_package.  Usage: run.sh BUILD_DIR   (AC_VERSION: expected version)
set -euo pipefail

build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
want="asyncore ${AC_VERSION:?} ok"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

check() { # name output
    if [ "$2" != "$want" ]; then
        echo "FAIL $1: got '$2', want '$want'" >&2
        exit 1
    fi
    echo "ok $1"
}

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
check pkgconfig-shared "$(LD_LIBRARY_PATH=$libdir "$tmp/hello_pc")"

# Fully static: runs without LD_LIBRARY_PATH, which proves libasyncore.a
# (with its Libs.private) was linked and not the .so beside it.
# shellcheck disable=SC2046
cc -static -o "$tmp/hello_pc_static" "$here/hello.c" \
    $(pkg-config --static --cflags --libs asyncore)
check pkgconfig-static "$("$tmp/hello_pc_static")"

cmake -S "$here/consumer" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
    >"$tmp/consumer.log" || { cat "$tmp/consumer.log" >&2; exit 1; }
cmake --build "$tmp/consumer" >>"$tmp/consumer.log" || { cat "$tmp/consumer.log" >&2; exit 1; }
# CMake gives the build-tree executable an RPATH to the imported library.
check cmake-shared "$("$tmp/consumer/hello_shared")"
check cmake-static "$("$tmp/consumer/hello_static")"
