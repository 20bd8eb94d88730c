//! FFT convolution on the CPU: uniformly partitioned overlap-save (UPOLS), the CPU
//! twin of the GPU kernels in `crate::gpu`.
//!
//! # Brief overview
//! An impulse response is cut into partitions of `block_len` samples; each partition's
//! spectrum (real FFT of `2·block_len` points, pre-scaled by `1/(2·block_len)`) is
//! computed once in [`ConvolutionBank::add`]. Every block, each input channel's last
//! `2·block_len` samples are transformed once and pushed into a frequency-domain delay
//! line (FDL); each output channel is the inverse transform of Σ_j X(k−j)·H(j), of which
//! the last `block_len` samples are kept (overlap-save). Output block k is exactly
//! samples `[k·B, (k+1)·B)` of the linear convolution: zero latency.
//!
//! Spectra are stored split (real and imaginary arrays apart) so the multiply-accumulate
//! loop, which dominates for long IRs, vectorises.

use std::sync::Arc;

use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use crate::{Error, Result};

/// Longest impulse response accepted: 60 s at 384 kHz.
pub const MAX_IR_FRAMES: usize = 60 * 384_000;

/// An impulse response at the render rate: 1 channel (each channel convolved with it),
/// 2 (L*IR0, R*IR1), or 4 (true stereo, order LL, LR, RL, RR:
/// outL = L*LL + R*RL, outR = L*LR + R*RR).
///
/// A silent (all-zero) IR is allowed: it yields silence. Channels of unequal length
/// are zero-padded to the longest.
#[derive(Clone, Debug)]
pub struct ImpulseResponse {
    /// The channels, in the order above.
    pub channels: Vec<Vec<f32>>,
}

impl ImpulseResponse {
    /// Validates and wraps `channels`; `name` (the IR's file or field) goes into errors.
    pub fn new(channels: Vec<Vec<f32>>, name: &str) -> Result<Self> {
        if !matches!(channels.len(), 1 | 2 | 4) {
            return Err(Error::BadAudio(format!(
                "{name}: impulse response has {} channels; 1 (mono), 2 (stereo) or 4 (true stereo LL, LR, RL, RR) expected",
                channels.len()
            )));
        }
        let frames = channels.iter().map(Vec::len).max().unwrap_or(0);
        if frames == 0 || channels.iter().any(Vec::is_empty) {
            return Err(Error::BadAudio(format!(
                "{name}: impulse response is empty (a channel has no samples)"
            )));
        }
        if frames > MAX_IR_FRAMES {
            return Err(Error::Limit(format!(
                "{name}: impulse response has {frames} frames; at most {MAX_IR_FRAMES} (60 s at 384 kHz) allowed"
            )));
        }
        for (c, ch) in channels.iter().enumerate() {
            if let Some(i) = ch.iter().position(|v| !v.is_finite()) {
                return Err(Error::BadAudio(format!(
                    "{name}: impulse response channel {c} sample {i} is not finite ({})",
                    ch[i]
                )));
            }
        }
        Ok(ImpulseResponse { channels })
    }

