//! Knowledge distillation (`finetune distill`): a student trained on the task's labels and on a
//! fine-tuned teacher's outputs (the losses: `train::kd`). The teacher's outputs over the training
//! set are computed once, before the first step (dropout off), and each batch takes its rows: the
//! teacher costs one pass, not one per epoch. What is shared by the tasks lives here — the
//! arguments, the student's initial weights, the checks that a teacher fits the student's task
//! and reads the same token ids, per-example outputs of varying length — with the GLUE workload;
//! NER's and SQuAD's distillation sit in their jobs. Everything else of a run (seeds, data order,
//! evaluation, checkpoints and resume, devices) is the task job's.
use crate::data::tokenize::Features;
use crate::error::{Error, Result};
use crate::model::checkpoint::load_sequence_classifier;
use crate::model::config::BertConfig;
use crate::model::encoder::Encoder;
use crate::train::kd::{hidden_mse, kd_loss};
use crate::train::seq_cls::{Encoded, Model, Work};
use crate::train::trainer::{Evaluation, Workload};
use std::path::{Path, PathBuf};
use tch::Tensor;

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
    /// Weight of TinyBERT's hidden-state term (β; 0: none). The teacher then runs on every batch.
    pub hidden_loss_weight: f64,
}

/// The teacher's `config.json`, checked against the student's task: not quantized, its labels in
/// id order equal to `want` (`None`: a head without labels, QA), the same task when it names one,
/// the student's hidden size when hidden states are compared.
pub fn teacher_config(args: &DistillArgs, student: &BertConfig, want: Option<&[String]>, task: &str) -> Result<BertConfig> {
    let dir = &args.teacher;
    let cfg_path = dir.join("config.json");
    let cfg = BertConfig::from_file(&cfg_path)?;
    cfg.refuse_quantized(&cfg_path)?;
    if let Some(want) = want {
        let labels = cfg.labels_by_id(&cfg_path)?;
        if labels.as_deref() != Some(want) {
            return Err(Error::file(&cfg_path, format!("the teacher's labels are {labels:?}; the student's task ({task}) has {want:?}: distil from a teacher fine-tuned on the same task")));
        }
    }
    if let Some(t) = cfg.extra.get("finetuning_task").and_then(|t| t.as_str()).filter(|t| !t.eq_ignore_ascii_case(task)) {
        return Err(Error::file(&cfg_path, format!("the teacher was fine-tuned on `{t}`, the student trains on `{task}`")));
    }
    if args.hidden_loss_weight > 0.0 && cfg.hidden_size != student.hidden_size {
        return Err(Error::file(&cfg_path, format!("--hidden-loss-weight compares hidden states, but the teacher's hidden_size is {} and the student's {}", cfg.hidden_size, student.hidden_size)));
    }
    Ok(cfg)
}

/// The teacher's tokenizer must give every training example the student's token ids, or the two
/// models read different inputs.
pub fn check_same_ids(dir: &Path, teacher: &[impl AsRef<Features>], student: &[impl AsRef<Features>], vocab_sizes: (i64, i64)) -> Result<()> {
    fn ids(f: &[impl AsRef<Features>], i: usize) -> Option<&[i64]> {
        f.get(i).map(|x| x.as_ref().input_ids.as_slice())
    }
    if let Some(i) = (0..teacher.len().max(student.len())).find(|&i| ids(teacher, i) != ids(student, i)) {
        return Err(Error::file(
            dir,
            format!("the teacher's tokenizer reads training example {i} as other token ids than the student's: distillation needs one vocabulary (teacher vocab_size {}, student {})", vocab_sizes.0, vocab_sizes.1),
        ));
    }
    Ok(())
}

/// The teacher over the GLUE training set, after `teacher_config`'s and `check_same_ids`'
/// checks: its logits, and the model itself when its hidden states are needed.
pub fn teacher_logits(args: &DistillArgs, student: &Model, train: &Encoded, texts: &[(&str, Option<&str>)], max_seq_length: usize, batch_size: usize) -> Result<(Tensor, Option<Model>)> {
    let dir = &args.teacher;
    let want = student.labels.clone().unwrap_or_else(|| vec!["LABEL_0".into()]);
    let cfg = teacher_config(args, &student.cfg, Some(&want), &student.task)?;
    let encoder = crate::data::tokenize::TextEncoder::new(crate::data::tokenize::load_tokenizer(dir)?, max_seq_length)?;
    check_same_ids(dir, &encoder.encode(texts.iter().copied())?, &train.features, (cfg.vocab_size, student.cfg.vocab_size))?;
    let (vs, net, report) = load_sequence_classifier(dir, &cfg, want.len() as i64, student.vs.device())?;
    if !report.newly_initialised.is_empty() {
        return Err(Error::file(dir, format!("the teacher's weights lack {:?}: not a fine-tuned model", report.newly_initialised)));
    }
    let teacher = Model { vs, net, cfg, source_dir: dir.clone(), encoder, labels: student.labels.clone(), task: student.task.clone(), pad_to_multiple_of: student.pad_to_multiple_of };
    let logits = teacher.logits(&train.features, batch_size)?;
    Ok((logits, (args.hidden_loss_weight > 0.0).then_some(teacher)))
}

