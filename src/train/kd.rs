//! The distillation losses of `finetune distill`, one per head: (1 − α)·task loss +
//! α·T²·KL(teacher ‖ student) at temperature T (Hinton et al. 2015; Patient-KD), with the KL taken
//! over the label distribution of each example (sequence classification), of each labelled token
//! (token classification), or of the start and of the end position over the real tokens (extractive
//! QA, DistilBERT's run_squad_w_distillation term); regression regresses on the teacher's output
//! instead. `tools/make_kd_golden.py` holds the PyTorch reference of each.
use crate::data::classify::ProblemType;
use crate::data::ner_features::IGNORE;
use tch::{Kind, Reduction, Tensor};

/// float32 (as the CE under autocast), or double where the logits are.
fn kind_of(t: &Tensor) -> Kind {
    if t.kind() == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    }
}

/// KL(softmax(teacher / T) ‖ softmax(student / T)) summed over the last dimension and averaged
/// over the rows of `[rows, classes]` (F.kl_div's `batchmean`); 0 for no rows.
pub fn soft_kl(student: &Tensor, teacher: &Tensor, temperature: f64) -> Tensor {
    let k = kind_of(student);
    let rows = student.size()[0];
    if rows == 0 {
        return student.sum(k) * 0.0;
    }
    let log_s = (student / temperature).log_softmax(-1, k);
    let p_t = (teacher.to_kind(k) / temperature).softmax(-1, k);
    // xlogy makes 0·log 0 = 0 where the teacher is certain (or a position is masked out).
    (p_t.xlogy(&p_t) - &p_t * log_s).sum(k) / rows as f64
}

/// Sequence classification and regression: `student` and `teacher` logits [batch, labels],
/// `labels` the gold class ids (or values, for regression, where the teacher term is the MSE to
/// the teacher's output).
pub fn kd_loss(student: &Tensor, teacher: &Tensor, labels: &Tensor, problem: ProblemType, alpha: f64, temperature: f64) -> Tensor {
    match problem {
        ProblemType::Regression => {
            let s = student.squeeze_dim(-1);
            let hard = s.mse_loss(&labels.to_kind(s.kind()), Reduction::Mean);
            let soft = s.mse_loss(&teacher.squeeze_dim(-1).to_kind(s.kind()), Reduction::Mean);
            hard * (1.0 - alpha) + soft * alpha
        }
        _ => {
            let t = temperature;
            student.cross_entropy_for_logits(labels) * (1.0 - alpha) + soft_kl(student, teacher, t) * (alpha * t * t)
        }
    }
}

/// Token classification: logits [batch, seq, labels], `labels` [batch, seq] with -100 where no
/// loss is taken; both terms average over the labelled tokens.
pub fn token_kd_loss(student: &Tensor, teacher: &Tensor, labels: &Tensor, alpha: f64, temperature: f64) -> Tensor {
    let n = *student.size().last().expect("logits have a label dimension");
    let (s, flat) = (student.view([-1, n]), labels.view([-1]));
    let hard = s.cross_entropy_loss::<Tensor>(&flat, None, Reduction::Mean, IGNORE, 0.0);
    let rows = flat.ne(IGNORE).nonzero().squeeze_dim(1);
    let soft = soft_kl(&s.index_select(0, &rows), &teacher.view([-1, n]).index_select(0, &rows), temperature);
    let t = temperature;
    hard * (1.0 - alpha) + soft * (alpha * t * t)
}

/// Extractive QA: start and end logits [batch, seq] of student and teacher, `mask` [batch, seq]
/// 1 on real tokens (the distributions are taken over those; padding differs between the cached
/// teacher pass and a training batch), gold start and end positions. The teacher term is the mean
/// of the start and end KLs, as the task loss is of the two cross-entropies.
#[allow(clippy::too_many_arguments)]
pub fn span_kd_loss(start: &Tensor, end: &Tensor, teacher_start: &Tensor, teacher_end: &Tensor, mask: &Tensor, start_positions: &Tensor, end_positions: &Tensor, alpha: f64, temperature: f64) -> Tensor {
    let hard = (start.cross_entropy_for_logits(start_positions) + end.cross_entropy_for_logits(end_positions)) / 2.0;
    let pad = mask.eq(0);
    // A large finite fill, not −∞: softmax gives exactly 0 there and 0·log stays 0 (−∞ gives NaN).
    let real = |x: &Tensor| x.to_kind(kind_of(start)).masked_fill(&pad, -1e9);
    let soft = (soft_kl(&real(start), &real(teacher_start), temperature) + soft_kl(&real(end), &real(teacher_end), temperature)) / 2.0;
    let t = temperature;
    hard * (1.0 - alpha) + soft * (alpha * t * t)
}

/// TinyBERT's hidden-state term (Jiao et al. 2020, g(m) = m·N/K): for each of the student's K + 1
/// hidden states m (0: the embeddings' output) the mean squared difference to the teacher's state
/// m·N/K over the real tokens (`mask` [batch, seq]) and hidden units, summed over m.
pub fn hidden_mse(student: &[Tensor], teacher: &[Tensor], mask: &Tensor) -> Tensor {
    let (k, n) = (student.len() - 1, teacher.len() - 1);
    let kind = kind_of(&student[0]);
    let real = mask.to_kind(kind).unsqueeze(-1);
    let count = real.sum(kind) * *student[0].size().last().expect("states have a hidden dimension") as f64;
    let terms: Vec<Tensor> = (0..=k).map(|m| ((&student[m].to_kind(kind) - teacher[m * n / k].to_kind(kind)).square() * &real).sum(kind)).collect();
    Tensor::stack(&terms, 0).sum(kind) / count
}
