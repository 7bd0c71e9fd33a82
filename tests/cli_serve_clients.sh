#!/usr/bin/env bash
# llm8 serve with real clients: the official `openai` npm package (tests/server/clients.mjs) and the
# chat page in headless Chromium (tests/server/page.mjs, playwright-core with Debian's chromium).
# - demo model (plain fallback, --api-key): chat and completions, streamed and not, greedy text
#   equal to llm8 run, usage, stop strings, seed, prefix cache, errors as the SDK's APIError
#   classes (400 for n = 2, an unknown role, max_tokens beyond the context, a forced tool_choice;
#   401 for a wrong key), a tool round trip accepted
# - a random Llama-3-layout model (real tokenizer and chat template, made here): the same, plus
#   prompt sizes equal to llm8 template's rendering with tools, tool calls and tool messages
# - a hand-made Llama 3 model whose greedy reply is a tool call (tests/server/toolcall_model.mjs):
#   message.tool_calls, streamed tool_calls deltas, the SDK's stream helper, the round trip back
#   to a text answer, calls of unknown functions and tool_choice none left as text
# - the page: type, Send, the streamed answer equals the non-streamed greedy answer; a second
#   turn; Stop frees the slot
source tests/server/lib.sh
need_node openai playwright-core
chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || { bad "no Chromium at $chromium (Debian package chromium; scripts/deps.sh installs it)"; exit 1; }

# each client script: at most 4 minutes; its ok/FAIL lines are this test's
run_node() {
    local what=$1 rc
    shift
    timeout -k 5 240 node "$@" >"$tmp/$what.out" 2>&1
    rc=$?
    cat "$tmp/$what.out"
    [ $rc -eq 124 ] && echo "FAIL $what: timed out"
    [ $rc -ne 0 ] && ! grep -q '^FAIL' "$tmp/$what.out" && echo "FAIL $what: exit $rc"
    [ $rc -eq 0 ] && ! grep -q '^FAIL' "$tmp/$what.out"
}
export LLM8_BIN="$bin"

# the two Llama 3 models are made while the demo model is tested
l3="$tmp/l3.llm8"
{
    "$bin" convert --random tests/data/random-llama3-config/config.json --tokenizer models/llama3-tokenizer \
        --quant w8a8 -o "$l3" >"$tmp/models.log" 2>&1 || { echo "convert the random Llama 3 model failed"; exit 1; }
    node tests/server/toolcall_model.mjs "$bin" "$tmp/toolcall" >>"$tmp/models.log" 2>&1 ||
        { echo "make the tool-call model failed"; exit 1; }
} >>"$tmp/models.log" 2>&1 &
models=$!

start demo --parallel 2 -t 1 --api-key test-key
start page --parallel 2 -t 1
for s in demo page; do
    p=port_$s
    ready "${!p}" || { bad "$s server not ready: $(cat "$tmp/$s.log")"; exit 1; }
done
run_node demo tests/server/clients.mjs demo "$port_demo" models/stories260k || fail=1

wait "$models" || { bad "the Llama 3 models: $(tail -5 "$tmp/models.log")"; exit 1; }
start l3 -m "$l3" --parallel 2 -t 1
start tc -m "$tmp/toolcall" --parallel 2 -t 1
for s in l3 tc; do
    p=port_$s
    ready "${!p}" || { bad "$s server not ready: $(cat "$tmp/$s.log")"; exit 1; }
done
run_node l3 tests/server/clients.mjs llama3 "$port_l3" "$l3" &
c1=$!
run_node toolcall tests/server/clients.mjs toolcall "$port_tc" "$tmp/toolcall" || fail=1
wait "$c1" || fail=1
CHROMIUM=$chromium run_node page tests/server/page.mjs "$port_page" "$port_tc" || fail=1

for s in demo page l3 tc; do stop_server "$s"; done
exit $fail
