#!/usr/bin/env bash
# llm8 serve through curl: every endpoint, streaming and not, usage numbers, greedy text equal to
# llm8 run, errors with their status and OpenAI error object, limits (413, 401, 503 + Retry-After),
# /health before and after loading, /metrics moving, prefix-cache reuse, concurrent streams equal
# to sequential ones, cancellation of a client that leaves, SIGTERM with a stream running (exit 0,
# no sanitizer report). Demo model (stories260k) and a random Llama-3-layout model with the real
# Llama 3 tokenizer and chat template, made here.
# bin, tmp, cleanup, ok/bad/check, start/ready/stop_server, metric: shared with the other server tests
source tests/server/lib.sh

# JSON and SSE helpers (python3 is already a test dependency)
cat >"$tmp/j.py" <<'PY'
import json, sys
# j.py FILE EXPR: prints EXPR evaluated with d = the JSON in FILE (True/False as true/false)
d = json.load(open(sys.argv[1]))
v = eval(sys.argv[2])
print(json.dumps(v) if isinstance(v, (bool, dict, list)) or v is None else v, end="")
PY
cat >"$tmp/sse.py" <<'PY'
import json, sys
# sse.py FILE: a summary of a Server-Sent Events stream as JSON
text, finish, usage, done, err, roles, ids, bad, chunks, calls = "", None, None, False, None, 0, set(), [], 0, []
for ev in open(sys.argv[1], encoding="utf-8").read().split("\n\n"):
    for line in ev.split("\n"):
        if not line.startswith("data: "):
            if line and not line.startswith(":"): bad.append(line)
            continue
        data = line[6:]
        if data == "[DONE]": done = True; continue
        if done: bad.append("data after [DONE]")
        o = json.loads(data)
        if "error" in o: err = o["error"]; continue
        ids.add(o["id"]); chunks += 1
        if o.get("usage"): usage = o["usage"]
        for c in o["choices"]:
            delta = c.get("delta", c)
            if delta.get("role") == "assistant": roles += 1
            text += delta.get("content") or delta.get("text") or ""
            calls += delta.get("tool_calls") or []
            if c.get("finish_reason"): finish = c["finish_reason"]
print(json.dumps({"text": text, "finish": finish, "usage": usage, "done": done, "error": err, "roles": roles,
                  "ids": len(ids), "bad": bad, "chunks": chunks, "tool_calls": calls}))
PY
j() { python3 "$tmp/j.py" "$@"; }
sse() { python3 "$tmp/sse.py" "$1" >"$1.json"; }

