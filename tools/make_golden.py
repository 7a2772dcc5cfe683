#!/usr/bin/env python3
"""Golden fixtures for finetune's tests, computed by the references (transformers, sklearn, scipy).

Writes tests/fixtures/bert_golden.json (tokenisation + forward pass of a BERT checkpoint with a
fixed classification head) and tests/fixtures/metrics_golden.json (GLUE metrics on fixed inputs).
Run with the reference environment (tools/setup-reference.sh):

    ~/.cache/finetune/torch-2.11.0/bin/python tools/make_golden.py --model <model dir>
"""
import argparse, json, os
import numpy as np
import torch
from transformers import AutoTokenizer, BertForSequenceClassification
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

PAIRS = [
    ("The cat sat on the mat.", "A cat is sitting on a mat."),
    ("Héllo WORLD, naïve café!", None),
    ("Dogs bark loudly at night because they are guarding the house from strangers walking by.",
     "Strangers walk by."),
]


def r6(t):
    """Six decimals keep the fixture small and are 100x finer than the 1e-4 tolerance."""
    return np.round(t.detach().numpy().astype(np.float64), 6).tolist()


def bert_golden(model_dir, out):
    tok = AutoTokenizer.from_pretrained(model_dir)
    # tokenizer.json may carry truncation/padding; the HF call below sets them explicitly.
    max_len = 16
    enc = [tok(a, b, truncation="longest_first", max_length=max_len) if b else
           tok(a, truncation=True, max_length=max_len) for a, b in PAIRS]
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(model_dir, num_labels=3, attn_implementation="eager").eval()
    with torch.no_grad():
        model.classifier.weight.normal_(0, 0.5)
        model.classifier.bias.uniform_(-0.5, 0.5)
    batch = tok.pad(enc, return_tensors="pt")
    with torch.no_grad():
        o = model(**batch, output_hidden_states=True)
    mask = batch["attention_mask"].bool()
    # Only real (non-pad) positions are compared: pad rows are implementation-defined.
    hidden = [r6(o.hidden_states[-1][i][mask[i]]) for i in range(len(PAIRS))]
    json.dump({
        "max_seq_length": max_len,
        "texts": [[a, b] for a, b in PAIRS],
        "input_ids": [e["input_ids"] for e in enc],
        "token_type_ids": [e["token_type_ids"] for e in enc],
        "classifier_weight": model.classifier.weight.tolist(),
        "classifier_bias": model.classifier.bias.tolist(),
        "last_hidden_state": hidden,
        "pooled": r6(model.bert.pooler(o.hidden_states[-1])),
        "logits": r6(o.logits),
    }, open(out, "w"))


def metrics_golden(out):
    rng = np.random.default_rng(1234)
    cases = []
    for n in (7, 50, 400):
        p = rng.integers(0, 2, n); g = rng.integers(0, 2, n)
        x = rng.normal(size=n); y = x + rng.normal(size=n)
        # Ties matter for Spearman: round to a coarse grid as STS-B's 0-5 scores are.
        xt = np.round(x * 2) / 2; yt = np.round(y * 2) / 2
        cases.append({
            "pred": p.tolist(), "gold": g.tolist(), "x": xt.tolist(), "y": yt.tolist(),
            "accuracy": accuracy_score(g, p), "f1": f1_score(g, p),
            "matthews_correlation": matthews_corrcoef(g, p),
            "pearson": float(pearsonr(xt, yt)[0]), "spearmanr": float(spearmanr(xt, yt)[0]),
        })
    p3 = rng.integers(0, 3, 100); g3 = rng.integers(0, 3, 100)
    multiclass = {"pred": p3.tolist(), "gold": g3.tolist(), "matthews_correlation": matthews_corrcoef(g3, p3),
                  "accuracy": accuracy_score(g3, p3)}
    json.dump({"binary": cases, "multiclass": multiclass}, open(out, "w"), indent=1)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="BERT checkpoint directory (e.g. the cached all-MiniLM-L6-v2)")
    ap.add_argument("--out-dir", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    bert_golden(a.model, os.path.join(a.out_dir, "bert_golden.json"))
    metrics_golden(os.path.join(a.out_dir, "metrics_golden.json"))
