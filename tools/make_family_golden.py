#!/usr/bin/env python3
"""Tiny random checkpoints of the encoder families beyond BERT, and what transformers computes
with them: tests/fixtures/families/<model_type>/ holds a base checkpoint (config.json,
model.safetensors, tokenizer files) and golden.json (token ids and offsets of text pairs; logits,
losses and gradient norms of the sequence-classification, regression and question-answering heads,
whose fresh weights transformers draws after torch.manual_seed(42); run_qa.py's windows over a
non-ASCII context; and a digest of the ids and offsets of 1,000 GLUE and SQuAD inputs).

The tokenizers are trained here on GLUE sentences (the hub is out of reach): byte-level BPE for ModernBERT (with [CLS]/[SEP]) and
RoBERTa, Unigram with Metaspace for XLM-RoBERTa, each wrapped in its transformers fast class so the
special tokens and pair template are that class's; WordPiece for ELECTRA. Run with the reference environment:

    ~/.cache/finetune/torch-2.11.0/bin/python tools/make_family_golden.py --glue-dir ../shared/data/glue \
        --squad-file ../shared/data/squad/train-v1.1.json
"""
import argparse, csv, functools, hashlib, json, os, sys, types
import numpy as np
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification, AutoTokenizer

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "families")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
from run_qa_ref import features as qa_features  # noqa: E402  (run_qa.py's windows and answer labels)

# SQuAD-style examples with non-ASCII context, for the answer-span mapping over BPE offsets.
QA_CONTEXT = "Der Kaffee in München schmeckt anders. After years, the naïve owner moved to Zürich’s old town (旧城区) with the espresso machine, far from Paris."
QA_EXAMPLES = [
    {"question": "  Where did the naïve owner move?", "answer": "Zürich’s old town (旧城区)"},
    {"question": "What did he take?", "answer": "the espresso machine"},
    {"question": "Where is the coffee different?", "answer": "München"},
]
QA_CFG = types.SimpleNamespace(max_seq_length=64, doc_stride=24, max_query_length=12)
PAIRS = [
    ("The cat sat on the mat.", "A cat is sitting on a mat."),
    ("Héllo WORLD, naïve café — ünïcödé façade!", None),
    ("Dogs bark loudly at night because they are guarding the house from strangers walking by.", "Strangers walk by."),
    ("  Leading spaces and\ttabs.", "Zürich's 3.5% growth in 2021?"),
]
MAX_LEN = 24
SIZES = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24, max_position_embeddings=MAX_LEN + 2)


