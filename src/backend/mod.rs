//! Compute backends: the CPU backend (always built) and the CUDA backend (dynamically loaded).
pub mod cpu;
pub mod cuda;
