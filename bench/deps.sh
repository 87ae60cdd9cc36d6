#!/usr/bin/env bash
# bench/deps.sh — what the benchmarks need beyond the build (`make bench`
# runs it first; CI does not: `make test` needs none of it).
#
# The peers the four benchmarks compare against and the tools they run:
#   commands  socat rinetd redir haproxy iperf3 strace python3 taskset
#             setsid pgrep ss; microsocks, danted (dante-server), nginx
#             (nginx-light) and curl for run_socks5d.sh.  Debian starts the
#             nginx and danted services it installs unless policy-rc.d
#             forbids it; the benchmark never uses them (it starts its own,
#             on free loopback ports, with configs of their own)
#   libraries libevent-dev libuv1-dev libev-dev (the echo and chat peers,
#             found when CMake configures the build tree)
#   Python    asyncore and asynchat (in Python up to 3.11; later ones have
#             them only from a package such as python3-pyasyncore)
# A missing one is installed with apt-get when we are root on a Debian-like
# machine (BENCH_INSTALL=0: never); otherwise the exact command is printed
# and the benchmarks run without it (a missing peer's column is skipped).
# After installing a library it reconfigures $BUILD, so CMake finds it.
set -u

NAME=deps.sh
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
BENCH_INSTALL=${BENCH_INSTALL:-1}

# command package
COMMANDS="socat:socat rinetd:rinetd redir:redir haproxy:haproxy iperf3:iperf3 strace:strace
    python3:python3 taskset:util-linux setsid:util-linux pgrep:procps ss:iproute2
    microsocks:microsocks danted:dante-server nginx:nginx-light curl:curl"
LIBS="libevent-dev libuv1-dev libev-dev"

installed() {  # package
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

found() {  # command: on PATH or in an sbin directory a user's PATH may lack
    command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

missing=() libs=()
for pair in $COMMANDS; do
    found "${pair%%:*}" || missing+=("${pair#*:}")
done
for p in $LIBS; do
    installed "$p" || libs+=("$p")
done
py_asyncore=
python3 -c 'import asyncore, asynchat' 2>/dev/null || py_asyncore=python3-pyasyncore

all=("${missing[@]}" "${libs[@]}")
if [ ${#all[@]} -eq 0 ] && [ -z "$py_asyncore" ]; then
    exit 0
fi
# shellcheck disable=SC2207 # package names have no spaces
all=($(printf '%s\n' "${all[@]}" | sort -u))

if [ "$BENCH_INSTALL" != 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1
    # Python's asyncore as a package only where the distribution has one.
    if [ -n "$py_asyncore" ] && apt-cache show "$py_asyncore" >/dev/null 2>&1; then
        all+=("$py_asyncore")
        py_asyncore=
    fi
    if [ ${#all[@]} -gt 0 ]; then
        echo "$NAME: installing the benchmarks' peers and tools: ${all[*]}" >&2
        apt-get install -y --no-install-recommends "${all[@]}" >&2 ||
            echo "$NAME: apt-get failed; the benchmarks skip what is missing" >&2
    fi
    if [ ${#libs[@]} -gt 0 ] && [ -f "$BUILD/CMakeCache.txt" ]; then
        cmake -S "$ROOT" -B "$BUILD" >/dev/null # find the new libraries
    fi
else
    [ ${#all[@]} -eq 0 ] ||
        echo "$NAME: the benchmarks' peers and tools are missing: ${all[*]}; install them" \
            "with: sudo apt-get install -y ${all[*]}   (the benchmarks skip what is missing)" >&2
fi
[ -z "$py_asyncore" ] ||
    echo "$NAME: this Python has no asyncore/asynchat: the Python columns are skipped" \
        "(Python 3.11 or older has them)" >&2
exit 0
