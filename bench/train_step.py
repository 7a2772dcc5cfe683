#!/usr/bin/env python3
"""Training-step throughput, finetune vs PyTorch + transformers, on the same batches in one run.

Both sides take the first (warmup + steps) * batch_size RTE training pairs in file order, tokenised
with truncation to max_seq_length and padded per batch, and time full steps (forward, backward,
grad clipping, AdamW) with the same thread count. Prints a table with examples/s and the ratio.

    $(bash tools/setup-reference.sh) bench/train_step.py --data-dir ../shared/data/glue
"""
import argparse, json, os, subprocess, sys, time
for _v, _x in (("MKL_CBWR", "AUTO"), ("MKL_DYNAMIC", "FALSE")):  # the math mode finetune runs in (run_info::pin_reproducible_math)
    os.environ.setdefault(_v, _x)
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

sys.path.insert(0, os.path.dirname(__file__))
from run_glue_ref import TASKS, read  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def model_dir(model):
    if os.path.isdir(model):
        return model
    from huggingface_hub import snapshot_download
    return snapshot_download(model, local_files_only=True)


def pytorch_step_rate(a, mdir):
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(mdir)
    spec = TASKS[a.task]
    rows = read(os.path.join(a.data_dir, spec[0], "train.tsv"), spec)[: (a.steps + a.warmup) * a.batch_size]
    model = AutoModelForSequenceClassification.from_pretrained(mdir, num_labels=len(spec[4])).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.0)
    batches = []
    for i in range(0, len(rows), a.batch_size):
        c = rows[i:i + a.batch_size]
        enc = tok([r[0] for r in c], [r[1] for r in c], truncation=True, max_length=a.max_seq_length, padding=True, return_tensors="pt")
        enc["labels"] = torch.tensor([r[2] for r in c])
        batches.append(enc)
    for i, b in enumerate(batches):
        if i == a.warmup:
            t0 = time.perf_counter()
        opt.zero_grad()
        model(**b).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    secs = time.perf_counter() - t0
    return a.steps * a.batch_size / secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--task", default="rte")
    ap.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "finetune"))
    a = ap.parse_args()
    mdir = model_dir(a.model)
    ours = json.loads(subprocess.run(
        [a.binary, "bench", "--task", a.task, "--model", mdir, "--data-dir", a.data_dir, "--batch-size", str(a.batch_size),
         "--max-seq-length", str(a.max_seq_length), "--steps", str(a.steps), "--warmup", str(a.warmup)],
        check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    ref = pytorch_step_rate(a, mdir)
    print(f"train step, {a.task} batches (batch {a.batch_size}, max_seq_length {a.max_seq_length}, "
          f"{ours['padded_tokens_per_step'] / a.batch_size:.0f} padded tokens/example), {torch.get_num_threads()} threads, "
          f"{a.steps} timed steps after {a.warmup} warm-up")
    print(f"| impl | train examples/s |\n|---|---|")
    print(f"| finetune (tch {ours['torch_num_threads']} threads) | {ours['train_examples_per_second']:.2f} |")
    print(f"| PyTorch {torch.__version__} + transformers | {ref:.2f} |")
    print(f"ratio finetune / PyTorch: {ours['train_examples_per_second'] / ref:.3f}")


if __name__ == "__main__":
    main()
