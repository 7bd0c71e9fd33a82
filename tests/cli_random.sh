#!/usr/bin/env bash
# llm8 convert --random: a model of random weights shaped by a config.json converts for each
# quantized layout, loads and generates; the same seed gives the same bytes, another seed other
# bytes; bad arguments fail with one line.
set -u
bin=${LLM8_BIN:-build/llm8}
cfg=tests/data/random-config/config.json
tok=models/stories260k
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }

for q in w8a8 w4a8_g32; do
  if "$bin" convert --random "$cfg" --tokenizer "$tok" --seed 7 --quant $q -o "$tmp/$q.gguf" 2>"$tmp/conv.err"; then
    ok "convert $q: $(grep wrote "$tmp/conv.err" | sed 's/.*wrote [^:]*: //')"
  else
    bad "convert $q: $(tail -1 "$tmp/conv.err")"
    continue
  fi
  grep -q '^\[ *1/' "$tmp/conv.err" || bad "$q: no progress lines"
  "$bin" info -m "$tmp/$q.gguf" >"$tmp/info" 2>&1 && grep -q "weights dtype *$q" "$tmp/info" &&
    grep -q "layers *2$" "$tmp/info" || bad "info $q: $(cat "$tmp/info")"
  if out=$("$bin" run -m "$tmp/$q.gguf" -n 8 --temp 0 --ignore-eos -p hello 2>"$tmp/run.err") && [ -n "$out" ]; then
    ok "run $q: $(printf '%s' "$out" | head -c 60 | tr '\n' ' ')"
  else
    bad "run $q: output '$out', $(tail -1 "$tmp/run.err")"
  fi
done

# Determinism: every weight is a function of (seed, tensor, row, column) only.
"$bin" convert --random "$cfg" --tokenizer "$tok" --seed 7 --quant w8a8 -o "$tmp/again.gguf" 2>/dev/null
cmp -s "$tmp/w8a8.gguf" "$tmp/again.gguf" && ok "same seed: identical files" || bad "same seed: files differ"
"$bin" convert --random "$cfg" --tokenizer "$tok" --seed 8 --quant w8a8 -o "$tmp/seed8.gguf" 2>/dev/null
[ -s "$tmp/seed8.gguf" ] && ! cmp -s "$tmp/w8a8.gguf" "$tmp/seed8.gguf" && ok "other seed: different file" ||
  bad "other seed: same file (or none)"
# the config's folder works as well as the file; the default seed is 0
"$bin" convert --random "$(dirname "$cfg")" --tokenizer "$tok" --quant w8a8 -o "$tmp/dir.gguf" 2>/dev/null &&
  "$bin" convert --random "$cfg" --tokenizer "$tok" --seed 0 --quant w8a8 -o "$tmp/seed0.gguf" 2>/dev/null &&
  cmp -s "$tmp/dir.gguf" "$tmp/seed0.gguf" && ok "config folder == config file, default seed 0" ||
  bad "config folder vs file"

# expect NAME PATTERN CMD...: exit 1..127 with exactly one stderr line matching PATTERN.
expect() {
  local name=$1 pattern=$2
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
  local rc=$? lines
  lines=$(wc -l <"$tmp/err")
  if [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ] || [ "$lines" -ne 1 ] || ! grep -q -- "$pattern" "$tmp/err"; then
    echo "FAIL $name: exit $rc, $lines stderr lines:"; sed 's/^/    /' "$tmp/err"
    fail=1
  else
    echo "ok   $name: $(cat "$tmp/err")"
  fi
}
expect "missing config" "$tmp/nope.json" "$bin" convert --random "$tmp/nope.json" --tokenizer "$tok" --quant w8a8 -o "$tmp/x.gguf"
cp "$cfg" "$tmp/other.json"
expect "config not named config.json" "config.json" "$bin" convert --random "$tmp/other.json" --tokenizer "$tok" --quant w8a8 -o "$tmp/x.gguf"
mkdir "$tmp/badcfg" && echo '{"hidden_size": 64' >"$tmp/badcfg/config.json"
expect "invalid config JSON" "config.json" "$bin" convert --random "$tmp/badcfg/config.json" --tokenizer "$tok" --quant w8a8 -o "$tmp/x.gguf"
expect "missing tokenizer" "tokenizer.json" "$bin" convert --random "$cfg" --tokenizer "$tmp" --quant w8a8 -o "$tmp/x.gguf"
expect "tokenizer larger than vocab_size" "vocab_size" "$bin" convert --random "$cfg" --tokenizer models/llama3-tokenizer --quant w8a8 -o "$tmp/x.gguf"
expect "SRC with --random" "no SRC" "$bin" convert --random "$cfg" "$tok" --quant w8a8 -o "$tmp/x.gguf"
expect "--seed without --random" "go with --random" "$bin" convert "$tok" --seed 3 --quant w8a8 -o "$tmp/x.gguf"
expect "bad --seed" "--seed" "$bin" convert --random "$cfg" --tokenizer "$tok" --seed x1 --quant w8a8 -o "$tmp/x.gguf"
[ ! -e "$tmp/x.gguf" ] || bad "a failed conversion left $tmp/x.gguf"
exit $fail
