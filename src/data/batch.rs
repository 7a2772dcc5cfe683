//! Batching: seeded per-epoch shuffling and dynamic padding to the longest sequence of each batch.
use crate::data::tokenize::Features;
use crate::data::glue::Target;
use tch::{Device, Tensor};

/// Inputs of one batch on the target device; `labels` is i64 for classes, f32 for scores.
pub struct Batch {
    pub input_ids: Tensor,
    pub token_type_ids: Tensor,
    pub attention_mask: Tensor,
    pub labels: Option<Tensor>,
    pub size: usize,
}

/// The example order of `epoch`: `torch.randperm(n)` from a generator seeded with seed + epoch,
/// which is the order transformers' Trainer visits (accelerate's SeedableRandomSampler), so the
/// same seed trains on the same batches here and there. A function of (seed, epoch) alone, so a
/// run and its resumption see the same batches.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> crate::error::Result<Vec<usize>> {
    crate::torch_ext::randperm(n, seed.wrapping_add(epoch as u64))
}

/// Pads the features at `indices` to their longest length, rounded up to a multiple of
/// `pad_to_multiple_of` (fewer distinct shapes for the GPU's per-shape kernel plans; padded keys are
/// masked, so results do not change), and uploads them.
pub fn collate(features: &[impl AsRef<Features>], indices: &[usize], pad_id: i64, pad_to_multiple_of: usize, device: Device) -> Batch {
    let len = indices.iter().map(|&i| features[i].as_ref().input_ids.len()).max().unwrap_or(0).next_multiple_of(pad_to_multiple_of.max(1));
    let n = indices.len();
    // ids, token types and mask in one buffer, so the batch is one host-to-device copy.
    let plane = n * len;
    let mut buf = vec![0i64; 3 * plane];
    buf[..plane].fill(pad_id);
    for (r, &i) in indices.iter().enumerate() {
        let f = features[i].as_ref();
        let row = r * len;
        buf[row..row + f.input_ids.len()].copy_from_slice(&f.input_ids);
        buf[plane + row..plane + row + f.token_type_ids.len()].copy_from_slice(&f.token_type_ids);
        buf[2 * plane + row..2 * plane + row + f.input_ids.len()].fill(1);
    }
    let all = upload(Tensor::from_slice(&buf).view([3, n as i64, len as i64]), device);
    Batch { input_ids: all.get(0), token_type_ids: all.get(1), attention_mask: all.get(2), labels: None, size: n }
}

/// Moves a host tensor to `device`. For CUDA the copy goes through pinned memory and does not
/// block the host, so it overlaps with the kernels already queued (libtorch's caching host
/// allocator keeps the pinned block alive until the copy has run).
pub fn upload(t: Tensor, device: Device) -> Tensor {
    match device {
        Device::Cuda(_) => t.pin_memory(device).to_device_(device, t.kind(), true, false),
        _ => t.to_device(device),
    }
}

/// Gold labels of a split: class ids, or scores for regression.
#[derive(Debug, Clone, PartialEq)]
pub enum Labels {
    Classes(Vec<i64>),
    Scores(Vec<f32>),
    /// Multi-label targets: a row of `num_labels` 0/1 values per example, rows concatenated.
    MultiHot { num_labels: usize, values: Vec<f32> },
}

