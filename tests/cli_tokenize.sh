#!/usr/bin/env bash
# The `llm8 tokenize` contract that outside checks rely on.
set -u
bin=${LLM8_BIN:-build/llm8}
l3=models/llama3-tokenizer
fail=0
check() { # NAME WANT GOT
  if [ "$2" == "$3" ]; then echo "ok   $1"; else echo "FAIL $1: want [$2] got [$3]"; fail=1; fi
}
check "plain" "9906 1917" "$(printf 'Hello world' | "$bin" tokenize -m $l3)"
check "bos" "128000 9906 1917" "$(printf 'Hello world' | "$bin" tokenize -m $l3 --bos)"
check "special off" "27 91 68 354 851 91 29" "$(printf '<|eot_id|>' | "$bin" tokenize -m $l3)"
check "special on" "128009" "$(printf '<|eot_id|>' | "$bin" tokenize -m $l3 --special)"
check "empty" "" "$(printf '' | "$bin" tokenize -m $l3)"
check "demo model with bos" "1 403 407 261 378" "$(printf 'Once upon a time' | "$bin" tokenize -m models/stories260k --bos)"

# Every record of the independent vectors, through --jsonl, in order.
"$bin" tokenize -m $l3 --jsonl <tests/data/tokenizer/llama3_vectors.jsonl >"${TMPDIR:-/tmp}/llm8_ids.$$"
if cmp -s "${TMPDIR:-/tmp}/llm8_ids.$$" tests/data/tokenizer/llama3_vectors.expected_ids.jsonl; then
  echo "ok   jsonl: $(wc -l <tests/data/tokenizer/llama3_vectors.expected_ids.jsonl) records identical"
else
  echo "FAIL jsonl differs:"; diff "${TMPDIR:-/tmp}/llm8_ids.$$" tests/data/tokenizer/llama3_vectors.expected_ids.jsonl | head -5
  fail=1
fi
rm -f "${TMPDIR:-/tmp}/llm8_ids.$$"
exit $fail
