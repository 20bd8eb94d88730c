//! The wgpu context and the GPU kernels' Rust side (pipelines, buffers).
//!
//! # Brief overview
//! [`GpuContext`] is made once per server: instance, adapter, device, queue, the four
//! compute pipelines (Stockham FFT stage, real-FFT unpack and pack, spectral
//! multiply-accumulate; WGSL in `shaders/`), their bind group layouts, a buffer pool
//! and a cache of impulse-response spectra keyed by content hash.
//!
//! On top of it, [`GpuConvolutionBank`] (reverbs) and [`gpu_fir_bank`] (band split,
//! linear-phase EQ) run uniformly partitioned overlap-save convolution with one command
//! encoder, one submission and one readback per block for every slot at once
//! (see `engine.rs`). They compute exactly what the CPU twins in
//! [`crate::dsp::convolution`] and [`crate::dsp::fir`] compute.
//!
//! Failures (no adapter, validation or allocation errors caught by error scopes, a lost
//! device, the [`GpuContext::inject_failure_after`] test hook) come back as
//! [`Error::Gpu`], never as a panic, so the engine can fall back to the CPU twin.

//!
//! Files: `context.rs` (device, pipelines, pool, cache), `engine.rs` (the shared
//! partitioned-convolution core), `convolution.rs` and `fir.rs` (the banks the engine
//! uses), `test_support.rs` (the context tests share).

mod context;
mod convolution;
mod engine;
mod fir;
mod test_support;

pub use context::GpuContext;
pub(crate) use context::range_entry;
pub use convolution::GpuConvolutionBank;
pub use engine::FilterSet;
pub use fir::gpu_fir_bank;
pub use test_support::test_context;
