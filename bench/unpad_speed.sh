#!/usr/bin/env bash
# Training speed of the unpadded encoder: one GLUE task, the same recipe and seed, one run each,
# one after the other on this machine with the same thread count — finetune with --unpad true and
# false, and transformers' Trainer (bench/run_glue_ref.py) with run_glue.py's default padding to
# max_seq_length and with dynamic padding. Prints train time, examples/s, the speed-ups and the dev
# metric of each.
#
#   bash bench/unpad_speed.sh TASK [extra finetune/reference flags, e.g. --max-steps 300]
#   env: GLUE_DIR, SEED (42), EPOCHS (1), OUT (runs/unpad), THREADS
set -euo pipefail
cd "$(dirname "$0")/.."
task="$1"; shift
GLUE_DIR="${GLUE_DIR:-../shared/data/glue}"
OUT="${OUT:-runs/unpad}/$task"
export OMP_NUM_THREADS="${THREADS:-$(nproc)}"
PY="$(bash tools/setup-reference.sh)"
LIBTORCH="$(bash scripts/setup-libtorch.sh)"
export LIBTORCH
cargo build --release -q
model="$(target/release/finetune fetch)"
common=(--task "$task" --data-dir "$GLUE_DIR" --seed "${SEED:-42}" --epochs "${EPOCHS:-1}" "$@")
mkdir -p "$OUT"
for u in true false; do
  target/release/finetune glue "${common[@]}" --model "$model" --output-dir "$OUT/finetune-unpad-$u" --overwrite-output-dir \
    --save-strategy no --no-eval-each-epoch --unpad "$u" > "$OUT/finetune-unpad-$u.log" 2>&1 || { tail -20 "$OUT/finetune-unpad-$u.log"; exit 1; }
done
"$PY" bench/run_glue_ref.py "${common[@]}" --model "$model" --output-dir "$OUT/transformers-max-length" --pad-to-max-length \
  > "$OUT/transformers-max-length.log" 2>&1 || { tail -20 "$OUT/transformers-max-length.log"; exit 1; }
"$PY" bench/run_glue_ref.py "${common[@]}" --model "$model" --output-dir "$OUT/transformers-dynamic" \
  > "$OUT/transformers-dynamic.log" 2>&1 || { tail -20 "$OUT/transformers-dynamic.log"; exit 1; }
"$PY" - "$OUT" <<'PYEOF'
import json, os, sys
out = sys.argv[1]
runs = ["finetune-unpad-true", "finetune-unpad-false", "transformers-max-length", "transformers-dynamic"]
rows = {}
for r in runs:
    t = json.load(open(os.path.join(out, r, "train_results.json")))
    e = json.load(open(os.path.join(out, r, "eval_results.json")))
    metric = next(k for k in ("eval_accuracy", "eval_pearson", "eval_matthews_correlation") if k in e)
    rows[r] = (t["train_runtime"], t["train_samples_per_second"], metric, e[metric], e["eval_loss"])
base = rows["transformers-max-length"][0]
dyn = rows["transformers-dynamic"][0]
print(f"| run | train s | examples/s | vs transformers max_length | vs transformers dynamic | dev {rows[runs[0]][2][5:]} | dev loss |")
print("|---|---|---|---|---|---|---|")
for r in runs:
    s, eps, m, v, l = rows[r]
    print(f"| {r} | {s:.1f} | {eps:.2f} | {base / s:.2f}x | {dyn / s:.2f}x | {100 * v:.2f} | {l:.6f} |")
PYEOF
