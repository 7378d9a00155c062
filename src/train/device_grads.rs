//! The aggregation's data side on the GPU ([`GradSide`] for the GPU engine): the gradient and the
//! error-feedback residual stay on the device, and a compressed step moves only its pairs.
//!
//! | step | over PCIe |
//! |---|---|
//! | dense (no compression, warm-up, or the adaptive rule says dense) | the gradient, both ways (pinned staging around the allreduce, the copy of each 16 MB chunk overlapping the allreduce of the one before); nothing with a CUDA-aware MPI, which reduces the device buffer itself |
//! | top-k, exact allgather | this rank's k pairs down, every rank's pairs up |
//! | top-k, AR-Topk | the accumulated gradient down, the aggregate up (as a dense step) |
//!
//! A compressed step runs scale (Eq. 4a), residual accumulation, the radix top-k of every scope
//! at once (`backend::cuda::segtopk`) and the norms the adaptive rule needs as kernels, downloads
//! the selection, exchanges it with MPI, and scatter-adds every rank's pairs into the zeroed
//! gradient one rank after another, so the sums at shared indices are formed in rank order as on
//! the host and every rank ends with the same bits. The arithmetic is the host's ([`crate::compress::ErrorFeedback`]): g·r_i rounded, then
//! a = residual + g rounded once, so a GPU run selects what a CPU run given the same gradient would.
//! Under `--criterion code` a dense step allreduces the raw g (the residual accumulation writes
//! only the residual buffer) and zeroes the step's selection in the residual from the indices
//! still on the device, as the host's `ErrorFeedback::commit_dense_raw` does.
use super::grads::GradSide;
use crate::backend::cuda::segtopk::SegmentPlan;
use crate::backend::cuda::CudaBackend;
use crate::compress::{k_for, CompressStats, Criterion};
use crate::dist::{sparse, World};
use crate::error::Result;
use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, PinnedHostSlice};
use std::ops::Range;

/// Values per chunk of a dense step's staged exchange (16 MB): large enough for full-speed copies
/// and efficient allreduces, small enough that a ResNet-152 gradient pipelines over 15 chunks.
const STAGE_CHUNK: usize = 1 << 22;

/// Device buffers of the compressed steps, made at the first one and kept for the run.
#[derive(Default)]
pub struct DeviceCompression {
    /// The residual between steps; a = g + residual while a step is pending. `None` until the first
    /// compressed step, and always without error feedback.
    residual: Option<CudaSlice<f32>>,
    /// The selection of the pending step, scope after scope (global indices).
    idx: Option<CudaSlice<u32>>,
    val: Option<CudaSlice<f32>>,
    /// The segmented top-k over the scopes (made at the first compressed step, remade if the
    /// scopes or their k change).
    plan: Option<SegmentPlan>,
    pending: bool,
}

/// The GPU engine's gradient (`g`, the network's flat gradient buffer) with its pinned staging
/// buffer and compression state, for one call of `Aggregator::aggregate_on`.
pub struct DeviceGrads<'a> {
    pub be: &'a CudaBackend,
    pub g: CudaViewMut<'a, f32>,
    pub staging: &'a mut PinnedHostSlice<f32>,
    pub comp: &'a mut DeviceCompression,
    /// Error feedback on (the residual is kept).
    pub feedback: bool,
    /// The MPI library takes device pointers: dense steps allreduce the gradient where it is.
    pub cuda_aware: bool,
}

/// A device buffer of at least `len` values, reusing `slot` when it is large enough.
fn ensure<T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits>(
    be: &CudaBackend,
    slot: &mut Option<CudaSlice<T>>,
    len: usize,
) -> Result<()> {
    if slot.as_ref().is_none_or(|s| s.len() < len.max(1)) {
        *slot = Some(be.zeros(len.max(1))?);
    }
    Ok(())
}

/// The accumulated gradient a of the pending step: the residual buffer with feedback on, g itself
/// without.
fn accumulated<'v>(
    g: &'v CudaViewMut<'_, f32>,
    residual: &'v Option<CudaSlice<f32>>,
    feedback: bool,
) -> CudaView<'v, f32> {
    match residual {
        Some(r) if feedback => r.slice(..g.len()),
        _ => g.as_view(),
    }
}

