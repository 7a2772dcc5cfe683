#!/usr/bin/env python3
"""Checks a token-classification model saved by `finetune ner` in transformers: loads it with
AutoModelForTokenClassification and compares, on the first N sentences of a CoNLL file (words
joined by spaces), its logits with the ones `finetune predict` prints, and transformers'
token-classification pipeline (aggregation_strategy="simple") entities with finetune's. Prints the
largest logit difference and the number of texts whose entity spans (type, start, end, word)
differ; exits 1 if any check fails.

    $(bash tools/setup-reference.sh) tools/check_ner_hf.py --model /tmp/ner-ours \\
        --conll ../shared/data/conll2003/dev.txt --finetune target/release/finetune
"""
import argparse, json, subprocess, sys, tempfile
import numpy as np
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline


def sentences(path, n):
    out, cur = [], []
    for line in open(path, encoding="utf-8"):
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-":
            if cur:
                out.append(" ".join(cur))
            cur = []
            if len(out) == n:
                break
            continue
        cur.append(cols[0])
    return out[:n]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--conll", required=True)
    ap.add_argument("--finetune", default="target/release/finetune")
    ap.add_argument("-n", type=int, default=20)
    a = ap.parse_args()
    texts = sentences(a.conll, a.n)
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.writelines(json.dumps({"text": t}) + "\n" for t in texts)
    ours = [json.loads(l) for l in subprocess.run([a.finetune, "predict", "--model", a.model, "--input", f.name],
                                                  check=True, capture_output=True, text=True).stdout.splitlines()]
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForTokenClassification.from_pretrained(a.model).eval()
    ner = pipeline("token-classification", model=model, tokenizer=tok, aggregation_strategy="simple", device=-1)
    worst, span_mismatch, score_diff = 0.0, 0, 0.0
    for text, o in zip(texts, ours):
        with torch.no_grad():
            logits = model(**tok(text, return_tensors="pt")).logits[0].numpy()
        worst = max(worst, float(np.abs(logits - np.array(o["logits"], dtype=np.float32)).max()))
        theirs = ner(text)
        key = lambda es: [(e["entity_group"], e["start"], e["end"], e["word"]) for e in es]
        if key(theirs) != key(o["entities"]):
            span_mismatch += 1
            print(f"entities differ for {text!r}:\n  transformers {key(theirs)}\n  finetune     {key(o['entities'])}", file=sys.stderr)
        else:
            score_diff = max([score_diff] + [abs(float(t["score"]) - e["score"]) for t, e in zip(theirs, o["entities"])])
    n_entities = sum(len(o["entities"]) for o in ours)
    print(json.dumps({"texts": len(texts), "entities": n_entities, "max_abs_logit_diff": worst,
                      "texts_with_different_entity_spans": span_mismatch, "max_entity_score_diff": score_diff}))
    return 0 if worst <= 1e-4 and span_mismatch == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
