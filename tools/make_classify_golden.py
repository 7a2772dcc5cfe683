#!/usr/bin/env python3
"""Golden fixture for `finetune classify`'s metrics and losses, computed by the references:
scikit-learn (accuracy, precision / recall / F1 per class and macro / weighted / micro averaged,
confusion matrix, MSE), scipy (Pearson, Spearman) and PyTorch (weighted cross-entropy, BCE with
pos_weight). Writes tests/fixtures/classify_golden.json. Run with the reference environment:

    PY=$(bash tools/setup-reference.sh); $PY tools/make_classify_golden.py
"""
import json, os
import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, mean_squared_error, precision_recall_fscore_support,
                             precision_score, recall_score)

rng = np.random.default_rng(7)


def single(n, k, skew):
    gold = rng.integers(0, k, n)
    # Mostly right, with some classes never predicted and some never true.
    pred = np.where(rng.random(n) < skew, gold, rng.integers(0, max(1, k - 2), n))
    r = {"kind": "single", "k": int(k), "pred": pred.tolist(), "gold": gold.tolist(), "accuracy": accuracy_score(gold, pred),
         "confusion": confusion_matrix(gold, pred, labels=list(range(k))).tolist()}
    p, rc, f, s = precision_recall_fscore_support(gold, pred, labels=list(range(k)), zero_division=0)
    r["per_class"] = [[float(a), float(b), float(c), int(d)] for a, b, c, d in zip(p, rc, f, s)]
    for avg in ("macro", "weighted"):
        r[f"precision_{avg}"] = precision_score(gold, pred, average=avg, zero_division=0)
        r[f"recall_{avg}"] = recall_score(gold, pred, average=avg, zero_division=0)
        r[f"f1_{avg}"] = f1_score(gold, pred, average=avg, zero_division=0)
    return r


def multi(n, k, threshold):
    gold = (rng.random((n, k)) < 0.15).astype(int)
    gold[:, k - 1] = 0  # a label that never occurs
    # Four decimals keep the fixture small; a value equal to the threshold stays a "no" on both sides.
    probs = np.round(np.clip(gold * 0.5 + rng.random((n, k)) * 0.6, 0, 1), 4)
    pred = (probs > threshold).astype(int)
    r = {"kind": "multi", "k": int(k), "threshold": threshold, "prob": probs.ravel().tolist(), "gold": gold.ravel().tolist(),
         "subset_accuracy": float((pred == gold).all(axis=1).mean())}
    p, rc, f, s = precision_recall_fscore_support(gold, pred, zero_division=0)
    r["per_class"] = [[float(a), float(b), float(c), int(d)] for a, b, c, d in zip(p, rc, f, s)]
    for avg in ("micro", "macro", "weighted"):
        r[f"precision_{avg}"] = precision_score(gold, pred, average=avg, zero_division=0)
        r[f"recall_{avg}"] = recall_score(gold, pred, average=avg, zero_division=0)
        r[f"f1_{avg}"] = f1_score(gold, pred, average=avg, zero_division=0)
    return r


def regression(n):
    gold = rng.random(n) * 5
    pred = gold + rng.normal(0, 1, n)
    return {"kind": "regression", "pred": pred.tolist(), "gold": gold.tolist(), "mse": mean_squared_error(gold, pred),
            "pearson": float(pearsonr(pred, gold)[0]), "spearmanr": float(spearmanr(pred, gold)[0])}


def losses():
    torch.manual_seed(0)
    logits = torch.randn(6, 4)
    classes = torch.tensor([0, 3, 1, 1, 2, 3])
    weight = torch.tensor([0.5, 2.0, 1.0, 1.5])
    multi_gold = (torch.rand(6, 4) < 0.4).float()
    pos_weight = torch.tensor([3.0, 1.0, 0.5, 2.0])
    return {
        "logits": logits.ravel().tolist(), "classes": classes.tolist(), "weight": weight.tolist(),
        "multi_gold": multi_gold.ravel().tolist(), "pos_weight": pos_weight.tolist(),
        "ce": torch.nn.functional.cross_entropy(logits, classes).item(),
        "ce_weighted": torch.nn.functional.cross_entropy(logits, classes, weight=weight).item(),
        "bce": torch.nn.functional.binary_cross_entropy_with_logits(logits, multi_gold).item(),
        "bce_pos_weight": torch.nn.functional.binary_cross_entropy_with_logits(logits, multi_gold, pos_weight=pos_weight).item(),
    }


def main():
    cases = [single(50, 4, 0.6), single(300, 6, 0.7), single(40, 9, 0.3), single(7, 3, 0.5),
             multi(120, 28, 0.3), multi(40, 5, 0.5), multi(100, 12, 0.3), regression(60), regression(9)]
    out = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "classify_golden.json")
    json.dump({"cases": cases, "losses": losses()}, open(out, "w"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
