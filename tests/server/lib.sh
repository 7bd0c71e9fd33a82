# Shared by tests/cli_serve.sh and tests/cli_serve_{clients,load,faults}.sh (sourced): servers
# started on free ports and always killed, checks, /metrics and /proc readings. The caller sets
# nothing; it gets $bin, $tmp,
# ok/bad/check, start/ready/stop_server, metric, rss_kb, fd_count, is_sanitized, need_node.
set -u
bin=${LLM8_BIN:-build/llm8}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/llm8-serve-t.XXXXXX")
# at exit, whatever this shell started and is still running (servers, clients): `jobs -p` lists
# only this shell's own children not yet waited for, so no recycled process id is ever hit
# (TERM first: `timeout` passes it on to the node client it runs; then KILL what is left)
cleanup() {
    local p i
    for p in $(jobs -p); do kill "$p" 2>/dev/null; done
    for i in $(seq 1 20); do [ -z "$(jobs -pr)" ] && break; sleep 0.1; done
    for p in $(jobs -p); do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }
check() { if eval "$2"; then ok "$1"; else bad "$1${3:+: $3}"; fi; }

# start NAME ARGS...: `llm8 serve --port 0 ARGS` (stderr in $tmp/NAME.log); sets port_NAME, pid_NAME
start() {
    local name=$1 port="" i
    shift
    : >"$tmp/$name.log"
    "$bin" serve --port 0 "$@" 2>"$tmp/$name.log" &
    local pid=$!
    for i in $(seq 1 300); do
        port=$(sed -n 's|.*listening on http://[^ ]*:\([0-9][0-9]*\)$|\1|p' "$tmp/$name.log")
        { [ -n "$port" ] || ! kill -0 "$pid" 2>/dev/null; } && break
        sleep 0.1
    done
    printf -v "port_$name" '%s' "$port"
    printf -v "pid_$name" '%s' "$pid"
    [ -n "$port" ] || { bad "server $name did not start: $(cat "$tmp/$name.log")"; exit 1; }
}
# ready PORT: /health answers 200 (a minute at most)
ready() {
    local i
    for i in $(seq 1 600); do
        [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/health")" = 200 ] && return 0
        sleep 0.1
    done
    return 1
}
# stop_server NAME: SIGTERM, then exit 0 within 30 s and no sanitizer report in its log
stop_server() {
    local name=$1 p="pid_$1" rc i
    local pid=${!p}
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        bad "$name server: still running 30 s after SIGTERM"
        kill -9 "$pid"
    fi
    wait "$pid"
    rc=$?
    check "$name server: SIGTERM, exit 0, no sanitizer report" \
        '[ $rc -eq 0 ] && ! grep -q "Sanitizer\|runtime error" $tmp/$name.log' \
        "exit $rc: $(grep -A8 "Sanitizer\|runtime error" "$tmp/$name.log" | head -20)"
}
# metric PORT NAME: one value of /metrics
metric() { curl -s -m 5 "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
fd_count() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
thread_count() { awk '/^Threads:/ { print $2 }' "/proc/$1/status"; }
# wait_idle PID PORT [FDS THREADS]: no busy slot, then (each reading half a second after the
# /metrics request, whose own connection takes a moment to close) the fd count steady over three
# readings, or at most FDS fds and THREADS threads when given; 15 s at most
wait_idle() {
    local i prev=-1 same=0 now
    for i in $(seq 1 30); do
        if [ "$(metric "$2" llm8_slots_busy)" != 0 ]; then
            sleep 0.5
            continue
        fi
        sleep 0.5
        now=$(fd_count "$1")
        if [ $# -ge 4 ]; then
            [ "$now" -le "$3" ] && [ "$(thread_count "$1")" -le "$4" ] && return 0
        else
            if [ "$now" = "$prev" ]; then same=$((same + 1)); else same=0; fi
            [ $same -ge 2 ] && return 0
            prev=$now
        fi
    done
    return 1
}
# a sanitizer build (ASan/UBSan or TSan): RSS figures mean little there (ASan's quarantine keeps
# freed memory, TSan's shadow grows with what it has seen), and everything is slower
is_sanitized() { ldd "$bin" 2>/dev/null | grep -q 'libasan\|libubsan\|libtsan' || nm "$bin" 2>/dev/null | grep -q '__asan_init\|__tsan_init'; }
# need_node [PACKAGE...]: node, and the npm packages in tests/server/node_modules
need_node() {
    command -v node >/dev/null || { bad "node is not installed (scripts/deps.sh installs it)"; exit 1; }
    local p
    for p in "$@"; do
        [ -d "tests/server/node_modules/$p" ] ||
            { bad "tests/server/node_modules/$p is missing: run 'npm ci' in tests/server (scripts/test.sh does)"; exit 1; }
    done
}
