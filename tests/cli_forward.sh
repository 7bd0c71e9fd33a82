#!/usr/bin/env bash
# The fast forward pass gives the same greedy tokens at every kernel level this CPU has
# (LLM8_ISA) and with 1 to 4 threads, for the float folder and every quantized type: the kernels
# are bit-identical across levels (tests/test_kernels.c) and threads split work, not sums. For the
# float folder the tokens also equal the scalar f32 reference transformer's; quantized models are
# checked against the reference at the kernel level (bit-exact int8 matmuls), since a near-tie
# can flip on a float helper's last bit (docs/QUALITY.md).
set -u
bin=${LLM8_BIN:-build/llm8}
demo=models/stories260k
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
models=("$demo")
for q in w8a8 w8a8_g128 w4a8_g32; do
  "$bin" convert "$demo" -o "$tmp/$q.gguf" --quant $q 2>/dev/null && models+=("$tmp/$q.gguf") || { echo "FAIL convert $q"; fail=1; }
done
isas=$("$bin" info 2>/dev/null | sed -n 's/^kernels available *//p')
[ -n "$isas" ] || isas="scalar"
for m in "${models[@]}"; do
  for p in "Once upon a time" "Zoë saw a café 😀 near the sea."; do
    ref=$(LLM8_ISA=scalar "$bin" run -m "$m" -p "$p" -n 40 --temp 0 --ignore-eos -t 1 2>/dev/null)
    [ -n "$ref" ] || { echo "FAIL run on $m"; fail=1; continue; }
    if [ "$m" == "$demo" ]; then
      oracle=$("$bin" run -m "$m" -p "$p" -n 40 --temp 0 --ignore-eos --reference 2>/dev/null)
      [ "$oracle" == "$ref" ] || { echo "FAIL float model: fast [$ref] != reference [$oracle]"; fail=1; }
    fi
    for isa in $isas; do
      for t in 1 2 3 4; do
        out=$(LLM8_ISA=$isa "$bin" run -m "$m" -p "$p" -n 40 --temp 0 --ignore-eos -t $t 2>/dev/null)
        if [ "$out" != "$ref" ]; then
          echo "FAIL $(basename "$m") isa $isa threads $t: [$out] != scalar, 1 thread [$ref]"
          fail=1
        fi
      done
    done
    echo "ok   $(basename "$m") '$p': isa {$isas} x threads {1..4} identical"
  done
done

# A full context: by default the run stops there; --keep N shifts it and goes on to -n.
stats=$("$bin" run -p "Once upon a time" -c 64 -n 150 --temp 0 --ignore-eos 2>&1 >/dev/null)
[[ "$stats" == *"generated 60 tokens"* ]] || { echo "FAIL full context without --keep: $stats"; fail=1; }
stats=$("$bin" run -p "Once upon a time" -c 64 -n 150 --temp 0 --ignore-eos --keep 4 2>&1 >/dev/null)
[[ "$stats" == *"generated 150 tokens"* ]] || { echo "FAIL --keep 4: $stats"; fail=1; }
msg=$("$bin" run -p "Once" -c 64 --keep 40 2>&1 >/dev/null) && { echo "FAIL --keep 40 accepted"; fail=1; }
[[ "$msg" == *"n_keep 40 must be below half the context"* ]] || { echo "FAIL --keep 40: $msg"; fail=1; }
echo "ok   context full: stop by default, --keep shifts"
exit $fail
