//! The unpadded layout of a batch (`--unpad`): the hidden states of its real tokens only, one
//! `[tokens, width]` matrix, so every Linear, activation, LayerNorm, residual and dropout of the
//! encoder spends nothing on padding. Attention runs per group of sequences of similar length,
//! each group padded only to its own longest (a few groups a batch: few kernel launches, little
//! padding). Heads get padded hidden states back, with zeros where the padding was.
//!
//! Dropout masks — of hidden states and of attention probabilities — are drawn for the padded
//! shape, as the padded forward draws them, and the real tokens' parts applied: a seed consumes
//! the random stream it consumes padded and drops the same units, so the two layouts give the same
//! numbers up to floating-point rounding, and a run stays comparable step by step with
//! transformers'. Sequences must be right-padded (real tokens first), as `data::batch` pads them.
//!
//! Process-wide (like `dropout::set_dropout_rng`), since it is read deep in the encoder's forward;
//! off unless a command turns it on.
use crate::model::dropout::{attention, attention_with_noise, dropout, dropout_rows, keep_mask_prefix};
use std::sync::atomic::{AtomicBool, Ordering};
use tch::{Device, Kind, Tensor};

static UNPAD: AtomicBool = AtomicBool::new(false);

pub fn set_unpad(on: bool) {
    UNPAD.store(on, Ordering::Relaxed);
}

pub fn unpad_enabled() -> bool {
    UNPAD.load(Ordering::Relaxed)
}

/// A group starts a new one below this fraction of its longest sequence's length.
const GROUP_LENGTH_RATIO: f64 = 0.8;

/// How a forward pass lays out its hidden states.
#[derive(Debug)]
pub enum Layout {
    /// `[batch, seq, width]`, padding included; `mask` bool [batch, 1, 1, seq].
    Padded { mask: Tensor },
    Packed(Packed),
}

/// The real tokens of a right-padded batch, in batch-row order.
#[derive(Debug)]
pub struct Packed {
    /// Row of each token in the flattened `[batch * seq]` padded batch.
    index: Tensor,
    /// Each sequence's length.
    lengths: Vec<i64>,
    batch: i64,
    seq: i64,
    groups: Vec<Group>,
    /// Row of each token in the groups' padded outputs, concatenated.
    back: Tensor,
}

/// Sequences attended together, padded to the longest of them.
#[derive(Debug)]
struct Group {
    /// Their batch rows.
    rows: Tensor,
    len: i64,
    /// For each (sequence, position < len): the token's packed row, or the extra zero row past the
    /// last token where the sequence is shorter.
    gather: Tensor,
    /// bool [sequences, 1, 1, len].
    mask: Tensor,
}

impl Layout {
    /// Packed when unpadding is on and `attention_mask` ([batch, seq], 1 = real token) is a
    /// right-padded batch with padding; otherwise padded.
    pub fn for_mask(attention_mask: &Tensor, unpad: bool) -> Layout {
        let padded = || Layout::Padded { mask: attention_mask.to_kind(Kind::Bool).unsqueeze(1).unsqueeze(1) };
        if !unpad || !unpad_enabled() {
            return padded();
        }
        let (batch, seq) = attention_mask.size2().expect("attention masks are [batch, seq]");
        let real = attention_mask.ne(0).to_device(Device::Cpu);
        let lengths = Vec::<i64>::try_from(real.sum_dim_intlist(1, false, Kind::Int64)).expect("lengths are integers");
        let right_padded = Tensor::arange(seq, (Kind::Int64, Device::Cpu)).unsqueeze(0).lt_tensor(&Tensor::from_slice(&lengths).unsqueeze(1)).equal(&real);
        let tokens: i64 = lengths.iter().sum();
        if !right_padded || tokens == batch * seq || tokens == 0 {
            return padded();
        }
        Layout::Packed(Packed::new(&lengths, seq, attention_mask.device()))
    }

    /// `[batch, seq, width]` → this layout.
    pub fn pack(&self, x: &Tensor) -> Tensor {
        match self {
            Layout::Padded { .. } => x.shallow_clone(),
            Layout::Packed(p) => x.reshape([-1, width(x)]).index_select(0, &p.index),
        }
    }

    /// This layout → `[batch, seq, width]`, zeros at the padding.
    pub fn unpack(&self, x: &Tensor) -> Tensor {
        match self {
            Layout::Padded { .. } => x.shallow_clone(),
            Layout::Packed(p) => Tensor::zeros([p.batch * p.seq, width(x)], (x.kind(), x.device())).index_copy(0, &p.index, x).view([p.batch, p.seq, width(x)]),
        }
    }

    /// `dropout(x, p, train)` as the padded forward applies it.
    pub fn dropout(&self, x: &Tensor, p: f64, train: bool) -> Tensor {
        match self {
            Layout::Padded { .. } => dropout(x, p, train),
            Layout::Packed(pk) => dropout_rows(x, &pk.lengths, pk.seq, &pk.index, p, train),
        }
    }

