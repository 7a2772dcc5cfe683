#!/usr/bin/env python3
"""Reference for `finetune classify`: PyTorch + transformers' Trainer on the same files, split, recipe
and seed. Reads CSV / TSV (csv module quoting), JSON lines, or text lines with a regular expression
(named groups), infers the problem type and sorts the labels as finetune does (and as
run_classification.py does), draws the same seeded stratified validation split, fine-tunes
AutoModelForSequenceClassification, and scores with scikit-learn. Writes eval_results.json with the
same key names as finetune.

    PY=$(bash tools/setup-reference.sh)
    $PY bench/run_classification_ref.py --model <model dir> --train-file ../shared/data/trec/train.txt \
        --encoding latin-1 --line-regex '^(?P<label>[^:]+):\\S+ (?P<text>.+)$' --validation-split 0.1 \
        --output-dir /tmp/ref-trec
    $PY bench/run_classification_ref.py --model <model dir> --train-file ../shared/data/goemotions/train.tsv \
        --validation-file ../shared/data/goemotions/dev.tsv --column-names text,labels,id \
        --label-column-name labels --label-delimiter , --label-list ../shared/data/goemotions/emotions.txt \
        --threshold 0.3 --output-dir /tmp/ref-goemotions
"""
import argparse, csv, json, math, os, re, sys
for _v, _x in (("MKL_CBWR", "AUTO"), ("MKL_DYNAMIC", "FALSE")):  # the math mode finetune runs in (run_info::pin_reproducible_math)
    os.environ.setdefault(_v, _x)
import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, mean_squared_error, precision_score, recall_score
from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_glue_ref import DS, train_and_evaluate  # noqa: E402  (the same tokenised dataset, Trainer recipe and outputs)

csv.field_size_limit(sys.maxsize)


def read_records(path, a):
    enc = "latin-1" if a.encoding == "latin-1" else "utf-8-sig"
    fmt = a.format or ("lines" if a.line_regex else os.path.splitext(path)[1].lstrip(".").lower())
    with open(path, encoding=enc, newline="") as f:
        if fmt in ("csv", "tsv"):
            rows = list(csv.reader(f, delimiter="," if fmt == "csv" else "\t"))
            rows = [r for r in rows if r != [] and r != [""]]
            if a.column_names:
                names = a.column_names.split(",")
            else:
                names, rows = rows[0], rows[1:]
            return [dict(zip(names, r)) for r in rows]
        if fmt == "jsonl":
            return [json.loads(l) for l in f if l.strip()]
        if fmt == "json":
            return json.load(f)
        rx = re.compile(a.line_regex)
        return [rx.match(l.rstrip("\n")).groupdict() for l in f.read().split("\n") if l.strip()]


def raw_label(v, a):
    if isinstance(v, list):
        return [str(x) for x in v]
    if isinstance(v, str) and a.label_delimiter:
        return [x.strip() for x in v.split(a.label_delimiter) if x.strip()]
    return v


def is_float(v):
    if isinstance(v, float):
        return True
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return isinstance(v, str) and any(c in v for c in ".eE")


def problem_type(labels, a):
    if a.problem_type:
        return a.problem_type
    if a.label_delimiter or any(isinstance(l, list) for l in labels):
        return "multi_label"
    def num(v):
        try:
            float(v)
            return True
        except (TypeError, ValueError):
            return False
    if all(num(l) for l in labels) and any(is_float(l) for l in labels):
        return "regression"
    return "single_label"


def label_names(labels, a):
    if a.label_list:
        if os.path.isfile(a.label_list):
            return [l.strip() for l in open(a.label_list, encoding="utf-8").read().split("\n") if l.strip()]
        return [l.strip() for l in a.label_list.split(",") if l.strip()]
    flat = set()
    for l in labels:
        flat.update(l if isinstance(l, list) else [str(l)])
    flat = list(flat)
    try:
        return sorted(flat, key=int)
    except ValueError:
        return sorted(flat)


def to_id(name, names, given):
    name = str(name)
    if name in names:
        return names.index(name)
    if given and name.isdigit() and int(name) < len(names):
        return int(name)
    raise ValueError(f"unknown label {name}")


def examples(records, a, prob, names):
    cols = a.text_column_names.split(",")
    out = []
    for r in records:
        texts = [r[c] for c in cols]
        l = raw_label(r[a.label_column_name], a)
        if prob == "regression":
            y = float(l)
        elif prob == "single_label":
            y = to_id(str(l).strip(), names, bool(a.label_list))
        else:
            y = [0.0] * len(names)
            for n in (l if isinstance(l, list) else [l]):
                y[to_id(n, names, bool(a.label_list))] = 1.0
        out.append((texts[0], texts[1] if len(texts) > 1 else None, y))
    return out


