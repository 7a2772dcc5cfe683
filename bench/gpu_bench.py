#!/usr/bin/env python3
"""GPU training-step throughput: finetune vs PyTorch eager (+ transformers / torchvision), same
card, same run. One command, one table.

Rows (issue 8's shapes, random weights and inputs, after warm-up):
  bert-base-cls  BERT-base (12 layers, 768 hidden) sequence classification, batch 32, seq 128
  bert-base-qa   the same encoder with a span head, batch 32, seq 384
  resnet50       ResNet-50, batch 64, 224x224
  glue           all-MiniLM-L6-v2 on the first RTE training batches (real text, padded per
                 batch), the workload of `finetune glue` (needs --data-dir and --model)
Both sides: forward + backward + clip_grad_norm_(1.0) + AdamW(fused=True) per step, autocast
bf16 unless --no-bf16. PyTorch runs at its defaults (TF32 matmuls off); finetune at its own
(TF32 on). Times are wall clock between cuda synchronizations, over --steps steps. finetune runs
twice: eager, and with --cuda-graphs (each step shape captured once, then replayed; the glue
preset's first batch of each padded length runs eagerly and its second is captured, inside the
timed steps when the warm-up did not see that length twice).

    python3 bench/gpu_bench.py --binary target/release/finetune [--presets bert-base-cls,...]
"""
import argparse, json, os, subprocess, sys, time
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def bert_base_model(kind):
    from transformers import BertConfig, BertForQuestionAnswering, BertForSequenceClassification
    cfg = BertConfig(attn_implementation="sdpa")
    return (BertForSequenceClassification if kind == "cls" else BertForQuestionAnswering)(cfg)


def batches_for(preset, a, dev):
    """(model, list of (kwargs) batches, examples per batch)."""
    g = torch.Generator(device="cpu").manual_seed(0)
    if preset in ("bert-base-cls", "bert-base-qa"):
        b, s = a.batch_size or 32, (a.max_seq_length or (384 if preset == "bert-base-qa" else 128))
        model = bert_base_model("cls" if preset == "bert-base-cls" else "qa")
        out = []
        for _ in range(4):
            ids = torch.randint(1000, 30522, (b, s), generator=g)
            kw = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
            if preset == "bert-base-cls":
                kw["labels"] = torch.randint(2, (b,), generator=g)
            else:
                kw["start_positions"] = torch.randint(s, (b,), generator=g)
                kw["end_positions"] = torch.randint(s, (b,), generator=g)
            out.append({k: v.to(dev) for k, v in kw.items()})
        return model, out, b
    if preset == "resnet50":
        import torchvision
        b = a.batch_size or 64
        model = torchvision.models.resnet50()
        out = [{"x": torch.randn(b, 3, 224, 224, generator=g).to(dev), "y": torch.randint(1000, (b,), generator=g).to(dev)} for _ in range(4)]
        return model, out, b
    if preset == "glue":
        sys.path.insert(0, os.path.dirname(__file__))
        from run_glue_ref import TASKS, read
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        b = a.batch_size or 32
        spec = TASKS["rte"]
        rows = read(os.path.join(a.data_dir, spec[0], "train.tsv"), spec)[: (a.steps + a.warmup) * b]
        tok = AutoTokenizer.from_pretrained(a.model)
        model = AutoModelForSequenceClassification.from_pretrained(a.model, num_labels=2, attn_implementation="sdpa")
        out = []
        for i in range(0, len(rows), b):
            c = rows[i:i + b]
            enc = tok([r[0] for r in c], [r[1] for r in c], truncation=True, max_length=a.max_seq_length or 128, padding=True, return_tensors="pt")
            enc["labels"] = torch.tensor([r[2] for r in c])
            out.append({k: v.to(dev) for k, v in enc.items()})
        return model, out, b
    raise SystemExit(f"unknown preset {preset}")


