#!/usr/bin/env bash
# Prints the rows of the random 1B-shaped table of docs/QUALITY.md (about 20 minutes, 12 GB of disk in TMPDIR).
cd "$(dirname "$0")/.."
B=build/llm8; C=tests/data/llama-3.2-1b-instruct-config/config.json; T=models/llama3-tokenizer; D=${TMPDIR:-/tmp}/llm8-q1b; mkdir -p $D
field() { printf '%s\n' "$1" | sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p"; }
head -c 1200 tests/data/text/stories.txt > $D/text.txt
[ -e $D/f32.gguf ] || $B convert --random $C --tokenizer $T --quant f32 -o $D/f32.gguf 2>/dev/null
for spec in "f16 auto" "bf16 auto" "w8a8 off" "w8a8 on" "w8a8_g128 on" "w8a8_g256 on" "w8a8_g512 on" "w4a8_g32 off" "w4a8_g32 on"; do
  set -- $spec
  $B convert --random $C --tokenizer $T --quant $1 --rotate $2 -o $D/m.gguf 2>/dev/null
  js=$($B perplexity -m $D/m.gguf -f $D/text.txt --ref $D/f32.gguf --ctx 128 --json 2>/dev/null)
  printf '| %s | %s | %.1f | %.4f | %.5f | %.4f | %.2f%% |\n' $1 $2 $(awk "BEGIN{print $(stat -c %s $D/m.gguf) / 1000000}") $(field "$js" perplexity) $(field "$js" kld_mean) $(field "$js" kld_max) $(awk "BEGIN{print $(field "$js" top1_agreement) * 100}")
done
