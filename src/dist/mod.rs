//! The MPI layer: one `World` per process, dense weighted aggregation, sparse exchange, data
//! injection. Every collective here is entered by every rank in the same order, including ranks
//! whose batch is empty (they contribute zeros), so variable batches never desynchronise ranks.
use mpi::collective::SystemOperation;
use mpi::datatype::{Partition, PartitionMut};
use mpi::Count;
use mpi::raw::AsRaw;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;
use std::sync::OnceLock;

pub mod inject;
pub mod sparse;

static UNIVERSE: OnceLock<Option<mpi::environment::Universe>> = OnceLock::new();

/// Whether the MPI library takes GPU memory in its collectives (CUDA-aware). The environment decides
/// when `SCADLES_CUDA_AWARE_MPI` is `1` or `0`; otherwise the library's own
/// `MPIX_Query_cuda_support()` (Open MPI ≥ 2, MPICH ≥ 4), looked up at run time so that any MPI
/// links, answers after `MPI_Init`; a library without it is taken as not CUDA-aware.
pub fn mpi_cuda_support() -> bool {
    match std::env::var("SCADLES_CUDA_AWARE_MPI").as_deref() {
        Ok("1") => return true,
        Ok("0") => return false,
        _ => {}
    }
    // SAFETY: dlsym on the global namespace with a NUL-terminated name; the symbol, when present,
    // is `int MPIX_Query_cuda_support(void)`, callable any time after MPI_Init.
    unsafe {
        let f = libc::dlsym(libc::RTLD_DEFAULT, c"MPIX_Query_cuda_support".as_ptr());
        if f.is_null() {
            return false;
        }
        let query: extern "C" fn() -> std::ffi::c_int = std::mem::transmute(f);
        query() != 0
    }
}

/// The process's MPI world. Cheap to clone (a communicator handle).
pub struct World {
    comm: SimpleCommunicator,
    in_place: *mut std::ffi::c_void,
}

// SAFETY: the communicator handle is only used from the thread that owns the World; MPI is
// initialised with MPI_THREAD_MULTIPLE so concurrent use from test threads is also allowed.
unsafe impl Send for World {}
unsafe impl Sync for World {}

impl World {
    /// Initialises MPI once per process (works under mpirun and as a singleton).
    pub fn init() -> World {
        let u = UNIVERSE.get_or_init(|| mpi::initialize_with_threading(mpi::Threading::Multiple).map(|(u, _)| u));
        let comm = match u {
            Some(u) => u.world(),
            None => SimpleCommunicator::world(),
        };
        let lib = mpi::environment::library_version().unwrap_or_default();
        // MPI_IN_PLACE is ((void*)1) in Open MPI and ((void*)-1) in MPICH-derived libraries.
        #[allow(clippy::manual_dangling_ptr)] // a sentinel address, never dereferenced
        let in_place = if lib.contains("Open MPI") { 1usize as *mut _ } else { usize::MAX as *mut _ };
        World { comm, in_place }
    }

    pub fn rank(&self) -> usize {
        self.comm.rank() as usize
    }

    pub fn size(&self) -> usize {
        self.comm.size() as usize
    }

    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    pub fn comm(&self) -> &SimpleCommunicator {
        &self.comm
    }

    /// The MPI library's own name and version, NULs stripped.
    pub fn library_version() -> String {
        mpi::environment::library_version().unwrap_or_default().trim_end_matches('\0').trim().to_string()
    }

    /// In-place SUM allreduce of an f32 buffer (no second copy of a 60M-element gradient).
    pub fn allreduce_sum_f32(&self, buf: &mut [f32]) {
        if self.size() == 1 || buf.is_empty() {
            return;
        }
        for chunk in buf.chunks_mut(i32::MAX as usize / 2) {
            // SAFETY: the buffer is valid for chunk.len() f32s; MPI_IN_PLACE is this library's
            // sentinel; every rank calls this with the same length in the same order.
            unsafe {
                mpi::ffi::MPI_Allreduce(
                    self.in_place,
                    chunk.as_mut_ptr() as *mut _,
                    chunk.len() as i32,
                    mpi::ffi::RSMPI_FLOAT,
                    mpi::ffi::RSMPI_SUM,
                    self.comm.as_raw(),
                );
            }
        }
    }

    /// In-place SUM allreduce of `len` f32 values in GPU memory at `ptr`, for an MPI library that
    /// accepts device pointers ([`mpi_cuda_support`]).
    ///
    /// # Safety
    /// `ptr` must point to `len` f32 values of device memory that stay allocated and untouched by
    /// queued GPU work for the duration of the call (synchronise the stream first), and the MPI
    /// library must be CUDA-aware.
    pub unsafe fn allreduce_sum_f32_device(&self, ptr: u64, len: usize) {
        if self.size() == 1 || len == 0 {
            return;
        }
        let step = i32::MAX as usize / 2;
        let mut off = 0;
        while off < len {
            let n = step.min(len - off);
            // SAFETY: the caller's contract; every rank calls this with the same length in order.
            unsafe {
                mpi::ffi::MPI_Allreduce(
                    self.in_place,
                    (ptr as usize + off * 4) as *mut _,
                    n as i32,
                    mpi::ffi::RSMPI_FLOAT,
                    mpi::ffi::RSMPI_SUM,
                    self.comm.as_raw(),
                );
            }
            off += n;
        }
    }

    /// True on every rank when `local` is true on every rank.
    pub fn all(&self, local: bool) -> bool {
        !self.any(!local)
    }

