//! Bounce's gRPC protocol, `bounce.v1`: the stem store and the render service.
//!
//! Generated from `proto/bounce.proto` at build time by protox and tonic-prost-build.
#![allow(missing_docs, clippy::all)]

/// The generated `bounce.v1` package.
pub mod v1 {
    tonic::include_proto!("bounce.v1");
}

/// Encoded file descriptor set, for the gRPC reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/bounce_descriptor.bin"));
