//! `finetune report` (leaderboard of finished runs) and `finetune compare` (paired bootstrap of two
//! runs' dev scores).
use crate::error::{Error, Result};
use crate::eval::compress_report;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum ReportFormat {
    Md,
    Html,
    Json,
}

#[derive(Args, Debug)]
pub struct ReportCli {
    /// Run directories, or parents searched recursively for runs.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "md")]
    pub format: ReportFormat,
    /// Write here (charts go beside it) instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CompareCli {
    pub run_a: PathBuf,
    pub run_b: PathBuf,
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Builds the report and writes it to `--out` or standard output.
pub fn report(r: ReportCli) -> Result<()> {
    let dirs = crate::eval::report::directories(&r.paths)?;
    let runs = crate::eval::report::runs_in(&dirs)?;
    if runs.is_empty() {
        return Err(Error::Invalid("no finished runs (directories with eval_results.json and run_config.json) found".into()));
    }
    let base = r.out.as_deref().and_then(|p| p.parent()).map(|p| if p.as_os_str().is_empty() { std::path::Path::new(".") } else { p });
    let report = crate::eval::report::build(&runs, base)?;
    let compression = compress_report::build(&report.rows, &compress_report::bench_files(&dirs))?;
    let text = match r.format {
        ReportFormat::Md => crate::eval::report::markdown(&report, base, &compress_report::markdown(&compression)),
        ReportFormat::Html => crate::eval::report::html(&report, &compress_report::html(&compression))?,
        ReportFormat::Json => {
            let mut v = crate::eval::report::json(&report);
            v["compression"] = serde_json::json!(compression);
            serde_json::to_string_pretty(&v).expect("JSON serialises") + "\n"
        }
    };
    match &r.out {
        Some(p) => {
            crate::io::write_atomic(p, text.as_bytes())?;
            eprintln!("report of {} run(s) written to {}", runs.len(), p.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// Prints B − A with its bootstrap interval and a one-line verdict, then the JSON.
pub fn compare(c: CompareCli) -> Result<()> {
    let cmp = crate::eval::compare::compare(&c.run_a, &c.run_b, c.resamples, c.seed)?;
    let b = &cmp.bootstrap;
    println!("{} on {} dev examples (task score, %):", cmp.task, cmp.examples);
    println!("  A {:>8.2}  {}", cmp.score_a, c.run_a.display());
    println!("  B {:>8.2}  {}", cmp.score_b, c.run_b.display());
    println!(
        "  B − A = {:+.2} points, 95% CI [{:+.2}, {:+.2}] (paired bootstrap, {} resamples, seed {}); P(B not better) = {:.3}",
        b.observed, b.ci_low, b.ci_high, b.resamples, b.seed, b.p_b_not_better
    );
    let verdict = if b.ci_low > 0.0 {
        "B is better beyond resampling noise"
    } else if b.ci_high < 0.0 {
        "A is better beyond resampling noise"
    } else {
        "the interval contains 0: no reliable difference"
    };
    println!("  {verdict}");
    println!("{}", serde_json::to_string(&cmp).expect("JSON serialises"));
    Ok(())
}
