#!/usr/bin/env python3
"""Reference token-classification fine-tune with PyTorch + transformers' Trainer, run_ner.py's recipe
(lr 5e-5, batch 8, 3 epochs, linear schedule, no warm-up, seed 42; label on each word's first
sub-token; truncation at the tokenizer's model_max_length; dynamic padding) on the same CoNLL files
finetune reads, their IOB1 tags converted to IOB2 as finetune's reader does; scored with seqeval as
run_ner's `evaluate` seqeval metric does (entity-level micro P/R/F1 over the labelled positions,
per type, token accuracy). Writes <output_dir>/eval_results.json with run_ner's key names, plus
train examples/s and peak RSS; saves the model with --save-model.

    ~/.cache/finetune/torch-2.11.0/bin/python bench/run_ner_ref.py --model <model dir> \\
        --train-file ../shared/data/conll2003/train.txt --validation-file ../shared/data/conll2003/dev.txt \\
        --output-dir /tmp/ref-ner
"""
import argparse, json, os, resource, sys
for _v, _x in (("MKL_CBWR", "AUTO"), ("MKL_DYNAMIC", "FALSE")):  # the math mode finetune runs in (run_info::pin_reproducible_math)
    os.environ.setdefault(_v, _x)
import numpy as np
import torch
from seqeval.metrics import accuracy_score, classification_report
from transformers import AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification, set_seed
from run_glue_ref import train_and_evaluate


def read_conll(path):
    """Sentences (tokens, tags) of a CoNLL file: token first, tag last, -DOCSTART- skipped."""
    out, tokens, tags = [], [], []
    for line in open(path, encoding="utf-8"):
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-":
            if tokens:
                out.append((tokens, tags))
            tokens, tags = [], []
            continue
        tokens.append(cols[0])
        tags.append(cols[-1])
    if tokens:
        out.append((tokens, tags))
    return out


def iob1_to_iob2(tags):
    out = []
    for i, t in enumerate(tags):
        p, _, kind = t.partition("-")
        begins = i == 0 or tags[i - 1] == "O" or tags[i - 1].partition("-")[2] != kind
        out.append(f"B-{kind}" if p == "I" and begins else t)
    return out


class DS(torch.utils.data.Dataset):
    """run_ner.py's tokenize_and_align_labels."""

    def __init__(self, sentences, tok, label_to_id, max_len):
        enc = tok([s for s, _ in sentences], truncation=True, max_length=max_len, is_split_into_words=True)
        self.items = []
        for i, (_, tags) in enumerate(sentences):
            prev, labels = None, []
            for w in enc.word_ids(batch_index=i):
                labels.append(-100 if w is None or w == prev else label_to_id[tags[w]])
                prev = w
            self.items.append({k: enc[k][i] for k in enc.keys()} | {"labels": labels})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--train-file", required=True)
    ap.add_argument("--validation-file", required=True)
    ap.add_argument("--output-dir", required=True)
    ap.add_argument("--learning-rate", type=float, default=5e-5)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--max-seq-length", type=int, default=None)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--max-steps", type=int, default=-1)
    ap.add_argument("--max-train-samples", type=int, default=None)
    ap.add_argument("--logging-steps", type=int, default=10)
    ap.add_argument("--save-model", action="store_true")
    a = ap.parse_args()
    train_s = [(t, iob1_to_iob2(g)) for t, g in read_conll(a.train_file)][: a.max_train_samples]
    dev_s = [(t, iob1_to_iob2(g)) for t, g in read_conll(a.validation_file)]
    labels = sorted({t for _, g in train_s for t in g})
    label_to_id = {l: i for i, l in enumerate(labels)}
    set_seed(a.seed)
    tok = AutoTokenizer.from_pretrained(a.model)
    max_len = a.max_seq_length or tok.model_max_length
    train, dev = DS(train_s, tok, label_to_id, max_len), DS(dev_s, tok, label_to_id, max_len)
    model = AutoModelForTokenClassification.from_pretrained(a.model, num_labels=len(labels), label2id=label_to_id,
                                                            id2label=dict(enumerate(labels)), finetuning_task="ner")

    def compute(p):
        logits, gold = p
        pred = np.argmax(logits, axis=2)
        y_pred = [[labels[p] for p, g in zip(ps, gs) if g != -100] for ps, gs in zip(pred, gold)]
        y_true = [[labels[g] for g in gs if g != -100] for gs in gold]
        report = classification_report(y_true, y_pred, output_dict=True)
        report.pop("macro avg"), report.pop("weighted avg")
        micro = report.pop("micro avg")
        out = {"precision": micro["precision"], "recall": micro["recall"], "f1": micro["f1-score"], "accuracy": accuracy_score(y_true, y_pred)}
        for t, s in report.items():
            out.update({f"{t}_precision": s["precision"], f"{t}_recall": s["recall"], f"{t}_f1": s["f1-score"], f"{t}_number": int(s["support"])})
        return out

    trainer = train_and_evaluate(a, model, tok, train, dev, compute, DataCollatorForTokenClassification(tok))
    if not trainer.is_world_process_zero():  # under torchrun, rank 0 writes
        return
    res = json.load(open(os.path.join(a.output_dir, "eval_results.json")))
    res["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    json.dump(res, open(os.path.join(a.output_dir, "eval_results.json"), "w"), indent=4, sort_keys=True)
    if a.save_model:
        trainer.save_model(os.path.join(a.output_dir, "model"))


if __name__ == "__main__":
    sys.exit(main())
