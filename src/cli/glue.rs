//! `finetune glue`: fine-tune and evaluate on one GLUE task, every task with data (`--task all`),
//! or a seed sweep; `--baseline majority` scores the trivial predictor instead.
use super::flags::{install_interrupts, required, run_seeds, RunCli, SeedsCli, TrainCli};
use crate::data::glue::Task;
use crate::error::{Error, Result};
use crate::model::hub::DEFAULT_MODEL;
use crate::train::args::ResumeFrom;
use crate::train::distill::DistillArgs;
use crate::train::glue::{Baseline, GlueArgs};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum BaselineArg {
    Majority,
}

#[derive(Args, Debug, Clone)]
pub struct GlueCli {
    /// GLUE task: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli (case and dashes ignored), or
    /// `all`: every task whose files are in --data-dir, each in <output-dir>/<task>/.
    #[arg(long, required = true)]
    pub task: Option<String>,
    #[command(flatten)]
    pub seeds: SeedsCli,
    /// Model directory or Hugging Face hub id.
    #[arg(long = "model", alias = "model-name-or-path", default_value = DEFAULT_MODEL)]
    pub model: String,
    /// GLUE root (holding RTE/, MRPC/, ...) or a task folder. Default: $GLUE_DIR.
    #[arg(long, env = "GLUE_DIR", required = true)]
    pub data_dir: Option<PathBuf>,
    #[arg(long, required = true)]
    pub output_dir: Option<PathBuf>,
    #[arg(long, alias = "per-device-eval-batch-size", default_value_t = 64)]
    pub eval_batch_size: usize,
    #[arg(long, value_parser = super::flags::seq_length, default_value_t = 128)]
    pub max_seq_length: usize,
    /// Reload the best checkpoint (by the task's main metric) before the final evaluation.
    #[arg(long)]
    pub load_best_model_at_end: bool,
    #[command(flatten)]
    pub training: TrainCli,
    /// Score a trivial predictor instead of training.
    #[arg(long, value_enum)]
    pub baseline: Option<BaselineArg>,
    /// Also predict the unlabeled test file(s) into predict_results_<task>.txt.
    #[arg(long)]
    pub do_predict: bool,
    #[command(flatten)]
    pub run: RunCli,
}

impl GlueCli {
    /// The arguments of one task's run into `output_dir`.
    pub fn into_args(self, task: Task, data_dir: PathBuf, output_dir: PathBuf) -> Result<GlueArgs> {
        let (mut train, resume) = self.training.into_args(2e-5, 32, task.default_epochs())?;
        let device = self.run.device.apply(&mut train)?;
        Ok(GlueArgs {
            task,
            model_name_or_path: self.model,
            data_dir,
            output_dir,
            max_seq_length: self.max_seq_length,
            per_device_eval_batch_size: self.eval_batch_size,
            train,
            baseline: self.baseline.map(|BaselineArg::Majority| Baseline::Majority),
            do_predict: self.do_predict,
            device,
            load_best_model_at_end: self.load_best_model_at_end,
            max_train_samples: self.run.max_train_samples,
            max_eval_samples: self.run.max_eval_samples,
            resume,
            distill: None,
        })
    }
}

/// Runs each selected task (each seed of a sweep) and prints its results.
pub fn run(g: GlueCli) -> Result<()> {
    run_with(g, None)
}

/// [`run`], each run a student of `distill`'s teacher when given (`finetune distill`).
pub fn run_with(g: GlueCli, distill: Option<DistillArgs>) -> Result<()> {
    install_interrupts()?;
    let Some(_rank) = super::launch::start(&g.training.distributed, &g.run)? else { return Ok(()) };
    let (data_dir, output_dir) = (required(g.data_dir.clone(), "glue", "--data-dir")?, crate::train::ddp::output_dir(required(g.output_dir.clone(), "glue", "--output-dir")?));
    let task_arg = required(g.task.clone(), "glue", "--task")?;
    let tasks: Vec<(Task, PathBuf)> = if task_arg.eq_ignore_ascii_case("all") {
        let (present, missing): (Vec<Task>, Vec<Task>) = Task::ALL.into_iter().partition(|t| t.has_data(&data_dir));
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|t| t.name()).collect();
            eprintln!("--task all: no data in {} for {}; skipped", data_dir.display(), names.join(", "));
        }
        if present.is_empty() {
            return Err(Error::file(&data_dir, "no GLUE task's train and dev files found"));
        }
        present.into_iter().map(|t| (t, output_dir.join(t.name()))).collect()
    } else {
        vec![(task_arg.parse()?, output_dir)]
    };
    let seeds = g.seeds.list(g.training.seed);
    for (task, out) in tasks {
        let mut args = g.clone().into_args(task, data_dir.clone(), out.clone())?;
        args.distill = distill.clone();
        let results = run_seeds(seeds.as_deref(), &out, |sweep| {
            let mut a = args.clone();
            if let Some((seed, dir)) = sweep {
                (a.train.seed, a.output_dir, a.resume) = (seed, dir, Some(a.resume.clone().unwrap_or(ResumeFrom::Auto)));
            }
            crate::train::glue::run(&a)
        })?;
        println!("{}", serde_json::to_string_pretty(&results).expect("JSON serialises"));
        eprintln!("{}: outputs written to {}", task.name(), out.display());
    }
    Ok(())
}
