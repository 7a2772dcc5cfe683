#!/usr/bin/env python3
"""Prints the side-by-side table of bench/glue_quality.sh: the main dev metric of each task (x100)
for finetune and PyTorch/transformers, and their difference.  Usage: quality_table.py OUT task..."""
import json, os, sys

MAIN = {"cola": "eval_matthews_correlation", "mrpc": "eval_f1", "stsb": "eval_pearson", "rte": "eval_accuracy",
        "wnli": "eval_accuracy", "sst2": "eval_accuracy", "qnli": "eval_accuracy"}

out, tasks = sys.argv[1], sys.argv[2:]
print("| task | metric | finetune | PyTorch+transformers | diff |\n|---|---|---|---|---|")
for t in tasks:
    r = [json.load(open(os.path.join(out, f"{impl}-{t}", "eval_results.json")))[MAIN[t]] * 100 for impl in ("finetune", "pytorch")]
    print(f"| {t} | {MAIN[t][5:]} | {r[0]:.2f} | {r[1]:.2f} | {r[0] - r[1]:+.2f} |")
