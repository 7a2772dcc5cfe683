#!/usr/bin/env python3
"""Checks that a model directory written by `finetune glue` or `finetune classify` loads in
transformers' AutoModelForSequenceClassification and gives the same dev-set logits finetune
computed (for `classify`, the validation set is rebuilt from run_config.json: the validation file,
or the same seeded stratified split).

    $(bash tools/setup-reference.sh) tools/check_hf_load.py --output-dir /tmp/rte --data-dir ../shared/data/glue
    $(bash tools/setup-reference.sh) tools/check_hf_load.py --output-dir runs/goemotions

Exits non-zero when the largest absolute logit difference exceeds --tol (default 1e-4).
"""
import argparse, json, os, sys
import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
from run_glue_ref import TASKS, read  # noqa: E402  (same TSV reading as the reference runs)
import run_classification_ref as rc  # noqa: E402


def classify_rows(run, cfg):
    """The validation examples of a `finetune classify` run, in its order."""
    ra, files, cols = run["args"], run["args"]["files"], run["args"]["columns"]
    prob = {"single_label_classification": "single_label", "multi_label_classification": "multi_label", "regression": "regression"}[cfg["problem_type"]]
    names = None if prob == "regression" else [cfg["id2label"][str(i)] for i in range(len(cfg["id2label"]))]
    ns = argparse.Namespace(format=files.get("format"), encoding=files["encoding"], line_regex=files.get("line_regex"),
                            column_names=",".join(files["column_names"]) if files.get("column_names") else None,
                            text_column_names=",".join(cols["text"]), label_column_name=cols["label"],
                            label_delimiter=cols.get("label_delimiter"), label_list=",".join(names) if ra.get("label_list") else None)
    if ra.get("validation_file"):
        return rc.examples(rc.read_records(ra["validation_file"], ns), ns, prob, names)
    rows = rc.examples(rc.read_records(ra["train_file"], ns), ns, prob, names)
    _, va = rc.stratified_split([y for _, _, y in rows], ra["validation_split"], ra["train"]["seed"])
    return [rows[i] for i in va]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--output-dir", required=True, help="a finetune glue --output-dir")
    ap.add_argument("--data-dir", help="the GLUE root, for `finetune glue` runs")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.output_dir, "config.json")))
    run = json.load(open(os.path.join(a.output_dir, "run_config.json")))
    task = cfg["finetuning_task"]
    ours = np.array(json.load(open(os.path.join(a.output_dir, "eval_logits.json"))), dtype=np.float32)
    tok = AutoTokenizer.from_pretrained(a.output_dir)
    model = AutoModelForSequenceClassification.from_pretrained(a.output_dir).eval()
    if run.get("command") == "classify":
        rows = classify_rows(run, cfg)[: len(ours)]
    else:
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
