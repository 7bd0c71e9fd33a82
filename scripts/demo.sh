#!/usr/bin/env bash
# Builds llm8 and generates a story with the bundled demo model. Extra arguments go to `llm8 run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -B build -S . -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
if [ $# -eq 0 ]; then set -- -p "Once upon a time" -n 200; fi
exec build/llm8 run "$@"
