//! A fixed delay line in whole samples (reverb predelay).

use super::{ProcessCtx, ProcessSpec, Processor};

/// A fixed delay of `samples` frames on every channel; the first `samples` output
/// frames are zeros.
///
/// The delay is an effect (predelay), not processing latency: [`Processor::latency`]
/// reports 0 so that nothing compensates it away.
#[derive(Debug, Clone)]
pub struct Delay {
    samples: usize,
    /// One ring of `samples` frames per channel.
    rings: Vec<Vec<f32>>,
    /// Read/write position, shared by all channels.
    pos: usize,
}

impl Delay {
    /// A delay of `samples` frames (0 passes the signal through).
    pub fn new(samples: usize) -> Self {
        Delay {
            samples,
            rings: Vec::new(),
            pos: 0,
        }
    }

    /// The delay in frames.
    pub fn samples(&self) -> usize {
        self.samples
    }
}

impl Processor for Delay {
    fn prepare(&mut self, spec: &ProcessSpec) -> crate::Result<()> {
        let mut rings = Vec::new();
        rings
            .try_reserve_exact(spec.channels)
            .map_err(|e| crate::Error::Limit(format!("delay of {} samples: {e}", self.samples)))?;
        for _ in 0..spec.channels {
            let mut ring = Vec::new();
            ring.try_reserve_exact(self.samples).map_err(|e| {
                crate::Error::Limit(format!("delay of {} samples: {e}", self.samples))
            })?;
            ring.resize(self.samples, 0.0);
            rings.push(ring);
        }
        self.rings = rings;
        self.pos = 0;
        Ok(())
    }

    fn reset(&mut self) {
        self.rings.iter_mut().for_each(|r| r.fill(0.0));
        self.pos = 0;
    }

    fn process(&mut self, block: &mut [&mut [f32]], _ctx: &ProcessCtx<'_>) {
        let d = self.samples;
        if d == 0 {
            return;
        }
        let mut end_pos = self.pos;
        for (ch, ring) in block.iter_mut().zip(self.rings.iter_mut()) {
            // Swapping a run of the block with a run of the ring outputs the delayed
            // samples and stores the new ones in one memcpy-like pass.
            let mut pos = self.pos;
            let mut at = 0;
            while at < ch.len() {
                let k = (ch.len() - at).min(d - pos);
                ch[at..at + k].swap_with_slice(&mut ring[pos..pos + k]);
                at += k;
                pos += k;
                if pos == d {
                    pos = 0;
                }
            }
            end_pos = pos;
        }
        self.pos = end_pos;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(delay: usize, input: &[Vec<f32>], block: usize) -> Vec<Vec<f32>> {
        let mut d = Delay::new(delay);
        d.prepare(&ProcessSpec {
            sample_rate: 48000.0,
            max_block: block,
            channels: input.len(),
        })
        .unwrap();
        let mut out: Vec<Vec<f32>> = input.to_vec();
        let n = input[0].len();
        let mut at = 0;
        while at < n {
            let k = block.min(n - at);
            let mut chans: Vec<&mut [f32]> = out.iter_mut().map(|c| &mut c[at..at + k]).collect();
            d.process(&mut chans, &ProcessCtx::default());
            at += k;
        }
        out
    }

    #[test]
    fn delays_by_whole_samples_any_block_size() {
        let n = 1000;
        let l: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let r: Vec<f32> = (0..n).map(|i| i as f32).collect();
        for delay in [0usize, 1, 7, 64, 333] {
            for block in [1usize, 5, 64, 4096] {
                let out = run(delay, &[l.clone(), r.clone()], block);
                for i in 0..n {
                    let (el, er) = if i < delay {
                        (0.0, 0.0)
                    } else {
                        (l[i - delay], r[i - delay])
                    };
                    assert_eq!(out[0][i], el, "delay {delay} block {block} frame {i}");
                    assert_eq!(out[1][i], er, "delay {delay} block {block} frame {i}");
                }
            }
        }
    }

    #[test]
    fn reset_repeats_first_run() {
        let x: Vec<f32> = (0..300).map(|i| i as f32).collect();
        let mut d = Delay::new(50);
        d.prepare(&ProcessSpec {
            sample_rate: 48000.0,
            max_block: 300,
            channels: 1,
        })
        .unwrap();
        let mut a = x.clone();
        d.process(&mut [&mut a[..]], &ProcessCtx::default());
        d.reset();
        let mut b = x.clone();
        d.process(&mut [&mut b[..]], &ProcessCtx::default());
        assert_eq!(a, b);
        assert_eq!(d.latency(), 0);
    }
}
