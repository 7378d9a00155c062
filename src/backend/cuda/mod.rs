//! CUDA backend: hand-written kernels (`kernels/*.cu`) compiled at run time by NVRTC for the GPU
//! in hand, launched through cudarc with `dynamic-loading`, so the crate builds and runs on
//! machines without CUDA. [`probe`] finds GPUs without panicking and [`select`] resolves
//! `--device auto|cpu|cuda`; [`CudaBackend`] mirrors the CPU ops of `backend::cpu`.
pub mod bench;
pub mod kernels;
pub mod net;
pub mod ops;
pub mod params;
pub mod probe;
pub mod segtopk;

pub use kernels::{compile, ensure_nvrtc, find_nvrtc_dir, Family};
pub use ops::CudaBackend;
pub use probe::{probe, select, Device, DeviceChoice};
