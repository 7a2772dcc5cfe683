//! Which batches a rank trains on under data parallelism, as accelerate deals them out under
//! DDP (its `BatchSamplerShard` with `split_batches=False`, `even_batches=True`, no drop_last):
//! every rank draws the same epoch order and cuts it into the same per-device batches; batch i
//! goes to rank i mod world_size; when the batches do not come out even — fewer than a multiple of
//! the world size, or a short last batch — they are completed by wrapping round to the start of
//! the epoch's order, so that every rank gets the same number of full batches.

/// This rank's batches (example indices) of an epoch whose order is `order`.
pub fn rank_batches(order: &[usize], batch_size: usize, rank: usize, world_size: usize) -> Vec<Vec<usize>> {
    assert!(batch_size > 0 && world_size > 0 && rank < world_size, "batch size and world size are positive, rank below world size");
    let batches: Vec<&[usize]> = order.chunks(batch_size).collect();
    // One process is not sharded at all (Trainer leaves its DataLoader as it is).
    if world_size == 1 {
        return batches.iter().map(|b| b.to_vec()).collect();
    }
    let mut mine: Vec<Vec<usize>> = Vec::new();
    // Full rounds: every rank has a full batch of its own.
    let full = batches.iter().take_while(|b| b.len() == batch_size).count();
    let rounds = full / world_size;
    for round in 0..rounds {
        mine.push(batches[round * world_size + rank].to_vec());
    }
    // The rest (the last, incomplete round and a short last batch) is made up to a full round by
    // wrapping round to the beginning of the order (repeated if the epoch is smaller than a round).
    let used = rounds * world_size * batch_size;
    if used == order.len() {
        return mine;
    }
    let mut tail: Vec<usize> = order[used..].to_vec();
    let mut start = order.iter().cycle();
    while tail.len() % (world_size * batch_size) != 0 {
        tail.push(*start.next().expect("a non-empty order"));
    }
    let rest: Vec<&[usize]> = tail.chunks(batch_size).collect();
    mine.extend(rest.iter().skip(rank).step_by(world_size).map(|b| b.to_vec()));
    mine
}

#[cfg(test)]
mod tests {
    use super::rank_batches;

    #[test]
    fn batches_are_dealt_round_robin_and_the_tail_wraps_to_the_start() {
        let order: Vec<usize> = (0..10).collect();
        // 2 ranks, batches of 2: 5 batches; the 5th (8, 9) goes to rank 0 and rank 1 wraps (0, 1).
        assert_eq!(rank_batches(&order, 2, 0, 2), vec![vec![0, 1], vec![4, 5], vec![8, 9]]);
        assert_eq!(rank_batches(&order, 2, 1, 2), vec![vec![2, 3], vec![6, 7], vec![0, 1]]);
        // Batches of 3: 3 full and a short (9); the short one is completed from the start.
        assert_eq!(rank_batches(&order, 3, 0, 2), vec![vec![0, 1, 2], vec![6, 7, 8]]);
        assert_eq!(rank_batches(&order, 3, 1, 2), vec![vec![3, 4, 5], vec![9, 0, 1]]);
        // One rank: the plain batches, a short last one kept as it is.
        assert_eq!(rank_batches(&order, 4, 0, 1), vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
        // Fewer examples than a round: the order repeats.
        assert_eq!(rank_batches(&[5, 6, 7], 2, 0, 3), vec![vec![5, 6]]);
        assert_eq!(rank_batches(&[5, 6, 7], 2, 1, 3), vec![vec![7, 5]]);
        assert_eq!(rank_batches(&[5, 6, 7], 2, 2, 3), vec![vec![6, 7]]);
    }

    #[test]
    fn every_rank_gets_as_many_full_batches_and_every_example_is_seen() {
        for (n, bs, world) in [(97, 8, 2), (100, 10, 4), (5, 4, 3), (64, 16, 2)] {
            let order: Vec<usize> = (0..n).map(|i| (i * 37) % n).collect();
            let per_rank: Vec<Vec<Vec<usize>>> = (0..world).map(|r| rank_batches(&order, bs, r, world)).collect();
            let counts: Vec<usize> = per_rank.iter().map(Vec::len).collect();
            assert!(counts.windows(2).all(|w| w[0] == w[1]), "{n} {bs} {world}: {counts:?}");
            assert!(per_rank.iter().flatten().all(|b| b.len() == bs || world == 1));
            let mut seen: Vec<usize> = per_rank.iter().flatten().flatten().copied().collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), n, "{n} {bs} {world}: every example at least once");
        }
    }
}
