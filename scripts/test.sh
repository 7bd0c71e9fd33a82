#!/usr/bin/env bash
# Builds llm8 twice (release, and ASan+UBSan with asserts on) and runs the whole test suite in both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs=$(nproc)
cmake -B build -S . -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")
cmake -B build-asan -S . -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLM8_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j"$jobs")
scripts/fuzz.sh
