//! Training cost estimates for reports (§1.5 of the paper: fine-tuning is cheap next to
//! pre-training, but not free). FLOPs follow the usual dense-transformer count: a forward pass costs
//! 2 FLOPs per matmul weight per token plus the attention products (QKᵀ and AV: 4·s·H per token and
//! layer for sequence length s); backward costs twice the forward, so training is 3× forward.
use crate::model::config::BertConfig;

/// Estimated FLOPs to train a BERT sequence classifier on `tokens` tokens of mean sequence length
/// `mean_seq_len` (padding excluded).
pub fn bert_train_flops(cfg: &BertConfig, num_labels: i64, tokens: f64, mean_seq_len: f64) -> f64 {
    let (h, i, l) = (cfg.hidden_size as f64, cfg.intermediate_size as f64, cfg.num_hidden_layers as f64);
    let matmul_weights = l * (4.0 * h * h + 2.0 * h * i) + h * h + h * num_labels as f64;
    let forward_per_token = 2.0 * matmul_weights + 4.0 * l * mean_seq_len * h;
    3.0 * forward_per_token * tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bert_base_matches_the_6nd_rule_for_short_sequences() {
        let cfg: BertConfig = serde_json::from_value(serde_json::json!({
            "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
            "num_attention_heads": 12, "intermediate_size": 3072
        }))
        .unwrap();
        // 85M non-embedding matmul weights: 6·N per token when attention is negligible (s = 1).
        let per_token = bert_train_flops(&cfg, 2, 1.0, 1.0);
        let n = 12.0 * (4.0 * 768.0 * 768.0 + 2.0 * 768.0 * 3072.0) + 768.0 * 768.0 + 768.0 * 2.0;
        assert!((per_token / (6.0 * n) - 1.0).abs() < 1e-3, "{per_token} vs {}", 6.0 * n);
        // Attention grows linearly with sequence length.
        assert!(bert_train_flops(&cfg, 2, 1.0, 512.0) > bert_train_flops(&cfg, 2, 1.0, 128.0));
    }
}