    /// Length in frames (the longest channel).
    pub fn frames(&self) -> usize {
        self.channels.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// For each output channel (L, R): the (input channel, IR channel) pairs summed into it.
    pub fn routes(&self) -> [Vec<(usize, usize)>; 2] {
        match self.channels.len() {
            1 => [vec![(0, 0)], vec![(1, 0)]],
            2 => [vec![(0, 0)], vec![(1, 1)]],
            _ => [vec![(0, 0), (1, 2)], vec![(0, 1), (1, 3)]],
        }
    }
}

/// Stereo-in, stereo-out block convolvers for several reverbs, processed together
/// (batched on the GPU).
pub trait ConvolutionBank: Send {
    /// Frames per block (= partition size).
    fn block_len(&self) -> usize;
    /// Registers a reverb; returns its slot. IR spectra are computed here, once.
    fn add(&mut self, ir: &ImpulseResponse) -> Result<usize>;
    /// Convolves the next block of every listed slot at once: `inputs[i]`/`outputs[i]`
    /// are the stereo block (`block_len` frames each) of `slots[i]`. Zero latency:
    /// output block k is samples `[k·B, (k+1)·B)` of the running linear convolution.
    /// The engine lists every slot in every call; a slot not listed is fed a block of
    /// silence (its tail advances) and its output is dropped.
    /// Returns Err on bad arguments or GPU failure (the engine then re-renders on CPU).
    fn process(
        &mut self,
        slots: &[usize],
        inputs: &[[&[f32]; 2]],
        outputs: &mut [[&mut [f32]; 2]],
    ) -> Result<()>;
    /// "cpu" or "gpu (adapter name)".
    fn backend_name(&self) -> String;
}

/// Checks the arguments of [`ConvolutionBank::process`] (shared by both backends).
pub(crate) fn check_process_args(
    n_slots: usize,
    block_len: usize,
    slots: &[usize],
    inputs: &[[&[f32]; 2]],
    outputs: &[[&mut [f32]; 2]],
) -> Result<()> {
    if inputs.len() != slots.len() || outputs.len() != slots.len() {
        return Err(Error::Internal(format!(
            "convolution: {} slots but {} inputs and {} outputs",
            slots.len(),
            inputs.len(),
            outputs.len()
        )));
    }
    for (i, &s) in slots.iter().enumerate() {
        if s >= n_slots {
            return Err(Error::Internal(format!(
                "convolution: slot {s} not registered ({n_slots} slots)"
            )));
        }
        if slots[..i].contains(&s) {
            return Err(Error::Internal(format!(
                "convolution: slot {s} listed twice in one call"
            )));
        }
        let lens = [
            inputs[i][0].len(),
            inputs[i][1].len(),
            outputs[i][0].len(),
            outputs[i][1].len(),
        ];
        if lens.iter().any(|&l| l != block_len) {
            return Err(Error::Internal(format!(
                "convolution: slot {s}: block lengths {lens:?}, expected {block_len}"
            )));
        }
    }
    Ok(())
}

/// Checks a block length: a power of two in 256..=65536.
pub(crate) fn check_block_len(block_len: usize) -> Result<()> {
    if !(256..=65536).contains(&block_len) || !block_len.is_power_of_two() {
        return Err(Error::Internal(format!(
            "convolution: block length {block_len} is not a power of two in 256..=65536"
        )));
    }
    Ok(())
}

/// Number of partitions of `block_len` needed for `frames` samples.
pub(crate) fn partitions(frames: usize, block_len: usize) -> usize {
    frames.div_ceil(block_len).max(1)
}

/// Spectra of `signal` cut into partitions of `block_len`: for each partition, the
/// `block_len + 1` bins of the real FFT of that partition zero-padded to `2·block_len`,
/// scaled by `1/(2·block_len)` (so an unnormalised inverse FFT gives the convolution).
/// `parts` partitions are returned (extra ones are zero).
pub(crate) fn partition_spectra(
    signal: &[f32],
    block_len: usize,
    parts: usize,
    fft: &dyn RealToComplex<f32>,
) -> Vec<Vec<Complex<f32>>> {
    let n = 2 * block_len;
    let scale = 1.0 / n as f32;
    let mut time = vec![0.0f32; n];
    let mut scratch = fft.make_scratch_vec();
    (0..parts)
        .map(|j| {
            let mut spec = fft.make_output_vec();
            time.iter_mut().for_each(|v| *v = 0.0);
            let start = (j * block_len).min(signal.len());
            let end = ((j + 1) * block_len).min(signal.len());
            for (t, &s) in time.iter_mut().zip(&signal[start..end]) {
                *t = s * scale;
            }
            // Lengths match the plan: this cannot fail.
            let _ = fft.process_with_scratch(&mut time, &mut spec, &mut scratch);
            spec
        })
        .collect()
}

/// A filter's spectra, split: `re[j·bins + k]`, `im[j·bins + k]`.
struct SplitSpectra {
    re: Vec<f32>,
    im: Vec<f32>,
}

/// One input channel: time history and its frequency-domain delay line (ring of `parts`).
struct InChan {
    time: Vec<f32>,
    scratch_time: Vec<f32>,
    spec: Vec<Complex<f32>>,
    fft_scratch: Vec<Complex<f32>>,
    fdl: SplitSpectra,
}

/// One output channel: which (input, filter) pairs feed it, and its work buffers.
struct OutChan {
    routes: Vec<(usize, usize)>,
    acc_re: Vec<f32>,
    acc_im: Vec<f32>,
    spec: Vec<Complex<f32>>,
    time: Vec<f32>,
    fft_scratch: Vec<Complex<f32>>,
}

/// A multi-input, multi-output UPOLS convolver: every output is a sum of inputs each
/// convolved with one filter. Used by the reverb bank (2 in, 2 out, 1/2/4 filters) and
/// by the FIR bank (2 in, 2·K out, K filters).
pub(crate) struct Upols {
    block: usize,
    bins: usize,
    parts: usize,
    head: usize,
    fft: Arc<dyn RealToComplex<f32>>,
    ifft: Arc<dyn ComplexToReal<f32>>,
    filters: Vec<SplitSpectra>,
    inputs: Vec<InChan>,
    outputs: Vec<OutChan>,
}

impl Upols {
    /// `filters`: time-domain kernels; `n_inputs`; `routes[o]` = (input, filter) pairs of output o.
    pub(crate) fn new(
        block: usize,
        filters: &[&[f32]],
        n_inputs: usize,
        routes: Vec<Vec<(usize, usize)>>,
    ) -> Self {
        let mut planner = RealFftPlanner::<f32>::new();
        let fft = planner.plan_fft_forward(2 * block);
        let ifft = planner.plan_fft_inverse(2 * block);
        let bins = block + 1;
        let frames = filters.iter().map(|f| f.len()).max().unwrap_or(1);
        let parts = partitions(frames, block);
        let filters = filters
            .iter()
            .map(|f| {
                let specs = partition_spectra(f, block, parts, fft.as_ref());
                let mut re = Vec::with_capacity(parts * bins);
                let mut im = Vec::with_capacity(parts * bins);
                for s in &specs {
                    re.extend(s.iter().map(|c| c.re));
                    im.extend(s.iter().map(|c| c.im));
                }
                SplitSpectra { re, im }
            })
            .collect();
        let inputs = (0..n_inputs)
            .map(|_| InChan {
                time: vec![0.0; 2 * block],
                scratch_time: vec![0.0; 2 * block],
                spec: fft.make_output_vec(),
                fft_scratch: fft.make_scratch_vec(),
                fdl: SplitSpectra {
                    re: vec![0.0; parts * bins],
                    im: vec![0.0; parts * bins],
                },
            })
            .collect();
        let outputs = routes
            .into_iter()
            .map(|routes| OutChan {
                routes,
                acc_re: vec![0.0; bins],
                acc_im: vec![0.0; bins],
                spec: ifft.make_input_vec(),
                time: ifft.make_output_vec(),
                fft_scratch: ifft.make_scratch_vec(),
            })
            .collect();
        Upols {
            block,
            bins,
            parts,
            head: 0,
            fft,
            ifft,
            filters,
            inputs,
            outputs,
        }
    }

