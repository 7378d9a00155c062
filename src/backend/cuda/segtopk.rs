//! Top-k by magnitude in every segment of one device buffer, all segments in one launch sequence
//! (`kernels/topk.cu`, `topk_seg_*`): the per-layer scope of top-k compression, where a ResNet-152
//! has 465 parameter tensors and one radix select per tensor would take thousands of launches per
//! step. A [`SegmentPlan`] is made once per run (segments and k per segment are fixed): the block
//! table, the initial radix states and the scratch buffers live on the device.
//!
//! Per call: the initial states are copied in, four radix passes (histogram per block into each
//! segment's 256 bins, then one pick per segment), the per-block counts, one exclusive scan over all
//! blocks, and the compaction, which writes segment s's k_s pairs (global indices, increasing) at
//! the segment's output offset. The result equals one `CudaBackend::topk` per segment in turn.
use std::ops::Range;

use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, LaunchConfig, PushKernelArg};

use super::kernels::Family;
use super::ops::{check_len, drv, per_row, u32_of, CudaBackend, BLOCK, TOPK_CHUNK};
use super::params::{SegParams, TopkParams};
use crate::error::Result;

/// The blocks of the segmented kernels: block b covers `start[b] .. min(start[b] + chunk, end of
/// segment seg[b])`; blocks never straddle a segment and come in segment order. `first[s]` is the
/// first block of segment s (for an empty segment, the index its first block would have).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockTable {
    pub seg: Vec<u32>,
    pub start: Vec<u32>,
    pub first: Vec<u32>,
}

/// The block table of `segments` (consecutive, in order) for blocks of at most `chunk` values.
pub fn block_table(segments: &[Range<usize>], chunk: usize) -> BlockTable {
    let mut t = BlockTable::default();
    for (s, r) in segments.iter().enumerate() {
        t.first.push(t.seg.len() as u32);
        let mut at = r.start;
        while at < r.end {
            t.seg.push(s as u32);
            t.start.push(at as u32);
            at += chunk;
        }
    }
    t
}

/// Device state of the segmented top-k over fixed segments with fixed k per segment.
pub struct SegmentPlan {
    segments: Vec<Range<usize>>,
    ks: Vec<usize>,
    table: BlockTable,
    /// Where segment s's pairs start in the output (Σ_{s' < s} k_s').
    out_offsets: Vec<usize>,
    d_seg: CudaSlice<u32>,
    d_start: CudaSlice<u32>,
    d_bounds: CudaSlice<u32>,
    d_out: CudaSlice<u32>,
    d_first: CudaSlice<u32>,
    init_state: CudaSlice<u32>,
    state: CudaSlice<u32>,
    hist: CudaSlice<u32>,
    counts: CudaSlice<u32>,
    partials: CudaSlice<f64>,
}

impl SegmentPlan {
    /// A plan for `segments` (consecutive, tiling `0..end`) keeping `ks[s]` ≤ segment length values
    /// of segment s.
    pub fn new(be: &CudaBackend, segments: &[Range<usize>], ks: &[usize]) -> Result<Self> {
        check_len("segmented top-k: k per segment", ks.len(), segments.len())?;
        let mut next = segments.first().map_or(0, |r| r.start);
        for (s, (r, &k)) in segments.iter().zip(ks).enumerate() {
            if r.start != next || r.end < r.start {
                crate::bail!(Cuda, "segmented top-k: segment {s} is {}..{}, expected it to start at {next}", r.start, r.end);
            }
            if k > r.len() {
                crate::bail!(Cuda, "segmented top-k: segment {s} keeps {k} of {} values", r.len());
            }
            next = r.end;
        }
        u32_of("segmented top-k: buffer length", next)?;
        let table = block_table(segments, TOPK_CHUNK as usize);
        let mut bounds: Vec<u32> = segments.iter().map(|r| r.start as u32).collect();
        bounds.push(next as u32);
        let out_offsets: Vec<usize> = ks.iter().scan(0usize, |acc, &k| {
            let o = *acc;
            *acc += k;
            Some(o)
        }).collect();
        let out32: Vec<u32> = out_offsets.iter().map(|&o| o as u32).collect();
        let init: Vec<u32> = ks.iter().flat_map(|&k| [0u32, 0, k as u32, 0]).collect();
        let nb = table.seg.len();
        // Device buffers are never empty (a zero-length allocation is not a valid pointer).
        let up = |v: &[u32]| if v.is_empty() { be.zeros::<u32>(1) } else { be.upload(v) };
        Ok(SegmentPlan {
            d_seg: up(&table.seg)?,
            d_start: up(&table.start)?,
            d_bounds: up(&bounds)?,
            d_out: up(&out32)?,
            d_first: up(&table.first)?,
            init_state: up(&init)?,
            state: be.zeros(init.len().max(1))?,
            hist: be.zeros((256 * segments.len()).max(1))?,
            counts: be.zeros((2 * nb).max(1))?,
            partials: be.zeros(nb.max(1))?,
            segments: segments.to_vec(),
            ks: ks.to_vec(),
            table,
            out_offsets,
        })
    }

