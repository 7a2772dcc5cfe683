//! Statistics behind reports and comparisons, against values numpy/scipy give for the same inputs.
use finetune::eval::stats::{arithmetic_mean, geometric_mean, paired_bootstrap, percentile, summarize};

#[test]
fn summary_uses_the_sample_standard_deviation() {
    let s = summarize(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert_eq!((s.n, s.mean, s.min, s.max), (4, 2.5, 1.0, 4.0));
    // np.std([1, 2, 3, 4], ddof=1)
    assert!((s.std - 1.2909944487358056).abs() < 1e-15);
    assert_eq!(summarize(&[7.0]).unwrap().std, 0.0);
    assert!(summarize(&[]).is_none());
}

#[test]
fn geometric_mean_rules_for_zero_and_negative_scores() {
    // scipy.stats.gmean([80, 90, 45]) = 68.6828...
    assert!((geometric_mean(&[80.0, 90.0, 45.0]).unwrap() - 68.68285455319992).abs() < 1e-9);
    assert!(geometric_mean(&[80.0, 90.0, 45.0]).unwrap() < arithmetic_mean(&[80.0, 90.0, 45.0]).unwrap());
    // A zero score: the limit, 0.
    assert_eq!(geometric_mean(&[80.0, 0.0, 45.0]), Ok(0.0));
    // A negative score (MCC below chance): undefined, naming which one.
    assert_eq!(geometric_mean(&[80.0, 45.0, -3.2]), Err(2));
}

#[test]
fn percentile_interpolates_like_numpy() {
    // np.percentile([1, 2, 3, 4], [25, 2.5, 97.5]) = [1.75, 1.075, 3.925]
    let v = [1.0, 2.0, 3.0, 4.0];
    assert!((percentile(&v, 25.0) - 1.75).abs() < 1e-12);
    assert!((percentile(&v, 2.5) - 1.075).abs() < 1e-12);
    assert!((percentile(&v, 97.5) - 3.925).abs() < 1e-12);
}

#[test]
fn paired_bootstrap_is_deterministic_and_sensible() {
    // B is right on 70 of 100 examples, A on 50, with A's hits a subset of B's.
    let a: Vec<f64> = (0..100).map(|i| (i < 50) as i32 as f64).collect();
    let b: Vec<f64> = (0..100).map(|i| (i < 70) as i32 as f64).collect();
    let diff = |idx: &[usize]| idx.iter().map(|&i| b[i] - a[i]).sum::<f64>() / idx.len() as f64 * 100.0;
    let r1 = paired_bootstrap(100, 1000, 7, diff);
    let r2 = paired_bootstrap(100, 1000, 7, diff);
    assert_eq!(r1, r2);
    assert_ne!(paired_bootstrap(100, 1000, 8, diff).ci_low, r1.ci_low);
    assert!((r1.observed - 20.0).abs() < 1e-12);
    assert!(r1.ci_low > 10.0 && r1.ci_low < r1.observed && r1.observed < r1.ci_high && r1.ci_high < 30.0, "{r1:?}");
    assert_eq!(r1.p_b_not_better, 0.0);
    // Identical systems: every resample gives 0.
    let same = paired_bootstrap(100, 200, 1, |_| 0.0);
    assert_eq!((same.ci_low, same.ci_high, same.p_b_not_better), (0.0, 0.0, 1.0));
}
