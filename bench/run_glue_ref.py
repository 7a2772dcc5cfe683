#!/usr/bin/env python3
"""Reference fine-tune with PyTorch + transformers' Trainer, run_glue.py's recipe, on the same GLUE
TSV files finetune reads. Writes <output_dir>/eval_results.json with run_glue.py's key names.

    ~/.cache/finetune/torch-2.11.0/bin/python bench/run_glue_ref.py --task rte \
        --model <model dir> --data-dir ../shared/data/glue --output-dir /tmp/ref-rte

Defaults follow the run_glue.py README (lr 2e-5, batch 32, max_seq_length 128, 3 epochs, 5 for MRPC
and WNLI); dynamic padding per batch, as finetune does, or with --pad-to-max-length every batch
padded to max_seq_length (run_glue.py's own default).
"""
import argparse, csv, json, os, sys
for _v, _x in (("MKL_CBWR", "AUTO"), ("MKL_DYNAMIC", "FALSE")):  # the math mode finetune runs in (run_info::pin_reproducible_math)
    os.environ.setdefault(_v, _x)
import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                          Trainer, TrainingArguments, set_seed)

# (folder, text_a, text_b, label column, labels or None for regression, header?)
TASKS = {
    "cola": ("CoLA", 3, None, 1, ["0", "1"], False),
    "sst2": ("SST-2", "sentence", None, "label", ["0", "1"], True),
    "mrpc": ("MRPC", "#1 String", "#2 String", "Quality", ["0", "1"], True),
    "stsb": ("STS-B", "sentence1", "sentence2", "score", None, True),
    "qnli": ("QNLI", "question", "sentence", "label", ["entailment", "not_entailment"], True),
    "rte": ("RTE", "sentence1", "sentence2", "label", ["entailment", "not_entailment"], True),
    "wnli": ("WNLI", "sentence1", "sentence2", "label", ["0", "1"], True),
}


def read(path, spec):
    _, a, b, lab, labels, header = spec
    with open(path, encoding="utf-8-sig") as f:
        rows = [l.rstrip("\n").rstrip("\r").split("\t") for l in f if l.strip("\n")]
    if header:
        h, rows = rows[0], rows[1:]
        a, lab = h.index(a), h.index(lab)
        b = h.index(b) if b else None
    out = []
    for r in rows:
        y = labels.index(r[lab]) if labels else float(r[lab])
        out.append((r[a], r[b] if b is not None else None, y))
    return out


class DS(torch.utils.data.Dataset):
    def __init__(self, rows, tok, max_len):
        self.items = []
        for a, b, y in rows:
            e = tok(a, b, truncation=True, max_length=max_len) if b is not None else tok(a, truncation=True, max_length=max_len)
            e["labels"] = y
            self.items.append(e)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def metrics(task, preds, labels):
    if task == "stsb":
        r = {"pearson": float(pearsonr(preds, labels)[0]), "spearmanr": float(spearmanr(preds, labels)[0])}
    elif task == "cola":
        r = {"matthews_correlation": float(matthews_corrcoef(labels, preds))}
    elif task == "mrpc":
        r = {"accuracy": float((preds == labels).mean()), "f1": float(f1_score(labels, preds))}
    else:
        r = {"accuracy": float((preds == labels).mean())}
    if len(r) > 1:
        r["combined_score"] = float(np.mean(list(r.values())))
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", required=True, choices=sorted(TASKS))
    ap.add_argument("--model", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--output-dir", required=True)
    ap.add_argument("--learning-rate", type=float, default=2e-5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=float, default=None)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--max-steps", type=int, default=-1)
    ap.add_argument("--logging-steps", type=int, default=50)
    ap.add_argument("--pad-to-max-length", action="store_true", help="run_glue.py's default: pad every batch to max_seq_length")
    a = ap.parse_args()
    spec = TASKS[a.task]
    a.epochs = a.epochs or (5.0 if a.task in ("mrpc", "wnli") else 3.0)
    set_seed(a.seed)
    tok = AutoTokenizer.from_pretrained(a.model)
    d = os.path.join(a.data_dir, spec[0])
    train = DS(read(os.path.join(d, "train.tsv"), spec), tok, a.max_seq_length)
    dev = DS(read(os.path.join(d, "dev.tsv"), spec), tok, a.max_seq_length)
    num_labels = len(spec[4]) if spec[4] else 1
    model = AutoModelForSequenceClassification.from_pretrained(a.model, num_labels=num_labels)

    def compute(p):
        logits, labels = p
        preds = np.squeeze(logits) if num_labels == 1 else np.argmax(logits, axis=1)
        return metrics(a.task, preds, labels)

    collator = DataCollatorWithPadding(tok, padding="max_length", max_length=a.max_seq_length) if a.pad_to_max_length else None
    train_and_evaluate(a, model, tok, train, dev, compute, collator)


class StepLossTrainer(Trainer):
    """Records every step's exact loss (the Trainer's own log rounds to 4 decimals), so runs can be
    compared step by step."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.step_losses = []

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        mean = loss.detach().clone()
        if torch.distributed.is_initialized():  # under torchrun: the ranks' mean, as logged
            torch.distributed.all_reduce(mean)
            mean /= torch.distributed.get_world_size()
        self.step_losses.append(float(mean))
        return loss


def train_and_evaluate(a, model, tok, train, dev, compute, collator=None):
    """Trainer with the recipe in `a` (no evaluation during training), then one evaluation; writes
    eval_results.json, train_results.json and train_log.jsonl into a.output_dir. Shared by the
    reference scripts of the text-classification and NER jobs (`collator`: default dynamic padding).
    step_losses.json holds each step's loss (under torchrun, the ranks' mean, as Trainer logs it;
    rank 0 writes). Returns the trainer."""
    args = TrainingArguments(
        output_dir=a.output_dir, learning_rate=a.learning_rate, per_device_train_batch_size=a.batch_size,
        per_device_eval_batch_size=64, num_train_epochs=a.epochs, seed=a.seed, eval_strategy="no",
        save_strategy="no", report_to=[], logging_steps=a.logging_steps, max_steps=a.max_steps, use_cpu=not torch.cuda.is_available(),
    )
    trainer = StepLossTrainer(model=model, args=args, train_dataset=train, eval_dataset=dev,
                              data_collator=collator or DataCollatorWithPadding(tok), compute_metrics=compute)
    tr = trainer.train()
    res = trainer.evaluate()
    res["eval_samples"] = len(dev)
    if not trainer.is_world_process_zero():
        return trainer
    os.makedirs(a.output_dir, exist_ok=True)
    json.dump(res, open(os.path.join(a.output_dir, "eval_results.json"), "w"), indent=4, sort_keys=True)
    json.dump(tr.metrics, open(os.path.join(a.output_dir, "train_results.json"), "w"), indent=4, sort_keys=True)
    with open(os.path.join(a.output_dir, "train_log.jsonl"), "w") as f:
        f.writelines(json.dumps(h) + "\n" for h in trainer.state.log_history if "loss" in h)
    json.dump(trainer.step_losses, open(os.path.join(a.output_dir, "step_losses.json"), "w"))
    print(json.dumps(res, sort_keys=True))
    return trainer

if __name__ == "__main__":
    sys.exit(main())
