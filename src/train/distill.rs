//! Knowledge distillation (`finetune distill`): a student trained on the task's labels and on a
//! fine-tuned teacher's outputs, loss (1 − α)·task loss + α·T²·KL(teacher ‖ student) at
//! temperature T (Hinton et al. 2015; Patient-KD), or for regression (1 − α)·MSE(label) +
//! α·MSE(teacher). The teacher's logits over the training set are computed once, before the first
//! step (dropout off), and each batch takes its rows: the teacher costs one pass, not one per
//! epoch. The student is the GLUE job's model; everything else of the run (seeds, data order,
//! evaluation, checkpoints and resume, devices) is the GLUE job's.
use crate::data::classify::ProblemType;
use crate::error::{Error, Result};
use crate::model::checkpoint::load_sequence_classifier;
use crate::model::config::BertConfig;
use crate::train::seq_cls::{Encoded, Model, Work};
use crate::train::trainer::{Evaluation, Workload};
use std::path::{Path, PathBuf};
use tch::{Kind, Reduction, Tensor};

#[derive(Debug, Clone, serde::Serialize)]
pub struct DistillArgs {
    /// The fine-tuned teacher's directory.
    pub teacher: PathBuf,
    /// Weight of the teacher term (α).
    pub alpha: f64,
    /// Softmax temperature (T) of both distributions; the KL term is scaled by T².
    pub temperature: f64,
    /// Build the student from this many layers of its source (`None`: the model as it is).
    pub student_layers: Option<usize>,
    /// Which source layers (default evenly spaced, `model::student::default_layer_map`).
    pub layer_map: Option<Vec<usize>>,
    pub student_init: StudentInit,
}

/// The distillation loss of a batch: `student` and `teacher` logits [batch, labels], `labels` the
/// gold class ids (or values, for regression).
pub fn kd_loss(student: &Tensor, teacher: &Tensor, labels: &Tensor, problem: ProblemType, alpha: f64, temperature: f64) -> Tensor {
    match problem {
        ProblemType::Regression => {
            let s = student.squeeze_dim(-1);
            let hard = s.mse_loss(&labels.to_kind(s.kind()), Reduction::Mean);
            let soft = s.mse_loss(&teacher.squeeze_dim(-1).to_kind(s.kind()), Reduction::Mean);
            hard * (1.0 - alpha) + soft * alpha
        }
        _ => {
            let hard = student.cross_entropy_for_logits(labels);
            let t = temperature;
            // float32 (as the CE under autocast), or double where the logits are.
            let k = if student.kind() == Kind::Double { Kind::Double } else { Kind::Float };
            let log_s = (student / t).log_softmax(-1, k);
            let p_t = (teacher.to_kind(k) / t).softmax(-1, k);
            // KL(p_t ‖ p_s) summed over labels, averaged over the batch (F.kl_div's batchmean);
            // xlogy makes 0·log 0 = 0 where the teacher is certain.
            let kl = (p_t.xlogy(&p_t) - &p_t * log_s).sum(k) / student.size()[0] as f64;
            hard * (1.0 - alpha) + kl * (alpha * t * t)
        }
    }
}