def sentences(glue_dir, n=3000):
    out = []
    for task, cols in (("RTE", (1, 2)), ("SST-2", (0,)), ("MRPC", (3, 4))):
        with open(os.path.join(glue_dir, task, "train.tsv"), encoding="utf-8") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
        out += [r[c] for r in rows[: n // 3] for c in cols if c < len(r)]
    return out


def byte_bpe(texts):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False)
    return tok


def byte_bpe_cls_sep(texts):
    """ModernBERT's kind: byte-level BPE, [CLS] A [SEP] (B [SEP]), offsets untrimmed."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.TemplateProcessing(single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1", special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    return tok


def unigram(texts):
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(texts, trainers.UnigramTrainer(vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], unk_token="<unk>"))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return tok


def wordpiece(texts):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials, limit_alphabet=120))
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return tok


def unigram_cls_sep(texts):
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(texts, trainers.UnigramTrainer(vocab_size=300, special_tokens=["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"], unk_token="[UNK]"))
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    return tok


ROBERTA_IDS = dict(type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2)
# ModernBERT ships a plain PreTrainedTokenizerFast that feeds the model no token types.
MODERNBERT_TOKENIZER = functools.partial(transformers.PreTrainedTokenizerFast, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                                         pad_token="[PAD]", mask_token="[MASK]", model_input_names=["input_ids", "attention_mask"])
# Two global/local layers with an 8-token window (4 each side) shorter than the inputs, distinct
# rotary bases, every dropout on.
MODERNBERT_IDS = dict(pad_token_id=3, cls_token_id=1, sep_token_id=2, bos_token_id=1, eos_token_id=2, global_attn_every_n_layers=2,
                      local_attention=8, global_rope_theta=160000.0, local_rope_theta=10000.0, embedding_dropout=0.1,
                      attention_dropout=0.1, mlp_dropout=0.1, classifier_dropout=0.1)
# model_type: (config class, base model, its keyword arguments, fast tokenizer class, tokenizer
# trainer, config options switched on)
FAMILIES = {
    "roberta": (transformers.RobertaConfig, transformers.RobertaModel, {"add_pooling_layer": False}, transformers.RobertaTokenizerFast, byte_bpe, ROBERTA_IDS),
    "xlm-roberta": (transformers.XLMRobertaConfig, transformers.XLMRobertaModel, {"add_pooling_layer": False}, transformers.XLMRobertaTokenizerFast, unigram, ROBERTA_IDS),
    # Embeddings narrower than the layers, so embeddings_project is in play.
    "electra": (transformers.ElectraConfig, transformers.ElectraModel, {}, transformers.ElectraTokenizerFast, wordpiece, dict(embedding_size=8, pad_token_id=0)),
    # DistilBertConfig maps hidden_size, num_hidden_layers and num_attention_heads onto its own
    # names, but not intermediate_size.
    "distilbert": (transformers.DistilBertConfig, transformers.DistilBertModel, {}, transformers.DistilBertTokenizerFast, wordpiece, dict(hidden_dim=SIZES["intermediate_size"], pad_token_id=0)),
    # DeBERTa-v3's options: shared attention keys, log buckets, normed relative embeddings, no
    # absolute positions or token types.
    "deberta-v3": (transformers.DebertaV2Config, transformers.DebertaV2Model, {}, transformers.DebertaV2TokenizerFast, unigram_cls_sep,
                   dict(relative_attention=True, position_buckets=8, norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type="p2c|c2p",
                        position_biased_input=False, type_vocab_size=0, max_relative_positions=-1, layer_norm_eps=1e-7, pad_token_id=0)),
    # DeBERTa-v2's other branch: separate position projections, no buckets, absolute positions and
    # token types too, narrower embeddings projected up.
    "deberta-v2": (transformers.DebertaV2Config, transformers.DebertaV2Model, {}, transformers.DebertaV2TokenizerFast, unigram_cls_sep,
                   dict(relative_attention=True, max_relative_positions=8, share_att_key=False, pos_att_type=["c2p", "p2c"],
                        position_biased_input=True, type_vocab_size=2, embedding_size=8, pad_token_id=0)),
    # ModernBERT as released: no biases anywhere, the first token under the head.
    "modernbert": (transformers.ModernBertConfig, transformers.ModernBertModel, {}, MODERNBERT_TOKENIZER, byte_bpe_cls_sep, MODERNBERT_IDS),
    # Its other switches: every bias, mean pooling, the tanh GELU in the head.
    "modernbert-bias": (transformers.ModernBertConfig, transformers.ModernBertModel, {}, MODERNBERT_TOKENIZER, byte_bpe_cls_sep,
                        dict(MODERNBERT_IDS, attention_bias=True, mlp_bias=True, norm_bias=True, classifier_bias=True,
                             classifier_pooling="mean", classifier_activation="gelu_pytorch_tanh")),
}


def parity_items(glue_dir, squad_file):
    """1,000 inputs for the tokenizer check: 400 RTE pairs, 300 SST-2 sentences, 300 SQuAD
    question/context pairs (tests/families.rs reads the same rows)."""
    def tsv(path, n):
        with open(path, encoding="utf-8") as f:
            return [l.rstrip("\n").split("\t") for l in f][1 : n + 1]
    items = [(r[1], r[2]) for r in tsv(os.path.join(glue_dir, "RTE", "train.tsv"), 400)]
    items += [(r[0], None) for r in tsv(os.path.join(glue_dir, "SST-2", "train.tsv"), 300)]
    qas = [(qa["question"], p["context"]) for art in json.load(open(squad_file, encoding="utf-8"))["data"] for p in art["paragraphs"] for qa in p["qas"]]
    return items + qas[:300]


def parity(tok, items, max_length=128):
    """A 12-hex digest per input of its ids and character offsets, truncated longest-first."""
    out = []
    for a, b in items:
        e = tok(a, b, truncation="longest_first", max_length=max_length, return_offsets_mapping=True)
        text = json.dumps([e["input_ids"], [list(o) for o in e["offset_mapping"]]], separators=(",", ":"))
        out.append(hashlib.sha256(text.encode()).hexdigest()[:12])
    return out


def r(t):
    return np.round(t.detach().double().numpy(), 7).tolist()


def grad_norms(model):
    return {n: float(p.grad.double().norm()) for n, p in model.named_parameters() if p.grad is not None}


def make(model_type, texts, items):
    cfg_cls, model_cls, model_kwargs, tok_cls, train_tok, options = FAMILIES[model_type]
    d = os.path.join(OUT, model_type)
    os.makedirs(d, exist_ok=True)
    raw = train_tok(texts)
    raw_path = os.path.join(d, "raw-tokenizer.json")
    raw.save(raw_path)
    tok = tok_cls(tokenizer_file=raw_path, model_max_length=MAX_LEN)
    os.remove(raw_path)
    tok.save_pretrained(d)
    sizes = {k: v for k, v in SIZES.items() if not (k == "intermediate_size" and "hidden_dim" in options)}
    cfg = cfg_cls(vocab_size=tok.backend_tokenizer.get_vocab_size(), **options, **sizes)
    torch.manual_seed(0)
    base = model_cls(cfg, **model_kwargs)
    base.save_pretrained(d, safe_serialization=True)

    tok = AutoTokenizer.from_pretrained(d)
    enc = [tok(a, b, truncation="longest_first", max_length=MAX_LEN, return_offsets_mapping=True) for a, b in PAIRS]
    batch = tok.pad([{k: e[k] for k in tok.model_input_names} for e in enc], return_tensors="pt")
    golden = {
        "transformers": transformers.__version__, "torch": torch.__version__, "max_seq_length": MAX_LEN,
        "texts": [[a, b] for a, b in PAIRS],
        "input_ids": [e["input_ids"] for e in enc],
        "token_type_ids": [e.get("token_type_ids") for e in enc],
        "offsets": [[list(o) for o in e["offset_mapping"]] for e in enc],
    }
    labels = torch.tensor([0, 2, 1, 2])
    for name, num_labels, target in (("seq_cls", 3, labels), ("regression", 1, torch.tensor([0.5, -1.0, 2.0, 0.25]))):
        torch.manual_seed(42)
        m = AutoModelForSequenceClassification.from_pretrained(d, num_labels=num_labels, attn_implementation="eager").eval()
        out = m(**batch, labels=target)
        out.loss.backward()
        golden[name] = {"labels": target.tolist(), "logits": r(out.logits), "loss": float(out.loss), "grad_norms": grad_norms(m)}
    torch.manual_seed(42)
    m = AutoModelForQuestionAnswering.from_pretrained(d, attn_implementation="eager").eval()
    starts, ends = torch.tensor([1, 3, 0, 5]), torch.tensor([2, 6, 0, 5])
    out = m(**batch, start_positions=starts, end_positions=ends)
    out.loss.backward()
    mask = batch["attention_mask"].bool()
    golden["qa"] = {
        "start_positions": starts.tolist(), "end_positions": ends.tolist(), "loss": float(out.loss), "grad_norms": grad_norms(m),
        # Real positions only: padded ones are implementation-defined.
        "start_logits": [r(out.start_logits[i][mask[i]]) for i in range(len(PAIRS))],
        "end_logits": [r(out.end_logits[i][mask[i]]) for i in range(len(PAIRS))],
    }
    examples = [{"question": q["question"], "context": QA_CONTEXT,
                 "answers": [{"text": q["answer"], "answer_start": QA_CONTEXT.index(q["answer"])}]} for q in QA_EXAMPLES]
    golden["qa_features"] = {
        "context": QA_CONTEXT, "examples": QA_EXAMPLES, "config": vars(QA_CFG),
        "windows": [{"input_ids": f["input_ids"], "start_position": f["start_positions"], "end_position": f["end_positions"]}
                    for f in qa_features(tok, examples, QA_CFG, True)],
    }
    golden["parity"] = parity(tok, items)
    if model_type.startswith("deberta"):
        from transformers.models.deberta_v2.modeling_deberta_v2 import build_relative_position
        golden["relative_positions"] = []
        for length, buckets, max_position in ((64, 8, 26), (600, 256, 512), (40, -1, 26)):
            x = torch.zeros(1, length, 1)
            rel = build_relative_position(x, x, bucket_size=buckets, max_position=max_position).flatten().tolist()
            digest = hashlib.sha256(json.dumps(rel, separators=(",", ":")).encode()).hexdigest()
            golden["relative_positions"].append({"length": length, "buckets": buckets, "max_position": max_position, "sha256": digest})
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump(golden, f)
    print(f"{d}: vocab {cfg.vocab_size}, {sum(p.numel() for p in base.parameters())} parameters")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--glue-dir", required=True)
    ap.add_argument("--squad-file", required=True, help="SQuAD v1.1 train-v1.1.json")
    ap.add_argument("--only", nargs="*", choices=list(FAMILIES), help="these fixtures only (default: all)")
    args = ap.parse_args()
    texts = sentences(args.glue_dir)
    items = parity_items(args.glue_dir, args.squad_file)
    for model_type in args.only or FAMILIES:
        make(model_type, texts, items)


if __name__ == "__main__":
    main()
