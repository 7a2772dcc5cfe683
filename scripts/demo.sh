#!/usr/bin/env bash
# Builds finetune, fetches the default model into the HF cache, and fine-tunes + evaluates it on
# RTE ($GLUE_DIR, else ../shared/data/glue), or on the bundled tiny SST-2 set where GLUE is absent.
# Extra arguments go to `finetune glue` (e.g. --seed 43, --epochs 1).
set -euo pipefail
cd "$(dirname "$0")/.."
LIBTORCH="$(bash scripts/setup-libtorch.sh)"
export LIBTORCH
cargo build --release
target/release/finetune fetch
data="${GLUE_DIR:-../shared/data/glue}"
if [ -f "$data/RTE/train.tsv" ]; then task=rte; else data=examples/glue-tiny; task=sst2; fi
target/release/finetune glue --task "$task" --data-dir "$data" --output-dir "runs/$task" --overwrite-output-dir "$@"
