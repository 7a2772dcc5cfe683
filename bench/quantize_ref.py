#!/usr/bin/env python3
"""PyTorch's dynamic int8 quantization of the same fine-tuned classifier `finetune quantize` gets
(the reference of `finetune bench-infer`): transformers loads the float model directory,
torch.ao's quantize_dynamic makes every nn.Linear int8 — per channel (per_channel_dynamic_qconfig,
what `finetune quantize` does) and per tensor (quantize_dynamic's default) — and each variant is
scored on the GLUE dev set and timed as bench-infer times it: batch-1 latency over the first
examples, then the dev set in length-sorted batches. Prints a JSON line per variant.

    $(bash tools/setup-reference.sh) bench/quantize_ref.py --model /tmp/mrpc-fp32 --task mrpc \
        --data-dir ../shared/data/glue [--latency-samples 200] [--batch-size 32]
"""
import argparse, io, json, os, sys, time
for _v, _x in (("MKL_CBWR", "AUTO"), ("MKL_DYNAMIC", "FALSE")):
    os.environ.setdefault(_v, _x)
import numpy as np
import torch
from sklearn.metrics import f1_score, matthews_corrcoef
from scipy.stats import pearsonr, spearmanr
from transformers import AutoModelForSequenceClassification, AutoTokenizer

sys.path.insert(0, os.path.dirname(__file__))
from run_glue_ref import TASKS, read  # the same TSV reading as the training reference


def metric(task, preds, gold):
    if task == "stsb":
        return {"pearson": pearsonr(preds, gold)[0], "spearmanr": spearmanr(preds, gold)[0]}
    if task == "cola":
        return {"matthews_correlation": matthews_corrcoef(gold, preds)}
    acc = float((np.array(preds) == np.array(gold)).mean())
    if task == "mrpc":
        return {"accuracy": acc, "f1": f1_score(gold, preds)}
    return {"accuracy": acc}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--task", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--latency-samples", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=32)
    a = ap.parse_args()
    spec = TASKS[a.task]
    rows = read(os.path.join(a.data_dir, spec[0], "dev.tsv"), spec)
    tok = AutoTokenizer.from_pretrained(a.model)
    enc = [tok(x, y, truncation=True, max_length=a.max_seq_length) if y is not None else tok(x, truncation=True, max_length=a.max_seq_length) for x, y, _ in rows]
    gold = [r[2] for r in rows]
    float_model = AutoModelForSequenceClassification.from_pretrained(a.model).eval()
    variants = [("pytorch float32", float_model)]
    for name, qconfig in (("pytorch int8 per-channel", torch.ao.quantization.per_channel_dynamic_qconfig), ("pytorch int8 per-tensor", torch.ao.quantization.default_dynamic_qconfig)):
        m = AutoModelForSequenceClassification.from_pretrained(a.model).eval()
        variants.append((name, torch.ao.quantization.quantize_dynamic(m, {torch.nn.Linear: qconfig}, dtype=torch.qint8)))

    def run(model, idx):
        batch = tok.pad([enc[i] for i in idx], return_tensors="pt")
        return model(**batch).logits

    order = sorted(range(len(enc)), key=lambda i: len(enc[i]["input_ids"]))
    with torch.inference_mode():
        for name, model in variants:
            run(model, order[: a.batch_size])  # warm-up
            lat = []
            for k in range(a.latency_samples):
                t = time.perf_counter()
                run(model, [k % len(enc)])
                lat.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            logits = [None] * len(enc)
            for s in range(0, len(order), a.batch_size):
                idx = order[s : s + a.batch_size]
                for i, row in zip(idx, run(model, idx)):
                    logits[i] = row
            secs = time.perf_counter() - t
            out = torch.stack(logits)
            preds = out.squeeze(-1).tolist() if a.task == "stsb" else out.argmax(-1).tolist()
            buf = io.BytesIO()
            torch.save(model.state_dict(), buf)
            print(json.dumps({"variant": name, "latency_p50_ms": float(np.percentile(lat, 50)), "latency_p99_ms": float(np.percentile(lat, 99)),
                              "throughput": len(enc) / secs, "state_dict_bytes": buf.tell(), "metrics": metric(a.task, preds, gold),
                              "torch_num_threads": torch.get_num_threads(), "quantized_engine": torch.backends.quantized.engine}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