    /// Processes one block: `inputs[i]` and `outputs[o]` are `block` samples each.
    pub(crate) fn process(&mut self, inputs: &[&[f32]], outputs: &mut [&mut [f32]]) {
        let (block, bins, parts) = (self.block, self.bins, self.parts);
        self.head = (self.head + 1) % parts;
        let head = self.head;
        // Rayon only pays off on big blocks.
        let parallel = block * parts >= 8192;
        let fft = &self.fft;
        let push = |ch: &mut InChan, x: &[f32]| {
            ch.time.copy_within(block.., 0);
            ch.time[block..].copy_from_slice(x);
            ch.scratch_time.copy_from_slice(&ch.time);
            let _ =
                fft.process_with_scratch(&mut ch.scratch_time, &mut ch.spec, &mut ch.fft_scratch);
            let re = &mut ch.fdl.re[head * bins..(head + 1) * bins];
            let im = &mut ch.fdl.im[head * bins..(head + 1) * bins];
            for ((r, i), c) in re.iter_mut().zip(im.iter_mut()).zip(&ch.spec) {
                *r = c.re;
                *i = c.im;
            }
        };
        if parallel {
            self.inputs
                .par_iter_mut()
                .zip(inputs.par_iter())
                .for_each(|(ch, x)| push(ch, x));
        } else {
            self.inputs
                .iter_mut()
                .zip(inputs.iter())
                .for_each(|(ch, x)| push(ch, x));
        }
        let (ins, filters, ifft) = (&self.inputs, &self.filters, &self.ifft);
        let pull = |o: &mut OutChan, y: &mut [f32]| {
            o.acc_re.iter_mut().for_each(|v| *v = 0.0);
            o.acc_im.iter_mut().for_each(|v| *v = 0.0);
            for &(i, f) in &o.routes {
                let (x, h) = (&ins[i].fdl, &filters[f]);
                for j in 0..parts {
                    let pos = (head + parts - j) % parts;
                    mac(
                        &mut o.acc_re,
                        &mut o.acc_im,
                        &x.re[pos * bins..(pos + 1) * bins],
                        &x.im[pos * bins..(pos + 1) * bins],
                        &h.re[j * bins..(j + 1) * bins],
                        &h.im[j * bins..(j + 1) * bins],
                    );
                }
            }
            for ((c, &r), &i) in o.spec.iter_mut().zip(&o.acc_re).zip(&o.acc_im) {
                *c = Complex::new(r, i);
            }
            // The DC and Nyquist bins of a real signal's spectrum are real.
            o.spec[0].im = 0.0;
            o.spec[bins - 1].im = 0.0;
            let _ = ifft.process_with_scratch(&mut o.spec, &mut o.time, &mut o.fft_scratch);
            y.copy_from_slice(&o.time[block..]);
        };
        if parallel {
            self.outputs
                .par_iter_mut()
                .zip(outputs.par_iter_mut())
                .for_each(|(o, y)| pull(o, y));
        } else {
            self.outputs
                .iter_mut()
                .zip(outputs.iter_mut())
                .for_each(|(o, y)| pull(o, y));
        }
    }
}

/// acc += x·h over split complex arrays (equal lengths).
#[inline]
fn mac(acc_re: &mut [f32], acc_im: &mut [f32], xr: &[f32], xi: &[f32], hr: &[f32], hi: &[f32]) {
    let n = acc_re.len();
    let (acc_im, xr, xi, hr, hi) = (&mut acc_im[..n], &xr[..n], &xi[..n], &hr[..n], &hi[..n]);
    for k in 0..n {
        acc_re[k] += xr[k] * hr[k] - xi[k] * hi[k];
        acc_im[k] += xr[k] * hi[k] + xi[k] * hr[k];
    }
}

/// The CPU twin: one [`Upols`] per reverb slot.
pub struct CpuConvolutionBank {
    block_len: usize,
    slots: Vec<Upols>,
    /// Silence in and a discarded output, for slots a call does not list.
    zeros: Vec<f32>,
    sink: [Vec<f32>; 2],
}

impl CpuConvolutionBank {
    /// A bank with blocks (and partitions) of `block_len` frames. Block lengths outside
    /// powers of two in 256..=65536 make `add` fail.
    pub fn new(block_len: usize) -> Self {
        CpuConvolutionBank {
            block_len,
            slots: Vec::new(),
            zeros: Vec::new(),
            sink: [Vec::new(), Vec::new()],
        }
    }
}

impl ConvolutionBank for CpuConvolutionBank {
    fn block_len(&self) -> usize {
        self.block_len
    }

