//! `finetune distill`: the GLUE job with a fine-tuned teacher — the student (`--model`, or
//! `--student-layers K` of it or of the teacher) trained on (1 − α)·task loss + α·T²·KL to the
//! teacher's softened outputs. Every `glue` flag works as it does there.
use super::glue::{run_with, GlueCli};
use crate::error::Result;
use crate::train::distill::{DistillArgs, StudentInit};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct DistillCli {
    #[command(flatten)]
    pub glue: GlueCli,
    /// The fine-tuned teacher's model directory (same task, labels and tokenizer as the student).
    #[arg(long)]
    pub teacher: PathBuf,
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
}

pub fn run(d: DistillCli) -> Result<()> {
    let distill = DistillArgs { teacher: d.teacher, alpha: d.alpha, temperature: d.temperature, student_layers: d.student_layers, layer_map: d.layer_map, student_init: d.student_init };
    run_with(d.glue, Some(distill))
}