    /// Multi-head self-attention of `q`, `k`, `v` (this layout, heads side by side in the width),
    /// dropout `p` on the probabilities when training; the context in this layout.
    pub fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, heads: i64, p: f64, train: bool) -> Tensor {
        match self {
            Layout::Padded { mask } => {
                let (b, s, h) = q.size3().expect("hidden states are [batch, seq, hidden]");
                let split = |t: &Tensor| t.view([b, s, heads, h / heads]).transpose(1, 2);
                attention(&split(q), &split(k), &split(v), mask, p, train).transpose(1, 2).reshape([b, s, h])
            }
            Layout::Packed(pk) => pk.attention(q, k, v, heads, p, train),
        }
    }
}

fn width(x: &Tensor) -> i64 {
    *x.size().last().expect("hidden states have a width")
}

impl Packed {
    fn new(lengths: &[i64], seq: i64, device: Device) -> Packed {
        let batch = lengths.len() as i64;
        let starts: Vec<i64> = lengths.iter().scan(0, |acc, &n| Some(std::mem::replace(acc, *acc + n))).collect();
        let tokens: i64 = lengths.iter().sum();
        let index: Vec<i64> = (0..batch).flat_map(|r| (0..lengths[r as usize]).map(move |t| r * seq + t)).collect();
        // Longest first; a group closes when the next sequence is much shorter than its first.
        let mut order: Vec<usize> = (0..lengths.len()).filter(|&r| lengths[r] > 0).collect();
        order.sort_by_key(|&r| (std::cmp::Reverse(lengths[r]), r));
        let mut members: Vec<Vec<usize>> = Vec::new();
        for r in order {
            match members.last_mut() {
                Some(g) if lengths[r] as f64 >= GROUP_LENGTH_RATIO * lengths[g[0]] as f64 => g.push(r),
                _ => members.push(vec![r]),
            }
        }
        let mut back = vec![0i64; tokens as usize];
        let mut offset = 0;
        let groups = members
            .into_iter()
            .map(|rows| {
                let len = lengths[rows[0]];
                let mut gather = Vec::with_capacity(rows.len() * len as usize);
                for (j, &r) in rows.iter().enumerate() {
                    for t in 0..len {
                        if t < lengths[r] {
                            gather.push(starts[r] + t);
                            back[(starts[r] + t) as usize] = offset + j as i64 * len + t;
                        } else {
                            gather.push(tokens);
                        }
                    }
                }
                offset += rows.len() as i64 * len;
                let mask: Vec<bool> = rows.iter().flat_map(|&r| (0..len).map(move |t| t < lengths[r])).collect();
                Group {
                    rows: Tensor::from_slice(&rows.iter().map(|&r| r as i64).collect::<Vec<_>>()).to_device(device),
                    len,
                    gather: Tensor::from_slice(&gather).to_device(device),
                    mask: Tensor::from_slice(&mask).view([rows.len() as i64, 1, 1, len]).to_device(device),
                }
            })
            .collect();
        Packed { index: Tensor::from_slice(&index).to_device(device), lengths: lengths.to_vec(), batch, seq, groups, back: Tensor::from_slice(&back).to_device(device) }
    }

    /// Attention group by group. The probabilities' dropout mask is drawn for the padded
    /// `[batch, heads, seq, seq]`, as the padded math path draws it, and each group takes its
    /// sequences' corner of it.
    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, heads: i64, p: f64, train: bool) -> Tensor {
        let h = width(q);
        let d = h / heads;
        let dropping = train && p > 0.0;
        let keep = dropping.then(|| {
            // Row (sequence, head, query) of the padded probabilities: its real keys, if a real query.
            let lens: Vec<i64> = self.lengths.iter().flat_map(|&n| (0..heads * self.seq).map(move |i| if i % self.seq < n { n } else { 0 })).collect();
            keep_mask_prefix(lens.len() as i64, self.seq, &lens, q.kind(), p, q.device()).view([self.batch, heads, self.seq, self.seq])
        });
        let zero = Tensor::zeros([1, h], (q.kind(), q.device()));
        let (q, k, v) = (Tensor::cat(&[q, &zero], 0), Tensor::cat(&[k, &zero], 0), Tensor::cat(&[v, &zero], 0));
        let outs: Vec<Tensor> = self
            .groups
            .iter()
            .map(|g| {
                let m = g.rows.size()[0];
                let split = |t: &Tensor| t.index_select(0, &g.gather).view([m, g.len, heads, d]).transpose(1, 2);
                let ctx = match &keep {
                    Some(keep) => {
                        let corner = keep.narrow(2, 0, g.len).narrow(3, 0, g.len).index_select(0, &g.rows) / (1.0 - p);
                        attention_with_noise(&split(&q), &split(&k), &split(&v), &g.mask, &corner)
                    }
                    None => attention(&split(&q), &split(&k), &split(&v), &g.mask, 0.0, false),
                };
                ctx.transpose(1, 2).reshape([m * g.len, h])
            })
            .collect();
        Tensor::cat(&outs, 0).index_select(0, &self.back)
    }
}
