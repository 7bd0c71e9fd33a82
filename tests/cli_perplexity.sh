#!/usr/bin/env bash
# `llm8 perplexity` on the demo model: plausible numbers, the JSON fields, --ref against itself,
# --docs token accounting, a tiny --ctx, the aggregation math, and the error cases.
set -u
bin=${LLM8_BIN:-build/llm8}
demo=models/stories260k
text=tests/data/text/stories.txt
two=tests/data/text/two_docs.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }
# cond NAME AWK-EXPRESSION: passes when the awk expression is true.
cond() { if awk "BEGIN { exit !($2) }"; then ok "$1"; else bad "$1: ($2) is false"; fi; }
# field JSON KEY: the value of a number field of a one-line JSON object.
field() { printf '%s\n' "$1" | sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p"; }
# ntok FILE: how many tokens `llm8 tokenize` gives for a file (no BOS).
ntok() { "$bin" tokenize -m "$demo" <"$1" | wc -w; }
num='^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$'

# Plain chunking: human output, and the tokens are exactly the file's tokens.
n_text=$(ntok "$text")
out=$("$bin" perplexity -m "$demo" -f "$text" 2>"$tmp/err")
rc=$?
echo "     $out"
if [ $rc -eq 0 ] && [[ $out =~ ^perplexity:\ ([0-9.]+)\ over\ ([0-9]+)\ tokens\ \(([0-9]+)\ chunks,\ ctx\ 512\)$ ]]; then
  ok "human output"
  ppl=${BASH_REMATCH[1]}
  cond "perplexity $ppl in (1.5, 30)" "$ppl > 1.5 && $ppl < 30"
  cond "tokens ${BASH_REMATCH[2]} == tokenize count $n_text" "${BASH_REMATCH[2]} == $n_text"
  cond "chunks ${BASH_REMATCH[3]} == ceil($n_text / 511)" "${BASH_REMATCH[3]} == int(($n_text + 510) / 511)"
else
  bad "human output: exit $rc, [$out]"
fi
[ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "tokens scored" "$tmp/err" && ok "timing line on stderr" || bad "stderr: $(cat "$tmp/err")"

# JSON: one line, one object, the fields, the same numbers as the human output.
js=$("$bin" perplexity -m "$demo" -f "$text" --json 2>/dev/null)
if [ "$(printf '%s\n' "$js" | wc -l)" -eq 1 ] && [[ $js =~ ^\{.*\}$ ]] && [[ $(field "$js" perplexity) =~ $num ]] &&
  [[ $(field "$js" tokens) =~ ^[0-9]+$ ]]; then
  ok "json: $js"
  cond "json perplexity matches the human output" "sprintf(\"%.4f\", $(field "$js" perplexity)) == \"$ppl\""
  cond "json tokens == $n_text" "$(field "$js" tokens) == $n_text"
else
  bad "json: [$js]"
fi

# --ref with the same model: zero divergence, full agreement.
js=$("$bin" perplexity -m "$demo" -f "$text" --ref "$demo" --json 2>/dev/null)
echo "     $js"
for k in kld_mean kld_max top1_agreement; do [[ $(field "$js" $k) =~ $num ]] || bad "json --ref lacks $k"; done
cond "kld_mean 0" "$(field "$js" kld_mean) + 0 < 1e-9 && $(field "$js" kld_mean) + 0 > -1e-9"
cond "kld_max 0" "$(field "$js" kld_max) + 0 < 1e-9 && $(field "$js" kld_max) + 0 > -1e-9"
cond "top1_agreement 1" "$(field "$js" top1_agreement) == 1"
cond "--ref leaves perplexity unchanged" "sprintf(\"%.4f\", $(field "$js" perplexity)) == \"$ppl\""
out=$("$bin" perplexity -m "$demo" -f "$text" --ref "$demo" 2>/dev/null | sed -n 2p)
[[ $out =~ ^KLD\ mean:\ 0\.0+,\ max:\ 0\.0+,\ top-1\ agreement:\ 100\.0%$ ]] && ok "human --ref line: $out" ||
  bad "human --ref line: [$out]"

# --docs: each blank-line separated document is tokenized on its own and gets its own BOS.
awk -v d="$tmp" '/^[ \t\r]*$/ { if (f) close(f); f = ""; next }
                 { if (!f) f = sprintf("%s/doc%02d.txt", d, ++n); print > f }' "$text"
n_docs=0 n_doc_tokens=0
for f in "$tmp"/doc*.txt; do n_docs=$((n_docs + 1)); n_doc_tokens=$((n_doc_tokens + $(ntok "$f"))); done
js=$("$bin" perplexity -m "$demo" -f "$text" --docs --json 2>/dev/null)
echo "     --docs: $js ($n_docs documents)"
cond "--docs tokens == sum of per-document counts ($n_doc_tokens)" "$(field "$js" tokens) == $n_doc_tokens"
cond "--docs tokens differ from plain chunking" "$(field "$js" tokens) != $n_text"
cond "--docs chunks == documents" "$(field "$js" chunks) == $n_docs"
cond "--docs perplexity in (1.5, 30)" "$(field "$js" perplexity) > 1.5 && $(field "$js" perplexity) < 30"

# A tiny context: many chunks, the same tokens.
js=$("$bin" perplexity -m "$demo" -f "$text" --ctx 16 --json 2>/dev/null)
cond "--ctx 16: tokens $(field "$js" tokens), chunks $(field "$js" chunks)" \
  "$(field "$js" tokens) == $n_text && $(field "$js" chunks) == int(($n_text + 14) / 15) && $(field "$js" perplexity) > 1"
js=$("$bin" perplexity -m "$demo" -f "$text" --ctx 16 --docs --json 2>/dev/null)
cond "--ctx 16 --docs: tokens $(field "$js" tokens)" "$(field "$js" tokens) == $n_doc_tokens"
cond "--ctx above the model maximum is clipped" \
  "$("$bin" perplexity -m "$demo" -f "$text" --ctx 100000 --json 2>/dev/null | sed -n 's/.*"ctx":\([0-9]*\).*/\1/p') == 512"

# The math: perplexity over two documents is exp of the token-weighted mean of their log-perplexities.
sed -n 1,2p "$two" >"$tmp/a.txt"
sed -n 5,6p "$two" >"$tmp/b.txt"
both=$("$bin" perplexity -m "$demo" -f "$two" --docs --json 2>/dev/null)
a=$("$bin" perplexity -m "$demo" -f "$tmp/a.txt" --json 2>/dev/null)
b=$("$bin" perplexity -m "$demo" -f "$tmp/b.txt" --json 2>/dev/null)
echo "     both: $both"
echo "     a:    $a"
echo "     b:    $b"
cond "two documents: tokens add up" "$(field "$both" tokens) == $(field "$a" tokens) + $(field "$b" tokens)"
pa=$(field "$a" perplexity) na=$(field "$a" tokens) pb=$(field "$b" perplexity) nb=$(field "$b" tokens)
want="exp(($na * log($pa) + $nb * log($pb)) / ($na + $nb))"
cond "two documents: perplexity $(field "$both" perplexity) == $want (1e-4 relative)" \
  "$(field "$both" perplexity) > 0 && (($(field "$both" perplexity) - $want) / $want)^2 < 1e-8"

# Errors: non-zero exit (not a signal), exactly one line on stderr.
expect() { # NAME PATTERN CMD...
  local name=$1 pattern=$2
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
  local rc=$? lines
  lines=$(wc -l <"$tmp/err")
  if [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ] || [ "$lines" -ne 1 ] || ! grep -q -- "$pattern" "$tmp/err" || [ -s "$tmp/out" ]; then
    bad "$name: exit $rc, $lines stderr lines: $(cat "$tmp/err")"
  else
    ok "$name: $(cat "$tmp/err")"
  fi
}
: >"$tmp/empty.txt"
printf '\n  \n\n' >"$tmp/blank.txt"
printf 'Once upon a time there was a caf\351.\n' >"$tmp/latin1.txt"
expect "missing file" "$tmp/nope.txt" "$bin" perplexity -m "$demo" -f "$tmp/nope.txt"
expect "empty file" "no tokens" "$bin" perplexity -m "$demo" -f "$tmp/empty.txt"
expect "only blank lines, --docs" "no tokens" "$bin" perplexity -m "$demo" -f "$tmp/blank.txt" --docs
expect "invalid UTF-8" "UTF-8" "$bin" perplexity -m "$demo" -f "$tmp/latin1.txt"
expect "invalid UTF-8, --docs" "UTF-8" "$bin" perplexity -m "$demo" -f "$tmp/latin1.txt" --docs
expect "missing -m" "-m MODEL" "$bin" perplexity -f "$text"
expect "missing -f" "-f TEXT" "$bin" perplexity -m "$demo"
expect "missing model folder" "$tmp/nomodel" "$bin" perplexity -m "$tmp/nomodel" -f "$text"
expect "missing reference folder" "$tmp/noref" "$bin" perplexity -m "$demo" -f "$text" --ref "$tmp/noref"
expect "--ctx 1" "--ctx" "$bin" perplexity -m "$demo" -f "$text" --ctx 1
expect "unknown option" "--bogus" "$bin" perplexity -m "$demo" -f "$text" --bogus

exit $fail
