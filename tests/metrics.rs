//! GLUE metrics against sklearn/scipy values on fixed inputs (tests/fixtures/metrics_golden.json,
//! from tools/make_golden.py), and the degenerate cases the references define.
mod common;
use finetune::data::batch::Labels;
use finetune::data::glue::Task;
use finetune::eval::glue::{objective, score, Predictions};
use finetune::eval::metrics::*;

fn v<T: serde::de::DeserializeOwned>(x: &serde_json::Value) -> T {
    serde_json::from_value(x.clone()).unwrap()
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() < 1e-12, "{what}: ours {a}, reference {b}");
}

#[test]
fn binary_metrics_match_sklearn_and_scipy() {
    let g = common::fixture("metrics_golden.json");
    for case in g["binary"].as_array().unwrap() {
        let (p, y): (Vec<i64>, Vec<i64>) = (v(&case["pred"]), v(&case["gold"]));
        let (x, z): (Vec<f64>, Vec<f64>) = (v(&case["x"]), v(&case["y"]));
        close(accuracy(&p, &y), v(&case["accuracy"]), "accuracy");
        close(f1(&p, &y), v(&case["f1"]), "f1");
        close(matthews_corrcoef(&p, &y), v(&case["matthews_correlation"]), "mcc");
        close(pearson(&x, &z), v(&case["pearson"]), "pearson");
        close(spearman(&x, &z), v(&case["spearmanr"]), "spearman (with ties)");
    }
}

#[test]
fn multiclass_mcc_matches_sklearn() {
    let g = &common::fixture("metrics_golden.json")["multiclass"];
    let (p, y): (Vec<i64>, Vec<i64>) = (v(&g["pred"]), v(&g["gold"]));
    close(matthews_corrcoef(&p, &y), v(&g["matthews_correlation"]), "multiclass mcc");
    close(accuracy(&p, &y), v(&g["accuracy"]), "accuracy");
}

#[test]
fn degenerate_inputs_follow_the_references() {
    // Constant predictions: sklearn's MCC is 0, F1 of an all-negative prediction is 0.
    assert_eq!(matthews_corrcoef(&[1, 1, 1], &[0, 1, 1]), 0.0);
    assert_eq!(f1(&[0, 0, 0], &[0, 1, 1]), 0.0);
    // scipy: correlation with a constant series is undefined.
    assert!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]).is_nan());
    assert_eq!(rank_average(&[10.0, 20.0, 10.0, 30.0]), vec![1.5, 3.0, 1.5, 4.0]);
}

#[test]
fn task_metric_sets_and_combined_score() {
    let p = Predictions::Classes(vec![1, 0, 1, 1]);
    let y = Labels::Classes(vec![1, 0, 0, 1]);
    let mrpc = score(Task::Mrpc, &p, &y);
    let names: Vec<&str> = mrpc.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["accuracy", "f1", "combined_score"]);
    close(mrpc[2].1, (0.75 + 0.8) / 2.0, "combined_score");
    close(objective(&mrpc), mrpc[2].1, "objective is combined_score");
    let cola = score(Task::Cola, &p, &y);
    assert_eq!(cola[0].0, "matthews_correlation");
    assert_eq!(cola.len(), 1);
    let sts = score(Task::Stsb, &Predictions::Scores(vec![0.1, 2.0, 4.5]), &Labels::Scores(vec![0.0, 2.5, 5.0]));
    let names: Vec<&str> = sts.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["pearson", "spearmanr", "combined_score"]);
}
