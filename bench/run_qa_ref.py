#!/usr/bin/env python3
"""Reference extractive-QA fine-tune with PyTorch + transformers' Trainer: run_qa.py's recipe and
feature construction (question + context windows, doc stride, offsets, CLS for answers outside the
window), utils_qa.py's post-processing and the official SQuAD v1.1 evaluation, on the same JSON
files `finetune squad` reads. Writes <output_dir>/eval_results.json and predictions.json.

    PY=$(bash tools/setup-reference.sh)
    finetune squad-split --input ../shared/data/squad/train-v1.1.json --output-dir /tmp/squad
    $PY bench/run_qa_ref.py --model <model dir> --train-file /tmp/squad/train.json \
        --dev-file /tmp/squad/dev.json --max-train-samples 4000 --max-eval-samples 1000 \
        --epochs 1 --output-dir /tmp/ref-squad

Defaults follow the run_qa.py README (lr 3e-5, batch 12, 2 epochs, max_seq_length 384, doc_stride
128); questions are cut to max_query_length 64 tokens, as finetune does.
"""
import argparse, collections, json, os, re, string, sys
for _v, _x in (("MKL_CBWR", "AUTO"), ("MKL_DYNAMIC", "FALSE")):  # the math mode finetune runs in (run_info::pin_reproducible_math)
    os.environ.setdefault(_v, _x)
import numpy as np
import torch
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments, set_seed


def read(path, limit):
    out = []
    for art in json.load(open(path, encoding="utf-8"))["data"]:
        for p in art["paragraphs"]:
            for qa in p["qas"]:
                out.append({"id": qa["id"], "question": qa["question"], "context": p["context"], "answers": qa["answers"]})
    return out[:limit] if limit else out


def cut_question(tok, q, n):
    q = q.lstrip()
    enc = tok(q, add_special_tokens=False, return_offsets_mapping=True)
    return q[: enc["offset_mapping"][n - 1][1]] if len(enc["input_ids"]) > n else q


def features(tok, examples, a, training):
    qs = [cut_question(tok, e["question"], a.max_query_length) for e in examples]
    enc = tok(qs, [e["context"] for e in examples], truncation="only_second", max_length=a.max_seq_length,
              stride=a.doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True)
    feats = []
    for i in range(len(enc["input_ids"])):
        ex = examples[enc["overflow_to_sample_mapping"][i]]
        seq = enc.sequence_ids(i)
        offsets = [o if seq[k] == 1 else None for k, o in enumerate(enc["offset_mapping"][i])]
        # RoBERTa-family tokenizers return no token_type_ids.
        f = {k: enc[k][i] for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc}
        if training:
            ans = ex["answers"][0]
            start, end = ans["answer_start"], ans["answer_start"] + len(ans["text"])
            ctx = [k for k, o in enumerate(offsets) if o is not None]
            s = e = 0
            if offsets[ctx[0]][0] <= start and offsets[ctx[-1]][1] >= end:
                s = next(k for k in ctx if offsets[k][1] > start)
                e = next(k for k in reversed(ctx) if offsets[k][0] < end)
            f["start_positions"], f["end_positions"] = s, e
        else:
            f["example"], f["offsets"] = enc["overflow_to_sample_mapping"][i], offsets
        feats.append(f)
    return feats


def postprocess(examples, feats, start_logits, end_logits, n_best=20, max_len=30):
    by_ex = collections.defaultdict(list)
    for i, f in enumerate(feats):
        by_ex[f["example"]].append(i)
    preds = {}
    for ei, ex in enumerate(examples):
        cands = []
        for i in by_ex[ei]:
            sl, el, off = start_logits[i], end_logits[i], feats[i]["offsets"]
            for s in np.argsort(sl)[-1: -n_best - 1: -1]:
                for e in np.argsort(el)[-1: -n_best - 1: -1]:
                    if s >= len(off) or e >= len(off) or off[s] is None or off[e] is None or e < s or e - s + 1 > max_len:
                        continue
                    cands.append((sl[s] + el[e], ex["context"][off[s][0]: off[e][1]]))
        cands.sort(key=lambda c: c[0], reverse=True)
        preds[ex["id"]] = cands[0][1] if cands else "empty"
    return preds


