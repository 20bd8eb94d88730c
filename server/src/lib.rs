//! Bounce's server library: the render engine and the gRPC service.
//!
//! # Brief overview
//! - [`session`]: the session model of CONTRACT.md, parsing and validation (the one
//!   place that says "no").
//! - [`audio`]: decode (symphonia), resample (rubato), encode (WAV, FLAC).
//! - [`dsp`]: CPU processors (biquad EQ, compressor, pan, limiter, dither, meters,
//!   FFT convolution and band split — the CPU twins of the GPU kernels).
//! - [`gpu`]: the wgpu context and the GPU kernels' Rust side.
//! - [`engine`]: the render graph, tracks → buses → mix → master → deliverables.
//! - [`master`]: mastering chain, loudness, QC reports.
//! - [`service`]: tonic services, job queue, stem store, auth.
//!
//! The DSP code knows nothing of gRPC; the service knows nothing of biquads.

pub mod audio;
pub mod dsp;
pub mod engine;
pub mod error;
pub mod gpu;
pub mod inserts;
pub mod master;
pub mod service;
pub mod session;

pub use error::{Error, Result};
