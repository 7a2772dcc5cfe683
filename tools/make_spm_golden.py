#!/usr/bin/env python3
"""A DeBERTa-v3-style SentencePiece tokenizer that ships only `spm.model`, and what transformers'
slow→fast conversion (DebertaV2Converter) makes of it: tests/fixtures/families/deberta-v3-spm/ holds
spm.model (a Unigram model trained here on GLUE sentences, with the nmt_nfkc normaliser's
precompiled charsmap and DeBERTa-v3's [PAD]/[CLS]/[SEP]/[UNK] pieces 0-3), tokenizer_config.json,
special_tokens_map.json and golden.json: per tokenizer configuration (as shipped; lower-cased and
split on punctuation), a digest of the ids and offsets of the 1,000 GLUE and SQuAD inputs of
tools/make_family_golden.py, plus the ids of a few hand-picked texts.

    ~/.cache/finetune/torch-2.11.0/bin/python tools/make_spm_golden.py --glue-dir ../shared/data/glue \
        --squad-file ../shared/data/squad/train-v1.1.json
"""
import argparse, io, json, os, shutil, tempfile
import sentencepiece as spm
from transformers import DebertaV2TokenizerFast
from make_family_golden import OUT, PAIRS, parity, parity_items, sentences

CONFIGS = {"as-shipped": {}, "lower-punct": {"do_lower_case": True, "split_by_punct": True}}
SPECIALS = {"bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "[UNK]", "sep_token": "[SEP]",
            "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}
TEXTS = ["Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ and ligature ﬁ", "  spaces   inside\u3000and\u00a0out  ", "He said: [MASK] isn't here."]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--glue-dir", required=True)
    ap.add_argument("--squad-file", required=True)
    args = ap.parse_args()
    d = os.path.join(OUT, "deberta-v3-spm")
    os.makedirs(d, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences(args.glue_dir)), model_writer=model, model_type="unigram", vocab_size=400,
        normalization_rule_name="nmt_nfkc", pad_id=0, pad_piece="[PAD]", bos_id=1, bos_piece="[CLS]", eos_id=2,
        eos_piece="[SEP]", unk_id=3, unk_piece="[UNK]", user_defined_symbols=["<br>"], character_coverage=1.0,
        num_threads=1, minloglevel=2)
    with open(os.path.join(d, "spm.model"), "wb") as f:
        f.write(model.getvalue())
    with open(os.path.join(d, "special_tokens_map.json"), "w") as f:
        json.dump(SPECIALS, f, indent=2)
    items = parity_items(args.glue_dir, args.squad_file)
    golden = {}
    for name, options in CONFIGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            for f in ("spm.model", "special_tokens_map.json"):
                shutil.copy(os.path.join(d, f), tmp)
            with open(os.path.join(tmp, "tokenizer_config.json"), "w") as f:
                json.dump({"do_lower_case": False, "vocab_type": "spm", **options}, f)
            tok = DebertaV2TokenizerFast.from_pretrained(tmp)
        golden[name] = {"options": options, "parity": parity(tok, items),
                        "texts": [[t, tok(t)["input_ids"]] for t in TEXTS + [a for a, _ in PAIRS]],
                        "mask_id": tok.convert_tokens_to_ids("[MASK]")}
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": False, "vocab_type": "spm"}, f)
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(golden, f)
    print(f"{d}: {len(items)} inputs, [MASK] = {golden['as-shipped']['mask_id']}")


if __name__ == "__main__":
    main()
