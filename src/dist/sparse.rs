//! Sparse (index, value) exchange for top-k steps (paper §3.5; ARCHITECTURE step 6).
//!
//! [`sparse_allgather_add`] is exact: every rank's pairs reach every rank with their true counts
//! and are scatter-ADDED into a zeroed dense buffer, so an index chosen by several ranks
//! accumulates and index 0 is an ordinary index. Since the gradients were scaled by r_i before
//! top-k, the sum is the weighted aggregate of Eq. 4.
//!
//! [`ar_topk_allreduce`] is the authors' AR-Topk alternative: one rank's index set for everyone, then
//! a plain SUM allreduce of k values.
//!
//! Both agree on errors before moving data: each rank's local check travels with its count, so a
//! bad input on one rank gives the same `Err` on every rank instead of a hang.
use super::World;
use crate::error::{Error, Result};
use mpi::traits::*;
use rayon::prelude::*;

/// Count word that marks "this rank's input is invalid".
const BAD: u64 = u64::MAX;
/// Below this many gathered pairs the scatter-add runs on one thread.
const PAR_MIN_PAIRS: usize = 1 << 16;
/// Dense elements per parallel scatter task.
const SCATTER_BLOCK: usize = 1 << 18;

/// One (index, value) pair in one word: index in the high half, so words of one rank sort by index.
#[inline]
fn pack(i: u32, v: f32) -> u64 {
    (u64::from(i) << 32) | u64::from(v.to_bits())
}

#[inline]
fn unpack(w: u64) -> (usize, f32) {
    ((w >> 32) as usize, f32::from_bits(w as u32))
}

/// Exact sparse aggregation (no padding): allgather of each rank's count, then the packed
/// (u32 index, f32 value) pairs of every rank — allgatherv with the exact counts, so the collective
/// carries each rank's own contribution and nothing more — then scatter-ADD of every rank's pairs
/// into `dense` (zeroed first), in rank order, so every rank computes a bitwise-identical result.
/// Duplicate indices across (or within) ranks accumulate; index 0 is an index like any other. A
/// rank with count 0 still joins. Returns the per-rank counts (index = rank).
///
/// When every rank's count is the same (the usual case in training: k depends only on tensor
/// sizes and CR) the exchange is a plain allgather, which moves exactly the same bytes: MPICH
/// 4.0's allgatherv (ring) ran about 100× slower than allgather here with 3–4 ranks on 2 cores.
///
/// Every rank must call this in the same step with a `dense` of the same length. Errors (the same
/// on every rank): `idx`/`val` lengths differ on some rank, an index is ≥ `dense.len()`, the
/// `dense` lengths differ across ranks, or the gathered buffer exceeds MPI's i32 counts.
pub fn sparse_allgather_add(
    world: &World,
    idx: &[u32],
    val: &[f32],
    dense: &mut [f32],
) -> Result<Vec<u64>> {
    let g = sparse_allgather(world, idx, val, dense.len())?;
    scatter_add(&g.parts(), dense);
    Ok(g.counts)
}

/// Every rank's (index, value) pairs after the exact exchange, as packed words: rank r's pairs are
/// [`Gathered::part`]`(r)`, in the order that rank sent them.
#[derive(Debug, Default)]
pub struct Gathered {
    /// Pairs per rank (index = rank).
    pub counts: Vec<u64>,
    words: Vec<u64>,
    displs: Vec<usize>,
}

impl Gathered {
    /// Rank `r`'s packed pairs.
    pub fn part(&self, r: usize) -> &[u64] {
        &self.words[self.displs[r]..self.displs[r] + self.counts[r] as usize]
    }

    pub fn parts(&self) -> Vec<&[u64]> {
        (0..self.counts.len()).map(|r| self.part(r)).collect()
    }

    /// All pairs, rank after rank, split into indices and values (for upload to a device).
    pub fn unpacked(&self) -> (Vec<u32>, Vec<f32>) {
        self.words.iter().map(|&w| ((w >> 32) as u32, f32::from_bits(w as u32))).unzip()
    }

    /// Where rank `r`'s pairs start in [`Self::unpacked`].
    pub fn offset(&self, r: usize) -> usize {
        self.displs[r]
    }
}

/// The exchange half of [`sparse_allgather_add`]: the same checks (agreed on every rank) and the
/// same collectives, for a dense gradient of `dense_len` elements, without the scatter. A device
/// backend scatters the result itself.
pub fn sparse_allgather(world: &World, idx: &[u32], val: &[f32], dense_len: usize) -> Result<Gathered> {
    let n = world.size();
    let local_ok = idx.len() == val.len() && idx.iter().all(|&i| (i as usize) < dense_len);
    let mine = [
        if local_ok { idx.len() as u64 } else { BAD },
        dense_len as u64,
    ];
    let mut all = vec![0u64; 2 * n];
    world.comm().all_gather_into(&mine[..], &mut all[..]);
    let counts: Vec<u64> = all.iter().step_by(2).copied().collect();
    let lens: Vec<u64> = all.iter().skip(1).step_by(2).copied().collect();

    let bad: Vec<usize> = (0..n).filter(|&r| counts[r] == BAD).collect();
    if !bad.is_empty() {
        return Err(Error::Other(format!(
            "sparse exchange: ranks {bad:?} passed mismatched index/value lengths or an index outside the {dense_len}-element gradient"
        )));
    }
    if lens.iter().any(|&l| l != dense_len as u64) {
        return Err(Error::Other(format!("sparse exchange: dense buffer lengths differ across ranks ({lens:?}); expected one length")));
    }
    let total: u64 = counts.iter().sum();
    if total > i32::MAX as u64 {
        return Err(Error::Other(format!(
            "sparse exchange: {total} gathered pairs exceed MPI's count limit of {}",
            i32::MAX
        )));
    }
    let displs: Vec<usize> = counts.iter().scan(0usize, |acc, &c| {
        let d = *acc;
        *acc += c as usize;
        Some(d)
    }).collect();
    let mut words = vec![0u64; total as usize];
    if total > 0 {
        let send: Vec<u64> = idx.par_iter().zip(val.par_iter()).map(|(&i, &v)| pack(i, v)).collect();
        if counts.iter().all(|&c| c == counts[0]) {
            world.comm().all_gather_into(&send[..], &mut words[..]);
        } else {
            let c32: Vec<mpi::Count> = counts.iter().map(|&c| c as mpi::Count).collect();
            let d32: Vec<mpi::Count> = displs.iter().map(|&d| d as mpi::Count).collect();
            let mut part = mpi::datatype::PartitionMut::new(&mut words[..], &c32[..], &d32[..]);
            world.comm().all_gather_varcount_into(&send[..], &mut part);
        }
    }
    Ok(Gathered { counts, words, displs })
}

