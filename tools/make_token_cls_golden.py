#!/usr/bin/env python3
"""What transformers' `…ForTokenClassification` computes on the tiny checkpoints of
tools/make_family_golden.py: for each fixture, tests/fixtures/families/<name>/token_cls.json holds
the logits of the golden pairs, the loss against fixed labels (-100 on the first token and on
padding) and every parameter's gradient norm, with the fresh head transformers draws after
torch.manual_seed(42). Run after make_family_golden.py, with the reference environment:

    ~/.cache/finetune/torch-2.11.0/bin/python tools/make_token_cls_golden.py
"""
import json, os
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer
from make_family_golden import FAMILIES, MAX_LEN, OUT, PAIRS, grad_norms, r

NUM_LABELS = 5


def main():
    for name in FAMILIES:
        d = os.path.join(OUT, name)
        tok = AutoTokenizer.from_pretrained(d)
        enc = [tok(a, b, truncation="longest_first", max_length=MAX_LEN) for a, b in PAIRS]
        batch = tok.pad([{k: e[k] for k in tok.model_input_names} for e in enc], return_tensors="pt")
        mask = batch["attention_mask"]
        labels = torch.tensor([[(3 * i + j) % NUM_LABELS for j in range(mask.shape[1])] for i in range(mask.shape[0])])
        labels[mask == 0] = -100
        labels[:, 0] = -100
        torch.manual_seed(42)
        m = AutoModelForTokenClassification.from_pretrained(d, num_labels=NUM_LABELS, attn_implementation="eager").eval()
        out = m(**batch, labels=labels)
        out.loss.backward()
        golden = {"num_labels": NUM_LABELS, "labels": labels.tolist(), "loss": float(out.loss), "grad_norms": grad_norms(m),
                  "logits": [r(out.logits[i][mask[i].bool()]) for i in range(len(PAIRS))]}
        with open(os.path.join(d, "token_cls.json"), "w") as f:
            json.dump(golden, f)
        print(f"{d}: token classification loss {golden['loss']:.6f}")


if __name__ == "__main__":
    main()
