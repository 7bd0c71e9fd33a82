#!/usr/bin/env bash
# Bad input through the CLI: each case must exit non-zero (not by a signal) with exactly one line
# on stderr that names the file or the problem.
set -u
bin=${LLM8_BIN:-build/llm8}
demo=models/stories260k
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# expect NAME PATTERN CMD...: runs CMD, checks status 1..127, one stderr line matching PATTERN.
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

copy_demo() { rm -rf "$tmp/m"; cp -r "$demo" "$tmp/m"; chmod -R u+w "$tmp/m"; }

expect "missing folder" "$tmp/nope" "$bin" run -m "$tmp/nope" -p hi -n 1

copy_demo; rm "$tmp/m/config.json"
expect "missing config.json" "config.json" "$bin" info -m "$tmp/m"

copy_demo; rm "$tmp/m/model.safetensors"
expect "missing weights" "safetensors" "$bin" run -m "$tmp/m" -p hi -n 1

copy_demo; rm "$tmp/m/tokenizer.json"
expect "missing tokenizer.json" "tokenizer.json" "$bin" run -m "$tmp/m" -p hi -n 1

copy_demo; head -c 4000 "$demo/model.safetensors" >"$tmp/m/model.safetensors"
expect "safetensors truncated in its header" "model.safetensors" "$bin" run -m "$tmp/m" -p hi -n 1

copy_demo; head -c 600000 "$demo/model.safetensors" >"$tmp/m/model.safetensors"
expect "safetensors truncated in its data" "model.safetensors" "$bin" run -m "$tmp/m" -p hi -n 1

copy_demo; printf '\xff\xff\xff\xff\xff\xff\xff\x7f{}' >"$tmp/m/model.safetensors"
expect "safetensors header length absurd" "model.safetensors" "$bin" info -m "$tmp/m"

copy_demo; printf '\x10\x00\x00\x00\x00\x00\x00\x00{"a": [1, 2, 3' >"$tmp/m/model.safetensors"
expect "safetensors header not JSON" "model.safetensors" "$bin" info -m "$tmp/m"

copy_demo; sed -i "s/\[1039872,1040128\]/[8039872,8040128]/" "$tmp/m/model.safetensors"
grep -q 8039872 "$tmp/m/model.safetensors" || { echo "FAIL setup: offsets not rewritten"; fail=1; }
expect "offsets out of range" "model.safetensors" "$bin" info -m "$tmp/m"

copy_demo; sed -i 's/"intermediate_size": 172/"intermediate_size": 170/' "$tmp/m/config.json"
expect "tensor of the wrong shape" "shape" "$bin" run -m "$tmp/m" -p hi -n 1

copy_demo; sed -i 's/"hidden_size": 64/"hidden_size": -64/' "$tmp/m/config.json"
expect "absurd config field" "hidden_size" "$bin" info -m "$tmp/m"

copy_demo; sed -i '/"num_hidden_layers"/d' "$tmp/m/config.json"
expect "missing config field" "num_hidden_layers" "$bin" info -m "$tmp/m"

copy_demo; sed -i 's/LlamaForCausalLM/MambaForCausalLM/; s/"model_type": "llama"/"model_type": "mamba"/' "$tmp/m/config.json"
expect "unknown architecture" "Mamba" "$bin" info -m "$tmp/m"

copy_demo; printf '{"hidden_size": 64,' >"$tmp/m/config.json"
expect "config not JSON" "config.json" "$bin" info -m "$tmp/m"

copy_demo; printf '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [' >"$tmp/m/tokenizer.json"
expect "tokenizer.json truncated" "tokenizer.json" "$bin" run -m "$tmp/m" -p hi -n 1

expect "invalid UTF-8 prompt" "UTF-8" "$bin" run -m "$demo" -p $'caf\xe9' -n 1
expect "invalid UTF-8 on tokenize stdin" "UTF-8" sh -c "printf 'caf\\351' | '$bin' tokenize -m '$demo'"
expect "prompt longer than the context" "context" "$bin" run -m "$demo" -c 8 -p "Once upon a time there was a little girl named Lily" -n 4
expect "bad option value" "--temp" "$bin" run -m "$demo" --temp abc
expect "unknown option" "--bogus" "$bin" run --bogus

exit $fail