/// dense = 0, then dense[i] += v for every rank's pairs, rank by rank. When each rank's indices are
/// ascending the dense buffer is cut into blocks handled in parallel: each block takes, rank by
/// rank, the run of pairs that falls inside it (found by binary search), so every element still
/// sees its additions in rank order and the result equals the sequential one bit for bit.
fn scatter_add(parts: &[&[u64]], dense: &mut [f32]) {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let sorted = parts
        .iter()
        .all(|p| p.windows(2).all(|w| w[0] >> 32 <= w[1] >> 32));
    if total < PAR_MIN_PAIRS || !sorted {
        dense.fill(0.0);
        for words in parts {
            for &w in words.iter() {
                let (i, v) = unpack(w);
                dense[i] += v;
            }
        }
        return;
    }
    dense
        .par_chunks_mut(SCATTER_BLOCK)
        .enumerate()
        .for_each(|(b, block)| {
            block.fill(0.0);
            let lo = b * SCATTER_BLOCK;
            let hi = lo + block.len();
            for words in parts {
                let s = words.partition_point(|&w| ((w >> 32) as usize) < lo);
                let e = words.partition_point(|&w| ((w >> 32) as usize) < hi);
                for &w in &words[s..e] {
                    let (i, v) = unpack(w);
                    block[i - lo] += v;
                }
            }
        });
}

/// AR-Topk (the authors' rotating-root variant): the root for this step, `step mod N`, broadcasts
/// its own top-k indices J (`local_idx` on the root; ignored elsewhere), every rank gathers its own
/// accumulated values `acc[J]`, and one SUM allreduce of |J| values aggregates them. On return
/// `dense` is zero except at J, where it holds Σ_ranks acc_r[j]; the function returns J.
///
/// `acc` is the vector each rank compresses: a = g + residual under error feedback (see
/// `ErrorFeedback::accumulated`). Residual semantics: each rank then commits `commit_sparse(&J)`,
/// i.e. keeps residual_r = a_r with the positions in J zeroed. A rank's own large entries that the
/// root did not pick stay in its residual and compete again next step; nothing is lost.
///
/// Errors (the same on every rank): an index of the root outside `acc`, or `acc`/`dense` lengths
/// that differ within or across ranks.
pub fn ar_topk_allreduce(
    world: &World,
    step: u64,
    local_idx: &[u32],
    acc: &[f32],
    dense: &mut [f32],
) -> Result<Vec<u32>> {
    let n = world.size();
    let root = (step % n as u64) as usize;
    let is_root = world.rank() == root;
    let local_ok = acc.len() == dense.len()
        && (!is_root || local_idx.iter().all(|&i| (i as usize) < acc.len()));
    let mine = [u64::from(local_ok), acc.len() as u64];
    let mut all = vec![0u64; 2 * n];
    world.comm().all_gather_into(&mine[..], &mut all[..]);
    let bad: Vec<usize> = (0..n).filter(|&r| all[2 * r] == 0).collect();
    if !bad.is_empty() {
        return Err(Error::Other(format!(
            "AR-Topk: ranks {bad:?} have gradient/output lengths that differ or root indices outside the gradient"
        )));
    }
    if (0..n).any(|r| all[2 * r + 1] != acc.len() as u64) {
        return Err(Error::Other(
            "AR-Topk: gradient lengths differ across ranks; expected one length".into(),
        ));
    }

    let root_proc = world.comm().process_at_rank(root as mpi::Rank);
    let mut k = if is_root { local_idx.len() as u64 } else { 0 };
    root_proc.broadcast_into(&mut k);
    if k > i32::MAX as u64 {
        return Err(Error::Other(format!(
            "AR-Topk: root selected {k} indices, above MPI's count limit of {}",
            i32::MAX
        )));
    }
    let mut chosen = if is_root {
        local_idx.to_vec()
    } else {
        vec![0u32; k as usize]
    };
    if k > 0 {
        root_proc.broadcast_into(&mut chosen[..]);
    }
    let mut vals: Vec<f32> = chosen.iter().map(|&i| acc[i as usize]).collect();
    world.allreduce_sum_f32(&mut vals);
    dense.par_iter_mut().for_each(|d| *d = 0.0);
    // Assignment, not addition: a repeated root index carries the same sum twice.
    for (&i, &v) in chosen.iter().zip(&vals) {
        dense[i as usize] = v;
    }
    Ok(chosen)
}
