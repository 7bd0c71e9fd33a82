#!/usr/bin/env bash
# llm8 serve against faulty and hostile clients (issue 8), with raw sockets (tests/server/faults.mjs):
# - slowloris: headers sent a byte at a time more slowly than --timeout, or a byte at a time
#   faster than it but never completed, and a body that never completes: closed within a bounded
#   time, no slot taken, other clients served meanwhile
# - 500 idle connections against --max-conns 64: those beyond the limit closed at once, threads
#   and memory bounded by the limit, the rest closed at the timeout; then requests served again,
#   threads and file descriptors back to their count
# - clients that leave mid-stream, and while waiting for a non-streamed answer: generation
#   cancelled, the slot free within a second, the next request served at once (/metrics)
# - oversized headers (one huge, or a thousand), a huge URL, a declared or an actual body over
#   --max-body, an overflowing Content-Length: 413/414/431 (a declared length past what would be
#   drained: 413 at once) or a closed connection, never a crash
# - a 20-second soak (tools/soak.sh) with concurrent streaming clients
source tests/server/lib.sh
need_node
f() { timeout -k 5 60 node tests/server/faults.mjs "$@"; }
jv() { python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null; }
code() { curl -s -m "${2:-10}" -o /dev/null -w '%{http_code}' "$@" 2>/dev/null; }
complete() { # PORT [curl args]: a small completion, its status
    local p=$1
    shift
    curl -s -m 30 -o /dev/null -w '%{http_code}' -d '{"prompt": "Once", "max_tokens": 4}' "$@" "http://127.0.0.1:$p/v1/completions"
}

# the random Llama 3 model for the clients that leave (long enough answers, a 2048 context to leave
# in the middle of), made while the first server is tested
l3="$tmp/l3.llm8"
"$bin" convert --random tests/data/random-llama3-config/config.json --tokenizer models/llama3-tokenizer --quant w8a8 \
    -o "$l3" >"$tmp/convert.log" 2>&1 &
conv=$!

# ---------------------------------------------------------------- slow clients, idle connections
start srv --parallel 2 -t 1 --timeout 2 --max-conns 64 --max-body 8192
ready "$port_srv" || { bad "server not ready: $(cat "$tmp/srv.log")"; exit 1; }
P=$port_srv
pid=$pid_srv
wait_idle "$pid" "$P"
fd0=$(fd_count "$pid") th0=$(thread_count "$pid") rss0=$(rss_kb "$pid")

f slow-headers "$P" 3000 100 >"$tmp/slow1" &
s1=$!
f stalled-body "$P" >"$tmp/slow2" &
s2=$!
# the real slowloris: a byte every 0.4 s, never idle for --timeout, the headers never done
f slow-headers "$P" 400 20 >"$tmp/slow3" &
s3=$!
sleep 0.5
# meanwhile: the slow ones hold no slot, others are served
check "slowloris: other requests served meanwhile, no slot taken" \
    '[ "$(complete $P)" = 200 ] && [ "$(metric $P llm8_slots_busy)" = 0 ]'
wait "$s1" "$s2" "$s3"
r1=$(cat "$tmp/slow1") r2=$(cat "$tmp/slow2") r3=$(cat "$tmp/slow3")
check "slowloris: headers a byte every 3 s (--timeout 2): closed after 2-5 s ($r1)" \
    '[ "$(jv "$r1" "d[\"how\"] != \"still open\" and 1500 <= d[\"at_ms\"] <= 5000")" = True ]' "$r1"
check "a body that never completes: closed after 2-5 s ($r2)" \
    '[ "$(jv "$r2" "d[\"how\"] != \"still open\" and 1500 <= d[\"at_ms\"] <= 5000")" = True ]' "$r2"
# --timeout is an idle timeout (libmicrohttpd's): a client that sends a byte now and then is never
# idle that long, and holds its connection (and thread) for as long as it likes; --max-conns such
# clients lock everyone else out. The headers must come in within a bounded time.
check "slowloris: headers a byte every 0.4 s, never complete: closed within 3 x --timeout (6 s) ($r3)" \
    '[ "$(jv "$r3" "d[\"how\"] != \"still open\" and d[\"at_ms\"] <= 6000")" = True ]' "$r3"

