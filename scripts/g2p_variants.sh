#!/usr/bin/env bash
# G2P attention-variant tables: trains each variant with the recipe of `attend train --task g2p`
# on one thread for the same budget, evaluates it on the test words with beam 5, draws the
# alignment of one test word, and writes a row per variant (replacing that variant's row when it
# is there).
# Usage: scripts/g2p_variants.sh DATA_DIR [BUDGET [VARIANT...]]
#   DATA_DIR from `attend data cmudict --out DIR --split-from ../shared/data/cmudict-g014b2b`.
#   BUDGET is either minutes per variant (e.g. 45; default 150): rows go to the table of
#   docs/g2p.md, default variants soft-additive soft-general local-p monotonic forward; or a
#   number of updates with the suffix u (e.g. 3000u): rows go to the G2P table of
#   docs/attention_results.md, default variants all of them. A budget of updates gives the same
#   models on a busy machine; a budget of minutes does not.
# Two cores: run two copies with different variant lists.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: scripts/g2p_variants.sh DATA_DIR [BUDGET [VARIANT...]]}
budget=${2:-150}
shift $(( $# < 2 ? $# : 2 ))
attend=${ATTEND:-build/attend}
lock=${TMPDIR:-/tmp}/attend-g2p-variants.lock  # two copies (one per core) write one file: one at a time
word=PHOTOGRAPHER
# The same names and flags as the dates gallery (scripts/attention_gallery.sh).
declare -A flags=(
  [soft-additive]="--attention soft --score additive"
  [soft-general]="--attention soft --score general"
  [soft-dot]="--attention soft --score dot"
  [soft-scaled-dot]="--attention soft --score scaled-dot"
  [soft-sparsemax]="--attention soft --score additive --normalizer sparsemax"
  [soft-entmax15]="--attention soft --score additive --normalizer entmax15"
  [static]="--attention static --score additive"
  [local-m]="--attention local-m --score additive --window 3"
  [local-m-auto]="--attention local-m --score additive --window 3 --position-rate auto"
  [local-p]="--attention local-p --score additive --window 3"
  [location]="--attention location --score additive"
  [coverage]="--attention coverage --score additive --coverage-loss 1"
  [monotonic]="--attention monotonic --score additive"
  [forward]="--attention forward --score additive"
  [forward-ta]="--attention forward-ta --score additive"
  [hard-reinforce]="--attention hard --score additive --hard-estimator reinforce"
  [hard-gumbel]="--attention hard --score additive --hard-estimator gumbel"
  [mocha]="--attention mocha --score additive --chunk 3"
  [multi-head]="--attention multi-head --score additive --attention-heads 4"
)
all=(soft-additive soft-general soft-dot soft-scaled-dot soft-sparsemax soft-entmax15 static local-m local-m-auto local-p
     location coverage monotonic forward forward-ta hard-reinforce hard-gumbel mocha multi-head)
if [[ $budget =~ ^([0-9]+)u$ ]]; then
  limit=(--max-steps "${BASH_REMATCH[1]}")
  out=docs/attention_results.md marker="<!-- table: g2p_variants.sh updates -->"
  runs=runs/g2p-variants-${BASH_REMATCH[1]}u img=img/g2p-${BASH_REMATCH[1]}u
  defaults=("${all[@]}")
  exec 9> "$lock"
  flock 9
  if ! grep -qx -- "$marker" "$out"; then
    {
      echo
      echo "## G2P"
      echo
      echo "<!-- written by scripts/g2p_variants.sh runs/g2p-data ${budget}; rerun it to refresh -->"
      echo "CMUdict (the g014b2b split, 106,837 training words), the G2P recipe of \`attend train --task g2p\`"
      echo "each variant stopped after ${BASH_REMATCH[1]} updates (\`--max-steps\`, batch 64), one thread, seed 1;"
      echo "beam 5 on the 12,000 test words; \"dev exact match\" is greedy on the dev words; the alignment of"
      echo "$word. An early snapshot (the recipe's best model in \`docs/g2p.md\` came after ~34,000 updates):"
      echo "it ranks how fast each variant learns. \"training\" is wall-clock time on whatever else the"
      echo "machine was doing; the models do not depend on the load."
      echo
      echo "$marker"
      echo "| variant | flags | test WER % | test PER % | dev exact match | training | alignment |"
      echo "|---|---|---:|---:|---:|---:|---|"
      echo "<!-- end -->"
    } >> "$out"
  fi
  flock -u 9
elif [[ $budget =~ ^[0-9]+$ ]]; then
  limit=(--max-minutes "$budget")
  out=docs/g2p.md marker="<!-- table: g2p_variants.sh -->" runs=runs/g2p-variants img=img/g2p
  defaults=(soft-additive soft-general local-p monotonic forward)
else
  echo "g2p_variants.sh: BUDGET must be minutes (45) or updates (3000u), got '$budget'" >&2
  exit 2
fi
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=("${defaults[@]}")
for v in "${variants[@]}"; do
  [ -n "${flags[$v]:-}" ] || { echo "g2p_variants.sh: unknown variant '$v'" >&2; exit 2; }
done
mkdir -p "$runs" "docs/$img"
for v in "${variants[@]}"; do
  dir=$runs/$v
  # shellcheck disable=SC2086
  "$attend" train --task g2p --data "$data" --out "$dir" "${limit[@]}" --threads 1 --seed 1 \
    --lr 1e-3 --epochs 60 --patience 6 ${flags[$v]} > "$dir.log" 2>&1
  line=$(tail -n 1 "$dir.log")
  time=$(sed -n 's/^trained [0-9]* steps in \([0-9:]*\).*/\1/p' <<< "$line")
  updates=$(sed -n 's/^trained \([0-9]*\) steps.*/\1/p' <<< "$line")
  best=$(sed -n 's/.*best dev exact match \([0-9.]*%\).*/\1/p' <<< "$line")
  json=$("$attend" eval --model "$dir" --test "$data/test.tsv" --beam 5 --json)
  read -r wer per < <(/usr/bin/python3 -c 'import json, sys
j = json.loads(sys.argv[1]); print("%.2f %.2f" % (100 * j["sentence_error_rate"], 100 * j["token_error_rate"]))' "$json")
  "$attend" align --model "$dir" --beam 5 --out "docs/$img/$v.png" "$word" > /dev/null
  if [ "${limit[0]}" = --max-steps ]; then
    row="| $v | \`${flags[$v]}\` | $wer | $per | $best | $time | ![$v]($img/$v.png) |"
  else
    row="| $v | \`${flags[$v]}\` | $wer | $per | $best | $time | $updates | ![$v]($img/$v.png) |"
  fi
  flock "$lock" scripts/table_row.py "$out" "$marker" "$v" "$row"
  echo "$v: WER $wer% PER $per% in $time ($updates updates)"
done
