//! Audio in and out: decode (symphonia), resample (rubato), encode (hound WAV, flacenc FLAC).
//!
//! # Brief overview
//! - [`decode`]: [`probe`] a file, stream a stem at the session rate with [`StemReader`],
//!   or [`read_all`] of a file (IRs, `analyze`, `master`); `*_limited` variants take a
//!   frame limit. Headers are checked before symphonia sees them, and decoder panics
//!   become errors.
//! - [`resample`]: band-limited, delay-compensated rate conversion with an exact output
//!   length, whole-buffer ([`resample::resample`]) or streaming ([`resample::StreamResampler`]).
//! - [`encode`]: 32-bit float and 16/24-bit integer WAV, 16/24-bit FLAC.
//!
//! Every error names the file (as the user wrote it) and what was wrong.

pub mod decode;
pub mod encode;
mod precheck;
pub mod resample;

pub use decode::{AudioBuffer, StemInfo, StemReader, probe, read_all, read_all_limited};
pub use encode::{write_flac, write_wav_f32, write_wav_int};
pub use resample::resample;