# 500 idle connections (--max-conns 64): read the server while they are open
f idle "$P" 500 3500 >"$tmp/idle" &
si=$!
sleep 1.5
th_open=$(thread_count "$pid") fd_open=$(fd_count "$pid") rss_open=$(rss_kb "$pid")
wait "$si"
ri=$(cat "$tmp/idle")
echo "     500 idle: $ri; while open: $th_open threads, $fd_open fds, $rss_open kB (before: $th0, $fd0, $rss0 kB)"
check "500 idle connections: all connected, those beyond --max-conns closed within a second" \
    '[ "$(jv "$ri" "d[\"opened\"] + d[\"refused\"] == 500 and d[\"closed_within_1s\"] + d[\"refused\"] >= 500 - 64 - 8")" = True ]' "$ri"
rss_cap=$((rss0 + 65536))
is_sanitized && rss_cap=$((rss0 + 1048576)) # TSan keeps a large state per thread
check "500 idle connections: threads and fds bounded by --max-conns, RSS growth by 64 MB" \
    '[ "$th_open" -le $((th0 + 64 + 4)) ] && [ "$fd_open" -le $((fd0 + 64 + 4)) ] && [ "$rss_open" -le $rss_cap ]' \
    "$th_open threads, $fd_open fds, $rss_open kB"
check "500 idle connections: the ones within the limit closed by the --timeout" '[ "$(jv "$ri" "d[\"still_open\"]")" = 0 ]' "$ri"
check "after they go: a request served at once" '[ "$(complete $P)" = 200 ]'
check "after they go: threads and fds back to their count" 'wait_idle $pid $P $fd0 $th0' \
    "threads $(thread_count "$pid"), fds $(fd_count "$pid")"

