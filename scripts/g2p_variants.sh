#!/usr/bin/env bash
# The G2P attention-variant table (docs/g2p.md): trains each variant with the recipe of
# `attend train --task g2p` for the same time budget on one thread, evaluates it on the test
# words with beam 5, draws the alignment of one test word, and writes a row per variant into the
# table of docs/g2p.md (replacing that variant's row when it is there).
# Usage: scripts/g2p_variants.sh DATA_DIR [MINUTES [VARIANT...]]
#   DATA_DIR from `attend data cmudict --out DIR --split-from ../shared/data/cmudict-g014b2b`;
#   MINUTES per variant (default 150); variants: soft-additive soft-general local-p monotonic forward
# Two machines' worth of cores: run two copies with different variant lists.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: scripts/g2p_variants.sh DATA_DIR [MINUTES [VARIANT...]]}
minutes=${2:-150}
shift $(( $# < 2 ? $# : 2 ))
attend=${ATTEND:-build/attend}
word=PHOTOGRAPHER
declare -A flags=(
  [soft-additive]="--attention soft --score additive"
  [soft-general]="--attention soft --score general"
  [local-p]="--attention local-p --score additive --window 3"
  [monotonic]="--attention monotonic --score additive"
  [forward]="--attention forward --score additive"
)
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(soft-additive soft-general local-p monotonic forward)
out=docs/g2p.md
mkdir -p runs/g2p-variants docs/img/g2p
for v in "${variants[@]}"; do
  [ -n "${flags[$v]:-}" ] || { echo "g2p_variants.sh: unknown variant '$v'" >&2; exit 2; }
  dir=runs/g2p-variants/$v
  # shellcheck disable=SC2086
  "$attend" train --task g2p --data "$data" --out "$dir" --max-minutes "$minutes" --threads 1 --seed 1 \
    --lr 1e-3 --epochs 60 --patience 6 ${flags[$v]} > "$dir.log" 2>&1
  line=$(tail -1 "$dir.log")
  time=$(sed -n 's/^trained [0-9]* steps in \([0-9:]*\).*/\1/p' <<< "$line")
  updates=$(sed -n 's/^trained \([0-9]*\) steps.*/\1/p' <<< "$line")
  best=$(sed -n 's/.*best dev exact match \([0-9.]*%\).*/\1/p' <<< "$line")
  json=$("$attend" eval --model "$dir" --test "$data/test.tsv" --beam 5 --json)
  read -r wer per < <(/usr/bin/python3 -c 'import json, sys
j = json.loads(sys.argv[1]); print("%.2f %.2f" % (100 * j["sentence_error_rate"], 100 * j["token_error_rate"]))' "$json")
  "$attend" align --model "$dir" --beam 5 --out "docs/img/g2p/$v.png" "$word" > /dev/null
  row="| $v | \`${flags[$v]}\` | $wer | $per | $best | $time | $updates | ![$v](img/g2p/$v.png) |"
  scripts/table_row.py "$out" "<!-- table: g2p_variants.sh -->" "$v" "$row"
  echo "$v: WER $wer% PER $per% in $time"
done
