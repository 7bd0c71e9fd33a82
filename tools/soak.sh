#!/usr/bin/env bash
# A bounded soak of llm8 serve on loopback: concurrent clients (mostly streaming, some cutting
# their stream early) against the demo model for a fixed time; counts requests and failures,
# checks every greedy answer against the same request answered alone, and samples the server's
# RSS and open file descriptors. Not run by CI (cli_serve_faults.sh runs a 20-second version).
#
#   tools/soak.sh [SECONDS]      (default 600)
#
# Environment: LLM8_BIN (default build/llm8), SOAK_CLIENTS (8), SOAK_PARALLEL (4), SOAK_THREADS (1),
# SOAK_MODEL (the demo model), SOAK_SAMPLE (seconds between samples, 10), SOAK_CSV (a file for the
# samples), SOAK_WARMUP (seconds, 30), SOAK_MAX_DRIFT (percent, 2). Passes (exit 0) with zero
# failed requests, every greedy answer equal to the same request alone, RSS under load drifting
# less than SOAK_MAX_DRIFT (median of the last quarter of the samples against the first), idle
# RSS after the soak within SOAK_MAX_DRIFT (or 1 MB) of idle RSS after the warm-up, as many file
# descriptors at the end as after the warm-up, exit 0 on SIGTERM and no sanitizer report.
set -u
cd "$(dirname "$0")/.."
secs=${1:-600}
bin=${LLM8_BIN:-build/llm8}
clients=${SOAK_CLIENTS:-8}
model=${SOAK_MODEL:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/llm8-soak.XXXXXX")
pid=""
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
command -v node >/dev/null || { echo "soak: node is needed (scripts/deps.sh)"; exit 1; }

: >"$tmp/server.log"
"$bin" serve ${model:+-m "$model"} --port 0 --parallel "${SOAK_PARALLEL:-4}" -t "${SOAK_THREADS:-1}" --quiet 2>"$tmp/server.log" &
pid=$!
port=""
for _ in $(seq 1 300); do
    port=$(sed -n 's|.*listening on http://[^ ]*:\([0-9][0-9]*\)$|\1|p' "$tmp/server.log")
    { [ -n "$port" ] || ! kill -0 "$pid" 2>/dev/null; } && break
    sleep 0.1
done
[ -n "$port" ] || { echo "soak: the server did not start: $(cat "$tmp/server.log")"; exit 1; }
for _ in $(seq 1 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ] && break
    sleep 0.1
done
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"; }
fds() { ls "/proc/$pid/fd" | wc -l; }
# idle: slots free, then the fd count steady over three readings (each half a second after the
# /metrics request, whose own connection takes a moment to close); 15 s at most
settle() {
    local i prev=-1 same=0 now
    for i in $(seq 1 30); do
        if [ "$(curl -s -m 5 "http://127.0.0.1:$port/metrics" | awk '$1 == "llm8_slots_busy" { print $2 }')" != 0 ]; then
            sleep 0.5
            continue
        fi
        sleep 0.5
        now=$(fds)
        if [ "$now" = "$prev" ]; then same=$((same + 1)); else same=0; fi
        [ $same -ge 2 ] && return 0
        prev=$now
    done
}

echo "soak: ${secs} s, $clients clients, --parallel ${SOAK_PARALLEL:-4}, server pid $pid on port $port"
# warm-up: every kind of request, every slot, cut streams, and twice the clients of the soak, so
# that what only grows to a high-water mark (glibc's cache of exited threads' stacks, malloc
# arenas, one per thread up to 8 x cores, each slot's KV cache: --fill) has reached it before the
# first reading
node tests/server/load.mjs --port "$port" --clients "$((2 * clients))" --duration "${SOAK_WARMUP:-30}" \
    --fill "${SOAK_PARALLEL:-4}" >"$tmp/warmup.json" ||
    { echo "soak: the warm-up failed: $(cat "$tmp/warmup.json")"; exit 1; }
settle
rss0=$(rss) fd0=$(fds)
node tests/server/load.mjs --port "$port" --clients "$clients" --duration "$secs" --pid "$pid" \
    --sample "${SOAK_SAMPLE:-10}" >"$tmp/soak.json"
rc=$?
settle
rss1=$(rss) fd1=$(fds)
kill -0 "$pid" 2>/dev/null || { echo "soak: FAIL the server died: $(tail -5 "$tmp/server.log")"; exit 1; }
kill -TERM "$pid"
wait "$pid"
src=$?
pid=""
[ -n "${SOAK_CSV:-}" ] && python3 -c '
import json, sys
print("seconds,rss_kb,fds")
for s in json.load(open(sys.argv[1]))["samples"]: print("%d,%d,%d" % (s["t"], s["rss_kb"], s["fds"]))' "$tmp/soak.json" >"$SOAK_CSV"
san=0
grep -q "Sanitizer\|runtime error" "$tmp/server.log" && san=1 && grep -A10 "Sanitizer\|runtime error" "$tmp/server.log" | head -30
python3 - "$tmp/soak.json" "$rss0" "$rss1" "$fd0" "$fd1" "$rc" "$src" "$san" "${SOAK_MAX_DRIFT:-2}" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rss0, rss1, fd0, fd1, rc, src, san = map(int, sys.argv[2:9])
max_drift = float(sys.argv[9])
# the samples under load (the first one is taken as the clients start, at idle)
rs = [s["rss_kb"] for s in d["samples"]][1:] or [rss0]
fs = [s["fds"] for s in d["samples"]][1:] or [fd0]
med = lambda v: sorted(v)[len(v) // 2]
k = max(1, len(rs) // 4)
first, last = med(rs[:k]), med(rs[-k:])
loaded = 100.0 * (last - first) / first
idle = 100.0 * (rss1 - rss0) / rss0
print(f"requests  {d['requests']} in {d['seconds']:.0f} s: {d['ok']} answered, {d['cut']} cut by their client on purpose, "
      f"{d['failed']} failed, {d['mismatches']} greedy answers unlike the same request alone; {d['tokens']} tokens generated")
print(f"RSS       under load ({len(rs)} samples): median of the first quarter {first} kB, of the last {last} kB "
      f"({loaded:+.2f}%), min {min(rs)}, max {max(rs)}; idle: {rss0} kB after the warm-up, {rss1} kB at the end ({idle:+.2f}%)")
print(f"fds       {fd0} after the warm-up, {fd1} at the end; during the run min {min(fs)}, max {max(fs)}")
print(f"exit      server {src} on SIGTERM{', a sanitizer report in its log' if san else ''}")
for e in d["errors"]: print("error    ", e)
# the drift is judged under load, where the allocators are in their steady state; idle readings
# of a 10 MB process move by a few hundred kB with which thread stacks and arenas happen to be
# cached, so idle growth only has to stay under the same share or 1 MB
ok = (rc == 0 and d["failed"] == 0 and d["mismatches"] == 0 and loaded < max_drift and
      rss1 - rss0 < max(rss0 * max_drift / 100, 1024) and fd1 <= fd0 and src == 0 and not san)
print("soak:", "PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
