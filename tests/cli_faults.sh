#!/usr/bin/env bash
# Damaged model files through `llm8 run`: a converted llm8 file and a Hugging Face folder, each
# truncated at 20 points and with single bytes changed at 20 offsets (10 in the header and
# metadata, 10 in the tensor data), plus 10 flips in the folder's JSON files.
#   truncated               -> exit 1 with one stderr line naming the file (a truncated file can
#                              never be complete)
#   flipped in the header   -> exit 1 with one line, or a run that completes (a flipped letter in
#                              a free-text field changes nothing)
#   flipped in tensor data  -> the run completes (weights are numbers: no check can tell)
# Never a signal, a sanitizer report, or a hang (each run has 60 s). The offsets come from a
# seeded generator (LLM8_FAULT_SEED, default 8), so a failure replays exactly.
set -u
bin=${LLM8_BIN:-build/llm8}
demo=models/stories260k
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
RANDOM=${LLM8_FAULT_SEED:-8}
injected=0 errors=0 completed=0

# rnd N: sets R to a number in [0, N) from bash's seeded generator (30 bits: files up to 1 GB).
# Not $(...): bash reseeds RANDOM in every subshell, which would make the offsets irreproducible.
rnd() { R=$(((RANDOM << 15 | RANDOM) % $1)); }

# run_case NAME KIND MODEL: KIND is must_fail, may_complete or must_complete.
run_case() {
  local name=$1 kind=$2 model=$3
  injected=$((injected + 1))
  timeout -k 5 60 "$bin" run -m "$model" -p "Once upon a time" -n 8 --temp 0 -t 1 >"$tmp/out" 2>"$tmp/err" </dev/null
  local rc=$? lines
  lines=$(wc -l <"$tmp/err")
  if [ "$rc" -ge 124 ]; then
    echo "FAIL $name: exit $rc (killed by a signal or timed out)"; sed 's/^/    /' "$tmp/err" | head -20
    fail=1
  elif [ "$rc" -eq 0 ]; then
    if [ "$kind" = must_fail ]; then
      echo "FAIL $name: the run completed"; fail=1
    elif ! grep -q "^llm8: prompt .* generated" "$tmp/err" || grep -q "ERROR\|runtime error" "$tmp/err"; then
      echo "FAIL $name: exit 0 without a clean stats line:"; sed 's/^/    /' "$tmp/err" | head -20; fail=1
    else
      completed=$((completed + 1))
    fi
  elif [ "$kind" = must_complete ]; then
    echo "FAIL $name: exit $rc, but a flipped weight byte must not stop a run:"; sed 's/^/    /' "$tmp/err"
    fail=1
  elif [ "$rc" -ne 1 ] || [ "$lines" -ne 1 ]; then
    echo "FAIL $name: exit $rc with $lines stderr lines (one line and exit 1 expected):"
    sed 's/^/    /' "$tmp/err" | head -20
    fail=1
  else
    errors=$((errors + 1))
    [ -n "${LLM8_FAULT_VERBOSE:-}" ] && echo "ok   $name: $(cat "$tmp/err")"
  fi
}

# flip FILE OFFSET: XORs one byte with a random non-zero mask, in place (half the masks keep an
# ASCII byte ASCII, so JSON text is changed as often as it is broken)
flip() {
  local b
  rnd 255
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $((b ^ (1 + R))))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# ------------------------------------------------------------------ a converted llm8 file

"$bin" convert "$demo" -o "$tmp/m.gguf" --quant w8a8 2>/dev/null || { echo "FAIL convert"; exit 1; }
size=$(stat -c %s "$tmp/m.gguf")
# where the tensor data starts: the GGUF header, key/values and tensor infos come before it
data=$(python3 - "$tmp/m.gguf" <<'EOF'
import struct, sys
b = open(sys.argv[1], "rb").read()
n_t, n_kv = struct.unpack_from("<QQ", b, 8)
p, align = 24, 32
def string(p):
    n, = struct.unpack_from("<Q", b, p)
    return b[p + 8:p + 8 + n].decode(), p + 8 + n
SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def value(t, p):
    if t == 8:
        return string(p)
    if t == 9:
        et, n = struct.unpack_from("<IQ", b, p)
        p += 12
        for _ in range(n):
            _, p = value(et, p)
        return None, p
    v = b[p:p + SIZES[t]]
    return v, p + SIZES[t]
for _ in range(n_kv):
    k, p = string(p)
    t, = struct.unpack_from("<I", b, p)
    v, p = value(t, p + 4)
    if k == "general.alignment":
        align, = struct.unpack("<I", v)
for _ in range(n_t):
    _, p = string(p)
    nd, = struct.unpack_from("<I", b, p)
    p += 4 + 8 * nd + 4 + 8
print((p + align - 1) // align * align)
EOF
)
[ -n "$data" ] && [ "$data" -lt "$size" ] || { echo "FAIL could not find the data section of $tmp/m.gguf"; exit 1; }
echo "llm8 file: $size bytes, tensor data from byte $data"

for i in $(seq 20); do
  rnd "$size"; at=$R
  head -c "$at" "$tmp/m.gguf" >"$tmp/t.gguf"
  run_case "llm8 file truncated at $at" must_fail "$tmp/t.gguf"
done
for i in $(seq 20); do
  if [ "$i" -le 10 ]; then rnd "$data"; at=$R; kind=may_complete; else rnd $((size - data)); at=$((data + R)); kind=must_complete; fi
  cp "$tmp/m.gguf" "$tmp/f.gguf"
  flip "$tmp/f.gguf" "$at"
  run_case "llm8 file byte $at flipped" "$kind" "$tmp/f.gguf"
done

# ------------------------------------------------------------------ a Hugging Face folder

st=$demo/model.safetensors
size=$(stat -c %s "$st")
hlen=$(od -An -tu8 -N8 "$st" | tr -d ' ')
data=$((8 + hlen))
echo "safetensors: $size bytes, tensor data from byte $data"
fresh() { rm -rf "$tmp/m"; cp -r "$demo" "$tmp/m"; chmod -R u+w "$tmp/m"; }
for i in $(seq 20); do
  rnd "$size"; at=$R
  fresh
  head -c "$at" "$st" >"$tmp/m/model.safetensors"
  run_case "safetensors truncated at $at" must_fail "$tmp/m"
done
for i in $(seq 20); do
  if [ "$i" -le 10 ]; then rnd "$data"; at=$R; kind=may_complete; else rnd $((size - data)); at=$((data + R)); kind=must_complete; fi
  fresh
  flip "$tmp/m/model.safetensors" "$at"
  run_case "safetensors byte $at flipped" "$kind" "$tmp/m"
done
for i in $(seq 10); do
  if [ $((i % 2)) -eq 0 ]; then f=config.json; else f=tokenizer.json; fi
  fresh
  rnd "$(stat -c %s "$tmp/m/$f")"; at=$R
  flip "$tmp/m/$f" "$at"
  run_case "$f byte $at flipped" may_complete "$tmp/m"
done

echo "faults: $injected injected, $errors refused with one line, $completed runs completed, $((injected - errors - completed)) failures"
exit $fail
