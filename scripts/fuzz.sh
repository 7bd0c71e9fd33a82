#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for LLM8_FUZZ_SECONDS (default 30) on a
# copy of its committed seed corpus. A crash leaves its input in build-fuzz/crashes/ and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${LLM8_FUZZ_SECONDS:-30}
cmake -B build-fuzz -S . -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLM8_FUZZ=ON -DLLM8_TESTS=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" >/dev/null
mkdir -p build-fuzz/crashes
for bin in build-fuzz/tests/fuzz/fuzz_*; do
  name=$(basename "$bin")
  corpus=tests/fuzz/corpus/${name#fuzz_}
  work=build-fuzz/corpus/${name#fuzz_}
  rm -rf "$work" && mkdir -p "$work"
  [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
  echo "fuzz: $name for ${secs}s"
  "$bin" -max_total_time="$secs" -artifact_prefix=build-fuzz/crashes/"$name"- -print_final_stats=1 "$work" 2>&1 |
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==.*ERROR|SUMMARY)" || true
  if ls build-fuzz/crashes/"$name"-* >/dev/null 2>&1; then
    echo "fuzz: $name found a crash: $(ls build-fuzz/crashes/"$name"-*)" >&2
    exit 1
  fi
done