    fn add(&mut self, ir: &ImpulseResponse) -> Result<usize> {
        check_block_len(self.block_len)?;
        self.zeros.resize(self.block_len, 0.0);
        self.sink
            .iter_mut()
            .for_each(|v| v.resize(self.block_len, 0.0));
        let filters: Vec<&[f32]> = ir.channels.iter().map(Vec::as_slice).collect();
        let routes = ir.routes();
        self.slots.push(Upols::new(
            self.block_len,
            &filters,
            2,
            routes.into_iter().collect(),
        ));
        Ok(self.slots.len() - 1)
    }

    fn process(
        &mut self,
        slots: &[usize],
        inputs: &[[&[f32]; 2]],
        outputs: &mut [[&mut [f32]; 2]],
    ) -> Result<()> {
        check_process_args(self.slots.len(), self.block_len, slots, inputs, outputs)?;
        for ((&s, x), y) in slots.iter().zip(inputs).zip(outputs.iter_mut()) {
            let [yl, yr] = y;
            self.slots[s].process(&[x[0], x[1]], &mut [&mut **yl, &mut **yr]);
        }
        // Unlisted slots hear silence, so their tails advance as on the GPU bank.
        for s in 0..self.slots.len() {
            if !slots.contains(&s) {
                let [sl, sr] = &mut self.sink;
                self.slots[s].process(&[&self.zeros, &self.zeros], &mut [sl, sr]);
            }
        }
        Ok(())
    }