def normalize(s):
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", s).split())


def squad_v1(examples, preds):
    em = f1 = 0.0
    for ex in examples:
        p = normalize(preds.get(ex["id"], ""))
        golds = [normalize(a["text"]) for a in ex["answers"]]
        em += max(float(p == g) for g in golds)
        best = 0.0
        for g in golds:
            common = collections.Counter(p.split()) & collections.Counter(g.split())
            same = sum(common.values())
            if same:
                pr, rc = same / len(p.split()), same / len(g.split())
                best = max(best, 2 * pr * rc / (pr + rc))
        f1 += best
    return {"exact_match": 100.0 * em / len(examples), "f1": 100.0 * f1 / len(examples)}


class DS(torch.utils.data.Dataset):
    def __init__(self, items, keys):
        self.items = [{k: f[k] for k in keys if k in f} for f in items]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def main():
    ap = argparse.ArgumentParser()
    for flag, kw in [("--model", dict(required=True)), ("--train-file", dict(required=True)), ("--dev-file", dict(required=True)),
                     ("--output-dir", dict(required=True)), ("--learning-rate", dict(type=float, default=3e-5)),
                     ("--batch-size", dict(type=int, default=12)), ("--epochs", dict(type=float, default=2.0)),
                     ("--max-seq-length", dict(type=int, default=384)), ("--doc-stride", dict(type=int, default=128)),
                     ("--max-query-length", dict(type=int, default=64)), ("--max-train-samples", dict(type=int)),
                     ("--max-eval-samples", dict(type=int)), ("--seed", dict(type=int, default=42)),
                     ("--max-steps", dict(type=int, default=-1)), ("--logging-steps", dict(type=int, default=50))]:
        ap.add_argument(flag, **kw)
    a = ap.parse_args()
    set_seed(a.seed)
    tok = AutoTokenizer.from_pretrained(a.model)
    train_ex, dev_ex = read(a.train_file, a.max_train_samples), read(a.dev_file, a.max_eval_samples)
    train = features(tok, train_ex, a, True)
    dev = features(tok, dev_ex, a, False)
    model = AutoModelForQuestionAnswering.from_pretrained(a.model)
    args = TrainingArguments(output_dir=a.output_dir, learning_rate=a.learning_rate, per_device_train_batch_size=a.batch_size,
                             per_device_eval_batch_size=64, num_train_epochs=a.epochs, seed=a.seed, eval_strategy="no",
                             save_strategy="no", report_to=[], logging_steps=a.logging_steps, max_steps=a.max_steps, use_cpu=not torch.cuda.is_available())
    keys = ["input_ids", "token_type_ids", "attention_mask", "start_positions", "end_positions"]
    trainer = Trainer(model=model, args=args, train_dataset=DS(train, keys), data_collator=DataCollatorWithPadding(tok))
    tr = trainer.train()
    out = trainer.predict(DS(dev, keys[:3]))
    start_logits, end_logits = out.predictions
    preds = postprocess(dev_ex, dev, start_logits, end_logits)
    res = {f"eval_{k}": v for k, v in squad_v1(dev_ex, preds).items()}
    res["eval_samples"] = len(dev)
    os.makedirs(a.output_dir, exist_ok=True)
    json.dump(preds, open(os.path.join(a.output_dir, "predictions.json"), "w"), indent=1)
    json.dump(res, open(os.path.join(a.output_dir, "eval_results.json"), "w"), indent=4, sort_keys=True)
    json.dump(tr.metrics, open(os.path.join(a.output_dir, "train_results.json"), "w"), indent=4, sort_keys=True)
    with open(os.path.join(a.output_dir, "train_log.jsonl"), "w") as f:
        f.writelines(json.dumps(h) + "\n" for h in trainer.state.log_history if "loss" in h)
    print(json.dumps(res, sort_keys=True))


if __name__ == "__main__":
    sys.exit(main())
