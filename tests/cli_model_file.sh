#!/usr/bin/env bash
# llm8 model files: conversion from llama.cpp GGUF inputs, and damaged files rejected with one
# clear line (or, for flipped weight bytes only, a run that completes).
set -u
bin=${LLM8_BIN:-build/llm8}
demo=models/stories260k
text=tests/data/text/stories.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }
field() { printf '%s\n' "$1" | sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p"; }
cond() { if awk "BEGIN { exit !($2) }"; then ok "$1"; else bad "$1: ($2) is false"; fi; }
# rejects NAME PATTERN FILE: llm8 run on FILE exits 1..127 with one stderr line matching PATTERN.
rejects() {
  "$bin" run -m "$3" -p hi -n 2 >/dev/null 2>"$tmp/err"
  local rc=$?
  if [ $rc -ge 1 ] && [ $rc -lt 128 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q -- "$2" "$tmp/err"; then
    ok "$1: $(cat "$tmp/err")"
  else
    bad "$1: exit $rc: $(cat "$tmp/err")"
  fi
}

# --- llama.cpp GGUF inputs: un-permuted q/k and the rebuilt tokenizer give the folder's model
"$bin" convert tests/data/gguf/stories260k-f32.gguf -o "$tmp/from_gguf.gguf" --quant f32 2>/dev/null || bad "convert llama.cpp f32"
js=$("$bin" perplexity -m "$tmp/from_gguf.gguf" -f "$text" --ref "$demo" --json 2>/dev/null)
cond "llama.cpp f32 GGUF -> llm8 f32 equals the folder (kld_max $(field "$js" kld_max))" "$(field "$js" kld_max) < 1e-9 && $(field "$js" top1_agreement) == 1"
a=$("$bin" run -m "$tmp/from_gguf.gguf" -p "Once upon a time" -n 32 --temp 0 2>/dev/null)
b=$("$bin" run -m "$demo" -p "Once upon a time" -n 32 --temp 0 2>/dev/null)
[ -n "$a" ] && [ "$a" == "$b" ] && ok "same greedy text as the folder" || bad "greedy text differs: [$a] [$b]"
for q in w8a8 w8a8_g128 w4a8_g32; do
  if "$bin" convert tests/data/gguf/stories260k-q8_0.gguf -o "$tmp/q8_0_$q.gguf" --quant $q 2>/dev/null; then
    js=$("$bin" perplexity -m "$tmp/q8_0_$q.gguf" -f "$text" --ref "$demo" --json 2>/dev/null)
    cond "llama.cpp Q8_0 GGUF -> $q: top-1 $(field "$js" top1_agreement), kld $(field "$js" kld_mean)" "$(field "$js" kld_mean) < 0.5"
  else
    bad "convert llama.cpp q8_0 -> $q"
  fi
done
"$bin" convert tests/data/gguf/bf16_gqa4_hd128_llama3_untied.gguf -o "$tmp/l3.gguf" --quant w8a8 2>/dev/null &&
  "$bin" run -m "$tmp/l3.gguf" -n 4 --temp 0 --ignore-eos >/dev/null 2>&1 && ok "llama3-rope untied bf16 GGUF converts and runs" ||
  bad "llama3-rope untied bf16 GGUF"
rejects "a llama.cpp GGUF given to run" "convert it first" tests/data/gguf/stories260k-f32.gguf

# --- damaged llm8 files
"$bin" convert "$demo" -o "$tmp/m.gguf" --quant w8a8 2>/dev/null || bad "convert"
size=$(stat -c %s "$tmp/m.gguf")
for cut in 3 20 100 1000 20000 $((size / 2)) $((size - 100)); do
  head -c $cut "$tmp/m.gguf" >"$tmp/cut.gguf"
  rejects "truncated at $cut of $size bytes" "cut.gguf" "$tmp/cut.gguf"
done
cp "$tmp/m.gguf" "$tmp/magic.gguf" && printf 'XXXX' | dd of="$tmp/magic.gguf" conv=notrunc status=none
rejects "bad magic" "magic.gguf" "$tmp/magic.gguf"
# the u32 after the key "llm8.format_version" and its type (4 bytes) is the version
off=$(grep -obUa "llm8.format_version" "$tmp/m.gguf" | head -1 | cut -d: -f1)
cp "$tmp/m.gguf" "$tmp/ver.gguf" && printf '\x63' | dd of="$tmp/ver.gguf" bs=1 seek=$((off + 19 + 4)) conv=notrunc status=none
rejects "unknown llm8 format version" "version 99" "$tmp/ver.gguf"
# rename a tensor so that it is missing: blk.4.ffn_up -> blk.9.ffn_up
off=$(grep -obUa "blk.4.ffn_up.weight" "$tmp/m.gguf" | head -1 | cut -d: -f1)
cp "$tmp/m.gguf" "$tmp/miss.gguf" && printf '9' | dd of="$tmp/miss.gguf" bs=1 seek=$((off + 4)) conv=notrunc status=none
rejects "missing tensor" "blk.4.ffn_up" "$tmp/miss.gguf"
# a rotated file of an llm8 from before the final norm was stored with the rotation
off=$(grep -obUa "rot_embd.norm" "$tmp/m.gguf" | head -1 | cut -d: -f1)
if [ -n "$off" ]; then
  cp "$tmp/m.gguf" "$tmp/old.gguf" && printf 'x' | dd of="$tmp/old.gguf" bs=1 seek=$((off + 12)) conv=notrunc status=none
  rejects "older rotated file" "convert it again" "$tmp/old.gguf"
else
  bad "the w8a8 file has no rot_embd.norm tensor"
fi
# absurd dimension: llama.embedding_length's value
off=$(grep -obUa "llama.embedding_length" "$tmp/m.gguf" | head -1 | cut -d: -f1)
cp "$tmp/m.gguf" "$tmp/dim.gguf" && printf '\xff\xff\xff\x7f' | dd of="$tmp/dim.gguf" bs=1 seek=$((off + 22 + 4)) conv=notrunc status=none
rejects "absurd dimension" "embedding_length" "$tmp/dim.gguf"
# flipped bytes inside the weights: the run completes (weights are not checksummed)
cp "$tmp/m.gguf" "$tmp/flip.gguf" && printf '\x5a\xa5\x5a\xa5' | dd of="$tmp/flip.gguf" bs=1 seek=$((size - 40000)) conv=notrunc status=none
"$bin" run -m "$tmp/flip.gguf" -p hi -n 4 >/dev/null 2>&1 && ok "flipped weight bytes: the run completes" || bad "flipped weight bytes"
exit $fail