    fn backend_name(&self) -> String {
        "cpu".into()
    }
}

/// float64 direct convolution, the test reference: `x.len() + h.len() − 1` samples.
pub fn direct_convolve_f64(x: &[f64], h: &[f64]) -> Vec<f64> {
    if x.is_empty() || h.is_empty() {
        return Vec::new();
    }
    let mut y = vec![0.0; x.len() + h.len() - 1];
    for (i, &xv) in x.iter().enumerate() {
        if xv == 0.0 {
            continue;
        }
        for (yv, &hv) in y[i..i + h.len()].iter_mut().zip(h) {
            *yv += xv * hv;
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()
    }

    /// Max error relative to the reference's peak, in dB.
    fn err_db(got: &[f32], want: &[f64]) -> f64 {
        let peak = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let err = got
            .iter()
            .zip(want)
            .fold(0.0f64, |m, (g, w)| m.max((*g as f64 - w).abs()));
        20.0 * (err / peak).log10()
    }

    fn run_bank(
        bank: &mut dyn ConvolutionBank,
        slot: usize,
        x: [&[f32]; 2],
        blocks: usize,
    ) -> [Vec<f32>; 2] {
        let b = bank.block_len();
        let mut out = [vec![0.0; blocks * b], vec![0.0; blocks * b]];
        let zeros = vec![0.0; b];
        for k in 0..blocks {
            let get = |c: usize| -> &[f32] {
                let s = x[c];
                if (k + 1) * b <= s.len() {
                    &s[k * b..(k + 1) * b]
                } else {
                    &zeros
                }
            };
            let (l, r) = out.split_at_mut(1);
            let mut o = [[&mut l[0][k * b..(k + 1) * b], &mut r[0][k * b..(k + 1) * b]]];
            bank.process(&[slot], &[[get(0), get(1)]], &mut o).unwrap();
        }
        out
    }

    #[test]
    fn matches_direct_for_all_channel_layouts() {
        let b = 256;
        let x = [noise(4 * b, 1), noise(4 * b, 2)];
        for nch in [1usize, 2, 4] {
            let chans: Vec<Vec<f32>> = (0..nch).map(|c| noise(601, 10 + c as u64)).collect();
            let ir = ImpulseResponse::new(chans.clone(), "ir").unwrap();
            let mut bank = CpuConvolutionBank::new(b);
            let slot = bank.add(&ir).unwrap();
            let blocks = 4 + 601usize.div_ceil(b);
            let out = run_bank(&mut bank, slot, [&x[0], &x[1]], blocks);
            let f = |v: &[f32]| v.iter().map(|&s| s as f64).collect::<Vec<_>>();
            let conv = |xi: usize, hi: usize| direct_convolve_f64(&f(&x[xi]), &f(&chans[hi]));
            let routes = ir.routes();
            for (o, route) in routes.iter().enumerate() {
                let mut want = vec![0.0; blocks * b];
                for &(i, h) in route {
                    for (w, v) in want.iter_mut().zip(conv(i, h)) {
                        *w += v;
                    }
                }
                let e = err_db(&out[o], &want);
                assert!(e < -90.0, "{nch} ch, out {o}: {e} dB");
            }
        }
    }

    #[test]
    fn bad_irs_are_rejected_with_clear_errors() {
        let e = ImpulseResponse::new(vec![], "a.wav")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.wav") && e.contains("0 channels"), "{e}");
        let e = ImpulseResponse::new(vec![vec![]], "b.wav")
            .unwrap_err()
            .to_string();
        assert!(e.contains("b.wav") && e.contains("empty"), "{e}");
        let e = ImpulseResponse::new(vec![vec![0.0, f32::NAN]], "c.wav")
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.wav") && e.contains("not finite"), "{e}");
        let e = ImpulseResponse::new(vec![vec![1.0]; 3], "d.wav")
            .unwrap_err()
            .to_string();
        assert!(e.contains("d.wav") && e.contains("3 channels"), "{e}");
        let e = ImpulseResponse::new(vec![vec![0.0; MAX_IR_FRAMES + 1]], "e.wav").unwrap_err();
        assert!(
            matches!(e, Error::Limit(_)) && e.to_string().contains("e.wav"),
            "{e}"
        );
        // Silent IR: allowed, yields silence.
        let ir = ImpulseResponse::new(vec![vec![0.0; 100]], "f.wav").unwrap();
        let mut bank = CpuConvolutionBank::new(256);
        let s = bank.add(&ir).unwrap();
        let x = noise(512, 3);
        let out = run_bank(&mut bank, s, [&x, &x], 2);
        assert!(out.iter().flatten().all(|&v| v == 0.0));
    }

    #[test]
    fn bad_process_arguments_are_errors() {
        let mut bank = CpuConvolutionBank::new(256);
        let s = bank
            .add(&ImpulseResponse::new(vec![vec![1.0]], "ir").unwrap())
            .unwrap();
        let x = vec![0.0f32; 256];
        let (mut a, mut b) = (vec![0.0f32; 256], vec![0.0f32; 256]);
        assert!(
            bank.process(&[s + 1], &[[&x, &x]], &mut [[&mut a, &mut b]])
                .is_err()
        );
        assert!(
            bank.process(&[s], &[[&x[..100], &x]], &mut [[&mut a, &mut b]])
                .is_err()
        );
        assert!(
            CpuConvolutionBank::new(300)
                .add(&ImpulseResponse::new(vec![vec![1.0]], "ir").unwrap())
                .is_err()
        );
    }

    #[test]
    fn direct_reference_is_right() {
        assert_eq!(
            direct_convolve_f64(&[1.0, 2.0], &[1.0, 0.5, 0.25]),
            vec![1.0, 2.5, 1.25, 0.5]
        );
    }
}
