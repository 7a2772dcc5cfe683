#!/usr/bin/env bash
# Issue 8's GPU checks, run on a lent GPU machine that has torch 2.11 in its Python (the binaries are
# built here against the same libtorch and pointed at that installation's libraries).
#
#   stage1 DIR: CUDA unit tests (tests/mixed_precision.rs, CUDA-graph steps included) + the
#               random-weight benchmark table (finetune eager and --cuda-graphs)
#   stage2 DIR: the MiniLM/RTE row of the table + RTE fine-tunes on the GPU: seeds 42-44 for one
#               epoch in strict fp32 with --dropout-rng cpu (the CPU's masks, ~45 ex/s since every
#               mask is a serial host draw), which must land within rounding of the CPU runs of the
#               same flags; then the run_glue recipe (3 epochs) for seed 42 with --cuda-graphs, in
#               fp32 with TF32, strict fp32, bf16 (also with graphs and --group-by-length), and
#               seeds 43-44. Logs come back as train_logs.tar.gz, for comparison with the CPU's.
#
# DIR holds finetune (or finetune.xz), mixed_precision (the test binary), model/ (all-MiniLM-L6-v2
# without its weights), glue/RTE and model.part-aa; stage2's DIR holds model.part-ab. The two halves travel in
# two calls because a call carries at most 64 MiB; stage1 keeps its DIR in $STASH for stage2.
#   squad1 DIR / squad2 DIR: the SQuAD job on CUDA next to bench/run_qa_ref.py on the same GPU, seeds
#               42-44 (4,000 training / 1,000 dev questions, 1 epoch); squad1's DIR holds
#               finetune.xz, model/ without weights, model.part-aa, train.json, dev.json; squad2's
#               model.part-ab.
#   rng DIR:    generator state on CUDA: tests/seed_stream.rs and tests/mixed_precision.rs, then a
#               resume check on a tiny random BERT (made here with transformers): 24 CUDA steps
#               straight through, and the same run resumed from its step-12 checkpoint, must end
#               with byte-identical weights. DIR holds finetune, seed_stream, mixed_precision,
#               tokenizer/ (tokenizer.json, vocab.txt, tokenizer_config.json) and glue/RTE.
#   flowers1 DIR / flowers2 DIR: issue 4's full fine-tune (EfficientNet-Lite0, 5 epochs, AdamW 1e-3,
#               wd 0.01, batch 32, cosine, no clipping) on the whole flowers train list, finetune and
#               bench/image_ref.py on the same GPU, scored on the validate list. The data travels in
#               two halves: flowers1's DIR holds finetune.xz, effnet/ (config.json,
#               model.safetensors) and flowers/ (the three lists, the first classes' folders);
#               flowers2's DIR holds flowers/flower_photos/ with the remaining classes.
#   images DIR: `finetune image` on CUDA (full fine-tune fp32 and bf16, linear probe, image eval)
#               on a small flowers subset; DIR holds finetune.xz, effnet/ and flowers/.
# Results go to $OUT (or ./gpu-out).
set -uo pipefail
stage=${1:?usage: gpu_check.sh stage1|stage2 DIR}
dir=$(cd "${2:?usage: gpu_check.sh stage1|stage2 DIR}" && pwd)
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
py=${PYTHON:-python3}
torch=$($py -c 'import os, torch; print(os.path.dirname(torch.__file__))')
# The binary's RUNPATH names this repo's libtorch cache; LD_LIBRARY_PATH wins over RUNPATH.
LD_LIBRARY_PATH="$torch/lib:$(ls -d "$(dirname "$torch")"/nvidia/*/lib 2>/dev/null | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
stash=${STASH:-/root/finetune-gpu}
case $stage in
flowers1)
    rm -rf "$stash" && cp -r "$dir" "$stash" && echo "stashed $(du -sh "$stash" | cut -f1)"
    ;;
