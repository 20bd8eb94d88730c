//! CPU processors: small, pure, allocation-free in `process`.
//!
//! # Brief overview
//! Every processor follows one lifecycle, in the manner of JUCE's dsp module:
//! [`Processor::prepare`] allocates (and may fail), [`Processor::reset`] clears state
//! without allocating, [`Processor::process`] works in place on planar blocks and
//! never allocates, [`Processor::latency`] reports delay in samples.
//! Parameters are plain data in natural units (dB, ms, Hz); coefficient design lives
//! in pure functions beside the state that uses them.

/// What a processor is prepared for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessSpec {
    /// Sample rate in Hz.
    pub sample_rate: f64,
    /// The largest block `process` will be given, in frames.
    pub max_block: usize,
    /// Number of channels `process` will be given.
    pub channels: usize,
}

/// A block-processing audio processor.
///
/// # For implementations
/// `process` must not allocate, lock or do I/O; it receives `channels` planar slices
/// of equal length ≤ `max_block`. `reset` must return the processor to the state it
/// had right after `prepare`, so that processing again repeats the first run exactly.
pub trait Processor: Send {
    /// Allocates state for `spec`.
    fn prepare(&mut self, spec: &ProcessSpec) -> crate::Result<()>;
    /// Clears state (no allocation).
    fn reset(&mut self);
    /// Processes one block in place.
    fn process(&mut self, block: &mut [&mut [f32]]);
    /// Delay in samples that this processor adds.
    fn latency(&self) -> usize {
        0
    }
}

/// dB to linear amplitude.
#[inline]
pub fn db_to_gain(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

/// Linear amplitude to dB (−inf for 0).
#[inline]
pub fn gain_to_db(g: f64) -> f64 {
    20.0 * g.log10()
}

pub mod automation;
pub mod biquad;
pub mod compressor;
pub mod convolution;
pub mod delay;
pub mod dither;
pub mod fastmath;
pub mod fir;
pub mod limiter;
pub mod meter;
pub mod pan;
pub mod true_peak;
