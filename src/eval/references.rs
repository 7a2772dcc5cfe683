//! Published numbers the report sets our runs against, each with its source. Scores are in
//! percent, keyed by task and by run_glue.py / SQuAD metric names.

pub struct Source {
    pub name: &'static str,
    pub citation: &'static str,
    /// What the numbers are measured on.
    pub split: &'static str,
    /// (task, metric, value, std over runs where published).
    pub scores: &'static [(&'static str, &'static str, f64, Option<f64>)],
}

impl Source {
    /// This source's scores for `task`, as (metric, value, std).
    pub fn task(&self, task: &str) -> Vec<(&'static str, f64, Option<f64>)> {
        self.scores.iter().filter(|r| r.0 == task).map(|r| (r.1, r.2, r.3)).collect()
    }
}

pub const HF_RUN_GLUE: Source = Source {
    name: "HF run_glue bert-base-cased",
    citation: "transformers examples/pytorch/text-classification/README.md (bert-base-cased, run_glue.py defaults; 5 epochs for MRPC and WNLI)",
    split: "dev",
    scores: &[
        ("cola", "matthews_correlation", 56.53, None),
        ("sst2", "accuracy", 92.32, None),
        ("mrpc", "f1", 88.85, None),
        ("mrpc", "accuracy", 84.07, None),
        ("stsb", "pearson", 88.64, None),
        ("stsb", "spearmanr", 88.48, None),
        ("qqp", "accuracy", 90.71, None),
        ("qqp", "f1", 87.49, None),
        ("mnli", "accuracy", 83.91, None),
        ("mnli", "accuracy_mm", 84.10, None),
        ("qnli", "accuracy", 90.66, None),
        ("rte", "accuracy", 65.70, None),
        ("wnli", "accuracy", 56.34, None),
    ],
};

pub const GLUE_HUMAN: Source = Source {
    name: "GLUE human baseline",
    citation: "Nangia & Bowman 2019, \"Human vs. Muppet: A conservative estimate of human performance on the GLUE benchmark\" (GLUE test set, as on the leaderboard)",
    split: "test",
    scores: &[
        ("cola", "matthews_correlation", 66.4, None),
        ("sst2", "accuracy", 97.8, None),
        ("mrpc", "f1", 86.3, None),
        ("mrpc", "accuracy", 80.8, None),
        ("stsb", "pearson", 92.7, None),
        ("stsb", "spearmanr", 92.6, None),
        ("qqp", "f1", 59.5, None),
        ("qqp", "accuracy", 80.4, None),
        ("mnli", "accuracy", 92.0, None),
        ("mnli", "accuracy_mm", 92.8, None),
        ("qnli", "accuracy", 91.2, None),
        ("rte", "accuracy", 93.6, None),
        ("wnli", "accuracy", 95.9, None),
    ],
};

pub const SQUAD_HF: Source = Source {
    name: "HF run_qa bert-base-uncased",
    citation: "Church, Chen & Ma 2021, \"A gentle introduction to fine-tuning\", Table 5 (the HF README's figures)",
    split: "dev v1.1",
    scores: &[("squad", "exact_match", 81.22, None), ("squad", "f1", 88.52, None)],
};

pub const SQUAD_PAPER_REPLICATION: Source = Source {
    name: "paper replication (5 runs)",
    citation: "Church, Chen & Ma 2021, Table 5: mean ± std over 5 runs",
    split: "dev v1.1",
    scores: &[("squad", "exact_match", 81.2, Some(0.055)), ("squad", "f1", 88.45, Some(0.020))],
};

pub const BERT_NER: Source = Source {
    name: "BERT paper, BERT-base",
    citation: "Devlin et al. 2019, \"BERT: Pre-training of deep bidirectional transformers for language understanding\", Table 3 (CoNLL-2003 NER, fine-tuning approach: BERT-base dev F1 96.4, test F1 92.4)",
    split: "dev",
    scores: &[("ner", "f1", 96.4, None)],
};

pub const ALL: [&Source; 5] = [&HF_RUN_GLUE, &GLUE_HUMAN, &SQUAD_HF, &SQUAD_PAPER_REPLICATION, &BERT_NER];
