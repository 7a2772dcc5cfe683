#!/usr/bin/env bash
# Data-parallel training on the CPU (Gloo), measured in one run on this machine:
#  1. speed: 1 process × T threads against T processes × 1 thread, the same global batch, steps
#     and seed, alternated REPEATS times; examples/s and the scaling efficiency;
#  2. quality: RTE with run_glue's recipe and dropout on, over SEEDS, 1 process against T ranks;
#  3. reference: transformers' Trainer under torchrun with T ranks at the first seed (the same
#     data, recipe and seed), against finetune's T-rank run.
#
#   bash bench/ddp_check.sh            env: GLUE_DIR, OUT (runs/ddp), T (nproc), REPEATS (2),
#                                      SEEDS (42,43,44), STEPS (40)
set -euo pipefail
cd "$(dirname "$0")/.."
GLUE_DIR="${GLUE_DIR:-../shared/data/glue}"
OUT="${OUT:-runs/ddp}"
T="${T:-$(nproc)}"
SEEDS="${SEEDS:-42,43,44}"
PY="$(bash tools/setup-reference.sh)"
LIBTORCH="$(bash scripts/setup-libtorch.sh)"
export LIBTORCH
cargo build --release -q
ft=target/release/finetune
model="$($ft fetch)"
torchrun="$(dirname "$PY")/torchrun"
mkdir -p "$OUT"
rte=(glue --task rte --model "$model" --data-dir "$GLUE_DIR" --max-seq-length 128)

# 1. Speed.
for r in $(seq "${REPEATS:-2}"); do
  OMP_NUM_THREADS="$T" $ft "${rte[@]}" --batch-size 32 --max-steps "${STEPS:-40}" --save-strategy no --no-eval-each-epoch \
    --output-dir "$OUT/speed-1x$T-$r" --overwrite-output-dir > "$OUT/speed-1x$T-$r.log" 2>&1
  OMP_NUM_THREADS=1 $ft "${rte[@]}" --batch-size $((32 / T)) --max-steps "${STEPS:-40}" --save-strategy no --no-eval-each-epoch \
    --nproc-per-node "$T" --output-dir "$OUT/speed-${T}x1-$r" --overwrite-output-dir > "$OUT/speed-${T}x1-$r.log" 2>&1
done

# 2. Quality over seeds (run_glue's RTE recipe: 3 epochs, lr 2e-5, global batch 32).
OMP_NUM_THREADS="$T" $ft "${rte[@]}" --batch-size 32 --seeds "$SEEDS" --logging-steps 1 --save-strategy no --output-dir "$OUT/rte-1x$T" > "$OUT/rte-1x$T.log" 2>&1
OMP_NUM_THREADS=1 $ft "${rte[@]}" --batch-size $((32 / T)) --seeds "$SEEDS" --logging-steps 1 --save-strategy no --nproc-per-node "$T" \
  --output-dir "$OUT/rte-${T}x1" > "$OUT/rte-${T}x1.log" 2>&1

# 3. transformers' Trainer under torchrun, first seed.
seed="${SEEDS%%,*}"
OMP_NUM_THREADS=1 "$torchrun" --nproc-per-node "$T" --master-port 29517 bench/run_glue_ref.py --task rte --model "$model" \
  --data-dir "$GLUE_DIR" --output-dir "$OUT/rte-transformers-${T}x1" --batch-size $((32 / T)) --seed "$seed" --logging-steps 1 \
  > "$OUT/rte-transformers-${T}x1.log" 2>&1

"$PY" - "$OUT" "$T" "$seed" <<'EOF'
import json, statistics, sys, glob
out, t, seed = sys.argv[1], int(sys.argv[2]), sys.argv[3]
load = lambda p: json.load(open(p))
print(f"## Speed: RTE, global batch 32, length 128, {t} cores\n")
print("| run | 1 process × %d threads | %d processes × 1 thread | ratio |\n|---|---|---|---|" % (t, t))
for one in sorted(glob.glob(f"{out}/speed-1x{t}-*/train_results.json")):
    r = one.split("-")[-1].split("/")[0]
    a = load(one)["train_samples_per_second"]
    b = load(f"{out}/speed-{t}x1-{r}/train_results.json")["train_samples_per_second"]
    print(f"| {r} | {a:.2f} ex/s | {b:.2f} ex/s | {b / a:.2f}× |")
print(f"\n## Quality: RTE dev accuracy, dropout on\n")
for name in (f"rte-1x{t}", f"rte-{t}x1"):
    accs = [load(p)["eval_accuracy"] * 100 for p in sorted(glob.glob(f"{out}/{name}/seed-*/eval_results.json"))]
    print(f"- {name}: " + ", ".join(f"{a:.2f}" for a in accs) + f" → mean {statistics.mean(accs):.2f} ± {statistics.stdev(accs):.2f}")
ours = [json.loads(l)["loss"] for l in open(f"{out}/rte-{t}x1/seed-{seed}/train_log.jsonl") if '"loss"' in l]
ref = load(f"{out}/rte-transformers-{t}x1/step_losses.json")
diff = max(abs(a - b) for a, b in zip(ours, ref))
print(f"\n## Against transformers' Trainer under torchrun ({t} ranks, seed {seed})\n")
print(f"- steps: finetune {len(ours)}, transformers {len(ref)}; largest step-loss difference {diff:.1e}")
print(f"- dev accuracy: finetune {load(f'{out}/rte-{t}x1/seed-{seed}/eval_results.json')['eval_accuracy'] * 100:.2f}, "
      f"transformers {load(f'{out}/rte-transformers-{t}x1/eval_results.json')['eval_accuracy'] * 100:.2f}")
EOF
