#!/usr/bin/env bash
# Prints the rows of the demo-model table of docs/QUALITY.md (run from the repository root after a build).
cd "$(dirname "$0")/.."
bin=build/llm8; demo=models/stories260k; text=tests/data/text/stories.txt; T=$(mktemp -d)
field() { printf '%s\n' "$1" | sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p"; }
$bin convert $demo -o $T/f32.gguf --quant f32 2>/dev/null
greedy() { local same=0; while IFS= read -r p; do a=$($bin run -m $T/f32.gguf -p "$p" -n 64 --temp 0 --ignore-eos 2>/dev/null); b=$($bin run -m $1 -p "$p" -n 64 --temp 0 --ignore-eos 2>/dev/null); [ "$a" == "$b" ] && same=$((same+1)); done < <(sed -n 's/^ *"prompt": "\(.*\)",$/\1/p' $demo/golden.json | sed 's/\\"/"/g'); echo $same; }
for spec in "f32 auto" "f16 auto" "bf16 auto" "w8a8 off" "w8a8 on" "w8a8_g128 off" "w8a8_g128 on" "w8a8_g256 on" "w8a8_g512 on" "w4a8_g32 off" "w4a8_g32 on"; do
  set -- $spec
  $bin convert $demo -o $T/m.gguf --quant $1 --rotate $2 2>/dev/null
  js=$($bin perplexity -m $T/m.gguf -f $text --ref $T/f32.gguf --json 2>/dev/null)
  printf '| %s | %s | %.1f | %.4f | %.5f | %.4f | %.2f%% | %s/5 |\n' $1 $2 $(awk "BEGIN{print $(stat -c %s $T/m.gguf) / 1000}") $(field "$js" perplexity) $(field "$js" kld_mean) $(field "$js" kld_max) $(awk "BEGIN{print $(field "$js" top1_agreement) * 100}") $(greedy $T/m.gguf)
done
rm -rf $T
