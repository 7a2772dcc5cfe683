#!/usr/bin/env bash
# Dev-set quality of finetune against PyTorch + transformers on the same recipe, data and seed.
# Runs both for each task (default: the five GLUE tasks in ../shared/data) one after the other
# with the same thread count, then prints a table of both columns from their eval_results.json.
#
#   bash bench/glue_quality.sh [task ...]      env: GLUE_DIR, SEED (42), OUT (runs/quality), THREADS
set -euo pipefail
cd "$(dirname "$0")/.."
GLUE_DIR="${GLUE_DIR:-../shared/data/glue}"
SEED="${SEED:-42}"
OUT="${OUT:-runs/quality}"
export OMP_NUM_THREADS="${THREADS:-$(nproc)}"
tasks=("$@")
[ ${#tasks[@]} -gt 0 ] || tasks=(rte mrpc stsb cola wnli)
PY="$(bash tools/setup-reference.sh)"
LIBTORCH="$(bash scripts/setup-libtorch.sh)"
export LIBTORCH
cargo build --release -q
model="$(target/release/finetune fetch)"
mkdir -p "$OUT"
for t in "${tasks[@]}"; do
  /usr/bin/env time -v target/release/finetune glue --task "$t" --data-dir "$GLUE_DIR" --output-dir "$OUT/finetune-$t" --seed "$SEED" \
    > "$OUT/finetune-$t.log" 2>&1 || { tail -20 "$OUT/finetune-$t.log"; exit 1; }
  /usr/bin/env time -v "$PY" bench/run_glue_ref.py --task "$t" --model "$model" --data-dir "$GLUE_DIR" --output-dir "$OUT/pytorch-$t" --seed "$SEED" \
    > "$OUT/pytorch-$t.log" 2>&1 || { tail -20 "$OUT/pytorch-$t.log"; exit 1; }
done
"$PY" bench/quality_table.py "$OUT" "${tasks[@]}"
