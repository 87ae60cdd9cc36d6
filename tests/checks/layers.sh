#!/usr/bin/env bash
# The layering of src/ (DESIGN.md "Layers", issue 9 item 2): nothing below
# knows about anything above it.
#
# Every file of src/ and every public header has a rank in the table below.
# A file fails the check when it
#   - includes one of our headers of a higher rank (or one with no rank),
#   - uses an ac__ or AC__ name that a file of a higher rank defines,
#   - tests which backend it runs on (== &ac__poller_x): a backend says what
#     the map needs to know in its struct ac_poller_ops,
#   - is a backend (poller_*.c) and includes anything of ours but poller.h.
# A file of src/ that is missing from the table fails too, so that a new
# file gets a place in the order.  Comments are left out (names in prose
# are fine).
#
# Usage: bash layers.sh <source dir>.  Exit 0: pass; 1: fail, with one line
# per violation naming the file and the name it should not use.
set -u
root=${1:?usage: layers.sh <source dir>}
cd "$root" || exit 1

declare -A rank=(
    # 0: the seams under the map: pollers, and the transport under a dispatcher
    [poller.h]=0 [poller_epoll.c]=0 [poller_poll.c]=0 [poller_select.c]=0
    [transport.h]=0 [transport.c]=0
    # 1: the map, the dispatcher and what they own
    [asyncore.h]=1 [internal.h]=1 [map.c]=1 [dispatcher.c]=1 [file.c]=1
    [timer.c]=1 [signal.c]=1 [wakeup.c]=1 [log.c]=1
    # 2: buffered sending (dispatcher_with_send)
    [sendbuf.c]=2
    # 3: asynchat: the chat channel and producers
    [asynchat.h]=3 [chat.c]=3 [producer.c]=3
    # 4: the relay
    [asyncore_relay.h]=4 [relay.c]=4
    # 5: the resolver (src/resolver/, a library of its own on c-ares): the
    # public asyncore.h only, checked below
    [asyncore_resolver.h]=5 [resolver_private.h]=5 [resolver.c]=5 [connect.c]=5
)
layer_name=(seams map/dispatcher sendbuf chat relay resolver)

fail=0
complain() {
    echo "layers.sh: $*"
    fail=1
}

# The file without comments.  gcc's preprocessor strips them without
# expanding anything; without gcc, the file as it is.
code() {
    gcc -fpreprocessed -dD -E -P -x c "$1" 2>/dev/null || cat "$1"
}

shopt -s nullglob
files=(src/*.c src/*.h src/resolver/*.c src/resolver/*.h include/*.h)
declare -A body
for f in "${files[@]}"; do
    b=${f##*/}
    if [[ -z ${rank[$b]+x} ]]; then
        complain "$f has no rank: give it one in the table of tests/checks/layers.sh"
    fi
    body[$f]=$(code "$f")
done

# Who defines each ac__/AC__ name: in a .c file, a line at column 0 that is
# not a declaration (no `extern`, no trailing `;`); in a header, a macro,
# an enum constant or a static inline function.
declare -A definer
for f in "${files[@]}"; do
    if [[ $f == *.c ]]; then
        names=$(grep -E '^[A-Za-z_]' <<<"${body[$f]}" | grep -vE '^extern|;[[:space:]]*$' |
            grep -oE '\b(ac__|AC__)[A-Za-z0-9_]+[[:space:]]*(\(|=|\[)' | grep -oE '^[A-Za-z0-9_]+')
    else
        # the name a line defines is the first on it
        names=$(grep -E '^#[[:space:]]*define[[:space:]]+(ac__|AC__)|^[[:space:]]+AC__[A-Z0-9_]+[[:space:]]*[=,]' <<<"${body[$f]}" |
            sed -E 's/^#[[:space:]]*define[[:space:]]+//; s/^[[:space:]]+//' | grep -oE '^(ac__|AC__)[A-Za-z0-9_]+'
            grep -E '^static inline' <<<"${body[$f]}" | grep -oE '\bac__[A-Za-z0-9_]+\(' | tr -d '(')
    fi
    for n in $names; do
        definer[$n]=$f
    done
done

for f in "${files[@]}"; do
    b=${f##*/}
    [[ -z ${rank[$b]+x} ]] && continue
    r=${rank[$b]}
    src=${body[$f]}

    for inc in $(grep -oE '^#[[:space:]]*include[[:space:]]+"[^"]+"' "$f" | grep -oE '"[^"]+"' | tr -d '"'); do
        ib=${inc##*/}
        if [[ $b == poller_*.c && $ib != poller.h ]]; then
            complain "$f includes \"$inc\": a poller includes poller.h alone"
        elif [[ -z ${rank[$ib]+x} ]]; then
            complain "$f includes \"$inc\", which has no rank in tests/checks/layers.sh"
        elif ((rank[$ib] > r)); then
            complain "$f (${layer_name[$r]}) includes \"$inc\" (${layer_name[${rank[$ib]}]}): a layer above it"
        fi
    done

    for n in $(grep -oE '\b(ac__|AC__)[A-Za-z0-9_]+' <<<"$src" | sort -u); do
        d=${definer[$n]:-}
        [[ -z $d ]] && continue
        dr=${rank[${d##*/}]:-0}
        if ((dr > r)); then
            complain "$f (${layer_name[$r]}) uses $n, defined by $d (${layer_name[$dr]}): a layer above it"
        fi
    done

    # The resolver sees the core from outside: public headers and its own
    # private one only, no ac__/AC__ name of the core (issue 11).
    if [[ $f == src/resolver/* ]]; then
        for inc in $(grep -oE '^#[[:space:]]*include[[:space:]]+"[^"]+"' "$f" | grep -oE '"[^"]+"' | tr -d '"'); do
            case $inc in
            asyncore.h | asyncore_resolver.h | resolver_private.h) ;;
            *) complain "$f includes \"$inc\": the resolver uses the public API only" ;;
            esac
        done
        for n in $(grep -oE '\b(ac__|AC__)[A-Za-z0-9_]+' <<<"$src" | sort -u); do
            d=${definer[$n]:-}
            if [[ -n $d && $d != src/resolver/* ]]; then
                complain "$f uses $n, defined by $d: the resolver uses the public API only"
            fi
        done
    fi

    hit=$(grep -noE '[=!]=[[:space:]]*&[[:space:]]*ac__poller_[a-z0-9_]+' <<<"$src" | head -1)
    if [[ -n $hit ]]; then
        complain "$f tests its backend (${hit#*:}): put what it needs into struct ac_poller_ops"
    fi
done

if ((fail)); then
    echo "layers.sh: the order is pollers and transport -> map/dispatcher -> sendbuf -> chat -> relay -> resolver; no arrow back up"
    exit 1
fi
exit 0
