#!/usr/bin/env bash
# Resource limits through the CLI.
#  Memory at start-up: --max-memory too small for run, chat, perplexity and bench -> exit 1 and one
#  line that says what is needed and the largest context that fits; that context then runs under
#  the same budget and one token more does not; a context beyond the machine's available memory
#  is refused the same way, before anything is allocated.
#  Disk full (a file size limit, ulimit -f, standing in for a full disk: both fail write()):
#  `llm8 convert` and chat's /save fail with one error line, leave nothing under the final name or
#  the temporary one, and do not touch a file that was already there.
set -u
bin=${LLM8_BIN:-build/llm8}
demo=models/stories260k
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

# expect_refusal NAME CMD...: exit 1, exactly one stderr line, "not enough memory" in it
expect_refusal() {
  local name=$1
  shift
  "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
  local rc=$?
  if [ "$rc" -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "not enough memory" "$tmp/err"; then
    ok "$name: $(cat "$tmp/err")"
  else
    bad "$name: exit $rc:"; sed 's/^/    /' "$tmp/err" | head -10
  fi
}

# ------------------------------------------------------------------ memory

expect_refusal "run --max-memory 1M" "$bin" run -m "$demo" -p Once -n 4 --max-memory 1M
expect_refusal "chat --max-memory 1500K" "$bin" chat -m "$demo" -n 4 --max-memory 1500K
printf 'Once upon a time there was a girl.\n' >"$tmp/text.txt"
expect_refusal "perplexity --max-memory 1M" "$bin" perplexity -m "$demo" -f "$tmp/text.txt" --max-memory 1M
expect_refusal "bench --max-memory 1M" "$bin" bench -m "$demo" -r 1 -n 4 -p 8 --max-memory 1M
grep -q "not even a context of 1 token fits" "$tmp/err" && ok "too small for the weights: says so" ||
  bad "no 'not even' for a budget below the weights: $(cat "$tmp/err")"

# a budget between the weights and a full context: the suggested context must run, one more not
budget=2100K
"$bin" run -m "$demo" -p Once -n 4 --temp 0 -t 1 --max-memory $budget >/dev/null 2>"$tmp/err"
fit=$(sed -n 's/.*at most \([0-9]*\) tokens fits.*/\1/p' "$tmp/err")
if [ -n "$fit" ] && [ "$fit" -gt 8 ] && [ "$fit" -lt 512 ]; then
  ok "budget $budget: $(cat "$tmp/err")"
  if "$bin" run -m "$demo" -p Once -n 4 --temp 0 -t 1 -c "$fit" --max-memory $budget >"$tmp/out" 2>"$tmp/err" &&
    [ -s "$tmp/out" ]; then
    ok "-c $fit runs under $budget: $(head -c 60 "$tmp/out")"
  else
    bad "-c $fit under $budget: $(cat "$tmp/err")"
  fi
  expect_refusal "-c $((fit + 1)) under $budget" "$bin" run -m "$demo" -p Once -n 4 -t 1 -c $((fit + 1)) --max-memory $budget
else
  bad "budget $budget: no context suggested: $(cat "$tmp/err")"
fi
if "$bin" run -m "$demo" -p Once -n 4 --temp 0 --max-memory 64M >"$tmp/out" 2>"$tmp/err" && [ -s "$tmp/out" ]; then
  ok "run --max-memory 64M runs"
else
  bad "run --max-memory 64M: $(cat "$tmp/err")"
fi
out=$(printf 'Once upon a time\n' | "$bin" chat -m "$demo" -n 4 --temp 0 --max-memory 64M 2>/dev/null)
[ -n "$out" ] && ok "chat --max-memory 64M answers" || bad "chat --max-memory 64M: no answer"
"$bin" perplexity -m "$demo" -f "$tmp/text.txt" --max-memory 64M >"$tmp/out" 2>&1 && ok "perplexity --max-memory 64M runs" ||
  bad "perplexity --max-memory 64M: $(cat "$tmp/out")"
for v in 0 -5 abc 12Q 1e30T; do
  "$bin" run -m "$demo" --max-memory "$v" >/dev/null 2>"$tmp/err"
  rc=$?
  [ "$rc" -eq 2 ] && grep -q "max-memory" "$tmp/err" && [ "$(wc -l <"$tmp/err")" -eq 1 ] && ok "--max-memory $v rejected" ||
    bad "--max-memory $v: exit $rc: $(cat "$tmp/err")"
done

# the machine's own limit: a model whose 16M-token context needs 128 GB of KV cache
cat >"$tmp/config.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "hidden_size": 1024, "intermediate_size": 256, "num_hidden_layers": 2,
 "num_attention_heads": 8, "num_key_value_heads": 8, "vocab_size": 512, "max_position_embeddings": 16777216,
 "rms_norm_eps": 1e-5, "bos_token_id": 1, "eos_token_id": 2}
