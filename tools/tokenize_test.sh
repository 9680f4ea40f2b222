#!/usr/bin/env bash
# //tools:tokenize and //tools:train_tokenizer as a user runs them: help, encode / decode round
# trip, special tokens, one-line errors with a non-zero exit for bad flags, files and ids;
# train_tokenizer's corpus handling and determinism; prepare_data end to end.
set -euo pipefail
root="${TEST_SRCDIR:-$0.runfiles}/dsmoe"
tokenize="$root/tools/tokenize"
train="$root/tools/train_tokenizer"
tok="$root/model/tokenizer/testdata/tiny_tokenizer.json"
corpus="$root/model/tokenizer/testdata/corpus"
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
failures=0
check() {  # check NAME EXPECTED ACTUAL
  if [[ "$2" != "$3" ]]; then
    echo "FAIL $1: expected [$2], got [$3]"
    failures=$((failures + 1))
  fi
}
# expect_error NAME PATTERN COMMAND...: non-zero exit, one line on stderr matching PATTERN.
expect_error() {
  local name="$1" pattern="$2"
  shift 2
  if "$@" >"$tmp/out" 2>"$tmp/err" </dev/null; then
    echo "FAIL $name: exit status 0"
    failures=$((failures + 1))
  elif [[ $(wc -l <"$tmp/err") -ne 1 ]] || ! grep -q -- "$pattern" "$tmp/err"; then
    echo "FAIL $name: stderr: $(cat "$tmp/err")"
    failures=$((failures + 1))
  fi
}

"$tokenize" --help | grep -q "Usage: tokenize" || { echo "FAIL help"; failures=$((failures + 1)); }
text=$'Hello, world! 中文 😀\n  two  spaces'
ids=$(printf '%s' "$text" | "$tokenize" --tokenizer="$tok")
[[ "$ids" =~ ^[0-9]+( [0-9]+)*$ ]] || check "ids on one line" "numbers" "$ids"
check "round trip" "$text" "$(echo "$ids" | "$tokenize" --tokenizer="$tok" --decode)"
check "special token" "3" "$(printf '<｜User｜>' | "$tokenize" --tokenizer="$tok")"
check "skip special" "hi" \
  "$(echo "3 $(printf hi | "$tokenize" --tokenizer="$tok")" | "$tokenize" --tokenizer="$tok" --decode --skip_special_tokens)"
check "empty input" "" "$(printf '' | "$tokenize" --tokenizer="$tok")"
expect_error "no tokenizer" "--tokenizer is required" "$tokenize"
expect_error "missing file" "cannot open" "$tokenize" --tokenizer=/no/such.json
echo '{"model": {}}' >"$tmp/bad.json"
expect_error "bad tokenizer" "bad.json: " "$tokenize" --tokenizer="$tmp/bad.json"
expect_error "id out of range" "out of range" bash -c "echo 5 99999 | '$tokenize' --tokenizer='$tok' --decode"
expect_error "not an id" "is not a token id" bash -c "echo 5 x | '$tokenize' --tokenizer='$tok' --decode"
expect_error "invalid UTF-8" "not valid UTF-8" bash -c "printf 'a\xff' | '$tokenize' --tokenizer='$tok'"
expect_error "unknown flag" "" "$tokenize" --tokenizer="$tok" --bogus
expect_error "positional" "unexpected argument" "$tokenize" --tokenizer="$tok" extra

# train_tokenizer: deterministic, reads folders and globs, one-line errors.
"$train" --input="$corpus" --vocab_size=500 --output="$tmp/a.json" 2>"$tmp/log"
grep -q "2 files" "$tmp/log" || { echo "FAIL train log: $(cat "$tmp/log")"; failures=$((failures + 1)); }
"$train" --input="$corpus/*.txt,$corpus/cases.jsonl" --vocab_size=500 --output="$tmp/b.json" 2>/dev/null
cmp -s "$tmp/a.json" "$tmp/b.json" || { echo "FAIL train not deterministic"; failures=$((failures + 1)); }
ids=$(printf 'the pipeline' | "$tokenize" --tokenizer="$tmp/a.json")
check "trained round trip" "the pipeline" "$(echo "$ids" | "$tokenize" --tokenizer="$tmp/a.json" --decode)"
expect_error "train no input" "--input is required" "$train" --output="$tmp/c.json"
expect_error "train missing" "/no/such: no such file" "$train" --input=/no/such --output="$tmp/c.json"
expect_error "train vocab" "vocab_size must be" "$train" --input="$corpus" --vocab_size=10 --output="$tmp/c.json"
printf 'a\0b' >"$tmp/binary.txt"
expect_error "train binary named" "binary.txt: binary" "$train" --input="$tmp/binary.txt" --output="$tmp/c.json"
mkdir -p "$tmp/folder" && cp "$tmp/binary.txt" "$tmp/folder/" && cp "$corpus/notes.txt" "$tmp/folder/"
"$train" --input="$tmp/folder" --vocab_size=300 --output="$tmp/d.json" 2>"$tmp/log"
grep -q "1 not text skipped" "$tmp/log" || { echo "FAIL skip count: $(cat "$tmp/log")"; failures=$((failures + 1)); }

# prepare_data: the pipeline end to end, cache reuse, one-line errors.
prepare="$root/tools/prepare_data"
"$prepare" --tokenizer="$tok" --corpus="$corpus" --cache="$tmp/c.tokens" --seq_len=16 >"$tmp/p1"
"$prepare" --tokenizer="$tok" --corpus="$corpus" --cache="$tmp/c.tokens" --seq_len=16 >"$tmp/p2"
grep -q "tokenized" "$tmp/p1" || { echo "FAIL prepare first run: $(cat "$tmp/p1")"; failures=$((failures + 1)); }
grep -q "reused the token cache" "$tmp/p2" || { echo "FAIL prepare reuse: $(cat "$tmp/p2")"; failures=$((failures + 1)); }
expect_error "prepare too small" "too small" "$prepare" --tokenizer="$tok" --corpus="$corpus" --seq_len=1000000
expect_error "prepare no tokenizer" "--tokenizer is required" "$prepare"
expect_error "prepare missing corpus" "/no/corpus: no such file" "$prepare" --tokenizer="$tok" --corpus=/no/corpus

if ((failures)); then exit 1; fi
echo "PASS"
