#!/usr/bin/env bash
# `llm8 bench` through the CLI, on the demo model and its w8a8 conversion: the --json object has
# every field docs/PERFORMANCE.md and the issue name, with values that agree with each other
# (decode GB/s = tok/s x bytes per token, the percentages = achieved / measured), the model's
# size, a peak RSS that is the model's and not the bandwidth probe's 1 GiB buffer, the AMX
# fields exactly when the amx kernels run; the text report; the int8 peak probe of each kernel
# level; bad arguments refused in one line.
# No speed is asserted (speed is for benchmarks, not tests).
set -u
bin=${LLM8_BIN:-build/llm8}
demo=models/stories260k
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

"$bin" convert "$demo" --quant w8a8 -o "$tmp/demo-w8a8.gguf" >/dev/null 2>"$tmp/conv.err" ||
    { bad "convert: $(cat "$tmp/conv.err")"; exit 1; }

# check_json NAME FILE QUANT THREADS BYTES_PER_TOKEN: the object's fields and their relations
check_json() {
    python3 - "$@" <<'PY'
import json, math, sys
name, path, quant, threads, per_token = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
d = json.load(open(path))
errs = []
def need(cond, what):
    if not cond: errs.append(what)
for k in ("model", "quant", "isa", "threads", "model_mb", "rss_mb", "decode_tok_s", "ttft_s", "prefill_tok_s",
          "bandwidth_gbs", "decode_gbs", "decode_bandwidth_pct", "int8_peak_gops", "prefill_gops", "prefill_peak_pct"):
    need(k in d, "missing " + k)
if errs:
    print("; ".join(errs)); sys.exit(1)
num = lambda v: isinstance(v, (int, float)) and math.isfinite(v) and v > 0
need(d["quant"] == quant, "quant %r" % d["quant"])
need(d["threads"] == threads, "threads %r" % d["threads"])
need(sorted(d["prefill_tok_s"]) == ["16", "32"] and all(num(v) for v in d["prefill_tok_s"].values()),
     "prefill_tok_s %r" % d["prefill_tok_s"])
for k in ("model_mb", "rss_mb", "decode_tok_s", "ttft_s", "bandwidth_gbs", "decode_gbs", "int8_peak_gops", "prefill_gops"):
    need(num(d[k]), "%s = %r" % (k, d[k]))
# a few MB of model: the probe's 1 GiB must not be in the peak
need(d["rss_mb"] < 200, "rss_mb %.1f (the bandwidth probe's buffer counted?)" % d["rss_mb"])
# agreement up to the printed rounding (GB/s to 0.01, percentages and GOPS to 0.1)
near = lambda a, b, eps: abs(a - b) <= 0.01 * abs(b) + eps
gbs = d["decode_tok_s"] * per_token / 1e9
need(near(d["decode_gbs"], gbs, 0.006), "decode_gbs %r vs tok/s x %d bytes" % (d["decode_gbs"], per_token))
need(near(d["decode_bandwidth_pct"], 100 * gbs / d["bandwidth_gbs"], 0.06), "decode_bandwidth_pct")
need(near(d["prefill_peak_pct"], 100 * d["prefill_gops"] / d["int8_peak_gops"], 0.06 + 5.0 / d["int8_peak_gops"]),
     "prefill_peak_pct")
amx = d["isa"] == "amx"
need(("amx_peak_gops" in d) == amx and ("prefill_amx_pct" in d) == amx, "AMX fields with isa %s" % d["isa"])
if amx:
    need(num(d["amx_peak_gops"]) and near(d["prefill_amx_pct"], 100 * d["prefill_gops"] / d["amx_peak_gops"],
                                           0.06 + 5.0 / d["amx_peak_gops"]), "prefill_amx_pct")
if errs:
    print("; ".join(errs)); sys.exit(1)
print("%s: %s %s, %d threads, decode %.0f tok/s, rss %.1f MB" % (name, d["quant"], d["isa"], d["threads"], d["decode_tok_s"], d["rss_mb"]))
PY
}

