#!/usr/bin/env bash
# Runs the train binary on bad input: each case must fail before any work with one line on stderr
# and exit code 2. Also: --dry_run on the DeepSeek-V3 config prints the known parameter counts,
# quickly and without allocating the model; a one-step run and its --resume work, with ZeRO-1 too.
set -euo pipefail
bin=training/train
tmp=${TEST_TMPDIR:-$(mktemp -d)}

# The tests' tiny MoE model as DualPipe over 2 pipeline x 2 expert ranks, one step.
config=training/testdata/tiny_moe.textproto
layout=(--set parallel.schedule=dualpipe --set parallel.pp=2 --set parallel.ep=2
  --set parallel.microbatches=4 --set steps=1)

expect_error() {  # expect_error FRAGMENT ARGS...: exit code 2 with one line holding FRAGMENT.
  local fragment=$1
  shift
  local err rc=0
  err=$("$bin" "$@" 2>&1 >/dev/null) || rc=$?
  if [[ $rc -ne 2 ]]; then echo "exit $rc, not 2: $* => $err"; exit 1; fi
  if [[ $(wc -l <<<"$err") -ne 1 ]]; then echo "not one line: $* => $err"; exit 1; fi
  grep -qF -- "$fragment" <<<"$err" || { echo "no '$fragment' in: $err"; exit 1; }
  echo "ok: $err"
}
out=$tmp/run
expect_error "has no field 'nosuch'" --config="$config" "${layout[@]}" --output_dir="$out" --set nosuch.field=1
printf 'name: "x"\nbogus_field: 1\n' >"$tmp/unknown.textproto"
expect_error 'no field named "bogus_field"' --config="$tmp/unknown.textproto"
expect_error "do not divide the model's 4 layers" --config="$config" "${layout[@]}" --output_dir="$out" \
  --set parallel.schedule=1f1b --set parallel.pp=3 --set parallel.ep=1
expect_error "does not divide the model's 8 routed experts" --config="$config" "${layout[@]}" --output_dir="$out" \
  --set parallel.ep=3
expect_error "micro-batches >= 2*ranks (4), got microbatches=2" --config="$config" "${layout[@]}" \
  --output_dir="$out" --set parallel.microbatches=2
expect_error "/no/such/corpus" --config="$config" "${layout[@]}" --output_dir="$out" \
  --set data.corpus=/no/such/corpus
expect_error "/no/such/tokenizer.json" --config="$config" "${layout[@]}" --output_dir="$out" \
  --set data.tokenizer=/no/such/tokenizer.json
expect_error "cannot read" --config="$tmp/no_such_config.textproto"
expect_error "--resume: no checkpoint under" --config="$config" "${layout[@]}" --output_dir="$tmp/empty" --resume
[[ ! -e "$tmp/empty/cache" ]] || { echo "a failed --resume did work first"; exit 1; }

# A real run, then a resume by another model: refused before any work.
"$bin" --config="$config" "${layout[@]}" --output_dir="$out" --peak_tflops=1 >/dev/null
"$bin" --config="$config" "${layout[@]}" --output_dir="$out" --peak_tflops=1 --resume --steps=2 >/dev/null
expect_error "holds another model" --config="$config" "${layout[@]}" --output_dir="$out" --resume --steps=3 \
  --set model.hidden_size=32
expect_error "model stages of 2,2 layers, this run has ep=2 and stages of 1,1,1,1" \
  --config="$config" "${layout[@]}" --output_dir="$out" --resume --steps=3 \
  --set parallel.schedule=1f1b --set parallel.pp=4
expect_error "written with 2 data shards" --config="$config" "${layout[@]}" --output_dir="$out" --resume \
  --steps=3 --set parallel.ep=1
# ZeRO-1 from the command line over dp=2, then a resume without it: the checkpoint is the same files.
zero1=$("$bin" --config="$config" "${layout[@]}" --set parallel.dp=2 --set parallel.zero1=true \
  --output_dir="$tmp/zero1" --peak_tflops=1)
grep -q "(pp=2 ep=2 dp=2, ZeRO-1)" <<<"$zero1" || { echo "no ZeRO-1 in: $zero1"; exit 1; }
"$bin" --config="$config" "${layout[@]}" --set parallel.dp=2 --output_dir="$tmp/zero1" \
  --peak_tflops=1 --resume --steps=2 >/dev/null

# The DeepSeek-V3 dry run: the known sizes, in well under a second, in 1 GiB of address space
# (the model's f32 weights alone would be 2.7 TB).
start=$(date +%s%N)
dry=$(ulimit -v 1048576 && "$bin" --config=training/configs/deepseek_v3.textproto --dry_run)
ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "$dry"
echo "dry run: ${ms} ms"
grep -q "^model deepseek-v3: 671.0B parameters, 37.6B active per token, 61 layers" <<<"$dry"
grep -q "^layout pp=16 ep=64 dp=2 (2048 ranks), schedule dualpipe" <<<"$dry"
grep -q "^per rank: at most 4.4B parameters" <<<"$dry"
grep -q "bubble 7.2% of rank time" <<<"$dry"
[[ $ms -lt 1000 ]] || { echo "dry run took ${ms} ms"; exit 1; }
# ZeRO-1 shards AdamW's moments (8 of the 16 bytes a parameter) over the dp=2 replicas.
dry=$("$bin" --config=training/configs/deepseek_v3.textproto --dry_run --set parallel.zero1=true)
grep -q "^per rank: at most 4.4B parameters (pipeline rank 0): 49.42 GiB .* sharded over dp=2" <<<"$dry"
for c in tiny_cpu small_cpu; do
  "$bin" --config=training/configs/$c.textproto --dry_run | grep -q "^simulated step"
done
echo PASS
