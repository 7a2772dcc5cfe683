//! `finetune classify`'s metrics equal scikit-learn's and scipy's to the last bit, and its losses
//! equal PyTorch's, on the fixture `tools/make_classify_golden.py` writes.
mod common;
use finetune::data::batch::Labels;
use finetune::data::classify::ProblemType;
use finetune::eval::classification::{self as m, np_sum};
use serde_json::Value;
use tch::Tensor;

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn i64s(v: &Value) -> Vec<i64> {
    v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect()
}

fn get(scores: &[(String, f64)], k: &str) -> f64 {
    scores.iter().find(|(n, _)| n == k).unwrap_or_else(|| panic!("no {k} in {scores:?}")).1
}

#[test]
fn metrics_equal_sklearn_bit_for_bit() {
    let g = common::fixture("classify_golden.json");
    for (i, c) in g["cases"].as_array().unwrap().iter().enumerate() {
        let exact = |ours: f64, key: &str| assert_eq!(ours.to_bits(), c[key].as_f64().unwrap().to_bits(), "case {i} {key}: {ours} vs {}", c[key]);
        match c["kind"].as_str().unwrap() {
            "single" => {
                let k = c["k"].as_u64().unwrap() as usize;
                let (scores, per_class, cm) = m::single_label_scores(&i64s(&c["pred"]), &i64s(&c["gold"]), k);
                let cm_gold: Vec<Vec<usize>> = c["confusion"].as_array().unwrap().iter().map(|r| i64s(r).iter().map(|&x| x as usize).collect()).collect();
                assert_eq!(cm, cm_gold, "case {i}");
                for key in ["accuracy", "precision_macro", "recall_macro", "f1_macro", "precision_weighted", "recall_weighted", "f1_weighted"] {
                    exact(get(&scores, key), key);
                }
                check_per_class(i, &per_class, &c["per_class"]);
            }
            "multi" => {
                let k = c["k"].as_u64().unwrap() as usize;
                let gold: Vec<f32> = f64s(&c["gold"]).iter().map(|&x| x as f32).collect();
                let (scores, per_class) = m::multi_label_scores(&f64s(&c["prob"]), &gold, k, c["threshold"].as_f64().unwrap());
                for key in ["subset_accuracy", "precision_micro", "recall_micro", "f1_micro", "precision_macro", "recall_macro", "f1_macro", "precision_weighted", "recall_weighted", "f1_weighted"] {
                    exact(get(&scores, key), key);
                }
                check_per_class(i, &per_class, &c["per_class"]);
            }
            _ => {
                let s = m::regression_scores(&f64s(&c["pred"]), &f64s(&c["gold"]));
                exact(get(&s, "mse"), "mse");
                // scipy computes r through its own normalisation: equal to rounding.
                for key in ["pearson", "spearmanr"] {
                    assert!((get(&s, key) - c[key].as_f64().unwrap()).abs() < 1e-12, "case {i} {key}");
                }
            }
        }
    }
}

fn check_per_class(case: usize, ours: &[m::Prf], gold: &Value) {
    for (c, (p, g)) in ours.iter().zip(gold.as_array().unwrap()).enumerate() {
        let g = g.as_array().unwrap();
        assert_eq!([p.precision, p.recall, p.f1].map(f64::to_bits), [0, 1, 2].map(|j| g[j].as_f64().unwrap().to_bits()), "case {case} class {c}");
        assert_eq!(p.support as u64, g[3].as_u64().unwrap(), "case {case} class {c}");
    }
}

#[test]
fn numpy_pairwise_sum_differs_from_a_plain_loop_where_numpy_does() {
    // 0.1 × 10 summed in order is 0.9999999999999999; numpy's eight accumulators give 1.0.
    let a = vec![0.1; 10];
    assert_eq!(a.iter().sum::<f64>(), 0.9999999999999999);
    assert_eq!(np_sum(&a), 1.0);
    assert_eq!(np_sum(&[]), 0.0);
    let long: Vec<f64> = (0..1000).map(|i| 1.0 / (i as f64 + 1.0)).collect();
    assert!((np_sum(&long) - long.iter().sum::<f64>()).abs() < 1e-12);
}

#[test]
fn losses_equal_pytorch() {
    let g = common::fixture("classify_golden.json")["losses"].clone();
    let t = |k: &str| Tensor::from_slice(&f64s(&g[k]).iter().map(|&x| x as f32).collect::<Vec<_>>());
    let logits = t("logits").view([6, 4]);
    let classes = Tensor::from_slice(&i64s(&g["classes"]));
    let multi = t("multi_gold").view([6, 4]);
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let cfg: finetune::model::config::BertConfig = serde_json::from_value(serde_json::json!({
        "vocab_size": 10, "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 1, "intermediate_size": 4, "model_type": "bert",
    }))
    .unwrap();
    let head = || finetune::model::heads::SequenceClassifier::new(&vs.root(), &cfg, 4);
    let close = |ours: Tensor, key: &str| {
        let (a, b) = (ours.double_value(&[]), g[key].as_f64().unwrap());
        assert!((a - b).abs() < 1e-6, "{key}: {a} vs {b}");
    };
    close(head().loss(&logits, &classes), "ce");
    close(head().with_problem(ProblemType::SingleLabel, Some(t("weight"))).loss(&logits, &classes), "ce_weighted");
    close(head().with_problem(ProblemType::MultiLabel, None).loss(&logits, &multi), "bce");
    close(head().with_problem(ProblemType::MultiLabel, Some(t("pos_weight"))).loss(&logits, &multi), "bce_pos_weight");
}

#[test]
fn evaluate_scores_logits_per_problem_type() {
    let logits = vec![vec![2.0f32, -1.0, 0.5], vec![-3.0, 1.0, 0.0], vec![0.0, 0.1, 3.0]];
    let r = m::evaluate(ProblemType::SingleLabel, &logits, &Labels::Classes(vec![0, 1, 1]), 0.5);
    assert_eq!(get(&r.scores, "accuracy"), 2.0 / 3.0);
    assert_eq!(r.confusion.unwrap(), vec![vec![1, 0, 0], vec![0, 1, 1], vec![0, 0, 0]]);
    // Sigmoid > 0.3 ⇔ logit > −0.847: rows predict {0,2}, {1,2}, {0,1,2}.
    let gold = Labels::MultiHot { num_labels: 3, values: vec![1., 0., 1., 0., 1., 0., 0., 0., 1.] };
    let r = m::evaluate(ProblemType::MultiLabel, &logits, &gold, 0.3);
    assert_eq!(get(&r.scores, "subset_accuracy"), 1.0 / 3.0);
    assert_eq!(get(&r.scores, "recall_micro"), 1.0);
    let report = m::classification_report(&["a".into(), "b".into(), "c".into()], &r.per_class, &r.scores);
    assert!(report.contains("micro avg") && report.contains("macro avg") && report.contains("weighted avg"), "{report}");
}