impl DeviceGrads<'_> {
    /// Pinned staging → device (queued ahead of the SGD kernel).
    fn stage_up(&mut self) -> Result<()> {
        self.be.stage_from_host(self.staging, &mut self.g)
    }
}

impl GradSide for DeviceGrads<'_> {
    fn num_elements(&self) -> usize {
        self.g.len()
    }

    fn scale(&mut self, w: f32) -> Result<()> {
        self.be.scale_inplace(w, &mut self.g)
    }

    fn select(
        &mut self,
        scopes: &[Range<usize>],
        cr: f64,
        stats: Option<Criterion>,
        idx: &mut Vec<u32>,
        val: &mut Vec<f32>,
    ) -> Result<CompressStats> {
        let (be, n) = (self.be, self.g.len());
        if self.comp.pending {
            crate::bail!(Cuda, "top-k select called again before the previous step was committed (sparse or dense)");
        }
        if scopes.last().map_or(n != 0, |r| r.end != n) {
            crate::bail!(Cuda, "top-k scopes do not cover the {n}-element gradient");
        }
        if self.feedback {
            if self.comp.residual.is_none() {
                self.comp.residual = Some(be.zeros(n.max(1))?);
            }
            let g = self.g.as_view();
            let r = self.comp.residual.as_mut().expect("made above");
            be.axpy(1.0, &g, &mut r.slice_mut(..n))?;
        }
        let ks: Vec<usize> = scopes.iter().map(|r| k_for(r.len(), cr)).collect();
        if !self
            .comp
            .plan
            .as_ref()
            .is_some_and(|p| p.matches(scopes, &ks))
        {
            self.comp.plan = Some(SegmentPlan::new(be, scopes, &ks)?);
        }
        let plan = self.comp.plan.as_mut().expect("made above");
        let total_k = plan.total_k();
        ensure(be, &mut self.comp.idx, total_k)?;
        ensure(be, &mut self.comp.val, total_k)?;
        let a = accumulated(&self.g, &self.comp.residual, self.feedback);
        let (di, dv) = (
            self.comp.idx.as_mut().expect("ensured"),
            self.comp.val.as_mut().expect("ensured"),
        );
        be.segmented_topk(
            plan,
            &a,
            &mut di.slice_mut(..total_k),
            &mut dv.slice_mut(..total_k),
        )?;
        // ‖·‖² per scope of what the criterion measures: a for the paper form, the raw g (which
        // the residual accumulation above left as it was) for the code form.
        let norms = match stats {
            Some(Criterion::Paper) => {
                be.segmented_sumsq(plan, &a)?;
                plan.segment_sums(&be.segmented_partials(plan)?)
            }
            Some(Criterion::Code) => {
                be.segmented_sumsq(plan, &self.g.as_view())?;
                plan.segment_sums(&be.segmented_partials(plan)?)
            }
            None => Vec::new(),
        };
        let h_idx = be.download(&di.slice(..total_k))?;
        let h_val = be.download(&dv.slice(..total_k))?;
        idx.extend_from_slice(&h_idx);
        val.extend_from_slice(&h_val);
        let mut st = CompressStats {
            len: n,
            k: total_k,
            ..Default::default()
        };
        if let Some(criterion) = stats {
            for (s, &k) in ks.iter().enumerate() {
                let o = plan.out_offset(s);
                let topk_sq: f64 = h_val[o..o + k]
                    .iter()
                    .map(|&v| f64::from(v) * f64::from(v))
                    .sum();
                st.topk_norm_sq += topk_sq;
                st.topk_scope_norm_sum += topk_sq.sqrt();
                match criterion {
                    Criterion::Paper => {
                        st.norm_sq += norms[s];
                        st.scope_norm_sum += norms[s].sqrt();
                    }
                    Criterion::Code => st.raw_scope_norm_sum += norms[s].sqrt(),
                }
            }
        }
        self.comp.pending = true;
        Ok(st)
    }

    fn commit_sparse(&mut self, sent: &[u32]) -> Result<()> {
        if !self.comp.pending {
            crate::bail!(Cuda, "sparse commit without a pending top-k select");
        }
        if self.feedback && !sent.is_empty() {
            let n = self.g.len();
            if let Some(&bad) = sent.iter().find(|&&i| i as usize >= n) {
                crate::bail!(
                    Cuda,
                    "sent index {bad} is outside the gradient of {n} elements"
                );
            }
            let d = self.be.upload(sent)?;
            let r = self
                .comp
                .residual
                .as_mut()
                .expect("a pending step with feedback has a residual");
            self.be.scatter_zero(&d.slice(..), &mut r.slice_mut(..n))?;
        }
        self.comp.pending = false;
        Ok(())
    }

    fn commit_dense_raw(&mut self, selected: &[u32]) -> Result<()> {
        if !self.comp.pending {
            crate::bail!(Cuda, "dense commit without a pending top-k select");
        }
        let total_k = self.comp.plan.as_ref().map_or(0, SegmentPlan::total_k);
        if !self.feedback || selected.len() != total_k || total_k == 0 {
            // Not this step's own selection (or nothing to zero): the general path.
            return self.commit_sparse(selected);
        }
        // The selection is still on the device, where `select` left it: zero it in the residual
        // without uploading it again. g stays the raw gradient.
        let n = self.g.len();
        let di = self
            .comp
            .idx
            .as_ref()
            .expect("a pending step has its selection");
        let r = self
            .comp
            .residual
            .as_mut()
            .expect("a pending step with feedback has a residual");
        self.be
            .scatter_zero(&di.slice(..total_k), &mut r.slice_mut(..n))?;
        self.comp.pending = false;
        Ok(())
    }

    fn commit_dense(&mut self) -> Result<()> {
        if !self.comp.pending {
            crate::bail!(Cuda, "dense commit without a pending top-k select");
        }
        if self.feedback {
            let (be, n) = (self.be, self.g.len());
            let r = self
                .comp
                .residual
                .as_mut()
                .expect("a pending step with feedback has a residual");
            be.copy(&r.slice(..n), &mut self.g)?;
            be.fill_zero(&mut r.slice_mut(..n))?;
        }
        self.comp.pending = false;
        Ok(())
    }

    fn allreduce(&mut self, world: &World) -> Result<()> {
        if self.cuda_aware {
            // MPI reads and writes the buffer outside this stream: everything queued must be done.
            self.be.synchronize()?;
            let n = self.g.len();
            let (ptr, _record) =
                cudarc::driver::DevicePtrMut::device_ptr_mut(&mut self.g, self.be.stream());
            // SAFETY: `ptr` is this view's `len` f32s of device memory, held mutably for the call
            // with no work queued on it; the library reported CUDA support (`mpi_cuda_support`).
            unsafe { world.allreduce_sum_f32_device(ptr, n) };
            return Ok(());
        }
        // Chunk by chunk, so that the copy of the next chunk overlaps the allreduce of this one.
        self.be
            .stage_to_host_chunked(&self.g.as_view(), self.staging, STAGE_CHUNK, |part| {
                world.allreduce_sum_f32(part);
                Ok(())
            })?;
        self.stage_up()
    }

    fn allgather_add(&mut self, world: &World, idx: &[u32], val: &[f32]) -> Result<Vec<u64>> {
        let (be, n) = (self.be, self.g.len());
        let gathered = sparse::sparse_allgather(world, idx, val, n)?;
        let (all_idx, all_val) = gathered.unpacked();
        be.fill_zero(&mut self.g)?;
        if !all_idx.is_empty() {
            let (di, dv) = (be.upload(&all_idx)?, be.upload(&all_val)?);
            // One launch per rank: a rank's indices are distinct, so within a launch no two
            // additions meet, and across launches the stream orders them by rank.
            for (r, &c) in gathered.counts.iter().enumerate() {
                let (s, e) = (gathered.offset(r), gathered.offset(r) + c as usize);
                be.scatter_add(&di.slice(s..e), &dv.slice(s..e), 1.0, &mut self.g)?;
            }
        }
        Ok(gathered.counts)
    }

    fn ar_topk(&mut self, world: &World, step: u64, idx: &[u32]) -> Result<Vec<u32>> {
        let n = self.g.len();
        // The accumulated gradient a goes to the host.
        self.be.stage_to_host(
            &accumulated(&self.g, &self.comp.residual, self.feedback),
            self.staging,
        )?;
        let mut dense = vec![0.0f32; n];
        let j = sparse::ar_topk_allreduce(
            world,
            step,
            idx,
            self.be.pinned_host(self.staging)?,
            &mut dense,
        )?;
        self.be.pinned_host(self.staging)?.copy_from_slice(&dense);
        self.stage_up()?;
        Ok(j)
    }
}
