#!/usr/bin/env bash
# Lock-step check of an encoder family (issue 20): `finetune glue` and transformers' Trainer
# (bench/run_glue_ref.py) train the same checkpoint on the same RTE batches with the same seed;
# prints each step's two losses and the largest difference.
#   bash bench/family_lockstep.sh tests/fixtures/families/roberta /tmp/lockstep [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1 out=$2 steps=${3:-20}
glue=${GLUE_DIR:-../shared/data/glue}
PY=$(bash tools/setup-reference.sh)
common=(--task rte --model "$model" --data-dir "$glue" --max-steps "$steps" --batch-size 8 --max-seq-length 24 --logging-steps 1)
target/release/finetune glue "${common[@]}" --save-strategy no --overwrite-output-dir --output-dir "$out/finetune" >/dev/null
"$PY" bench/run_glue_ref.py "${common[@]}" --output-dir "$out/transformers" >/dev/null 2>&1
"$PY" - "$out" <<'PYEOF'
import json, sys
out = sys.argv[1]
ours = [json.loads(l)["loss"] for l in open(f"{out}/finetune/train_log.jsonl") if '"loss"' in l]
theirs = json.load(open(f"{out}/transformers/step_losses.json"))
assert len(ours) == len(theirs), (len(ours), len(theirs))
for i, (a, b) in enumerate(zip(ours, theirs), 1):
    print(f"step {i:3d}  finetune {a:.9f}  transformers {b:.9f}  diff {abs(a - b):.2e}")
print(f"max |loss difference| over {len(ours)} steps: {max(abs(a - b) for a, b in zip(ours, theirs)):.3e}")
PYEOF
