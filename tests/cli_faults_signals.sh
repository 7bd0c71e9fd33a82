#!/usr/bin/env bash
# SIGTERM in the middle of work.
#  `llm8 convert`: killed once its temporary file has data -> nothing under the final name, the
#  temporary file removed, an existing output untouched, the status of a death by SIGTERM.
#  `llm8 run`: killed once text has come out -> exits within 5 s with status 143 (128 + SIGTERM),
#  the text so far on stdout ending in a newline, one line on stderr saying so (no sanitizer
#  report, no leak: the session is freed). SIGINT the same, status 130.
# The model is a random one made here, large enough that both are still busy when the signal
# comes (a few seconds of work in a sanitizer build, under a second in release).
set -u
bin=${LLM8_BIN:-build/llm8}
demo=models/stories260k
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

cat >"$tmp/config.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "hidden_size": 512, "intermediate_size": 1024, "num_hidden_layers": 4,
 "num_attention_heads": 8, "num_key_value_heads": 8, "vocab_size": 512, "max_position_embeddings": 8192,
 "rms_norm_eps": 1e-5, "bos_token_id": 1, "eos_token_id": 2}
EOF

# wait_for COND_CMD: polls every 10 ms for up to 60 s
wait_for() {
  for _ in $(seq 6000); do
    if eval "$1"; then return 0; fi
    sleep 0.01
  done
  return 1
}

# ------------------------------------------------------------------ mid-conversion

for round in fresh existing; do
  out=$tmp/conv.gguf
  rm -f "$out" "$out.tmp"
  [ "$round" = existing ] && printf 'precious' >"$out"
  "$bin" convert --random "$tmp/config.json" --tokenizer "$demo" --quant w8a8 -o "$out" >/dev/null 2>"$tmp/err" &
  pid=$!
  if ! wait_for "[ -s '$out.tmp' ] || ! kill -0 $pid 2>/dev/null"; then bad "convert: no temporary file"; fi
  kill -TERM $pid 2>/dev/null
  wait $pid
  rc=$?
  if [ "$rc" -ne 143 ]; then
    bad "convert ($round output): exit $rc, not the status of SIGTERM (did it finish first?)"
  elif [ -e "$out.tmp" ]; then
    bad "convert ($round output): the temporary file is left"
  elif [ "$round" = fresh ] && [ -e "$out" ]; then
    bad "convert: a file under the final name"
  elif [ "$round" = existing ] && [ "$(cat "$out")" != precious ]; then
    bad "convert: the existing output was changed"
  elif grep -q "ERROR\|runtime error" "$tmp/err"; then
    bad "convert: a sanitizer report:"; sed 's/^/    /' "$tmp/err" | head -20
  else
    ok "SIGTERM mid-conversion ($round output): exit 143, no partial file, temporary removed"
  fi
done

# ------------------------------------------------------------------ mid-generation

"$bin" convert --random "$tmp/config.json" --tokenizer "$demo" --quant w8a8 -o "$tmp/m.gguf" 2>/dev/null ||
  { echo "FAIL convert"; exit 1; }
for sig in TERM INT; do
  want=$((128 + $(kill -l $sig)))
  # -t 2: the thread pool is running when the signal lands
  "$bin" run -m "$tmp/m.gguf" -p "Once upon a time" -n -1 -c 8192 --ignore-eos -t 2 >"$tmp/out" 2>"$tmp/err" </dev/null &
  pid=$!
  wait_for "[ -s '$tmp/out' ] || ! kill -0 $pid 2>/dev/null" || bad "run: no output"
  t0=$(date +%s%N)
  kill -$sig $pid 2>/dev/null
  # a run that ignores the signal is killed after 5 s (polled here: a watchdog subshell killed
  # early can still run this script's EXIT trap)
  for _ in $(seq 500); do kill -0 $pid 2>/dev/null || break; sleep 0.01; done
  ms=$((($(date +%s%N) - t0) / 1000000))
  kill -KILL $pid 2>/dev/null
  wait $pid
  rc=$?
  lines=$(wc -l <"$tmp/err")
  if [ "$rc" -ne "$want" ]; then
    bad "SIG$sig mid-generation: exit $rc after $ms ms (expected $want):"; sed 's/^/    /' "$tmp/err" | head -20
  elif [ "$lines" -ne 1 ] || ! grep -q "stopped by SIG$sig" "$tmp/err"; then
    bad "SIG$sig mid-generation: stderr:"; sed 's/^/    /' "$tmp/err" | head -20
  # what was printed stays, and ends its line (the text may be only a newline: the sampled first
  # token of this random model, with a random seed, is sometimes one)
  elif [ "$(tail -c 1 "$tmp/out" | od -An -tx1 | tr -d ' ')" != 0a ]; then
    bad "SIG$sig mid-generation: the text so far is missing or does not end its line"
  else
    ok "SIG$sig mid-generation: exit $rc in $ms ms, $(wc -c <"$tmp/out") bytes of text kept; $(cat "$tmp/err")"
  fi
done

exit $fail
