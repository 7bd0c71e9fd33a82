#!/usr/bin/env bash
# Builds llm8 with ThreadSanitizer (build-tsan, -DLLM8_TSAN=ON) and runs the tests that start
# threads: the compute pool, asynchronous runs and abort, RKLLM's callbacks, chat sessions,
# batching, SIGTERM/SIGINT landing in a running pool, and every test named *tsan* (a short
# server test meant for this stage). Only what those tests need is built. Every TSan report
# (from the tests and from the llm8 processes they start) goes to build-tsan/tsan/, and any
# report fails the script even when the test itself passed.
#   LLM8_TSAN_SERVE=1  also every *serve* test: ~15 minutes on 2 cores (the soak, 500 idle
#                      connections, Chromium: TSan's 5-15x slowdown), so not in scripts/test.sh
#   LLM8_TSAN_TESTS    a ctest -R regex to run instead of the default set
set -euo pipefail
cd "$(dirname "$0")/.."
build=${LLM8_TSAN_BUILD:-build-tsan}
regex='^(test_threadpool|test_runtime|test_rkllm|test_chat_session|test_batch|test_probe|cli_faults_signals|.*tsan.*)$'
[ -n "${LLM8_TSAN_SERVE:-}" ] && regex="${regex%)\$}|.*serve.*)\$"
regex=${LLM8_TSAN_TESTS:-$regex}
t0=$(date +%s)
cmake -B "$build" -S . -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLM8_TSAN=ON >/dev/null
# the test programs among the selected tests, plus what they run (the CLI, the RKLLM example)
targets=(llm8 rkllm_demo)
while read -r name; do
  [[ "$name" == test_* ]] && targets+=("$name")
done < <(cd "$build" && ctest -N -R "$regex" | sed -n 's/^ *Test *#[0-9]*: *//p')
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >/dev/null
t1=$(date +%s)
rm -rf "$build/tsan" && mkdir -p "$build/tsan"
# halt_on_error: the first race ends the process (exit 66), so a test that checks statuses fails
# at once; log_path catches the reports of processes whose status nobody checks
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 log_path=$PWD/$build/tsan/report"
rc=0
(cd "$build" && ctest -R "$regex" --output-on-failure -j"$(nproc)") || rc=$?
if ls "$build/tsan/report"* >/dev/null 2>&1; then
  echo "tsan: reports in $build/tsan:" >&2
  for f in "$build/tsan/report"*; do
    sed -n '1,40p' "$f" >&2
  done
  rc=1
fi
echo "tsan: build $((t1 - t0)) s, tests $(($(date +%s) - t1)) s, $(ls "$build/tsan" | wc -l) reports"
exit $rc
