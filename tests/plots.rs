//! Chart axes: tick labels that differ from each other however narrow the range, and a sensible
//! range for one or two points.
use finetune::eval::plots::{axis_range, learning_curves, tick_label};
use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;

/// The labels plotters would draw on an axis over `lo..hi` (its default of ten labels).
fn labels(lo: f64, hi: f64) -> Vec<String> {
    let axis: RangedCoordf64 = (lo..hi).into();
    axis.key_points(10).into_iter().map(|v: f64| tick_label(v, lo, hi)).collect()
}

#[test]
fn tick_labels_differ_on_narrow_and_wide_ranges() {
    for (lo, hi) in [(0.69495, 0.69555), (0.6950, 0.6951), (0.0, 1.0), (2.30, 2.31), (0.0, 2e-5), (1.9e-5, 2.0e-5), (0.0, 2340.0), (1e5, 1.00001e5)] {
        let l = labels(lo, hi);
        assert!(l.len() >= 2, "{lo}..{hi}: {l:?}");
        let mut unique = l.clone();
        unique.dedup();
        assert_eq!(unique.len(), l.len(), "{lo}..{hi}: repeated tick labels {l:?}");
    }
    // No more digits than the spacing needs.
    assert_eq!(tick_label(0.5, 0.0, 1.0), "0.5");
    assert_eq!(tick_label(120.0, 0.0, 2340.0), "120");
}

#[test]
fn one_point_gets_a_range_around_it() {
    let (lo, hi) = axis_range([0.6953].into_iter());
    assert!(lo < 0.6953 && 0.6953 < hi && hi - lo > 1e-3, "{lo}..{hi}");
    let (lo, hi) = axis_range([0.0].into_iter());
    assert!(lo < 0.0 && 0.0 < hi, "{lo}..{hi}");
    let (lo, hi) = axis_range([1.0, 3.0].into_iter());
    assert!((lo - 0.9).abs() < 1e-12 && (hi - 3.1).abs() < 1e-12, "{lo}..{hi}");
}

#[test]
fn short_run_curves_are_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("train_log.jsonl");
    // A short run: losses that agree to three digits and one evaluation.
    let lines = [
        r#"{"step": 10, "loss": 0.69512, "learning_rate": 1.5e-5}"#,
        r#"{"step": 20, "loss": 0.69534, "learning_rate": 1e-5}"#,
        r#"{"step": 20, "eval_accuracy": 0.527, "eval_loss": 0.6916}"#,
    ];
    std::fs::write(&log, lines.join("\n")).unwrap();
    let png = dir.path().join("curves.png");
    learning_curves(&log, &png, "rte seed 42").unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
}