impl Labels {
    /// Collects the targets of labelled examples; `None` when any example lacks one.
    pub fn from_targets(targets: impl IntoIterator<Item = Option<Target>>) -> Option<Labels> {
        let mut classes = Vec::new();
        let mut scores = Vec::new();
        for t in targets {
            match t? {
                Target::Class(c) => classes.push(c),
                Target::Score(s) => scores.push(s),
            }
        }
        match (classes.is_empty(), scores.is_empty()) {
            (_, true) => Some(Labels::Classes(classes)),
            (true, false) => Some(Labels::Scores(scores)),
            (false, false) => None,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Labels::Classes(v) => v.len(),
            Labels::Scores(v) => v.len(),
            Labels::MultiHot { num_labels, values } => values.len() / num_labels.max(&1),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The labels of the examples at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Labels {
        match self {
            Labels::Classes(v) => Labels::Classes(idx.iter().map(|&i| v[i]).collect()),
            Labels::Scores(v) => Labels::Scores(idx.iter().map(|&i| v[i]).collect()),
            Labels::MultiHot { num_labels: k, values } => {
                Labels::MultiHot { num_labels: *k, values: idx.iter().flat_map(|&i| values[i * k..(i + 1) * k].iter().copied()).collect() }
            }
        }
    }

    /// The labels at `indices` as a tensor: i64 classes, f32 scores, or f32 rows [n, num_labels].
    pub fn gather(&self, indices: &[usize], device: Device) -> Tensor {
        let t = match self {
            Labels::Classes(v) => Tensor::from_slice(&indices.iter().map(|&i| v[i]).collect::<Vec<_>>()),
            Labels::Scores(v) => Tensor::from_slice(&indices.iter().map(|&i| v[i]).collect::<Vec<_>>()),
            Labels::MultiHot { num_labels: k, values } => {
                let rows: Vec<f32> = indices.iter().flat_map(|&i| values[i * k..(i + 1) * k].iter().copied()).collect();
                Tensor::from_slice(&rows).view([indices.len() as i64, *k as i64])
            }
        };
        upload(t, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tokenize::Features;

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let a = epoch_order(100, 42, 0).unwrap();
        assert_eq!(a, epoch_order(100, 42, 0).unwrap());
        assert_ne!(a, epoch_order(100, 42, 1).unwrap());
        assert_ne!(a, epoch_order(100, 43, 0).unwrap());
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
    }

    /// Oracle: transformers 4.57 Trainer (accelerate 1.15, torch 2.11), seed 42, 20 examples,
    /// recorded in `Dataset.__getitem__` over two epochs; equal to
    /// `torch.randperm(20, generator=torch.Generator().manual_seed(42 + epoch))`.
    #[test]
    fn epoch_order_is_the_order_hf_trainer_visits() {
        assert_eq!(epoch_order(20, 42, 0).unwrap(), [2, 14, 18, 15, 1, 10, 0, 4, 6, 11, 8, 3, 7, 17, 13, 12, 19, 5, 16, 9]);
        assert_eq!(epoch_order(20, 42, 1).unwrap(), [8, 16, 13, 19, 9, 10, 0, 17, 4, 14, 11, 12, 18, 6, 15, 7, 3, 1, 5, 2]);
    }

    #[test]
    fn collate_pads_to_the_longest_in_batch() {
        let f = |n: usize| Features { input_ids: vec![7; n], token_type_ids: vec![1; n] };
        let feats = vec![f(3), f(5), f(2)];
        let b = collate(&feats, &[0, 2], 0, 1, Device::Cpu);
        assert_eq!(b.input_ids.size(), vec![2, 3]);
        assert_eq!(Vec::<i64>::try_from(b.attention_mask.flatten(0, -1)).unwrap(), vec![1, 1, 1, 1, 1, 0]);
        assert_eq!(Vec::<i64>::try_from(b.input_ids.flatten(0, -1)).unwrap(), vec![7, 7, 7, 7, 7, 0]);
        assert_eq!(Vec::<i64>::try_from(b.token_type_ids.flatten(0, -1)).unwrap(), vec![1, 1, 1, 1, 1, 0]);
        // Rounded up to a multiple of 4: the extra column is padding, masked out.
        let b = collate(&feats, &[0, 1], 9, 4, Device::Cpu);
        assert_eq!(b.input_ids.size(), vec![2, 8]);
        assert_eq!(Vec::<i64>::try_from(b.attention_mask.get(1)).unwrap(), vec![1, 1, 1, 1, 1, 0, 0, 0]);
        assert_eq!(Vec::<i64>::try_from(b.input_ids.get(0)).unwrap(), vec![7, 7, 7, 9, 9, 9, 9, 9]);
    }

    #[test]
    fn labels_keep_their_kind() {
        let l = Labels::from_targets([Some(Target::Score(1.5)), Some(Target::Score(0.5))]).unwrap();
        assert_eq!(l.gather(&[1], Device::Cpu).kind(), tch::Kind::Float);
        let l = Labels::from_targets([Some(Target::Class(1)), Some(Target::Class(0))]).unwrap();
        assert_eq!(Vec::<i64>::try_from(l.gather(&[1, 0], Device::Cpu)).unwrap(), vec![0, 1]);
        assert!(Labels::from_targets([Some(Target::Class(1)), None]).is_none());
    }
}
