#!/usr/bin/env python3
"""Checks that a model directory written by `finetune glue` loads in transformers'
AutoModelForSequenceClassification and gives the same dev-set logits finetune computed.

    $(bash tools/setup-reference.sh) tools/check_hf_load.py --output-dir /tmp/rte --data-dir ../shared/data/glue

Exits non-zero when the largest absolute logit difference exceeds --tol (default 1e-4).
"""
import argparse, json, os, sys
import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
from run_glue_ref import TASKS, read  # noqa: E402  (same TSV reading as the reference runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--output-dir", required=True, help="a finetune glue --output-dir")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.output_dir, "config.json")))
    run = json.load(open(os.path.join(a.output_dir, "run_config.json")))
    task = cfg["finetuning_task"]
    ours = np.array(json.load(open(os.path.join(a.output_dir, "eval_logits.json"))), dtype=np.float32)
    tok = AutoTokenizer.from_pretrained(a.output_dir)
    model = AutoModelForSequenceClassification.from_pretrained(a.output_dir).eval()
    rows = read(os.path.join(a.data_dir, TASKS[task][0], "dev.tsv"), TASKS[task])[: len(ours)]
    max_len = run["args"]["max_seq_length"]
    out = []
    with torch.no_grad():
        for i in range(0, len(rows), 32):
            chunk = rows[i:i + 32]
            b = [r[1] for r in chunk] if chunk[0][1] is not None else None
            enc = tok([r[0] for r in chunk], b, truncation=True, max_length=max_len, padding=True, return_tensors="pt")
            out.append(model(**enc).logits.numpy())
    theirs = np.concatenate(out)
    diff = float(np.abs(theirs - ours).max())
    print(json.dumps({"task": task, "examples": len(ours), "labels": model.config.id2label, "max_abs_logit_diff": diff}))
    return 0 if diff <= a.tol else 1


if __name__ == "__main__":
    sys.exit(main())