# ---------------------------------------------------------------- oversized headers and bodies
python3 - "$tmp" <<'PY'
import sys
t = sys.argv[1]
w = lambda name, s: open(f"{t}/{name}.bin", "w").write(s)
w("bighdr", "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + "a" * 100000 + "\r\n\r\n")
w("manyhdr", "GET /health HTTP/1.1\r\nHost: x\r\n" + "".join("X-H%d: %s\r\n" % (i, "b" * 60) for i in range(1000)) + "\r\n")
w("longurl", "GET /health?" + "q" * 100000 + " HTTP/1.1\r\nHost: x\r\n\r\n")
w("declared", "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n")
w("overflow", "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n")
body = '{"prompt": "' + "y" * 50000 + '"}'
w("body50k", "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
b = "x" * 2000000
w("chunked", "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
  "".join("%x\r\n%s\r\n" % (len(b[i:i + 65536]), b[i:i + 65536]) for i in range(0, len(b), 65536)) + "0\r\n\r\n")
PY
# NAME STATUSES: one of the statuses (0: closed without one) within 5 s, and the server still up
for t in "bighdr 431 413 0" "manyhdr 431 413 0" "longurl 414 431 0" "declared 413" "overflow 413" \
    "body50k 413" "chunked 413 0"; do
    set -- $t
    name=$1
    shift
    r=$(f raw "$P" "@$tmp/$name.bin")
    st=$(jv "$r" 'd["status"]')
    check "oversized $name: $* ($r)" \
        'case " $* " in *" $st "*) true ;; *) false ;; esac && [ "$(jv "$r" "d[\"at_ms\"] <= 5000")" = True ] && [ "$(complete $P)" = 200 ]'
done
check "after all that: the server is alive, threads and fds back to their count" \
    'kill -0 $pid && wait_idle $pid $P $fd0 $th0' \
    "threads $(thread_count "$pid"), fds $(fd_count "$pid")"
stop_server srv

# ---------------------------------------------------------------- clients that leave
wait "$conv" || { bad "convert the random Llama 3 model: $(tail -3 "$tmp/convert.log")"; exit 1; }
start one -m "$l3" --parallel 1 -t 1 --quiet
ready "$port_one" || { bad "one-slot server not ready: $(cat "$tmp/one.log")"; exit 1; }
O=$port_one
long_stream='{"prompt": "Tell", "max_tokens": 2000, "temperature": 0, "ignore_eos": true, "stream": true}'
long_chat='{"messages": [{"role": "user", "content": "Tell"}], "max_tokens": 2000, "ignore_eos": true}'
# idle: the slot free, and how many tokens were generated so far
settle_slot() {
    local i
    for i in $(seq 1 20); do [ "$(metric "$O" llm8_slots_busy)" = 0 ] && return 0; sleep 0.05; done
    return 1
}
for what in stream wait; do
    gen0=$(metric "$O" llm8_generated_tokens_total) can0=$(metric "$O" llm8_completions_cancelled_total)
    if [ $what = stream ]; then
        r=$(f cut-stream "$O" "$long_stream" 5)
    else
        r=$(f cut-wait "$O" "$long_chat" 300)
    fi
    t0=$(date +%s%N)
    settle_slot
    freed_ms=$((($(date +%s%N) - t0) / 1000000))
    gen1=$(metric "$O" llm8_generated_tokens_total) can1=$(metric "$O" llm8_completions_cancelled_total)
    check "a client that leaves ($what: $r): slot free in ${freed_ms} ms (< 1 s), cancelled, $((gen1 - gen0)) of 2000 tokens made" \
        '[ "$(metric $O llm8_slots_busy)" = 0 ] && [ $freed_ms -lt 1000 ] && [ $((can1 - can0)) = 1 ] && [ $((gen1 - gen0)) -lt 2000 ]'
    s=$(date +%s%N)
    check "the next request is served at once ($what)" '[ "$(complete $O)" = 200 ] && [ $((($(date +%s%N) - s) / 1000000)) -lt 3000 ]'
done
# several streams cut at different points while others wait in the queue
cuts=()
for i in 1 2 3 4 5 6; do
    f cut-stream "$O" "$long_stream" $((i * 3)) >"$tmp/cut$i" &
    cuts+=("$!")
done
wait "${cuts[@]}"
codes=$(for i in 1 2 3 4 5 6; do jv "$(cat "$tmp/cut$i")" 'd["status"]'; done | sort | uniq -c | awk '{ printf "%s x %s, ", $1, $2 }')
check "six streams at once (one slot, four places in the queue: ${codes%, }), cut one after another: the slot free, the queue empty" \
    'settle_slot && [ "$(metric $O llm8_queue_length)" = 0 ] && [ "$(complete $O)" = 200 ] &&
     [ "$(cat $tmp/cut* | grep -c "\"status\":200")" -ge 5 ] && [ "$(cat $tmp/cut* | grep -c "\"status\":\(200\|503\)")" = 6 ]' \
    "busy $(metric "$O" llm8_slots_busy), queue $(metric "$O" llm8_queue_length): $(cat "$tmp"/cut*)"
stop_server one

# ---------------------------------------------------------------- a short soak (not in a sanitizer
# build: cli_serve_load.sh runs the same clients there, and RSS says little)
if is_sanitized; then
    ok "the 20-second soak: not in a sanitizer build"
else
    # 20 s is still the climb to the allocators' steady state (up to +3.5% measured): a bound of
    # 10% here (a leak of 1 kB per request would be +20%); the 10-minute soak holds to 2%
    env LLM8_BIN="$bin" SOAK_WARMUP=5 SOAK_MAX_DRIFT=10 SOAK_SAMPLE=1 timeout -k 5 120 tools/soak.sh 20 >"$tmp/soak.out" 2>&1
    rc=$?
    sed 's/^/     /' "$tmp/soak.out"
    check "a 20-second soak (tools/soak.sh): no failure, every greedy answer as alone, no fd growth, RSS drift < 10%" \
        '[ $rc -eq 0 ]'
fi
exit $fail