bytes_of() { "$bin" info -m "$1" | sed -n 's/^decode reads *\([0-9]*\) bytes.*/\1/p'; }
for m in "$demo f32" "$tmp/demo-w8a8.gguf w8a8"; do
    set -- $m
    model=$1 quant=$2
    per=$(bytes_of "$model")
    for t in 1 2; do
        if "$bin" bench -m "$model" -t $t -p 16,32 -n 8 -r 3 --json >"$tmp/b.json" 2>"$tmp/b.err" &&
            r=$(check_json "bench $quant -t $t" "$tmp/b.json" "$quant" $t "$per"); then
            ok "$r"
        else
            bad "bench $quant -t $t: ${r:-} $(cat "$tmp/b.json" "$tmp/b.err")"
        fi
    done
done

# a forced level below amx: no AMX fields (and the level is named)
if LLM8_ISA=avx2 "$bin" bench -m "$tmp/demo-w8a8.gguf" -t 1 -p 16,32 -n 4 -r 1 --json >"$tmp/b.json" 2>"$tmp/b.err" &&
    r=$(check_json "bench LLM8_ISA=avx2" "$tmp/b.json" w8a8 1 "$(bytes_of "$tmp/demo-w8a8.gguf")"); then
    ok "$r"
else
    bad "bench LLM8_ISA=avx2: ${r:-} $(cat "$tmp/b.json" "$tmp/b.err")"
fi

# the text report: every line the model card's table needs
"$bin" bench -m "$tmp/demo-w8a8.gguf" -t 1 -p 16,32 -n 4 -r 1 >"$tmp/b.txt" 2>&1
missing=""
for want in "^machine: read bandwidth" "^decode .* tok/s .*% of the measured bandwidth" "^ttft (64)" \
    "^prefill 16 .* tok/s" "^prefill 32 .*% of the measured int8 peak" "^peak RSS .*model file"; do
    grep -q "$want" "$tmp/b.txt" || missing="$missing [$want]"
done
if [ -z "$missing" ]; then ok "text report: $(grep -c . "$tmp/b.txt") lines"; else bad "text report lacks$missing: $(cat "$tmp/b.txt")"; fi

# the int8 peak is measured with the instruction of the kernel level in use (LLM8_ISA)
for isa in $("$bin" info | sed -n 's/^kernels available *//p'); do
    case $isa in
    scalar) want=c ;; avx512 | amx) want=avx512vnni ;; *) want=$isa ;;
    esac
    line=$(LLM8_ISA=$isa "$bin" bench -m "$tmp/demo-w8a8.gguf" -t 1 -p 16 -n 2 -r 1 2>&1 | grep "^machine:")
    amx_line=$(LLM8_ISA=$isa "$bin" bench -m "$tmp/demo-w8a8.gguf" -t 1 -p 16 -n 2 -r 1 2>&1 | grep -c "AMX-INT8 tile peak")
    want_amx=0
    [ "$isa" = amx ] && want_amx=1
    if echo "$line" | grep -qE "int8 peak [0-9]+ GOPS \($want\)" && [ "$amx_line" = "$want_amx" ]; then
        ok "LLM8_ISA=$isa: ${line#*, }"
    else
        bad "LLM8_ISA=$isa: want the $want peak (AMX line: $amx_line): $line"
    fi
done

# bad arguments: exit 2 (usage) or 1, and one line that names the problem
for a in "-p 0" "-p 16,x" "-r 0" "-n -1" "-t 0" "-m $tmp/none"; do
    # shellcheck disable=SC2086
    "$bin" bench -m "$demo" $a >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ $rc -ge 1 ] && [ $rc -le 2 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ]; then ok "bench $a: $(cat "$tmp/err")"; else bad "bench $a: exit $rc: $(cat "$tmp/err")"; fi
done
exit $fail
