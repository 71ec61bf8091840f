#!/usr/bin/env bash
# Trains every attention variant on the dates task with the same budget, evaluates each on the
# held-out test set (with alignment statistics), draws one alignment per variant, and writes
# docs/attention_results.md and docs/img/attention/*.png.
# Usage: scripts/attention_gallery.sh [BUILD_DIR [VARIANT...]]: with variant names, only those
# are rerun and their rows in docs/attention_results.md replaced (or added).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
only=("$@")
attend="$build/attend"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
example="the 25th of november, 2026"
budget=(--task dates --dates-train 20000 --epochs 8 --max-minutes 3 --seed 1 --threads 1)

variants=(
  "soft-additive|--attention soft --score additive"
  "soft-general|--attention soft --score general"
  "soft-dot|--attention soft --score dot"
  "soft-scaled-dot|--attention soft --score scaled-dot"
  "soft-sparsemax|--attention soft --score additive --normalizer sparsemax"
  "soft-entmax15|--attention soft --score additive --normalizer entmax15"
  "static|--attention static --score additive"
  "local-m|--attention local-m --score additive --window 3"
  "local-p|--attention local-p --score additive --window 3"
  "location|--attention location --score additive"
  "coverage|--attention coverage --score additive --coverage-loss 1"
  "monotonic|--attention monotonic --score additive"
  "forward|--attention forward --score additive"
  "forward-ta|--attention forward-ta --score additive"
  "hard-reinforce|--attention hard --score additive --hard-estimator reinforce"
  "hard-gumbel|--attention hard --score additive --hard-estimator gumbel"
  "mocha|--attention mocha --score additive --chunk 3"
  "multi-head|--attention multi-head --score additive --attention-heads 4"
)

out=docs/attention_results.md
if [ ! -f "$out" ]; then  # a full rerun replaces the rows; the G2P table (scripts/g2p_variants.sh) stays
{
  echo "<!-- written by scripts/attention_gallery.sh; rerun it to refresh -->"
  echo "Dates task, 20,000 generated training examples, at most 8 epochs or 3 minutes (stopping early at"
  echo "100% dev exact match), one thread, seed 1; greedy decoding on the 2,000 held-out test dates."
  echo
  echo "<!-- table: attention_gallery.sh -->"
  echo "| variant | flags | test exact match | training time | monotonicity | mean entropy (nats) | diagonality |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  echo "<!-- end -->"
} > "$out"
fi
for v in "${variants[@]}"; do
  name=${v%%|*}
  flags=${v#*|}
  if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " == *" $name "* ]]; then continue; fi
  # shellcheck disable=SC2086
  train_line=$("$attend" train "${budget[@]}" $flags --out "$work/$name" 2>/dev/null | tail -1)
  time=$(sed -n 's/^trained [0-9]* steps in \([0-9:]*\).*/\1/p' <<< "$train_line")
  json=$("$attend" eval --model "$work/$name" --test "$work/$name/test.tsv" --json --alignment-stats)
  read -r em mono ent diag < <(/usr/bin/python3 -c 'import json, sys
j = json.loads(sys.argv[1]); a = j["alignment"]
print("%.2f %.1f %.3f %.1f" % (100 * j["exact_match"], 100 * a["monotonicity"], a["entropy"], 100 * a["diagonality"]))' "$json")
  "$attend" align --model "$work/$name" --out "docs/img/attention/$name.png" "$example" > /dev/null
  row="| $name | \`$flags\` | $em% | $time | $mono% | $ent | $diag% |"
  scripts/table_row.py "$out" "<!-- table: attention_gallery.sh -->" "$name" "$row"
  echo "$name: $em% in $time"
done
echo "wrote $out and docs/img/attention/*.png"