# req PORT METHOD PATH [BODY [curl args...]]: prints the status; the body in $tmp/body
req() {
    local port=$1 method=$2 path=$3 body=${4-}
    shift 3
    [ $# -gt 0 ] && shift
    if [ -n "$body" ]; then
        curl -s -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' -X "$method" -H 'Content-Type: application/json' \
            --data-binary "$body" "$@" "http://127.0.0.1:$port$path"
    else
        curl -s -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' -X "$method" "$@" "http://127.0.0.1:$port$path"
    fi
}
# err_is STATUS GOT PARAM CODE: the status, and an OpenAI error object with that param and code
err_is() {
    [ "$2" = "$1" ] && [ "$(j "$tmp/body" '[d["error"]["param"], d["error"]["code"], type(d["error"]["message"]).__name__, d["error"]["type"] != ""]')" = "[$(quoted "$3"), $(quoted "$4"), \"str\", true]" ]
}
quoted() { if [ "$1" = null ]; then printf null; else printf '"%s"' "$1"; fi; }

# the random Llama 3 model, made in the background while the demo model is tested
l3="$tmp/l3.llm8"
"$bin" convert --random tests/data/random-llama3-config/config.json --tokenizer models/llama3-tokenizer --quant w8a8 \
    -o "$l3" >"$tmp/convert.log" 2>&1 &
convert_pid=$!

# ---------------------------------------------------------------- /health before the model is loaded
# config.json is a pipe: loading blocks on it until the test writes the file into it
mkdir "$tmp/slow"
for f in models/stories260k/*; do ln -s "$PWD/$f" "$tmp/slow/"; done
rm "$tmp/slow/config.json"
mkfifo "$tmp/slow/config.json"
start slow -m "$tmp/slow"
check "/health is 503 while loading" '[ "$(req $port_slow GET /health)" = 503 ] && [ "$(j $tmp/body "d[\"status\"]")" = loading ]'
check "a completion while loading: 503 + Retry-After" \
    '[ "$(req $port_slow POST /v1/completions "{\"prompt\": \"x\"}")" = 503 ] && grep -qi "^retry-after: 1" $tmp/headers'
cat models/stories260k/config.json >"$tmp/slow/config.json"
check "/health is 200 once loaded" 'ready $port_slow'
kill -TERM "$pid_slow"
wait "$pid_slow"
rc=$?
check "SIGTERM when idle: exit 0" '[ $rc -eq 0 ] && grep -q "stopped" $tmp/slow.log' "exit $rc: $(tail -3 "$tmp/slow.log")"

# ---------------------------------------------------------------- the demo model
start demo --parallel 2 --max-body 8192
ready "$port_demo" || bad "demo server not ready"
P=$port_demo

# bad command lines: one line on stderr, a non-zero exit, nothing listening
for args in "--port 70000" "--parallel 0" "--bogus" "-m $tmp/none --port 0" "--port $P" "--host 192.0.2.1 --port 0"; do
    # shellcheck disable=SC2086
    "$bin" serve $args >/dev/null 2>"$tmp/bad.err"
    rc=$?
    check "serve $args: one-line error, exit $rc" '[ $rc -ne 0 ] && [ "$(wc -l <$tmp/bad.err)" = 1 ] && grep -q "^llm8" $tmp/bad.err' \
        "$(cat "$tmp/bad.err")"
done
check "GET /v1/models" '[ "$(req $P GET /v1/models)" = 200 ] && [ "$(j $tmp/body "d[\"data\"][0][\"id\"]")" = stories260k ]'
check "GET / serves the chat page" \
    '[ "$(req $P GET /)" = 200 ] && grep -qi "^content-type: text/html" $tmp/headers && grep -q "v1/chat/completions" $tmp/body'
check "GET /metrics is Prometheus text" \
    '[ "$(req $P GET /metrics)" = 200 ] && grep -q "^llm8_slots_total 2$" $tmp/body && grep -q "^# TYPE llm8_generated_tokens_total counter" $tmp/body'
gen0=$(metric "$P" llm8_generated_tokens_total)

# completions at temperature 0 = llm8 run --temp 0
prompt="Once upon a time"
"$bin" run -p "$prompt" -n 40 --temp 0 >"$tmp/run.txt" 2>/dev/null
st=$(req "$P" POST /v1/completions "{\"prompt\": \"$prompt\", \"max_tokens\": 40, \"temperature\": 0}")
cp "$tmp/body" "$tmp/completion.json"
j "$tmp/completion.json" 'd["choices"][0]["text"]' >"$tmp/srv.txt"
echo >>"$tmp/srv.txt"
check "completion 200 equals llm8 run --temp 0 -n 40" '[ "$st" = 200 ] && [ -s $tmp/run.txt ] && cmp -s $tmp/run.txt $tmp/srv.txt' \
    "[$(cat "$tmp/srv.txt")] vs [$(cat "$tmp/run.txt")]"
n_prompt=$(printf '%s' "$prompt" | "$bin" tokenize --bos | wc -w)
check "completion usage: prompt tokens, completion tokens, total, finish_reason length" \
    '[ "$(j $tmp/completion.json "[d[\"usage\"][\"prompt_tokens\"], d[\"usage\"][\"completion_tokens\"], d[\"usage\"][\"total_tokens\"], d[\"choices\"][0][\"finish_reason\"], d[\"object\"]]")" = "[$n_prompt, 40, $((n_prompt + 40)), \"length\", \"text_completion\"]" ]' \
    "$(cat "$tmp/completion.json")"
gen1=$(metric "$P" llm8_generated_tokens_total)
check "/metrics counts the generated tokens" '[ $((gen1 - gen0)) -eq 40 ]' "$gen0 -> $gen1"

# the same streamed, with usage
curl -sN -H 'Content-Type: application/json' \
    -d "{\"prompt\": \"$prompt\", \"max_tokens\": 40, \"temperature\": 0, \"stream\": true, \"stream_options\": {\"include_usage\": true}}" \
    "http://127.0.0.1:$P/v1/completions" >"$tmp/cs"
sse "$tmp/cs"
check "streamed completion: same text, finish_reason, usage chunk, [DONE]" \
    '[ "$(j $tmp/cs.json "d[\"text\"]")" = "$(j $tmp/completion.json "d[\"choices\"][0][\"text\"]")" ] && [ "$(j $tmp/cs.json "d[\"finish\"] == \"length\" and d[\"usage\"][\"completion_tokens\"] == 40 and d[\"done\"] and d[\"ids\"] == 1 and not d[\"bad\"]")" = true ]' \
    "$(cat "$tmp/cs.json")"

# stop strings: the text up to the first match, finish_reason stop
full=$(j "$tmp/completion.json" 'd["choices"][0]["text"]')
stop=$(j "$tmp/completion.json" 'd["choices"][0]["text"].split()[3]')
st=$(req "$P" POST /v1/completions "{\"prompt\": \"$prompt\", \"max_tokens\": 40, \"temperature\": 0, \"stop\": [\"zzz\", \"$stop\"]}")
check "stop string: the text before it, finish_reason stop" \
    '[ "$st" = 200 ] && [ "$(j $tmp/body "d[\"choices\"][0][\"text\"]")" = "${full%%"$stop"*}" ] && [ "$(j $tmp/body "d[\"choices\"][0][\"finish_reason\"]")" = stop ]' \
    "stop [$stop]: $(cat "$tmp/body")"

# chat: the plain fallback format, as llm8 run --chat renders it
"$bin" run --chat -p "Tell me a story." -n 24 --temp 0 >"$tmp/runchat.txt" 2>/dev/null
st=$(req "$P" POST /v1/chat/completions '{"model": "x", "messages": [{"role": "user", "content": "Tell me a story."}], "max_tokens": 24, "temperature": 0}')
cp "$tmp/body" "$tmp/chat.json"
j "$tmp/chat.json" 'd["choices"][0]["message"]["content"]' >"$tmp/srvchat.txt"
echo >>"$tmp/srvchat.txt"
check "chat 200 equals llm8 run --chat --temp 0" '[ "$st" = 200 ] && cmp -s $tmp/runchat.txt $tmp/srvchat.txt' \
    "[$(cat "$tmp/srvchat.txt")] vs [$(cat "$tmp/runchat.txt")]"
check "chat response: object, role, model echoed, finish_reason, usage" \
    '[ "$(j $tmp/chat.json "d[\"object\"] == \"chat.completion\" and d[\"model\"] == \"x\" and d[\"choices\"][0][\"message\"][\"role\"] == \"assistant\" and d[\"choices\"][0][\"finish_reason\"] in (\"stop\", \"length\") and d[\"usage\"][\"total_tokens\"] == d[\"usage\"][\"prompt_tokens\"] + d[\"usage\"][\"completion_tokens\"] and d[\"usage\"][\"completion_tokens\"] > 0")" = true ]' \
    "$(cat "$tmp/chat.json")"
curl -sN -H 'Content-Type: application/json' \
    -d '{"messages": [{"role": "user", "content": [{"type": "text", "text": "Tell me a story."}]}], "max_tokens": 24, "temperature": 0, "stream": true, "stream_options": {"include_usage": true}}' \
    "http://127.0.0.1:$P/v1/chat/completions" >"$tmp/chs"
sse "$tmp/chs"
check "streamed chat: the role first, the same text, usage, [DONE]" \
    '[ "$(j $tmp/chs.json "d[\"roles\"] == 1 and d[\"done\"] and not d[\"bad\"] and d[\"usage\"] is not None")" = true ] && [ "$(j $tmp/chs.json "d[\"text\"]")" = "$(j $tmp/chat.json "d[\"choices\"][0][\"message\"][\"content\"]")" ] && [ "$(j $tmp/chs.json "d[\"usage\"][\"prompt_tokens\"]")" = "$(j $tmp/chat.json "d[\"usage\"][\"prompt_tokens\"]")" ]' \
    "$(cat "$tmp/chs.json")"

# prefix cache: an unrelated request in between, then the next turn still finds its cache
answer=$(j "$tmp/chat.json" 'json.dumps(d["choices"][0]["message"]["content"])')
p1=$(j "$tmp/chat.json" 'd["usage"]["prompt_tokens"]')
req "$P" POST /v1/completions '{"prompt": "The dog", "max_tokens": 8}' >/dev/null
st=$(req "$P" POST /v1/chat/completions "{\"messages\": [{\"role\": \"user\", \"content\": \"Tell me a story.\"}, {\"role\": \"assistant\", \"content\": $answer}, {\"role\": \"user\", \"content\": \"And then?\"}], \"max_tokens\": 8}")
cached=$(j "$tmp/body" 'd["usage"]["prompt_tokens_details"]["cached_tokens"]')
check "the next chat turn reuses the cached prefix" '[ "$st" = 200 ] && [ "$cached" -ge $((p1 - 1)) ]' \
    "cached $cached of turn 1's $p1: $(cat "$tmp/body")"
# the same prompt again after a long answer: its slot holds the whole prompt (a short share of
# what the slot holds, but nothing to prefill)
again='{"prompt": "Once upon a time", "max_tokens": 40, "ignore_eos": true}'
req "$P" POST /v1/completions "$again" >/dev/null
st=$(req "$P" POST /v1/completions "$again")
check "the same prompt again reuses the slot that holds it" \
    '[ "$st" = 200 ] && [ "$(j $tmp/body "d[\"usage\"][\"prompt_tokens_details\"][\"cached_tokens\"] >= d[\"usage\"][\"prompt_tokens\"] - 1")" = true ]' \
    "$(cat "$tmp/body")"

# errors: the status, and the error object's param and code
check "invalid JSON: 400 invalid_json" 'err_is 400 "$(req $P POST /v1/chat/completions "{\"messages\": [")" null invalid_json'
check "a wrong type: 400 naming temperature" \
    'err_is 400 "$(req $P POST /v1/chat/completions "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"temperature\": \"hot\"}")" temperature null'
check "missing messages: 400" 'err_is 400 "$(req $P POST /v1/chat/completions "{\"model\": \"m\"}")" messages missing_required_parameter'
check "n = 2: 400 naming n" \
    'err_is 400 "$(req $P POST /v1/chat/completions "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"n\": 2}")" n null'
check "an image part: 400" \
    'err_is 400 "$(req $P POST /v1/chat/completions "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": \"x\"}}]}]}")" "messages[0].content" unsupported_parameter'
long=$(python3 -c 'print("one two three " * 300)')
st=$(req "$P" POST /v1/completions "{\"prompt\": \"$long\"}")
check "a prompt longer than the context: 400 with its token count" \
    'err_is 400 "$st" prompt context_length_exceeded && grep -Eq "the prompt is [0-9]{3,} tokens but the context holds 512" $tmp/body' "$(cat "$tmp/body")"
check "max_tokens beyond the context: 400" \
    'err_is 400 "$(req $P POST /v1/completions "{\"prompt\": \"hi\", \"max_tokens\": 600}")" max_tokens context_length_exceeded'
big=$(python3 -c 'print("x" * 20000)')
check "a body over --max-body: 413" 'err_is 413 "$(req $P POST /v1/completions "{\"prompt\": \"$big\"}")" null request_too_large'
check "a body over --max-body with Expect: 100-continue: 413" \
    'err_is 413 "$(req $P POST /v1/completions "{\"prompt\": \"$big\"}" -H "Expect: 100-continue")" null request_too_large'
check "an unknown path: 404" 'err_is 404 "$(req $P GET /v2/nothing)" null not_found'
check "a wrong method: 405" 'err_is 405 "$(req $P GET /v1/chat/completions)" null method_not_allowed'
c400=$(metric "$P" 'llm8_http_requests_total{code="400"}')
check "/metrics counts the errors by status" '[ "${c400:-0}" -ge 7 ]' "400s: $c400"

# ---------------------------------------------------------------- API key
start key --api-key 's3cret key'
ready "$port_key" || bad "key server not ready"
check "--api-key: no key, 401 invalid_api_key" \
    'err_is 401 "$(req $port_key GET /v1/models)" null invalid_api_key && grep -qi "^www-authenticate: bearer" $tmp/headers'
check "--api-key: a wrong key, 401" \
    'err_is 401 "$(req $port_key POST /v1/completions "{\"prompt\": \"a\"}" -H "Authorization: Bearer s3cret kez")" null invalid_api_key'
check "--api-key: /metrics needs it too" '[ "$(req $port_key GET /metrics)" = 401 ]'
check "--api-key: the right key, 200" \
    '[ "$(req $port_key POST /v1/completions "{\"prompt\": \"a\", \"max_tokens\": 2}" -H "Authorization: Bearer s3cret key")" = 200 ]'
check "--api-key: /health without a key, 200" '[ "$(req $port_key GET /health)" = 200 ]'
kill -TERM "$pid_key"
wait "$pid_key"
rc=$?
check "SIGTERM: exit 0" '[ $rc -eq 0 ]' "exit $rc: $(tail -3 "$tmp/key.log")"

# ---------------------------------------------------------------- Llama 3 layout, real tokenizer and template
wait "$convert_pid" || { bad "convert the random Llama 3 model: $(cat "$tmp/convert.log")"; exit 1; }
start l3 -m "$l3" --parallel 2 --queue 1 -t 2
ready "$port_l3" || bad "Llama 3 server not ready"
L=$port_l3
msgs='[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}]'
echo "{\"messages\": $msgs}" | "$bin" template -m models/llama3-tokenizer |
    "$bin" tokenize -m models/llama3-tokenizer --special >"$tmp/l3ids"
st=$(req "$L" POST /v1/chat/completions "{\"messages\": $msgs, \"max_tokens\": 4, \"temperature\": 0}")
check "Llama 3 chat: prompt tokens = the template's rendering (one BOS)" \
    '[ "$st" = 200 ] && [ "$(j $tmp/body "d[\"usage\"][\"prompt_tokens\"]")" = "$(wc -w <$tmp/l3ids)" ]' "$(cat "$tmp/body") vs $(wc -w <"$tmp/l3ids")"
tools='[{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]'
st=$(req "$L" POST /v1/chat/completions "{\"messages\": $msgs, \"tools\": $tools, \"max_tokens\": 4}")
check "Llama 3 chat with tools: the template renders them" \
    '[ "$st" = 200 ] && [ "$(j $tmp/body "d[\"usage\"][\"prompt_tokens\"]")" -gt $(($(wc -w <$tmp/l3ids) + 40)) ]' "$(cat "$tmp/body")"
"$bin" run -m "$l3" -p "Hello world" -n 12 --temp 0 >"$tmp/l3run.txt" 2>/dev/null
req "$L" POST /v1/completions '{"prompt": "Hello world", "max_tokens": 12, "temperature": 0}' >/dev/null
j "$tmp/body" 'd["choices"][0]["text"]' >"$tmp/l3srv.txt"
echo >>"$tmp/l3srv.txt"
check "Llama 3 completion equals llm8 run --temp 0" 'cmp -s $tmp/l3run.txt $tmp/l3srv.txt' "[$(cat "$tmp/l3srv.txt")] vs [$(cat "$tmp/l3run.txt")]"

# two concurrent greedy streams = the same requests one at a time
body_a='{"prompt": "The capital of France", "max_tokens": 60, "temperature": 0, "ignore_eos": true, "stream": true}'
body_b='{"messages": [{"role": "user", "content": "Count to ten."}], "max_tokens": 60, "temperature": 0, "ignore_eos": true, "stream": true}'
curl -sN -H 'Content-Type: application/json' -d "$body_a" "http://127.0.0.1:$L/v1/completions" >"$tmp/sa"
curl -sN -H 'Content-Type: application/json' -d "$body_b" "http://127.0.0.1:$L/v1/chat/completions" >"$tmp/sb"
steps0=$(metric "$L" llm8_batch_steps_total)
curl -sN -H 'Content-Type: application/json' -d "$body_a" "http://127.0.0.1:$L/v1/completions" >"$tmp/ca" &
ca=$!
curl -sN -H 'Content-Type: application/json' -d "$body_b" "http://127.0.0.1:$L/v1/chat/completions" >"$tmp/cb"
wait "$ca"
steps1=$(metric "$L" llm8_batch_steps_total)
for f in sa sb ca cb; do sse "$tmp/$f"; done
check "concurrent streams give the sequential texts" \
    '[ "$(j $tmp/sa.json "d[\"text\"]")" = "$(j $tmp/ca.json "d[\"text\"]")" ] && [ "$(j $tmp/sb.json "d[\"text\"]")" = "$(j $tmp/cb.json "d[\"text\"]")" ] && [ -n "$(j $tmp/ca.json "d[\"text\"]")" ] && [ "$(j $tmp/cb.json "d[\"done\"]")" = true ]' \
    "$(cat "$tmp/sa.json" "$tmp/ca.json" "$tmp/sb.json" "$tmp/cb.json")"
check "the concurrent streams shared steps (continuous batching)" '[ $((steps1 - steps0)) -lt 118 ]' \
    "$((steps1 - steps0)) steps for 2 x 60 tokens"

# full: both slots busy, one request waiting (--queue 1), the next one gets 503 + Retry-After;
# clients that leave free the slots and the queue
long_body='{"prompt": "Tell", "max_tokens": 1900, "temperature": 0, "ignore_eos": true, "stream": true}'
stream_long() { exec curl -sN -H 'Content-Type: application/json' -d "$long_body" "http://127.0.0.1:$L/v1/completions" >"$1"; }
gen0=$(metric "$L" llm8_generated_tokens_total)
stream_long "$tmp/q1" &
c1=$!
stream_long "$tmp/q2" &
c2=$!
for i in $(seq 1 100); do [ "$(metric "$L" llm8_slots_busy)" = 2 ] && break; sleep 0.05; done
stream_long "$tmp/q3" &
c3=$!
for i in $(seq 1 100); do [ "$(metric "$L" llm8_queue_length)" = 1 ] && break; sleep 0.05; done
st=$(req "$L" POST /v1/completions '{"prompt": "x", "max_tokens": 2}')
check "queue full: 503 with Retry-After" 'err_is 503 "$st" null server_busy && grep -qi "^retry-after:" $tmp/headers' \
    "$st $(cat "$tmp/body")"
kill "$c1" "$c2" "$c3" 2>/dev/null
wait "$c1" "$c2" "$c3" 2>/dev/null
for i in $(seq 1 100); do
    [ "$(metric "$L" llm8_slots_busy)" = 0 ] && [ "$(metric "$L" llm8_queue_length)" = 0 ] && break
    sleep 0.05
done
check "clients that leave are cancelled, the slots and the queue freed" \
    '[ "$(metric $L llm8_slots_busy)" = 0 ] && [ "$(metric $L llm8_queue_length)" = 0 ] && [ "$(metric $L llm8_completions_cancelled_total)" -ge 3 ] && [ $(($(metric $L llm8_generated_tokens_total) - gen0)) -lt 3000 ]' \
    "busy $(metric "$L" llm8_slots_busy), queue $(metric "$L" llm8_queue_length), cancelled $(metric "$L" llm8_completions_cancelled_total)"
check "after that, the server answers" '[ "$(req $L POST /v1/completions "{\"prompt\": \"x\", \"max_tokens\": 2}")" = 200 ]'

# SIGTERM with a stream running: the stream ends (an error event, then [DONE]), exit 0
stream_long "$tmp/q4" &
c4=$!
for i in $(seq 1 100); do [ -s "$tmp/q4" ] && break; sleep 0.05; done
kill -TERM "$pid_l3"
wait "$pid_l3"
rc=$?
wait "$c4"
sse "$tmp/q4"
check "SIGTERM during a stream: exit 0, the stream closed with [DONE]" \
    '[ $rc -eq 0 ] && [ "$(j $tmp/q4.json "d[\"done\"] and d[\"error\"] is not None")" = true ]' "exit $rc, $(cat "$tmp/q4.json")"

kill -TERM "$pid_demo"
wait "$pid_demo"
rc=$?
check "demo server: SIGTERM, exit 0" '[ $rc -eq 0 ]' "exit $rc"
check "no sanitizer report in any server log" '! grep -l "Sanitizer\|runtime error" $tmp/*.log' \
    "$(grep -h -A5 "Sanitizer\|runtime error" "$tmp"/*.log | head -20)"
exit $fail
