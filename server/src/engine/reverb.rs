//! The convolution reverb as a processor: the IR on the spectral backend (GPU or its
//! CPU twin), then predelay, then wet/dry (CONTRACT.md, "Reverb").

use std::sync::Arc;

use crate::dsp::convolution::{ConvolutionBank, ImpulseResponse};
use crate::dsp::delay::Delay;
use crate::dsp::{ProcessCtx, ProcessSpec, Processor, db_to_gain};
use crate::session::Reverb;
use crate::{Error, Result};

/// A reverb insert (or a bus's `reverb` key) on its own one-slot convolution bank.
pub(crate) struct ReverbProc {
    bank: Box<dyn ConvolutionBank>,
    slot: usize,
    ir_channels: usize,
    predelay: Delay,
    wet: f32,
    dry: bool,
    out: [Vec<f32>; 2],
    failed: Option<Error>,
}

impl ReverbProc {
    /// Registers `ir` with `bank` (its spectra are computed here, once).
    pub fn new(
        mut bank: Box<dyn ConvolutionBank>,
        ir: Arc<ImpulseResponse>,
        r: &Reverb,
        rate: f64,
    ) -> Result<Self> {
        let slot = bank.add(&ir)?;
        Ok(ReverbProc {
            bank,
            slot,
            ir_channels: ir.channels.len(),
            predelay: Delay::new(crate::dsp::round_half_away(r.predelay_ms * 1e-3 * rate) as usize),
            wet: db_to_gain(r.wet_db) as f32,
            dry: r.dry,
            out: [Vec::new(), Vec::new()],
            failed: None,
        })
    }
}

impl Processor for ReverbProc {
    fn prepare(&mut self, spec: &ProcessSpec) -> Result<()> {
        self.predelay.prepare(&ProcessSpec {
            channels: 2,
            ..*spec
        })?;
        let n = self.bank.block_len();
        for o in &mut self.out {
            o.clear();
            o.try_reserve_exact(n)
                .map_err(|e| Error::Limit(format!("reverb buffers: {e}")))?;
            o.resize(n, 0.0);
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.predelay.reset();
    }

    fn output_channels(&self, input: usize) -> usize {
        if self.ir_channels >= 2 { 2 } else { input }
    }

    fn process(&mut self, block: &mut [&mut [f32]], _ctx: &ProcessCtx<'_>) {
        let n = block.first().map_or(0, |b| b.len());
        if n != self.bank.block_len() || self.failed.is_some() {
            // The engine always hands whole partitions; anything else is a bug.
            self.failed.get_or_insert_with(|| {
                Error::Internal(format!("reverb: block of {n} frames, not a partition"))
            });
            return;
        }
        {
            let (l, r): (&[f32], &[f32]) = match block {
                [m] => (m, m),
                [l, r, ..] => (l, r),
                [] => return,
            };
            let [o0, o1] = &mut self.out;
            if let Err(e) = self.bank.process(&[self.slot], &[[l, r]], &mut [[o0, o1]]) {
                self.failed = Some(e);
                return;
            }
        }
        {
            let [o0, o1] = &mut self.out;
            self.predelay
                .process(&mut [&mut o0[..n], &mut o1[..n]], &ProcessCtx::default());
        }
        for (x, w) in block.iter_mut().zip(&self.out) {
            if self.dry {
                for (x, w) in x.iter_mut().zip(&w[..n]) {
                    *x += w * self.wet;
                }
            } else {
                for (x, w) in x.iter_mut().zip(&w[..n]) {
                    *x = w * self.wet;
                }
            }
        }
    }

    fn failure(&mut self) -> Option<Error> {
        self.failed.take()
    }
}
