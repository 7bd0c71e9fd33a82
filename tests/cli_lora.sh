#!/usr/bin/env bash
# LoRA on the command line: `llm8 run/chat --lora DIR[:SCALE]` and `llm8 convert --lora DIR
# [--lora-scale S]`. Greedy text with the adapter applied unmerged equals the text of the model
# converted with the adapter merged (float), on the fast and the reference path; SCALE 0 is the
# base model; bad adapters and options give a one-line error. tests/test_lora.c has the numbers.
set -u
bin=${LLM8_BIN:-build/llm8}
model=tests/data/random/bf16_gqa3_hd32_tied_2shards
lora=tests/data/lora/gqa3_r8_bf16
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }
run() { "$bin" run -p "Once upon a time" -n 24 --temp 0 --ignore-eos "$@" 2>"$tmp/run.err"; }

"$bin" convert "$model" --lora "$lora" --lora-scale 0.75 -o "$tmp/merged.gguf" --quant f32 2>"$tmp/conv.err" &&
  grep -q "LoRA $lora (scale 0.75)" "$tmp/conv.err" && ok "convert --lora --lora-scale 0.75" ||
  bad "convert --lora: $(tail -1 "$tmp/conv.err")"
"$bin" convert "$model" --lora "$lora" --lora-scale 0.75 -o "$tmp/merged8.gguf" --quant w8a8 2>/dev/null &&
  ok "convert --lora to w8a8 (rotated)" || bad "convert --lora to w8a8"
"$bin" convert "$model" -o "$tmp/w8a8.gguf" --quant w8a8 2>/dev/null || bad "convert w8a8"

base=$(run -m "$model")
merged=$(run -m "$tmp/merged.gguf")
[ -n "$merged" ] && [ "$merged" != "$base" ] && ok "the adapter changes the text" || bad "merged text [$merged] vs base [$base]"
for path in fast reference; do
  extra=()
  [ $path == reference ] && extra=(--reference)
  out=$(run -m "$model" --lora "$lora:0.75" "${extra[@]}")
  [ "$out" == "$merged" ] && ok "run --lora DIR:0.75 ($path) == merged file" || bad "run --lora ($path): [$out] != [$merged]"
done
out=$(run -m "$model" --lora "$lora:0")
[ "$out" == "$base" ] && ok "run --lora DIR:0 == base" || bad "--lora DIR:0: [$out] != [$base]"
out=$(run -m "$model" --lora "$lora")
[ -n "$out" ] && [ "$out" != "$merged" ] && ok "run --lora DIR (scale 1) differs from scale 0.75" || bad "--lora DIR: [$out]"
# on the rotated w8a8 file: runs, and with int8 noise the text may differ from the merged one's
run -m "$tmp/w8a8.gguf" --lora "$lora:0.75" >/dev/null && ok "run w8a8 --lora" || bad "run w8a8 --lora: $(cat "$tmp/run.err")"

out=$(printf 'Hello\nOnce upon a time\n' | "$bin" chat -m "$model" --lora "$lora:0.75" -n 8 --temp 0 2>"$tmp/chat.err")
[ $? -eq 0 ] && [ -n "$out" ] && ok "chat --lora from a pipe" || bad "chat --lora: $(cat "$tmp/chat.err")"

# errors: status and one line naming the problem
expect() { # name, expected exit code, text the message must contain, command...
  local name=$1 code=$2 text=$3
  shift 3
  "$@" >/dev/null 2>"$tmp/err"
  local rc=$?
  if [ $rc -eq "$code" ] && grep -qF -- "$text" "$tmp/err" && [ "$(wc -l <"$tmp/err")" -eq 1 ]; then
    ok "$name: $(cat "$tmp/err")"
  else
    bad "$name: exit $rc, stderr: $(cat "$tmp/err")"
  fi
}
mkdir -p "$tmp/badrank"
sed 's/"r": 8/"r": 5/' "$lora/adapter_config.json" >"$tmp/badrank/adapter_config.json"
cp "$lora/adapter_model.safetensors" "$tmp/badrank/"
expect "run --lora missing folder" 1 "no such LoRA adapter folder" "$bin" run -m "$model" --lora "$tmp/nope" -n 1
expect "run --lora rank mismatch" 1 "rank mismatch" "$bin" run -m "$model" --lora "$tmp/badrank" -n 1
expect "chat --lora other model's adapter" 1 "wrong shape" "$bin" chat -m tests/data/random/bf16_gqa4_hd128_llama3_untied_3shards --lora "$lora"
expect "convert --lora rank mismatch" 1 "rank mismatch" "$bin" convert "$model" --lora "$tmp/badrank" -o "$tmp/y.gguf" --quant f32
[ ! -e "$tmp/y.gguf" ] || bad "a failed convert left $tmp/y.gguf"
expect "convert --lora-scale without --lora" 2 "--lora-scale goes with --lora" "$bin" convert "$model" --lora-scale 2 -o "$tmp/y.gguf" --quant f32
expect "convert --lora-scale not a number" 2 "--lora-scale" "$bin" convert "$model" --lora "$lora" --lora-scale x -o "$tmp/y.gguf" --quant f32
expect "run --lora without a value" 2 "--lora" "$bin" run -m "$model" --lora
exit $fail
