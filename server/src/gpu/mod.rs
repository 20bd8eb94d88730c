//! The wgpu context and the GPU kernels' Rust side (pipelines, buffers).
