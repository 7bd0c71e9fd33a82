#!/usr/bin/env bash
# llm8 serve under a bounded load on loopback (tests/server/load.mjs): 16 clients x 10 requests
# against --parallel 4 (the demo model), chat and completions, streamed and not, a long prompt
# prefilled while others decode, every 4th stream cut by its client after its first text.
# Checks: zero failed requests besides the cut ones; every greedy answer under load equals the
# same request answered alone; cut streams cancelled on the server; no crash; file descriptors
# back to their count after a warm-up; RSS after the load within 5% (or 1 MB) of RSS after the
# warm-up (release build; under ASan its quarantine keeps freed memory, and LeakSanitizer checks
# instead, at the server's exit).
source tests/server/lib.sh
need_node

start srv --parallel 4 -t 1 --quiet
ready "$port_srv" || { bad "server not ready: $(cat "$tmp/srv.log")"; exit 1; }
P=$port_srv
pid=$pid_srv

# warm-up: the same load once (threads, allocator arenas), after 4 requests longer than any of it
# at once (every slot's KV cache touched further than the load goes); the measured run must then
# leave the server as it found it
timeout -k 5 240 node tests/server/load.mjs --port "$P" --clients 16 --requests 10 --cut-every 4 --fill 4 >"$tmp/warmup.json" 2>&1
rc=$?
check "warm-up: the same load, no failure" '[ $rc -eq 0 ]' "$(cat "$tmp/warmup.json")"
wait_idle "$pid" "$P" || bad "idle after the warm-up (busy slots: $(metric "$P" llm8_slots_busy))"
rss0=$(rss_kb "$pid") fd0=$(fd_count "$pid") th0=$(thread_count "$pid")
cancelled0=$(metric "$P" llm8_completions_cancelled_total)

timeout -k 5 240 node tests/server/load.mjs --port "$P" --clients 16 --requests 10 --cut-every 4 --pid "$pid" --sample 1 \
    >"$tmp/load.json" 2>&1
rc=$?
j() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$tmp/load.json" "$1" 2>/dev/null; }
echo "     load: $(j '"%d requests in %.1f s: %d answered, %d cut, %d failed, %d unlike alone, %d tokens; peak %d fds, %d kB" % (d["requests"], d["seconds"], d["ok"], d["cut"], d["failed"], d["mismatches"], d["tokens"], max(s["fds"] for s in d["samples"]), max(s["rss_kb"] for s in d["samples"]))')"
check "16 clients x 10 requests: all 160 made, none failed" \
    '[ $rc -eq 0 ] && [ "$(j "d[\"requests\"]")" = 160 ] && [ "$(j "d[\"failed\"]")" = 0 ]' "exit $rc: $(cat "$tmp/load.json")"
check "greedy answers under load equal the same requests alone" '[ "$(j "d[\"mismatches\"]")" = 0 ] && [ "$(j "d[\"ok\"]")" -ge 100 ]' \
    "$(j 'd["errors"]')"
check "some streams were cut by their clients mid-stream" '[ "$(j "d[\"cut\"]")" -ge 10 ]' "$(j 'd["cut"]')"
check "the server is alive and every slot free again" 'kill -0 $pid && wait_idle $pid $P' "busy $(metric "$P" llm8_slots_busy)"
cancelled1=$(metric "$P" llm8_completions_cancelled_total)
check "the cut streams were cancelled on the server (llm8_completions_cancelled_total)" \
    '[ $((cancelled1 - cancelled0)) -ge 1 ]' "$cancelled0 -> $cancelled1"
check "file descriptors and threads back to their count after the warm-up" 'wait_idle $pid $P $fd0 $th0' \
    "fds $fd0 -> $(fd_count "$pid"), threads $th0 -> $(thread_count "$pid")"
rss1=$(rss_kb "$pid") fd1=$(fd_count "$pid") th1=$(thread_count "$pid")
echo "     RSS $rss0 -> $rss1 kB, fds $fd0 -> $fd1, threads $th0 -> $th1"
if is_sanitized; then
    ok "RSS not compared in a sanitizer build (LeakSanitizer checks the exit instead)"
else
    # the demo server is a 10 MB process: its allocators and cached thread stacks move by a few
    # hundred kB from run to run; a leak of 16 kB per request would be 2.5 MB here
    allow=$((rss0 / 20 > 1024 ? rss0 / 20 : 1024))
    check "RSS after the load within max(5%, 1 MB) of RSS after the warm-up" '[ $((rss1 - rss0)) -lt $allow ]' \
        "$rss0 -> $rss1 kB"
fi
check "a request after the load: 200" \
    '[ "$(curl -s -m 30 -o /dev/null -w "%{http_code}" -d "{\"prompt\": \"Hi\", \"max_tokens\": 4}" http://127.0.0.1:$P/v1/completions)" = 200 ]'
stop_server srv
exit $fail
