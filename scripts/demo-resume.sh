#!/bin/bash
# CLI demonstration : SIGKILL a run at a random step after the first checkpoint, resume, compare bytes.
# Needs a release build and the default model (bash scripts/demo.sh does both).
cd "$(dirname "$0")/.." && B=target/release/finetune; D=$(mktemp -d)
common="--task sst2 --data-dir examples/glue-tiny --batch-size 8 --epochs 2 --max-seq-length 48 --save-steps 8 --logging-steps 1 --eval-steps 8 --load-best-model-at-end"
$B glue $common --output-dir $D/full >/dev/null 2>&1
K=$(( RANDOM % 20 + 9 )); echo "will SIGKILL at step $K"
$B glue $common --output-dir $D/killed >/dev/null 2>&1 &
PID=$!
until grep -q "\"step\":$K," $D/killed/train_log.jsonl 2>/dev/null; do sleep 0.02; done
kill -9 $PID; wait $PID 2>/dev/null
echo "killed; last logged step: $(grep -o '"step":[0-9]*' $D/killed/train_log.jsonl | tail -1); checkpoints: $(ls $D/killed | grep checkpoint | tr '\n' ' ')"
$B glue $common --output-dir $D/killed --resume 2>&1 | grep -o "resuming from.*"
for f in eval_results.json model.safetensors best_model/model.safetensors; do cmp $D/full/$f $D/killed/$f && echo "byte-identical: $f"; done
