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

/// What a block carries besides its audio.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessCtx<'a> {
    /// Timeline frame of the block's first sample: automation lanes are read here.
    pub start: u64,
    /// The sidechain key for this block (planar, as long as the block), when the
    /// processor listens to one; `None` otherwise.
    pub key: Option<&'a [&'a [f32]]>,
}

impl ProcessCtx<'_> {
    /// A context at timeline frame `start` with no key.
    pub fn at(start: u64) -> Self {
        ProcessCtx { start, key: None }
    }
}

/// A block-processing audio processor.
///
/// # For implementations
/// `process` must not allocate, lock or do I/O; it receives planar slices of equal
/// length ≤ `max_block`, as many as [`Processor::output_channels`] says for the
/// `spec.channels` it was prepared with. `reset` must return the processor to the
/// state it had right after `prepare`, so that processing again repeats the first run
/// exactly. Automated parameters are read from their lanes at `ctx.start` (gains and
/// mixes per sample, coefficients at least every 64 samples).
pub trait Processor: Send {
    /// Allocates state for `spec` (`spec.channels` is the input width).
    fn prepare(&mut self, spec: &ProcessSpec) -> crate::Result<()>;
    /// Clears state (no allocation).
    fn reset(&mut self);
    /// Processes one block in place.
    fn process(&mut self, block: &mut [&mut [f32]], ctx: &ProcessCtx<'_>);
    /// Delay in samples that this processor adds (the chain compensates it).
    fn latency(&self) -> usize {
        0
    }
    /// Channels out for `input` channels in. A processor that widens a mono strip
    /// (ping-pong delay, stereo reverb) returns 2 for 1: the chain then hands it a
    /// 2-channel block whose sides both carry the mono signal at −3.01 dB.
    fn output_channels(&self, input: usize) -> usize {
        input
    }
    /// An error the processor met while processing (a GPU lost mid-job), taken once;
    /// the engine checks after every block. Processors that cannot fail keep the default.
    fn failure(&mut self) -> Option<crate::Error> {
        None
    }
}

/// dB to linear amplitude.
#[inline]
pub fn db_to_gain(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

/// Rounds half away from zero (CONTRACT.md's `round`).
#[inline]
pub fn round_half_away(x: f64) -> f64 {
    x.round()
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
pub mod echo;
pub mod fastmath;
pub mod fir;
pub mod gate;
pub mod limiter;
pub mod meter;
pub mod oversample;
pub mod pan;
pub mod saturation;
pub mod true_peak;