/// The teacher's logits over the training set, after checking that it fits the student's task:
/// the same labels in the same order, the same task when it names one, and the same tokenizer
/// (its ids of every training example equal the student's, or the two models read different
/// inputs).
pub fn teacher_logits(args: &DistillArgs, student: &Model, train: &Encoded, texts: &[(&str, Option<&str>)], max_seq_length: usize, batch_size: usize) -> Result<Tensor> {
    let dir = &args.teacher;
    let cfg_path = dir.join("config.json");
    let cfg = BertConfig::from_file(&cfg_path)?;
    cfg.refuse_quantized(&cfg_path)?;
    let labels = cfg.labels_by_id(&cfg_path)?;
    let want = student.labels.clone().unwrap_or_else(|| vec!["LABEL_0".into()]);
    if labels.as_ref() != Some(&want) {
        return Err(Error::file(&cfg_path, format!("the teacher's labels are {labels:?}; the student's task ({}) has {want:?}: distil from a teacher fine-tuned on the same task", student.task)));
    }
    if let Some(task) = cfg.extra.get("finetuning_task").and_then(|t| t.as_str()).filter(|t| !t.eq_ignore_ascii_case(&student.task)) {
        return Err(Error::file(&cfg_path, format!("the teacher was fine-tuned on `{task}`, the student trains on `{}`", student.task)));
    }
    let encoder = crate::data::tokenize::TextEncoder::new(crate::data::tokenize::load_tokenizer(dir)?, max_seq_length)?;
    let ids = encoder.encode(texts.iter().copied())?;
    if let Some(i) = (0..ids.len()).find(|&i| ids[i].input_ids != train.features[i].input_ids) {
        return Err(Error::file(
            dir,
            format!("the teacher's tokenizer reads training example {i} as other token ids than the student's: distillation needs one vocabulary (teacher vocab_size {}, student {})", cfg.vocab_size, student.cfg.vocab_size),
        ));
    }
    let (vs, net, report) = load_sequence_classifier(dir, &cfg, want.len() as i64, student.vs.device())?;
    if !report.newly_initialised.is_empty() {
        return Err(Error::file(dir, format!("the teacher's weights lack {:?}: not a fine-tuned model", report.newly_initialised)));
    }
    let teacher = Model { vs, net, cfg, source_dir: dir.clone(), encoder, labels: student.labels.clone(), task: student.task.clone(), pad_to_multiple_of: student.pad_to_multiple_of };
    Ok(teacher.logits(&train.features, batch_size))
}

/// The GLUE workload with the teacher's logits appended to each batch and the distillation loss.
pub struct DistillWork<'a> {
    pub inner: Work<'a>,
    /// [train examples, labels] on the CPU.
    pub teacher: Tensor,
    pub args: &'a DistillArgs,
}

impl Workload for DistillWork<'_> {
    fn lengths(&self) -> Option<Vec<usize>> {
        self.inner.lengths()
    }

    fn batch(&mut self, indices: &[usize], step: usize) -> Result<Vec<Tensor>> {
        let mut b = self.inner.batch(indices, step)?;
        let idx = Tensor::from_slice(&indices.iter().map(|&i| i as i64).collect::<Vec<_>>());
        b.push(self.teacher.index_select(0, &idx).to_device(self.inner.model.vs.device()));
        Ok(b)
    }

    fn loss(&mut self, b: &[Tensor]) -> Result<Tensor> {
        let net = &self.inner.model.net;
        let logits = net.forward(&b[0], &b[1], &b[2], true);
        Ok(kd_loss(&logits, &b[4], &b[3], net.problem, self.args.alpha, self.args.temperature))
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        self.inner.evaluate()
    }

    fn on_best(&mut self, step: usize, eval: &Evaluation) -> Result<()> {
        self.inner.on_best(step, eval)
    }
}

/// Checks α and T.
pub fn validate(args: &DistillArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.alpha) {
        return Err(Error::Invalid(format!("--alpha {}: expected a weight in [0, 1]", args.alpha)));
    }
    if !(args.temperature > 0.0 && args.temperature.is_finite()) {
        return Err(Error::Invalid(format!("--temperature {}: expected a positive number", args.temperature)));
    }
    Ok(())
}

/// Where the student's initial weights come from (`--student-init`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum StudentInit {
    /// `--model` (a pre-trained model, typically the teacher's base).
    Base,
    /// The fine-tuned teacher, head included.
    Teacher,
}

impl DistillArgs {
    /// The student's model directory: `model` as it is, or K of its layers (`student_init base`)
    /// or of the teacher's (`teacher`) written to `out/student_init`.
    pub fn student(&self, model: &str, out: &Path) -> Result<PathBuf> {
        let source = match self.student_init {
            StudentInit::Teacher => self.teacher.clone(),
            StudentInit::Base => crate::model::hub::resolve(model)?,
        };
        let Some(k) = self.student_layers.or(self.layer_map.as_ref().map(Vec::len)) else {
            return Ok(source);
        };
        let n = BertConfig::from_file(&source.join("config.json"))?.num_hidden_layers as usize;
        let map = self.layer_map.clone().unwrap_or_else(|| crate::model::student::default_layer_map(n, k));
        if map.len() != k {
            return Err(Error::Invalid(format!("--layer-map {map:?} names {} layers; --student-layers is {k}", map.len())));
        }
        crate::model::student::make_student(&source, &map, self.student_init == StudentInit::Teacher, &out.join("student_init"))
    }
}