flowers2)
    [ -d "$stash/effnet" ] || { echo "no $stash/effnet: run flowers1 on this machine first"; exit 1; }
    cp -r "$dir/flowers/flower_photos/." "$stash/flowers/flower_photos/"
    xz -dc "$stash/finetune.xz" > /tmp/finetune && chmod +x /tmp/finetune
    fl="$stash/flowers/flower_photos"
    /usr/bin/time -f "finetune wall %e s" /tmp/finetune image --model "$stash/effnet" --data-dir "$fl" --device cuda --output-dir /tmp/fl-ours \
        --epochs 5 --batch-size 32 --learning-rate 1e-3 --weight-decay 0.01 --max-grad-norm 0 --lr-scheduler-type cosine \
        --no-eval-each-epoch --save-strategy no < /dev/null > "$out/fl-ours.log" 2>&1 || tail -5 "$out/fl-ours.log"
    tail -1 "$out/fl-ours.log"
    cp /tmp/fl-ours/eval_results.json "$out/fl-ours-eval.json"; cp /tmp/fl-ours/train_results.json "$out/fl-ours-train.json"
    /usr/bin/time -f "pytorch wall %e s" $py bench/image_ref.py --pth "$stash/effnet/model.safetensors" --data-dir "$fl" --output-dir /tmp/fl-ref \
        --epochs 5 --device cuda --num-workers "${WORKERS:-12}" > "$out/fl-ref.log" 2>&1 || tail -5 "$out/fl-ref.log"
    tail -1 "$out/fl-ref.log"
    cp /tmp/fl-ref/eval_results.json "$out/fl-ref-eval.json"
    $py -c "import json; o=json.load(open('$out/fl-ours-eval.json')); t=json.load(open('$out/fl-ours-train.json')); r=json.load(open('$out/fl-ref-eval.json')); print(json.dumps({'ours_acc': o['eval_accuracy'], 'ours_train_s': t.get('train_runtime'), 'ours_img_s': t.get('train_samples_per_second'), 'ref_acc': r['eval_accuracy'], 'ref_train_s': r['train_runtime'], 'ref_img_s': r['train_images_per_second']}))"
    ;;
rng)
    "$dir/seed_stream" --nocapture --test-threads 1 2>&1 | tee "$out/seed_stream.log"
    "$dir/mixed_precision" --nocapture --test-threads 1 2>&1 | tee "$out/cuda_tests.log"
    tiny=/tmp/tiny-bert && rm -rf "$tiny" && cp -r "$dir/tokenizer" "$tiny"
    $py -c "
import torch, transformers
torch.manual_seed(0)
c = transformers.BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
transformers.BertModel(c).save_pretrained('$tiny', safe_serialization=True)"
    common=(glue --task rte --model "$tiny" --data-dir "$dir/glue" --device cuda --max-steps 24 --save-steps 12 --logging-steps 4 --max-seq-length 64 --no-eval-each-epoch)
    rm -rf /tmp/rng-a /tmp/rng-b
    "$dir/finetune" "${common[@]}" --output-dir /tmp/rng-a < /dev/null > "$out/rng-a.log" 2>&1 || tail -5 "$out/rng-a.log"
    cp -r /tmp/rng-a /tmp/rng-b && rm -rf /tmp/rng-b/checkpoint-24 /tmp/rng-b/model.safetensors
    "$dir/finetune" "${common[@]}" --output-dir /tmp/rng-b --resume /tmp/rng-b/checkpoint-12 < /dev/null > "$out/rng-b.log" 2>&1 || tail -5 "$out/rng-b.log"
    ls /tmp/rng-a/checkpoint-12
    cmp /tmp/rng-a/model.safetensors /tmp/rng-b/model.safetensors && echo "CUDA resume: final weights byte-identical"
    cmp /tmp/rng-a/checkpoint-12/rng_state.safetensors /tmp/rng-b/checkpoint-12/rng_state.safetensors && echo "CUDA rng_state saved"
    ;;
