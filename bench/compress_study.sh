#!/usr/bin/env bash
# The paper's claim (§1.5: a small model is best trained through a large one, then compressed) on
# GLUE tasks: per task, a teacher (all-MiniLM-L6-v2, 6 layers, run_glue's recipe), a 3-layer
# student fine-tuned directly (`distill --alpha 0`: the same student and initialisation, no
# teacher term) and distilled (`--alpha 0.5 --temperature 5`), each over SEEDS, then the teacher
# and the seed-42 students in int8, all through bench-infer; `finetune report` and `finetune
# compare` (paired bootstrap) over the runs.
#
#   bash bench/compress_study.sh OUT [TASKS]      # default TASKS: "rte mrpc"; env SEEDS, GLUE_DIR
#   A TEACHER_<TASK> directory (e.g. TEACHER_MRPC=/tmp/mrpc-fp32) is used instead of training one.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1; tasks=${2:-rte mrpc}
glue=${GLUE_DIR:-../shared/data/glue}
seeds=${SEEDS:-42,43,44}
ft=target/release/finetune
for task in $tasks; do
  dir=$out/$task
  var=TEACHER_${task^^}
  teacher=${!var:-$dir/teacher}
  if [ ! -f "$teacher/model.safetensors" ]; then
    $ft glue --task "$task" --data-dir "$glue" --output-dir "$teacher" --save-strategy no
  fi
  for run in "direct 0" "distilled 0.5"; do
    set -- $run
    $ft distill --task "$task" --teacher "$teacher" --student-layers 3 --alpha "$2" --temperature 5 \
      --seeds "$seeds" --data-dir "$glue" --output-dir "$dir/$1" --save-strategy no
  done
  mkdir -p "$dir/int8"
  for pair in "teacher $teacher" "direct $dir/direct/seed-42" "distilled $dir/distilled/seed-42"; do
    set -- $pair
    $ft quantize --model "$2" --output-dir "$dir/int8/$1"
  done
  $ft bench-infer "$teacher" "$dir/int8/teacher" "$dir/direct/seed-42" "$dir/int8/direct" \
    "$dir/distilled/seed-42" "$dir/int8/distilled" --task "$task" --data-dir "$glue" \
    --latency-samples 500 --output "$dir/bench_infer.json" | tee "$dir/bench_infer.md"
  for s in ${seeds//,/ }; do
    $ft compare "$dir/direct/seed-$s" "$dir/distilled/seed-$s" | tee "$dir/compare-seed-$s.txt"
  done
done
$ft report "$out" --out "$out/report.md"
