#!/usr/bin/env bash
# The rows of docs/PERFORMANCE.md's table: `llm8 bench --json` on each model file at 2 and 1
# threads (THREADS="2 1"), printed as Markdown, one row per run. Each run's percentages are
# against the bandwidth and peaks measured in that run.
#   bench/perf_table.sh 3b-w8a8.gguf 3b-w4a8_g32.gguf ...
#   LLM8=build/llm8 (the binary), ARGS="-p 64,512 -n 64 -r 3", JSONL=FILE (keep the raw objects)
set -euo pipefail
llm8=${LLM8:-build/llm8}
args=${ARGS:--p 64,512 -n 64 -r 3}
echo "| model | type | threads | file MB | peak RSS MB | decode tok/s | decode GB/s / measured = % | TTFT(64) s | prefill 64 tok/s | prefill 512 tok/s | prefill GOPS / vpdpbusd peak = % | AMX peak GOPS (% used) |"
echo "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- | --- |"
for f in "$@"; do
    for t in ${THREADS:-2 1}; do
        # shellcheck disable=SC2086
        js=$("$llm8" bench -m "$f" -t "$t" $args --json)
        [ -n "${JSONL:-}" ] && echo "$js" >>"$JSONL"
        python3 -c '
import json, sys
d = json.loads(sys.argv[1])
name = sys.argv[2].lower()
size = "3B" if "3b" in name else "1B" if "1b" in name else sys.argv[2]
p = d["prefill_tok_s"]
amx = "%.0f (%.0f%%)" % (d["amx_peak_gops"], d["prefill_amx_pct"]) if "amx_peak_gops" in d else "-"
print("| %s | %s | %d | %.0f | %.0f | %.2f | %.1f / %.1f = %.0f%% | %.2f | %.1f | %.1f | %.0f / %.0f = %.0f%% | %s |" % (
    size, d["quant"], d["threads"], d["model_mb"], d["rss_mb"], d["decode_tok_s"], d["decode_gbs"],
    d["bandwidth_gbs"], d["decode_bandwidth_pct"], d["ttft_s"], p.get("64", 0), p.get("512", 0),
    d["prefill_gops"], d["int8_peak_gops"], d["prefill_peak_pct"], amx))
' "$js" "$(basename "$f")"
    done
done