    /// Total pairs selected (Σ k_s).
    pub fn total_k(&self) -> usize {
        self.ks.iter().sum()
    }

    /// Where segment s's pairs start in the output of [`CudaBackend::segmented_topk`].
    pub fn out_offset(&self, s: usize) -> usize {
        self.out_offsets[s]
    }

    /// Whether this plan was made for `segments` and `ks`.
    pub fn matches(&self, segments: &[Range<usize>], ks: &[usize]) -> bool {
        self.segments == segments && self.ks == ks
    }

    fn params(&self, shift: u32) -> SegParams {
        SegParams { nseg: self.segments.len() as u32, nblocks: self.table.seg.len() as u32, chunk: TOPK_CHUNK, shift }
    }

    fn blocks(&self) -> LaunchConfig {
        LaunchConfig { grid_dim: (self.table.seg.len() as u32, 1, 1), block_dim: (BLOCK, 1, 1), shared_mem_bytes: 0 }
    }

    /// ‖x_s‖² per segment from the partial sums of [`CudaBackend::segmented_sumsq`] (downloaded),
    /// each a sum of its blocks' partials in block order.
    pub fn segment_sums(&self, partials: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0f64; self.segments.len()];
        for (b, &s) in self.table.seg.iter().enumerate() {
            out[s as usize] += partials[b];
        }
        out
    }
}

impl CudaBackend {
    /// Segment s's `ks[s]` largest |x| as (global index, value) pairs in increasing index order
    /// (lower index first among equal magnitudes) at `idx`/`val[out_offset(s) ..]`; queued on the
    /// stream. `x` must span the plan's segments, `idx`/`val` hold `total_k` values.
    pub fn segmented_topk(
        &self,
        plan: &mut SegmentPlan,
        x: &CudaView<'_, f32>,
        idx: &mut CudaViewMut<'_, u32>,
        val: &mut CudaViewMut<'_, f32>,
    ) -> Result<()> {
        let end = plan.segments.last().map_or(0, |r| r.end);
        check_len("segmented top-k input", x.len(), end)?;
        check_len("segmented top-k indices", idx.len(), plan.total_k())?;
        check_len("segmented top-k values", val.len(), plan.total_k())?;
        let nb = plan.table.seg.len();
        if nb == 0 || plan.total_k() == 0 {
            return Ok(());
        }
        let nseg = plan.segments.len();
        let blocks = plan.blocks();
        self.copy(&plan.init_state.slice(..4 * nseg), &mut plan.state.slice_mut(..4 * nseg))?;
        self.fill_zero(&mut plan.hist.slice_mut(..256 * nseg))?;
        let hist_f = self.function(Family::Topk, "topk_seg_hist")?;
        let pick_f = self.function(Family::Topk, "topk_seg_pick")?;
        for shift in [24u32, 16, 8, 0] {
            let p = plan.params(shift);
            let mut l = self.stream().launch_builder(&hist_f);
            l.arg(&p).arg(x).arg(&plan.d_seg).arg(&plan.d_start).arg(&plan.d_bounds).arg(&plan.state).arg(&mut plan.hist);
            // SAFETY: matches topk_seg_hist(SegParams, const float*, const u32* blk_seg, const u32*
            // blk_start, const u32* seg_bounds, const u32* state, u32* hist): nblocks table entries,
            // nseg+1 bounds within x (checked), 4*nseg state and 256*nseg bins.
            drv("topk_seg_hist", unsafe { l.launch(blocks) })?;
            let mut l = self.stream().launch_builder(&pick_f);
            l.arg(&p).arg(&mut plan.hist).arg(&mut plan.state);
            // SAFETY: matches topk_seg_pick(SegParams, u32* hist, u32* state); block s < nseg
            // touches hist[256s..256s+256) and state[4s..4s+4).
            drv("topk_seg_pick", unsafe { l.launch(per_row(nseg)) })?;
        }
        let p = plan.params(0);
        let f = self.function(Family::Topk, "topk_seg_count")?;
        let mut l = self.stream().launch_builder(&f);
        l.arg(&p).arg(x).arg(&plan.d_seg).arg(&plan.d_start).arg(&plan.d_bounds).arg(&plan.state).arg(&mut plan.counts);
        // SAFETY: matches topk_seg_count(SegParams, const float*, const u32*, const u32*, const u32*,
        // const u32* state, u32* counts); block b writes counts[2b..2b+2) (2*nblocks allocated).
        drv("topk_seg_count", unsafe { l.launch(blocks) })?;
        let sp = TopkParams { len: 0, k: 0, shift: 0, chunk: 0, nblocks: u32_of("segmented top-k blocks", nb)? };
        let f = self.function(Family::Topk, "topk_scan")?;
        let mut l = self.stream().launch_builder(&f);
        l.arg(&sp).arg(&mut plan.counts);
        // SAFETY: matches topk_scan(TopkParams, u32*); one block of 1024 threads over nblocks pairs.
        drv("topk_scan", unsafe { l.launch(LaunchConfig { grid_dim: (1, 1, 1), block_dim: (1024, 1, 1), shared_mem_bytes: 0 }) })?;
        let f = self.function(Family::Topk, "topk_seg_compact")?;
        let mut l = self.stream().launch_builder(&f);
        l.arg(&p)
            .arg(x)
            .arg(&plan.d_seg)
            .arg(&plan.d_start)
            .arg(&plan.d_bounds)
            .arg(&plan.d_out)
            .arg(&plan.d_first)
            .arg(&plan.state)
            .arg(&plan.counts)
            .arg(idx)
            .arg(val);
        // SAFETY: matches topk_seg_compact(SegParams, const float*, blk_seg, blk_start, seg_bounds,
        // seg_out, seg_first, state, offsets, u32* out_idx, float* out_val); segment s writes exactly
        // k_s pairs at distinct positions in [out_offset(s), out_offset(s) + k_s) ⊂ [0, total_k).
        drv("topk_seg_compact", unsafe { l.launch(blocks) }).map(|_| ())
    }