squad1)
    rm -rf "$stash" && cp -r "$dir" "$stash" && echo "stashed $(du -sh "$stash" | cut -f1)"
    ;;
squad2)
    [ -f "$stash/model.part-aa" ] || { echo "no $stash/model.part-aa: run squad1 on this machine first"; exit 1; }
    cat "$stash/model.part-aa" "$dir/model.part-ab" > "$stash/model/model.safetensors"
    echo "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  $stash/model/model.safetensors" | sha256sum -c - || exit 1
    xz -dc "$stash/finetune.xz" > /tmp/finetune && chmod +x /tmp/finetune
    n=${SQUAD_TRAIN:-4000}; m=${SQUAD_EVAL:-1000}
    for s in ${SEEDS:-42 43 44}; do
        /tmp/finetune squad --model "$stash/model" --train-file "$stash/train.json" --dev-file "$stash/dev.json" --device cuda \
            --max-train-samples "$n" --max-eval-samples "$m" --epochs 1 --seed "$s" --save-strategy no --output-dir "/tmp/sq-ours-$s" \
            < /dev/null > "$out/sq-ours-$s.log" 2>&1 || head -3 "$out/sq-ours-$s.log"
        $py bench/run_qa_ref.py --model "$stash/model" --train-file "$stash/train.json" --dev-file "$stash/dev.json" \
            --max-train-samples "$n" --max-eval-samples "$m" --epochs 1 --seed "$s" --output-dir "/tmp/sq-ref-$s" > "$out/sq-ref-$s.log" 2>&1 \
            || tail -3 "$out/sq-ref-$s.log"
        $py -c "import json; o=json.load(open('/tmp/sq-ours-$s/eval_results.json')); r=json.load(open('/tmp/sq-ref-$s/eval_results.json')); t=json.load(open('/tmp/sq-ours-$s/train_results.json')); print(json.dumps({'seed': $s, 'ours_em': o['eval_exact_match'], 'ours_f1': o['eval_f1'], 'ref_em': r['eval_exact_match'], 'ref_f1': r['eval_f1'], 'ours_train_samples_per_second': t['train_samples_per_second']}))"
    done 2>&1 | tee "$out/squad_gpu.jsonl"
    ;;
images)
    xz -dc "$dir/finetune.xz" > /tmp/finetune && chmod +x /tmp/finetune
    fl="$dir/flowers"
    common=(--model "$dir/effnet" --data-dir "$fl/flower_photos" --device cuda --save-strategy no --batch-size 32 --learning-rate 1e-3 --weight-decay 0.01)
    for run in "full --epochs 3 --lr-scheduler-type cosine" "full-bf16 --epochs 3 --lr-scheduler-type cosine --bf16" \
               "probe --freeze-backbone --epochs 50 --lr-scheduler-type constant"; do
        name=${run%% *}
        # shellcheck disable=SC2086
        /tmp/finetune image "${common[@]}" --output-dir "/tmp/img-$name" ${run#* } < /dev/null > "$out/img-$name.log" 2>&1 || { head -3 "$out/img-$name.log"; continue; }
        $py -c "import json,sys; e=json.load(open('/tmp/img-$name/eval_results.json')); t=json.load(open('/tmp/img-$name/train_results.json')); print(json.dumps({'run': '$name', 'eval_accuracy': e['eval_accuracy'], 'train_samples_per_second': t['train_samples_per_second'], 'device': t['device']}))"
    done | tee "$out/images_gpu.jsonl"
    /tmp/finetune image eval --model /tmp/img-full --data-dir "$fl/flower_photos" --list "$fl/validate_list.txt" --device cuda --output-dir /tmp/img-eval > /dev/null 2>&1
    $py -c "import json; print('image eval on cuda:', json.load(open('/tmp/img-eval/eval_results.json'))['eval_accuracy'])"
    ;;
stage1)
    rm -rf "$stash" && cp -r "$dir" "$stash" && dir=$stash
    # The binary may travel xz-compressed: with model.part-aa the call is near the 64 MiB limit.
    if [ -f "$dir/finetune.xz" ]; then xz -dc "$dir/finetune.xz" > "$dir/finetune" && chmod +x "$dir/finetune"; fi
    # A hung capture must not eat a lent GPU's whole budget: each step of a check has a time limit.
    timeout "${TEST_TIMEOUT:-240}" "$dir/mixed_precision" --nocapture --test-threads 1 2>&1 | tee "$out/cuda_tests.log"
    [ "${BENCH:-1}" = 0 ] && exit 0
    $py bench/gpu_bench.py --binary "$dir/finetune" --out "$out/gpu_bench.json" 2>&1 | tee "$out/gpu_bench.log"
    ;;