    /// SUM allreduce of a few f64 values.
    pub fn allreduce_sum_f64(&self, vals: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; vals.len()];
        self.comm.all_reduce_into(vals, &mut out[..], SystemOperation::sum());
        out
    }

    /// MAX allreduce of a few f64 values.
    pub fn allreduce_max_f64(&self, vals: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; vals.len()];
        self.comm.all_reduce_into(vals, &mut out[..], SystemOperation::max());
        out
    }

    /// MIN allreduce of a few f64 values.
    pub fn allreduce_min_f64(&self, vals: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; vals.len()];
        self.comm.all_reduce_into(vals, &mut out[..], SystemOperation::min());
        out
    }

    /// SUM allreduce of u64 counters.
    pub fn allreduce_sum_u64(&self, vals: &[u64]) -> Vec<u64> {
        let mut out = vec![0u64; vals.len()];
        self.comm.all_reduce_into(vals, &mut out[..], SystemOperation::sum());
        out
    }

    /// Gathers one f64 from every rank onto every rank (index = rank).
    pub fn allgather_f64(&self, v: f64) -> Vec<f64> {
        let mut out = vec![0.0; self.size()];
        self.comm.all_gather_into(&v, &mut out[..]);
        out
    }

    /// Gathers one u64 from every rank onto every rank (index = rank).
    pub fn allgather_u64(&self, v: u64) -> Vec<u64> {
        let mut out = vec![0u64; self.size()];
        self.comm.all_gather_into(&v, &mut out[..]);
        out
    }

    /// Gathers `vals` (the same length on every rank) from every rank: row r of the result is rank r's.
    pub fn allgather_f64s(&self, vals: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; vals.len() * self.size()];
        self.comm.all_gather_into(vals, &mut out[..]);
        out
    }

    /// Personalised exchange of byte messages: `send[r]` goes to rank r; returns what each rank sent
    /// here (index = source rank). Counts travel first (alltoall), then one alltoallv of the bytes.
    pub fn alltoallv_bytes(&self, send: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let p = self.size();
        assert_eq!(send.len(), p, "alltoallv: one message per rank");
        let send_counts: Vec<Count> = send.iter().map(|m| m.len() as Count).collect();
        let mut recv_counts: Vec<Count> = vec![0; p];
        self.comm.all_to_all_into(&send_counts[..], &mut recv_counts[..]);
        let displs = |c: &[Count]| -> Vec<Count> {
            c.iter().scan(0, |acc, &x| {
                let d = *acc;
                *acc += x;
                Some(d)
            }).collect()
        };
        let flat: Vec<u8> = send.concat();
        let sdispl = displs(&send_counts);
        let rdispl = displs(&recv_counts);
        let total: usize = recv_counts.iter().map(|&c| c as usize).sum();
        let mut recv = vec![0u8; total];
        {
            let sp = Partition::new(&flat[..], &send_counts[..], &sdispl[..]);
            let mut rp = PartitionMut::new(&mut recv[..], &recv_counts[..], &rdispl[..]);
            self.comm.all_to_all_varcount_into(&sp, &mut rp);
        }
        (0..p).map(|r| recv[rdispl[r] as usize..(rdispl[r] + recv_counts[r]) as usize].to_vec()).collect()
    }

    /// Gathers one string from every rank onto every rank (index = rank): start-up reports such as
    /// which device each rank opened, or why it could not.
    pub fn allgather_strings(&self, s: &str) -> Vec<String> {
        let send = vec![s.as_bytes().to_vec(); self.size()];
        self.alltoallv_bytes(&send).into_iter().map(|b| String::from_utf8_lossy(&b).into_owned()).collect()
    }

    /// Broadcast of an f32 buffer from rank 0 (BatchNorm running statistics before evaluation).
    pub fn broadcast_f32(&self, buf: &mut [f32]) {
        if self.size() > 1 && !buf.is_empty() {
            self.comm.process_at_rank(0).broadcast_into(buf);
        }
    }

    /// Broadcast of a byte buffer from rank 0 (length must already agree).
    pub fn broadcast_bytes(&self, buf: &mut [u8]) {
        self.comm.process_at_rank(0).broadcast_into(buf);
    }

    pub fn barrier(&self) {
        self.comm.barrier();
    }

    /// Every rank reports whether it failed; returns true on all ranks if any did. Used at
    /// checkpoints (start-up validation) so that one rank's error ends every rank cleanly.
    pub fn any(&self, failed: bool) -> bool {
        self.allreduce_max_f64(&[if failed { 1.0 } else { 0.0 }])[0] > 0.0
    }

    /// Finalises MPI (once; a no-op when MPI was never initialised or already finalised). Call
    /// before leaving `main` so that launchers see an orderly exit.
    pub fn finalize() {
        let mut init = 0;
        let mut fin = 0;
        // SAFETY: MPI_Initialized/MPI_Finalized may be called at any time; MPI_Finalize is called at
        // most once, after all communication of this process has completed.
        unsafe {
            mpi::ffi::MPI_Initialized(&mut init);
            mpi::ffi::MPI_Finalized(&mut fin);
            if init != 0 && fin == 0 {
                mpi::ffi::MPI_Finalize();
            }
        }
    }

    /// Ends every rank of the job with `code` (for errors seen by only some ranks mid-run).
    pub fn abort(&self, code: i32) -> ! {
        self.comm.abort(code)
    }
}
