#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang and runs each for
# LLM8_FUZZ_SECONDS (default 45) on a copy of its committed seed corpus, LLM8_FUZZ_JOBS targets at
# a time (default 2, one per core here). Any crash, leak, undefined behaviour, broken invariant or
# input slower than 10 s leaves its input in $build/crashes/ and fails the script; so does a
# target that cannot start. Prints one line of figures per target (for docs/RELIABILITY.md).
#   LLM8_FUZZ_BUILD   build folder (default build-fuzz)
#   LLM8_FUZZ_ONLY    run only these targets, e.g. "tokenize chat_template"
#   LLM8_FUZZ_SEED    libFuzzer's seed (default 1; 0 = a new one each run). CI is a regression
#                     gate: with a fixed seed it replays the mutations a green run here made (as
#                     far as its time allows), so it cannot turn red on a bug nobody has seen.
#                     Looking for new bugs is a longer run with LLM8_FUZZ_SEED=0
#                     (docs/RELIABILITY.md).
# Regressions: copy a crash input into tests/fuzz/corpus/NAME/crash-WHAT once it is fixed; ctest
# replays every corpus file in the ordinary builds (fuzz_NAME_replay).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${LLM8_FUZZ_SECONDS:-45}
jobs=${LLM8_FUZZ_JOBS:-2}
build=${LLM8_FUZZ_BUILD:-build-fuzz}
t0=$(date +%s)
cmake -B "$build" -S . -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLM8_FUZZ=ON -DLLM8_TESTS=OFF >/dev/null
names=()
for src in tests/fuzz/fuzz_*.c; do
  n=$(basename "$src" .c)
  n=${n#fuzz_}
  if [ -n "${LLM8_FUZZ_ONLY:-}" ] && [[ " $LLM8_FUZZ_ONLY " != *" $n "* ]]; then continue; fi
  names+=("$n")
done
# only the fuzz targets: the CLI and the rest would double the build for nothing
cmake --build "$build" -j"$(nproc)" --target "${names[@]/#/fuzz_}" >/dev/null
t1=$(date +%s)
rm -rf "$build/crashes" "$build/logs" && mkdir -p "$build/crashes" "$build/logs"

run_one() {
  local name=$1 work=$build/corpus/$1
  rm -rf "$work" && mkdir -p "$work"
  if [ -d "tests/fuzz/corpus/$name" ]; then cp -r "tests/fuzz/corpus/$name"/. "$work"/; fi
  local rc=0
  "$build/tests/fuzz/fuzz_$name" -max_total_time="$secs" -seed="${LLM8_FUZZ_SEED:-1}" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$build/crashes/$name-" "$work" >"$build/logs/$name.log" 2>&1 || rc=$?
  echo "$rc" >"$build/logs/$name.rc"
}

pids=()
for name in "${names[@]}"; do
  run_one "$name" &
  pids+=($!)
  if [ "${#pids[@]}" -ge "$jobs" ]; then
    wait "${pids[0]}"
    pids=("${pids[@]:1}")
  fi
done
wait

fail=0
printf 'fuzz: %-16s %12s %8s %8s %7s  %s\n' target executions exec/s corpus cov result
for name in "${names[@]}"; do
  log=$build/logs/$name.log
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  files=$(find "$build/corpus/$name" -type f | wc -l)
  result=ok
  if ls "$build/crashes/$name-"* >/dev/null 2>&1; then
    result="FOUND $(ls "$build/crashes/$name-"* | head -1)"
    fail=1
  elif [ "$(cat "$build/logs/$name.rc")" != 0 ]; then
    result="FAILED (exit $(cat "$build/logs/$name.rc"); $log)"
    fail=1
  fi
  printf 'fuzz: %-16s %12s %8s %8s %7s  %s\n' "$name" "${execs:-0}" "${rate:-0}" "$files" "${cov:-?}" "$result"
  if [ "$result" != ok ]; then
    grep -E "ERROR|runtime error|invariant|SUMMARY|Test unit written" "$log" | head -8 | sed 's/^/      /' >&2
  fi
done
echo "fuzz: build $((t1 - t0)) s, fuzzing $(($(date +%s) - t1)) s (${#names[@]} targets, ${secs} s each, $jobs at a time)"
exit $fail