/// `loss` plus β × `kd::hidden_mse` of the student's hidden `states` on batch `b` ([input_ids,
/// token_type_ids, attention_mask, ...]) against the `teacher` encoder's (dropout off, no
/// gradient; `unpad` as the student's head runs) — or `loss` alone without a teacher encoder
/// (β = 0).
pub fn plus_hidden_term(loss: Tensor, teacher: Option<&Encoder>, unpad: bool, b: &[Tensor], states: &[Tensor], beta: f64) -> Tensor {
    let Some(encoder) = teacher else { return loss };
    let mut teacher_states = Vec::new();
    let _last = tch::no_grad(|| encoder.forward(&b[0], &b[1], &b[2], unpad, false, Some(&mut teacher_states)));
    loss + hidden_mse(states, &teacher_states, &b[2]) * beta
}

/// Per-example teacher outputs whose length is the example's token count (`[len, C]` each: a
/// token classifier's logits, a QA model's start and end logits), kept as one `[Σ len, C]`
/// matrix on the CPU.
pub struct TeacherRows {
    rows: Tensor,
    offsets: Vec<i64>,
}

impl TeacherRows {
    pub fn new(parts: &[Tensor]) -> TeacherRows {
        let mut offsets = vec![0];
        for p in parts {
            offsets.push(offsets.last().copied().unwrap_or(0) + p.size()[0]);
        }
        TeacherRows { rows: Tensor::cat(parts, 0), offsets }
    }

    /// `[indices.len(), width, C]` on `device`, zeros past each example's length.
    pub fn batch(&self, indices: &[usize], width: i64, device: tch::Device) -> Tensor {
        let padded: Vec<Tensor> = indices
            .iter()
            .map(|&i| {
                let (a, b) = (self.offsets[i], self.offsets[i + 1]);
                self.rows.narrow(0, a, b - a).constant_pad_nd([0, 0, 0, width - (b - a)])
            })
            .collect();
        Tensor::stack(&padded, 0).to_device(device)
    }
}

/// The GLUE workload with the teacher's logits appended to each batch and the distillation loss.
pub struct DistillWork<'a> {
    pub inner: Work<'a>,
    /// [train examples, labels] on the CPU.
    pub teacher: Tensor,
    /// The teacher, when its hidden states are compared (`hidden_loss_weight` > 0).
    pub teacher_model: Option<Model>,
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
        let mut states = Vec::new();
        let logits = net.forward_states(&b[0], &b[1], &b[2], true, self.teacher_model.is_some().then_some(&mut states));
        let loss = kd_loss(&logits, &b[4], &b[3], net.problem, self.args.alpha, self.args.temperature);
        Ok(plus_hidden_term(loss, self.teacher_model.as_ref().map(|t| &t.net.encoder), true, b, &states, self.args.hidden_loss_weight))
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        self.inner.evaluate()
    }

    fn on_best(&mut self, step: usize, eval: &Evaluation) -> Result<()> {
        self.inner.on_best(step, eval)
    }
}

/// What of a distillation a resumed run must share with the interrupted one (`null` without).
pub fn fingerprint(d: Option<&DistillArgs>) -> Result<serde_json::Value> {
    let Some(d) = d else { return Ok(serde_json::Value::Null) };
    let teacher = crate::train::resume::file_hash(&crate::model::checkpoint::weights_file(&d.teacher)?)?;
    let mut f = serde_json::json!({ "teacher_weights_sha256": teacher, "alpha": d.alpha, "temperature": d.temperature });
    if d.hidden_loss_weight > 0.0 {
        f["hidden_loss_weight"] = d.hidden_loss_weight.into();
    }
    Ok(f)
}

/// A job's resume fingerprint (a JSON object) with the distillation's added when there is one.
pub fn with_fingerprint(job: serde_json::Value, d: Option<&DistillArgs>) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut f = job.as_object().cloned().unwrap_or_default();
    if d.is_some() {
        f.insert("distill".into(), fingerprint(d)?);
    }
    Ok(f)
}

/// Checks α and T.
pub fn validate(args: &DistillArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.alpha) {
        return Err(Error::Invalid(format!("--alpha {}: expected a weight in [0, 1]", args.alpha)));
    }
    if !(args.hidden_loss_weight >= 0.0 && args.hidden_loss_weight.is_finite()) {
        return Err(Error::Invalid(format!("--hidden-loss-weight {}: expected a weight ≥ 0", args.hidden_loss_weight)));
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
        validate(self)?;
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
