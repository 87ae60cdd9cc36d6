# Sourced by bench/run.sh and bench/run_chat.sh: one server at a time,
# started pinned with SRV_PIN (an array, may be empty), its stderr appended
# to $SLOG; it prints "PORT <n>" on stdout first.

SRV_PID=
start_server() {  # cmd... ; sets SRV_PID and PORT
    local tmp
    tmp=$(mktemp)
    "${SRV_PIN[@]}" "$@" >"$tmp" 2>>"$SLOG" &
    SRV_PID=$!
    PORT=
    for _ in $(seq 100); do
        PORT=$(awk '$1 == "PORT" { print $2; exit }' "$tmp")
        [ -n "$PORT" ] && break
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.05
    done
    rm -f "$tmp"
    [ -n "$PORT" ]
}

stop_server() {
    [ -n "$SRV_PID" ] || return 0
    kill -TERM "$SRV_PID" 2>/dev/null
    for _ in $(seq 100); do
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$SRV_PID" 2>/dev/null
    wait "$SRV_PID" 2>/dev/null
    SRV_PID=
}
