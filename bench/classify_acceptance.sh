#!/usr/bin/env bash
# `finetune classify` next to its references on real data (docs/classify.md):
#   trec        TREC-6 with a seeded 10% stratified split: finetune vs bench/run_classification_ref.py
#   goemotions  GoEmotions train -> dev, multi-label at threshold 0.3: finetune vs the reference
#   stsb        STS-B written as CSV with float labels: `finetune classify` vs `finetune glue --task stsb`
# Each pair runs side by side with one thread per process (the comparison is of results, not
# speed). Usage: bash bench/classify_acceptance.sh trec|goemotions|stsb OUT_DIR [extra recipe flags]
# Extra flags go to both sides (e.g. --epochs 1 --learning-rate 5e-5).
set -euo pipefail
cd "$(dirname "$0")/.."
what=$1 out=$2
shift 2
data=${DATA_DIR:-../shared/data}
bin=target/release/finetune
py=$(bash tools/setup-reference.sh)
model=$($bin fetch 2>/dev/null)
mkdir -p "$out"
export OMP_NUM_THREADS=1 NO_COLOR=1
both() { # name, finetune args..., --, reference command...
  local name=$1
  shift
  local ft=() ref=()
  while [ "$1" != "--" ]; do ft+=("$1"); shift; done
  shift
  ref=("$@")
  /usr/bin/time -v "$bin" "${ft[@]}" >"$out/$name-finetune.out" 2>"$out/$name-finetune.err" &
  local a=$!
  /usr/bin/time -v "${ref[@]}" >"$out/$name-ref.out" 2>"$out/$name-ref.err" &
  local b=$!
  wait $a
  wait $b
}
case $what in
  trec)
    re='^(?P<label>[^:]+):\S+ (?P<text>.+)$'
    common=(--train-file "$data/trec/train.txt" --encoding latin-1 --line-regex "$re" --validation-split 0.1 "$@")
    both trec classify "${common[@]}" --save-strategy no --output-dir "$out/trec-finetune" -- \
      "$py" bench/run_classification_ref.py --model "$model" "${common[@]}" --output-dir "$out/trec-ref"
    ;;
  goemotions)
    g=$data/goemotions
    common=(--train-file "$g/train.tsv" --validation-file "$g/dev.tsv" --column-names text,labels,id --label-column-name labels
      --label-delimiter , --label-list "$g/emotions.txt" --threshold 0.3 "$@")
    both goemotions classify "${common[@]}" --save-strategy no --output-dir "$out/goemotions-finetune" -- \
      "$py" bench/run_classification_ref.py --model "$model" "${common[@]}" --output-dir "$out/goemotions-ref"
    ;;
  stsb)
    # STS-B's TSV has ten columns and no quoting; the CSV keeps the two sentences and the score.
    for split in train dev; do
      "$py" - "$data/glue/STS-B/$split.tsv" "$out/stsb-$split.csv" <<'EOF'
import csv, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
h = rows[0]
with open(sys.argv[2], "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["sentence1", "sentence2", "label"])
    w.writerows([r[h.index("sentence1")], r[h.index("sentence2")], r[h.index("score")]] for r in rows[1:])
EOF
    done
    both stsb classify --train-file "$out/stsb-train.csv" --validation-file "$out/stsb-dev.csv" --text-column-names sentence1,sentence2 \
      --save-strategy no --output-dir "$out/stsb-classify" "$@" -- \
      "$bin" glue --task stsb --data-dir "$data/glue" --save-strategy no --output-dir "$out/stsb-glue" "$@"
    ;;
  *) echo "usage: $0 trec|goemotions|stsb OUT_DIR [flags]" >&2; exit 2 ;;
esac
for f in "$out"/*/eval_results.json; do echo "$f"; grep -E '"eval_(accuracy|f1_macro|f1_micro|pearson|spearmanr|loss)"' "$f" || true; done