stage2)
    [ -f "$stash/model.part-aa" ] || { echo "no $stash/model.part-aa: run stage1 on this machine first"; exit 1; }
    cat "$stash/model.part-aa" "$dir/model.part-ab" > "$stash/model/model.safetensors"
    echo "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  $stash/model/model.safetensors" | sha256sum -c - || exit 1
    dir=$stash
    [ "${BENCH:-1}" = 0 ] || $py bench/gpu_bench.py --binary "$dir/finetune" --presets glue --model "$dir/model" --data-dir "$dir/glue" \
        --out "$out/gpu_bench_minilm.json" 2>&1 | tee "$out/gpu_bench_minilm.log"
    run() {  # name, extra flags...
        local name=$1; shift
        timeout "${RUN_TIMEOUT:-150}" "$dir/finetune" glue --task rte --model "$dir/model" --data-dir "$dir/glue" --device cuda \
            --save-strategy no --output-dir "/tmp/rte-$name" "$@" < /dev/null > "/tmp/rte-$name.log" 2>&1
        local rc=$?
        # A run cut short still sends back its log so far (how far it got, at what speed).
        mkdir -p /tmp/rte-logs && cp "/tmp/rte-$name/train_log.jsonl" "/tmp/rte-logs/train_log-$name.jsonl"
        [ $rc = 0 ] || { echo "{\"run\": \"$name\", \"rc\": $rc}"; tail -3 "/tmp/rte-$name.log"; return; }
        $py - "$name" "/tmp/rte-$name" <<'PY'
import json, sys
name, d = sys.argv[1], sys.argv[2]
e = json.load(open(f"{d}/eval_results.json")); t = json.load(open(f"{d}/train_results.json"))
print(json.dumps({"run": name, "eval_accuracy": e.get("eval_accuracy"), "train_runtime": t.get("train_runtime"),
                  "train_samples_per_second": t.get("train_samples_per_second")}))
PY
    }
    # One run per line: name, then flags. RTE_RUNS replaces the list.
    # Newest checks first, so a run cut short by the device budget still answers them.
    runs=${RTE_RUNS:-"seed42-cpu-masks-1ep --seed 42 --dropout-rng cpu --tf32 false --epochs 1 --logging-steps 10
seed43-cpu-masks-1ep --seed 43 --dropout-rng cpu --tf32 false --epochs 1 --logging-steps 10
seed44-cpu-masks-1ep --seed 44 --dropout-rng cpu --tf32 false --epochs 1 --logging-steps 10
seed42 --seed 42
seed42-graphs --seed 42 --cuda-graphs
seed42-bf16 --seed 42 --bf16
seed42-bf16-graphs --seed 42 --bf16 --cuda-graphs
seed43 --seed 43
seed44 --seed 44
seed42-strict-fp32 --seed 42 --tf32 false
seed42-bf16-grouped --seed 42 --bf16 --group-by-length"}
    while read -r name flags; do
        # shellcheck disable=SC2086
        run "$name" $flags
    done <<< "$runs" 2>&1 | tee "$out/rte_gpu.jsonl"
    # A call brings back at most 8 files: the per-run logs travel as one archive.
    tar -czf "$out/train_logs.tar.gz" -C /tmp/rte-logs .
    ;;
esac
