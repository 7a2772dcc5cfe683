//! `finetune distill`: a task job with a fine-tuned teacher — the student (`--model`, or
//! `--student-layers K` of it or of the teacher) trained on (1 − α)·task loss + α·T²·KL to the
//! teacher's softened outputs. GLUE by default (every `glue` flag works as it does there);
//! `distill ner` and `distill squad` take the `ner` and `squad` jobs' flags.
use super::glue::{run_with, GlueCli};
use super::ner::NerTrainCli;
use super::squad::SquadTrainCli;
use crate::error::Result;
use crate::train::distill::{DistillArgs, StudentInit};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct DistillCli {
    #[command(subcommand)]
    pub action: Option<DistillTask>,
    #[command(flatten)]
    pub glue: GlueCli,
    #[command(flatten)]
    pub kd: KdCli,
}

#[derive(Subcommand, Debug)]
pub enum DistillTask {
    /// Token classification: a `finetune ner` teacher; the `ner` job's flags.
    Ner {
        #[command(flatten)]
        ner: NerTrainCli,
        #[command(flatten)]
        kd: KdCli,
    },
    /// Extractive QA: a `finetune squad` teacher; the `squad` job's flags.
    Squad {
        #[command(flatten)]
        squad: SquadTrainCli,
        #[command(flatten)]
        kd: KdCli,
    },
}

/// The teacher, the student's layers and the loss, for every task.
#[derive(Args, Debug)]
pub struct KdCli {
    /// The fine-tuned teacher's model directory (same task, labels and tokenizer as the student).
    #[arg(long, required = true)]
    pub teacher: Option<PathBuf>,
    /// Build the student from K transformer layers of `--model` (or of the teacher, with
    /// `--student-init teacher`), evenly spaced unless `--layer-map` says which.
    #[arg(long)]
    pub student_layers: Option<usize>,
    /// The source layers the student takes, 0-based and increasing, e.g. `0,2,4`.
    #[arg(long, value_delimiter = ',')]
    pub layer_map: Option<Vec<usize>>,
    #[arg(long, value_enum, default_value_t = StudentInit::Base)]
    pub student_init: StudentInit,
    /// Weight of the teacher term (α); 1 − α weighs the task loss.
    #[arg(long, default_value_t = 0.5)]
    pub alpha: f64,
    /// Softmax temperature of teacher and student (the KL term is scaled by T²).
    #[arg(long, default_value_t = 5.0)]
    pub temperature: f64,
    /// Weight (β) of TinyBERT's hidden-state term: the MSE between each student hidden state m
    /// and the teacher's m·N/K over real tokens (the teacher then runs on every batch; hidden
    /// sizes must match).
    #[arg(long, default_value_t = 0.0)]
    pub hidden_loss_weight: f64,
}

impl KdCli {
    fn args(self) -> Result<DistillArgs> {
        let teacher = super::flags::required(self.teacher, "distill", "--teacher")?;
        Ok(DistillArgs { teacher, alpha: self.alpha, temperature: self.temperature, student_layers: self.student_layers, layer_map: self.layer_map, student_init: self.student_init, hidden_loss_weight: self.hidden_loss_weight })
    }
}

pub fn run(d: DistillCli) -> Result<()> {
    match d.action {
        None => run_with(d.glue, Some(d.kd.args()?)),
        Some(DistillTask::Ner { ner, kd }) => super::ner::train(ner, Some(kd.args()?)),
        Some(DistillTask::Squad { squad, kd }) => super::squad::train(squad, Some(kd.args()?)),
    }
}