    /// Per-block sums of x² in f64 into the plan's partials (queued); download them with
    /// [`Self::segmented_partials`] and reduce with [`SegmentPlan::segment_sums`].
    pub fn segmented_sumsq(&self, plan: &mut SegmentPlan, x: &CudaView<'_, f32>) -> Result<()> {
        let end = plan.segments.last().map_or(0, |r| r.end);
        check_len("segmented sum of squares input", x.len(), end)?;
        if plan.table.seg.is_empty() {
            return Ok(());
        }
        let (p, blocks) = (plan.params(0), plan.blocks());
        let f = self.function(Family::Topk, "topk_seg_sumsq")?;
        let mut l = self.stream().launch_builder(&f);
        l.arg(&p).arg(x).arg(&plan.d_seg).arg(&plan.d_start).arg(&plan.d_bounds).arg(&mut plan.partials);
        // SAFETY: matches topk_seg_sumsq(SegParams, const float*, const u32*, const u32*, const u32*,
        // double*); block b reads its range of x and writes partials[b] (nblocks allocated).
        drv("topk_seg_sumsq", unsafe { l.launch(blocks) }).map(|_| ())
    }

    /// The partial sums of the last [`Self::segmented_sumsq`] (waits for the stream).
    pub fn segmented_partials(&self, plan: &SegmentPlan) -> Result<Vec<f64>> {
        let nb = plan.table.seg.len();
        if nb == 0 {
            return Ok(Vec::new());
        }
        self.download(&plan.partials.slice(..nb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_table_cuts_segments_into_chunks_without_straddling() {
        let segs = [0..5, 5..5, 5..17, 17..18];
        let t = block_table(&segs, 4);
        assert_eq!(t.seg, vec![0, 0, 2, 2, 2, 3]);
        assert_eq!(t.start, vec![0, 4, 5, 9, 13, 17]);
        // The empty segment's first block is where its blocks would begin.
        assert_eq!(t.first, vec![0, 2, 2, 5]);
        // Every value lies in exactly one block, inside its own segment.
        let mut covered = vec![0u32; 18];
        for (b, (&s, &st)) in t.seg.iter().zip(&t.start).enumerate() {
            let r = &segs[s as usize];
            let end = (st as usize + 4).min(r.end);
            assert!(r.start <= st as usize && end <= r.end, "block {b}");
            (st as usize..end).for_each(|i| covered[i] += 1);
        }
        assert!(covered.iter().all(|&c| c == 1), "{covered:?}");
        assert_eq!(block_table(&[], 4), BlockTable::default());
    }
}
