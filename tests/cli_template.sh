#!/usr/bin/env bash
# `llm8 template`: fixture requests through the CLI render exactly as the reference did.
set -u
bin=${LLM8_BIN:-build/llm8}
l3=models/llama3-tokenizer
tmp=${TMPDIR:-/tmp}/llm8_template.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }

# Extracts one case's request and its expected text from the fixture files.
fixture() { # FILE_STEM CASE
  python3 - "$1" "$2" "$tmp" <<'PY'
import json, sys
stem, name, tmp = sys.argv[1:]
case = next(c for c in json.load(open(f"tests/data/chat/{stem}_cases.json"))["cases"] if c["name"] == name)
json.dump(case["request"], open(f"{tmp}/req.json", "w"), ensure_ascii=False)
open(f"{tmp}/want.txt", "wb").write(json.load(open(f"tests/data/chat/{stem}_expected.json"))[name]["text"].encode())
PY
}

for name in with_system multi_turn tools_user_message tool_call_string_args unicode; do
  fixture llama32 $name
  "$bin" template -m $l3 --date "26 Jul 2024" <"$tmp/req.json" >"$tmp/got.txt"
  if [ $? -eq 0 ] && cmp -s "$tmp/got.txt" "$tmp/want.txt"; then ok "llama32/$name"; else bad "llama32/$name"; fi
done
fixture llama32 no_generation_prompt
"$bin" template -m $l3 --date "26 Jul 2024" --no-generation-prompt <"$tmp/req.json" >"$tmp/got.txt"
if cmp -s "$tmp/got.txt" "$tmp/want.txt"; then ok "llama32/no_generation_prompt"; else bad "llama32/no_generation_prompt"; fi
fixture chatml system_multi_turn
"$bin" template -m tests/data/chat/chatml <"$tmp/req.json" >"$tmp/got.txt"
if cmp -s "$tmp/got.txt" "$tmp/want.txt"; then ok "chatml/system_multi_turn"; else bad "chatml/system_multi_turn"; fi

# Default date: today, as strftime_now("%d %b %Y") gives it.
got=$(echo '{"messages":[{"role":"user","content":"hi"}]}' | "$bin" template -m $l3)
case "$got" in *"Today Date: $(date '+%d %b %Y')"*) ok "default date is today" ;; *) bad "default date: $got" ;; esac

# The demo model has no template: the plain format.
got=$(echo '{"messages":[{"role":"user","content":"hi"}]}' | "$bin" template -m models/stories260k)
[ "$got" == "$(printf 'User: hi\nAssistant:')" ] && ok "plain fallback" || bad "plain fallback: [$got]"

# Errors: one line on stderr, exit 1, nothing on stdout.
expect_error() { # NAME INPUT [ARGS...]
  local name=$1 input=$2; shift 2
  printf '%s' "$input" | "$bin" template "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ $rc -eq 1 ] && [ ! -s "$tmp/out" ] && [ "$(wc -l <"$tmp/err")" -eq 1 ]; then ok "$name: $(cat "$tmp/err")"
  else bad "$name: rc=$rc stdout=$(head -c 80 "$tmp/out") stderr=$(cat "$tmp/err")"; fi
}
expect_error "bad json" '{"messages": [' -m $l3
expect_error "not json" 'hello' -m $l3
expect_error "no messages" '{}' -m $l3
expect_error "raise_exception" '{"messages": [], "tools": [{"type": "function", "function": {"name": "f"}}]}' -m $l3
"$bin" template --bogus </dev/null >/dev/null 2>&1; [ $? -eq 2 ] && ok "unknown option exits 2" || bad "unknown option"
exit $fail
