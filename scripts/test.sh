#!/usr/bin/env bash
# Builds llm8 twice (release, and ASan+UBSan with asserts on) and runs the whole test suite in both
# (the fuzz corpora are replayed there too), then the threaded tests under ThreadSanitizer
# (scripts/tsan.sh), the aarch64 build under qemu-user (scripts/test_arm.sh) and each libFuzzer
# target for a bounded time (scripts/fuzz.sh).
# docs/RELIABILITY.md says what each stage covers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
# the npm packages of the server's client tests (openai, playwright-core), as locked
(cd tests/server && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
jobs=$(nproc)
cmake -B build -S . -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")
cmake -B build-asan -S . -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLM8_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j"$jobs")
scripts/tsan.sh
# aarch64: cross-built, run under qemu-user at each kernel level (neon, dotprod, i8mm)
scripts/test_arm.sh
scripts/fuzz.sh