def pytorch_rate(preset, a):
    dev = torch.device("cuda")
    torch.manual_seed(0)
    model, batches, b = batches_for(preset, a, dev)
    model = model.to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=True)
    dtype = torch.bfloat16 if a.bf16 else None
    t0 = None
    for i in range(a.warmup + a.steps):
        if i == a.warmup:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        kw = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            if preset == "resnet50":
                loss = torch.nn.functional.cross_entropy(model(kw["x"]), kw["y"])
            else:
                loss = model(**kw).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    torch.cuda.synchronize()
    return a.steps * b / (time.perf_counter() - t0)


def ours_rate(preset, a, graphs):
    cmd = [a.binary, "bench", "--preset", preset, "--device", "cuda", "--steps", str(a.steps), "--warmup", str(a.warmup)]
    if graphs:
        cmd.append("--cuda-graphs")
    if a.bf16:
        cmd.append("--bf16")
    if a.batch_size:
        cmd += ["--batch-size", str(a.batch_size)]
    if a.max_seq_length:
        cmd += ["--max-seq-length", str(a.max_seq_length)]
    if preset == "glue":
        cmd += ["--task", "rte", "--model", a.model, "--data-dir", a.data_dir]
    if preset == "resnet50" and a.channels_last:
        cmd.append("--channels-last")
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
    except subprocess.TimeoutExpired:
        print(f"{' '.join(cmd)} ran past {a.timeout} s", file=sys.stderr, flush=True)
        return None
    if r.returncode != 0:
        # One failing column (a capture error, say) must not cost the rest of a lent GPU's table.
        print(f"{' '.join(cmd)} failed (rc {r.returncode}):\n{r.stderr[-2000:]}", file=sys.stderr, flush=True)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])["train_examples_per_second"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "finetune"))
    ap.add_argument("--presets", default="bert-base-cls,bert-base-qa,resnet50")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--max-seq-length", type=int)
    ap.add_argument("--no-bf16", dest="bf16", action="store_false")
    ap.add_argument("--data-dir", help="GLUE root (glue preset)")
    ap.add_argument("--model", help="model directory (glue preset)")
    ap.add_argument("--out", help="write the rows as JSON here")
    ap.add_argument("--timeout", type=float, default=180, help="seconds one finetune column may take")
    ap.add_argument("--no-graphs", dest="graphs", action="store_false", help="skip finetune's --cuda-graphs column")
    ap.add_argument("--channels-last", action="store_true", help="finetune's resnet50 in NHWC layout (PyTorch's side stays at its NCHW default)")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark needs a GPU")
    rows = []
    for p in a.presets.split(","):
        ref = pytorch_rate(p, a)
        torch.cuda.empty_cache()
        row = {"preset": p, "pytorch": ref}
        for col, graphs in [("finetune", False), ("finetune_graphs", True)][: 1 + a.graphs]:
            ours = ours_rate(p, a, graphs)
            row[col] = ours
            row[col.replace("finetune", "ratio")] = ours and ours / ref
        rows.append(row)
        print(json.dumps(rows[-1]), flush=True)
    name = torch.cuda.get_device_name(0)
    print(f"\n{name}, torch {torch.__version__}, {'bf16 autocast' if a.bf16 else 'fp32'}, {a.steps} timed steps after {a.warmup}")
    graphs = "| finetune --cuda-graphs (ex/s) | ratio " if a.graphs else ""
    print(f"| workload | PyTorch eager (ex/s) | finetune (ex/s) | ratio {graphs}|")
    print("|---|---:|---:|---:|" + ("---:|---:|" if a.graphs else ""))
    cell = lambda rate, ratio: "failed | - |" if rate is None else f"{rate:.0f} | {ratio:.2f}x |"
    for r in rows:
        g = " " + cell(r["finetune_graphs"], r["ratio_graphs"]) if a.graphs else ""
        print(f"| {r['preset']} | {r['pytorch']:.0f} | {cell(r['finetune'], r['ratio'])}{g}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"device": name, "torch": torch.__version__, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
