#!/usr/bin/env bash
# `llm8 chat` from a pipe (one turn per line, commands) and `llm8 run --chat`.
set -u
bin=${LLM8_BIN:-build/llm8}
fail=0
out=$(printf 'Once upon a time\n/stats\nWhat then?\n/reset\n/bogus\nOnce upon a time\n' | "$bin" chat --temp 0 -n 16 2>"${TMPDIR:-/tmp}/chat.err.$$")
rc=$?
err=$(cat "${TMPDIR:-/tmp}/chat.err.$$"); rm -f "${TMPDIR:-/tmp}/chat.err.$$"
[ $rc -eq 0 ] && echo "ok   exit 0" || { echo "FAIL exit $rc"; fail=1; }
[ "$(printf '%s\n' "$out" | wc -l)" -eq 3 ] && echo "ok   three answers" || { echo "FAIL answers: [$out]"; fail=1; }
# after /reset the first question gets the first answer again (greedy, same history)
a1=$(printf '%s\n' "$out" | sed -n 1p); a3=$(printf '%s\n' "$out" | sed -n 3p)
[ -n "$a1" ] && [ "$a1" == "$a3" ] && echo "ok   /reset starts over" || { echo "FAIL reset: [$a1] vs [$a3]"; fail=1; }
printf '%s\n' "$err" | grep -q "^prefilled .* context [0-9]*/512" && echo "ok   /stats" || { echo "FAIL stats: $err"; fail=1; }
printf '%s\n' "$err" | grep -q "unknown command /bogus" && echo "ok   unknown command" || { echo "FAIL /bogus"; fail=1; }
[ "$(printf '%s\n' "$err" | grep -c '^\[16 tokens')" -eq 3 ] && echo "ok   a stats line per answer" || { echo "FAIL stats lines: $err"; fail=1; }
# /save then /load in a new process continues the conversation where it was
st=${TMPDIR:-/tmp}/llm8_chat_state.$$
a=$(printf 'Once upon a time\n/save %s\nWhat then?\n' "$st" | "$bin" chat --temp 0 -n 16 2>/dev/null | sed -n 2p)
b=$(printf '/load %s\nWhat then?\n' "$st" | "$bin" chat --temp 0 -n 16 2>"$st.err")
[ -n "$a" ] && [ "$a" == "$b" ] && echo "ok   /save and /load: the second turn is the same" || { echo "FAIL /load: [$a] vs [$b]"; fail=1; }
grep -q "^loaded .* messages)" "$st.err" && echo "ok   /load reports" || { echo "FAIL /load: $(cat "$st.err")"; fail=1; }
rm -f "$st" "$st.err"
# run --chat renders the same first turn as chat
r=$("$bin" run --chat -p "Once upon a time" -n 16 --temp 0 2>/dev/null)
[ "$r" == "$a1" ] && echo "ok   run --chat = chat's first answer" || { echo "FAIL run --chat [$r] vs [$a1]"; fail=1; }
# a conversation longer than the context: refused turns without --keep, all answered with it
turns='Tell me a long story about a cat.\nAnd then?\nWhat did the dog say?\nMore!\n'
n0=$(printf "$turns" | "$bin" chat --temp 0 -n 24 --ctx 64 2>&1 >/dev/null | grep -c "context has room")
n1=$(printf "$turns" | "$bin" chat --temp 0 -n 24 --ctx 64 --keep 0 2>"$st.err" | grep -c .)
[ "$n0" -ge 1 ] && echo "ok   --ctx 64 without --keep: $n0 turns refused" || { echo "FAIL no refusal without --keep"; fail=1; }
[ "$n1" -eq 4 ] && ! grep -q "context" "$st.err" && echo "ok   --keep 0: the oldest exchanges leave, 4 answers" ||
    { echo "FAIL --keep 0: $n1 answers: $(cat "$st.err")"; fail=1; }
rm -f "$st.err"
exit $fail