EOF
"$bin" convert --random "$tmp/config.json" --tokenizer "$demo" --quant w8a8 -o "$tmp/long.gguf" 2>/dev/null || bad "convert --random"
avail=$(awk '/^MemAvailable/ {printf "%d", $2 * 1024}' /proc/meminfo)
if [ -n "$avail" ] && [ "$avail" -lt $((2 * 2 * 16777216 * 1024 * 2)) ]; then
  expect_refusal "a 16M-token context (KV cache 128 GB) beyond the machine" "$bin" run -m "$tmp/long.gguf" -c 16777216 -n 1
  grep -q "available memory\|cgroup" "$tmp/err" && grep -q "at most [0-9]* tokens fits" "$tmp/err" &&
    ok "names the machine's limit and what fits" || bad "machine limit message: $(cat "$tmp/err")"
else
  echo "skip machine limit: more than 128 GB available"
fi

# ------------------------------------------------------------------ disk full

# convert under a 100 KB file size limit (the file is 340 KB)
(ulimit -f 100; exec "$bin" convert "$demo" -o "$tmp/out.gguf" --quant w8a8) >/dev/null 2>"$tmp/err"
rc=$?
last=$(tail -1 "$tmp/err")
if [ "$rc" -eq 1 ] && [[ "$last" == *"write failed"* ]] && ! grep -q "ERROR\|runtime error" "$tmp/err"; then
  ok "convert on a full disk: $last"
else
  bad "convert on a full disk: exit $rc: $last"
fi
[ ! -e "$tmp/out.gguf" ] && [ ! -e "$tmp/out.gguf.tmp" ] && ok "convert left no file (final or temporary)" ||
  bad "convert left $(ls "$tmp" | tr '\n' ' ')"
printf 'precious' >"$tmp/out.gguf"
(ulimit -f 100; exec "$bin" convert "$demo" -o "$tmp/out.gguf" --quant w8a8) >/dev/null 2>&1
[ "$(cat "$tmp/out.gguf")" == precious ] && [ ! -e "$tmp/out.gguf.tmp" ] && ok "convert kept the existing file intact" ||
  bad "convert on a full disk damaged the existing file"
rm -f "$tmp/out.gguf"
"$bin" convert "$demo" -o "$tmp/out.gguf" --quant w8a8 2>/dev/null && "$bin" run -m "$tmp/out.gguf" -n 2 -p Once >/dev/null 2>&1 &&
  ok "the same conversion without a limit works" || bad "convert without a limit"

# chat /save of ~28 KB under a 20 KB limit: an error line, the conversation goes on
save=$tmp/chat.state
printf 'Once upon a time\n/save %s\nWhat next?\n' "$save" |
  (ulimit -f 20; exec "$bin" chat -m "$demo" -n 4 --temp 0) >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -eq 0 ] && [ "$(grep -c "write failed" "$tmp/err")" -eq 1 ] && [ "$(wc -l <"$tmp/out")" -eq 2 ]; then
  ok "/save on a full disk: $(grep "write failed" "$tmp/err"); both answers given"
else
  bad "/save on a full disk: exit $rc, stdout $(wc -l <"$tmp/out") lines:"; sed 's/^/    /' "$tmp/err"
fi
[ ! -e "$save" ] && [ ! -e "$save.tmp" ] && ok "/save left no file (final or temporary)" || bad "/save left $(ls "$tmp")"
printf 'Once upon a time\n/save %s\n' "$save" | "$bin" chat -m "$demo" -n 4 --temp 0 >/dev/null 2>&1
cp "$save" "$tmp/good.state"
printf 'Once upon a time\nAnd then?\nMore!\n/save %s\n' "$save" |
  (ulimit -f 20; exec "$bin" chat -m "$demo" -n 4 --temp 0) >/dev/null 2>&1
cmp -s "$save" "$tmp/good.state" && [ ! -e "$save.tmp" ] && ok "/save kept the earlier save intact" ||
  bad "a failed /save damaged the earlier save"
printf '/load %s\nWhat next?\n' "$save" | "$bin" chat -m "$demo" -n 4 --temp 0 >/dev/null 2>"$tmp/err" &&
  grep -q "^loaded" "$tmp/err" && ok "the earlier save still loads" || bad "the earlier save: $(cat "$tmp/err")"

exit $fail
