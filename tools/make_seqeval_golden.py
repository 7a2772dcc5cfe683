#!/usr/bin/env python3
"""seqeval's own answers for tests/seqeval.rs: tests/fixtures/seqeval/golden.json holds, per case,
gold and predicted tag sequences (a list of sentences each) and what seqeval 1.2.2 computes in its
default (conlleval-compatible) mode — micro precision / recall / F1, token accuracy and
classification_report's per-type precision / recall / F1 / support, as transformers' run_ner reports
them through `evaluate`'s seqeval. Cases: hand-made ill-formed ones (I- after O, I- of another type,
B- of IOB1, E-/S- tags, stray prefixes, empty sentences, nothing predicted) and 240 random ones over
IOB1- and IOB2-shaped and arbitrary tags. Run with the reference environment:

    ~/.cache/finetune/torch-2.11.0/bin/python tools/make_seqeval_golden.py
"""
import json, os, random, warnings
import seqeval
from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "seqeval", "golden.json")
HAND = [
    ([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "B-LOC"]]),
    ([["O", "I-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O", "O"]]),                 # I- after O starts an entity
    ([["I-ORG", "I-LOC", "I-LOC"]], [["I-ORG", "I-ORG", "I-LOC"]]),                   # I- of another type ends/starts
    ([["I-MISC", "B-MISC", "I-MISC", "O"]], [["I-MISC", "I-MISC", "I-MISC", "O"]]),   # IOB1's B- between same-type entities
    ([["O", "B-MISC", "O"]], [["O", "I-MISC", "O"]]),                                 # IOB1 B- after O (CoNLL's quirk)
    ([["B-PER", "E-PER", "S-LOC", "O"]], [["B-PER", "I-PER", "S-LOC", "S-LOC"]]),     # IOBES tags
    ([["E-PER", "I-PER", "S-ORG", "I-ORG"]], [["O", "E-PER", "S-ORG", "E-ORG"]]),
    ([["B-PER", "I-PER"], ["I-PER", "O"]], [["B-PER", "I-PER"], ["I-PER", "O"]]),    # sentences never join
    ([["O", "O"], []], [["O", "O"], []]),                                             # nothing to find, an empty sentence
    ([["B-PER", "O"]], [["O", "O"]]),                                                 # nothing predicted
    ([["O", "O"]], [["B-LOC", "O"]]),                                                 # nothing to find
    ([["B-A-B", "I-A-B", "O"]], [["B-A-B", "I-A", "O"]]),                             # types with dashes
    ([["B", "I", "O", "B"]], [["B", "I", "I", "O"]]),                                 # bare prefixes: type "_"
    ([["X-PER", "PER", "O"]], [["B-PER", "I-PER", "O"]]),                             # not NE tags
    ([[".", "B-PER", "."]], [[".", "I-PER", "I-PER"]]),                               # conlleval's "." tag
]


def scores(y_true, y_pred):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = classification_report(y_true, y_pred, output_dict=True, zero_division="warn")
        report.pop("macro avg"), report.pop("weighted avg")
        micro = report.pop("micro avg")
        return {
            "precision": precision_score(y_true, y_pred), "recall": recall_score(y_true, y_pred), "f1": f1_score(y_true, y_pred),
            "report_micro": [micro["precision"], micro["recall"], micro["f1-score"], int(micro["support"])],
            "accuracy": accuracy_score(y_true, y_pred),
            "per_type": {t: [s["precision"], s["recall"], s["f1-score"], int(s["support"])] for t, s in report.items()},
        }


def random_case(rng, scheme):
    types = ["PER", "ORG", "LOC", "MISC"]
    if scheme == "iob1":
        tags = ["O"] * 6 + [f"I-{t}" for t in types] * 2 + [f"B-{t}" for t in types]
    elif scheme == "iob2":
        tags = ["O"] * 6 + [f"B-{t}" for t in types] + [f"I-{t}" for t in types] * 2
    else:
        tags = ["O", "B-PER", "I-PER", "E-PER", "S-LOC", "I-LOC", "B-ORG", "S-ORG", "I-MISC", "E-MISC", "B", "I", "."]
    sentences = [rng.randint(0, 12) for _ in range(rng.randint(1, 6))]
    y_true = [[rng.choice(tags) for _ in range(n)] for n in sentences]
    # Predictions: mostly the gold tag, sometimes another.
    y_pred = [[t if rng.random() < 0.7 else rng.choice(tags) for t in s] for s in y_true]
    return y_true, y_pred


def main():
    rng = random.Random(2003)
    cases = [{"kind": "hand", "true": t, "pred": p} for t, p in HAND]
    for scheme in ("iob1", "iob2", "mixed"):
        for _ in range(80):
            t, p = random_case(rng, scheme)
            cases.append({"kind": scheme, "true": t, "pred": p})
    cases = [c for c in cases if sum(map(len, c["true"])) > 0]
    for c in cases:
        c.update(scores(c["true"], c["pred"]))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"seqeval": seqeval.__version__ if hasattr(seqeval, "__version__") else "1.2.2", "cases": cases}, f)
    print(f"{OUT}: {len(cases)} cases")


if __name__ == "__main__":
    main()
