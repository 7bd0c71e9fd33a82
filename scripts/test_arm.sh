#!/usr/bin/env bash
# The aarch64 stage of the tests (scripts/test.sh runs it after the x86 stages): cross-builds
# test_kernels, test_golden and the llm8 CLI with Debian's gcc-aarch64-linux-gnu
# (cmake/aarch64-linux-gnu.cmake, in build-arm/) and runs them under qemu-user at each kernel level:
#   -cpu cortex-a76               dotprod without i8mm (the RK3588's big cores)
#   -cpu max                      i8mm (and dotprod, neon)
#   -cpu cortex-a76 LLM8_ISA=neon the ARMv8.0 baseline
# test_kernels checks every level the emulated CPU has against the scalar references (with
# LLM8_TEST_QUICK=1: reduced sizes, every path still taken); test_golden checks the demo model's
# logits and greedy continuations against golden.json through the API and the CLI; and the demo
# model quantized on x86 (w8a8, w4a8_g32) must give the same greedy text and the same perplexity,
# to the last printed digit, as the x86 build (the kernels are bit-exact at every level).
# Emulation proves correctness only: no timing here means anything.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
t0=$SECONDS
scripts/deps.sh
jobs=$(nproc)
out=build-arm/test
mkdir -p "$out"

# only what the stage runs: the library, three tests and the CLI
cmake -B build-arm -S . -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DCMAKE_BUILD_TYPE=Release \
  >"$out/configure.log" 2>&1 || { cat "$out/configure.log"; exit 1; }
cmake --build build-arm -j"$jobs" --target test_kernels test_golden test_probe llm8 >"$out/build.log" 2>&1 ||
  { cat "$out/build.log"; exit 1; }
if grep -q "warning:" "$out/build.log"; then grep -A3 "warning:" "$out/build.log" >&2; fi
# the x86 CLI for the reference outputs (built by the x86 stages; on its own when run alone)
if [ ! -x build/llm8 ]; then
  cmake -B build -S . -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$jobs" --target llm8 >/dev/null
fi
t_build=$((SECONDS - t0))

# No -L / QEMU_LD_PREFIX: the binaries use libc6:arm64's own loader (see the toolchain file).
unset QEMU_LD_PREFIX
qemu=$(command -v qemu-aarch64)
# test_golden runs "$LLM8_BIN run ..." through popen: a wrapper that emulates the CLI (QEMU_CPU
# and LLM8_ISA reach it through the environment)
cat >"$out/llm8-qemu" <<EOF
#!/bin/sh
exec "$qemu" "$root/build-arm/llm8" "\$@"
EOF
chmod +x "$out/llm8-qemu"

# the quantized demo models and the x86 reference outputs
prompt="Lily and Ben went to the park to play with their big red ball"
printf 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friend Ben. One day they found a big red ball under a tree.\n' >"$out/text.txt"
quants=(w8a8 w4a8_g32)
for q in "${quants[@]}"; do
  build/llm8 convert models/stories260k -o "$out/demo-$q.gguf" --quant "$q" >/dev/null 2>&1
  build/llm8 run -m "$out/demo-$q.gguf" -p "$prompt" -n 48 --temp 0 --ignore-eos >"$out/x86-$q.txt" 2>/dev/null
  build/llm8 perplexity -m "$out/demo-$q.gguf" -f "$out/text.txt" --json >"$out/x86-$q.ppl" 2>/dev/null
done

fail=0
# level: QEMU_CPU, LLM8_ISA, the kernels `llm8 info` must name
run_level() {
  local cpu=$1 isa=$2 want=$3 tag=$1${2:+-$2} t=$SECONDS result=ok
  export QEMU_CPU=$cpu LLM8_ISA=$isa
  local got
  got=$("$qemu" build-arm/llm8 info -m models/stories260k | sed -n 's/.*; kernels: \([a-z0-9-]*\).*/\1/p')
  [ "$got" = "$want" ] || { echo "arm $tag: llm8 info says kernels '$got', want '$want'" >&2; result=FAILED; }
  local kernels="-"
  if [ -z "$isa" ]; then # test_kernels covers every level of the CPU itself, whatever LLM8_ISA says
    if LLM8_TEST_QUICK=1 "$qemu" build-arm/tests/test_kernels >"$out/kernels-$tag.log" 2>&1; then
      kernels=$(sed -n 's/^\([a-z0-9-]*\) .*bit-identical to the reference.*/\1/p' "$out/kernels-$tag.log" | tr '\n' ' ')
    else
      tail -20 "$out/kernels-$tag.log" >&2
      result=FAILED
    fi
  fi
  if ! LLM8_BIN="$out/llm8-qemu" "$qemu" build-arm/tests/test_golden >"$out/golden-$tag.log" 2>&1; then
    tail -20 "$out/golden-$tag.log" >&2
    result=FAILED
  fi
  local same=""
  for q in "${quants[@]}"; do
    "$qemu" build-arm/llm8 run -m "$out/demo-$q.gguf" -p "$prompt" -n 48 --temp 0 --ignore-eos \
      >"$out/arm-$tag-$q.txt" 2>/dev/null || true
    "$qemu" build-arm/llm8 perplexity -m "$out/demo-$q.gguf" -f "$out/text.txt" --json \
      >"$out/arm-$tag-$q.ppl" 2>/dev/null || true
    if cmp -s "$out/x86-$q.txt" "$out/arm-$tag-$q.txt" && cmp -s "$out/x86-$q.ppl" "$out/arm-$tag-$q.ppl"; then
      same+=" $q"
    else
      echo "arm $tag: $q differs from x86:" >&2
      diff "$out/x86-$q.txt" "$out/arm-$tag-$q.txt" >&2 || true
      diff "$out/x86-$q.ppl" "$out/arm-$tag-$q.ppl" >&2 || true
      result=FAILED
    fi
  done
  unset QEMU_CPU LLM8_ISA
  [ "$result" = ok ] || fail=1
  printf 'arm %-20s kernels %-8s test_kernels levels: %-24s golden: %s; same text and perplexity as x86:%s  (%d s) %s\n' \
    "$tag" "$got" "$kernels" "$(tail -1 "$out/golden-$tag.log" | sed 's/^golden: //')" "$same" $((SECONDS - t)) "$result"
}

run_level cortex-a76 "" dotprod
run_level max "" i8mm
run_level cortex-a76 neon neon
# the probes' aarch64 kernels (NEON reads, SMMLA peak) and the big.LITTLE detection on fake trees
if QEMU_CPU=max "$qemu" build-arm/tests/test_probe >"$out/probe.log" 2>&1; then
  echo "arm probes: $(grep -E '^kernels' "$out/probe.log"); big.LITTLE: $(grep -E '^rk3588' "$out/probe.log")"
else
  cat "$out/probe.log" >&2
  fail=1
fi
echo "arm: cross build $t_build s, total $((SECONDS - t0)) s"
exit $fail