def stratified_split(ys, fraction, seed):
    """finetune's split: one torch.randperm(n) seeded with `seed`; each stratum gives its first
    floor(fraction * size + 0.5) rows in that order to validation."""
    key = lambda y: str(y) if not isinstance(y, list) else str([i for i, v in enumerate(y) if v])
    size = {}
    for y in ys:
        size[key(y)] = size.get(key(y), 0) + 1
    quota = {k: math.floor(fraction * n + 0.5) for k, n in size.items()}
    taken, val = {}, set()
    for i in torch.randperm(len(ys), generator=torch.Generator().manual_seed(seed)).tolist():
        k = key(ys[i])
        if taken.get(k, 0) < quota[k]:
            taken[k] = taken.get(k, 0) + 1
            val.add(i)
    return [i for i in range(len(ys)) if i not in val], sorted(val)


def scores(prob, logits, labels, threshold):
    if prob == "regression":
        p = np.squeeze(logits, -1).astype(np.float64)
        g = np.asarray(labels, dtype=np.float64)
        return {"mse": float(mean_squared_error(g, p)), "pearson": float(pearsonr(p, g)[0]), "spearmanr": float(spearmanr(p, g)[0])}
    if prob == "single_label":
        p = np.argmax(logits, axis=1)
        r = {"accuracy": float(accuracy_score(labels, p))}
        for avg in ("macro", "weighted"):
            r[f"precision_{avg}"] = float(precision_score(labels, p, average=avg, zero_division=0))
            r[f"recall_{avg}"] = float(recall_score(labels, p, average=avg, zero_division=0))
            r[f"f1_{avg}"] = float(f1_score(labels, p, average=avg, zero_division=0))
        return r
    probs = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    p = (probs > threshold).astype(int)
    g = (np.asarray(labels) > 0.5).astype(int)
    r = {"subset_accuracy": float((p == g).all(axis=1).mean())}
    for avg in ("micro", "macro", "weighted"):
        r[f"precision_{avg}"] = float(precision_score(g, p, average=avg, zero_division=0))
        r[f"recall_{avg}"] = float(recall_score(g, p, average=avg, zero_division=0))
        r[f"f1_{avg}"] = float(f1_score(g, p, average=avg, zero_division=0))
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--train-file", required=True)
    ap.add_argument("--validation-file")
    ap.add_argument("--validation-split", type=float)
    ap.add_argument("--format")
    ap.add_argument("--encoding", default="utf-8")
    ap.add_argument("--column-names")
    ap.add_argument("--line-regex")
    ap.add_argument("--text-column-names", default="text")
    ap.add_argument("--label-column-name", default="label")
    ap.add_argument("--label-delimiter")
    ap.add_argument("--label-list")
    ap.add_argument("--problem-type", choices=["single_label", "multi_label", "regression"])
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--output-dir", required=True)
    ap.add_argument("--learning-rate", type=float, default=2e-5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--max-steps", type=int, default=-1)
    ap.add_argument("--logging-steps", type=int, default=10)
    a = ap.parse_args()

    train_records = read_records(a.train_file, a)
    train_labels = [raw_label(r[a.label_column_name], a) for r in train_records]
    prob = problem_type(train_labels, a)
    names = None if prob == "regression" else label_names(train_labels, a)
    rows = examples(train_records, a, prob, names)
    if a.validation_file:
        train_rows, dev_rows = rows, examples(read_records(a.validation_file, a), a, prob, names)
    else:
        tr, va = stratified_split([y for _, _, y in rows], a.validation_split, a.seed)
        train_rows, dev_rows = [rows[i] for i in tr], [rows[i] for i in va]
    print(f"{prob}: {len(train_rows)} train, {len(dev_rows)} validation, {len(names or [])} labels", file=sys.stderr)

    set_seed(a.seed)
    tok = AutoTokenizer.from_pretrained(a.model)
    train, dev = DS(train_rows, tok, a.max_seq_length), DS(dev_rows, tok, a.max_seq_length)
    k = 1 if prob == "regression" else len(names)
    hf_prob = {"single_label": "single_label_classification", "multi_label": "multi_label_classification", "regression": "regression"}[prob]
    model = AutoModelForSequenceClassification.from_pretrained(a.model, num_labels=k, problem_type=hf_prob)

    def compute(p):
        logits, labels = p
        return scores(prob, logits, labels, a.threshold)

    train_and_evaluate(a, model, tok, train, dev, compute)

if __name__ == "__main__":
    sys.exit(main())
