//! RBJ Audio-EQ-Cookbook biquads and a cascade of them (the track and master EQ).
//!
//! # Brief overview
//! [`design`] turns a [`BandSpec`] into normalised [`Coeffs`] (a0 = 1) with the
//! cookbook formulas; `q` is Q for every type, shelves included (the cookbook's
//! "Q form", α = sin ω0 / 2Q). [`EqChain`] runs the bands in list order in
//! direct form I with `f64` state and coefficients: low-frequency filters (a 30 Hz
//! high-pass at 48 kHz has poles within 0.004 of z = 1) lose accuracy in `f32`, and
//! the mix must match references to −90 dB.
//!
//! **Automation** ([`EqChain::automated`]): a band's `gain_db` and `freq` may follow
//! lanes; its coefficients are redesigned with [`design`] at every timeline frame that
//! is a multiple of [`AUTOMATION_STEP`], from the lanes' values there (the filter
//! state carries over). Without lanes the code path is the plain chain's.

use std::f64::consts::PI;

use super::automation::Lane;
use super::{ProcessCtx, ProcessSpec, Processor};

/// Frames between coefficient updates of automated bands (on timeline multiples).
pub const AUTOMATION_STEP: u64 = 64;

/// Lanes for one band of an [`EqChain`] (`None`: the band's static value).
#[derive(Clone, Debug, PartialEq)]
pub struct EqAutomation {
    /// Index of the band in the chain's list (0-based).
    pub band: usize,
    /// Gain in dB.
    pub gain_db: Option<Lane>,
    /// Frequency in Hz (kept inside (0, Nyquist) when designing).
    pub freq: Option<Lane>,
}

impl EqAutomation {
    /// `spec` with the automated values at timeline frame `frame`.
    pub fn spec_at(&self, spec: &BandSpec, frame: u64) -> BandSpec {
        let mut b = *spec;
        if let Some(l) = &self.gain_db {
            b.gain_db = l.value_at(frame);
        }
        if let Some(l) = &self.freq {
            b.freq = l.value_at(frame);
        }
        b
    }
}

/// The cookbook filter types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterKind {
    /// Second-order high-pass.
    Highpass,
    /// Second-order low-pass.
    Lowpass,
    /// Low shelf (gain below `freq`).
    Lowshelf,
    /// High shelf (gain above `freq`).
    Highshelf,
    /// Peaking EQ (gain at `freq`).
    Peak,
    /// Notch (zero at `freq`).
    Notch,
}

/// One EQ band: type, centre/corner frequency in Hz, Q, gain in dB (used by shelves
/// and peak only).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BandSpec {
    /// Filter type.
    pub kind: FilterKind,
    /// Frequency in Hz, in (0, Nyquist).
    pub freq: f64,
    /// Q (> 0).
    pub q: f64,
    /// Gain in dB (shelves and peak).
    pub gain_db: f64,
}

/// Biquad coefficients with a0 normalised to 1:
/// H(z) = (b0 + b1 z⁻¹ + b2 z⁻²) / (1 + a1 z⁻¹ + a2 z⁻²).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coeffs {
    /// Feed-forward z⁰.
    pub b0: f64,
    /// Feed-forward z⁻¹.
    pub b1: f64,
    /// Feed-forward z⁻².
    pub b2: f64,
    /// Feedback z⁻¹.
    pub a1: f64,
    /// Feedback z⁻².
    pub a2: f64,
}

impl Coeffs {
    /// The identity filter.
    pub const IDENTITY: Coeffs = Coeffs {
        b0: 1.0,
        b1: 0.0,
        b2: 0.0,
        a1: 0.0,
        a2: 0.0,
    };
}

/// Cookbook coefficients for `spec` at `sample_rate` (a0 normalised to 1).
///
/// Out-of-range input (validated elsewhere) gives non-finite or unstable
/// coefficients, never a panic.
pub fn design(spec: &BandSpec, sample_rate: f64) -> Coeffs {
    let w0 = 2.0 * PI * spec.freq / sample_rate;
    let (sin_w0, cos_w0) = w0.sin_cos();
    let alpha = sin_w0 / (2.0 * spec.q);
    // A = 10^(gain/40): the cookbook's amplitude for peak and shelf filters.
    let a = 10f64.powf(spec.gain_db / 40.0);
    let (b0, b1, b2, a0, a1, a2) = match spec.kind {
        FilterKind::Lowpass => {
            let b1 = 1.0 - cos_w0;
            (
                b1 / 2.0,
                b1,
                b1 / 2.0,
                1.0 + alpha,
                -2.0 * cos_w0,
                1.0 - alpha,
            )
        }
        FilterKind::Highpass => {
            let b0 = (1.0 + cos_w0) / 2.0;
            (
                b0,
                -(1.0 + cos_w0),
                b0,
                1.0 + alpha,
                -2.0 * cos_w0,
                1.0 - alpha,
            )
        }
        FilterKind::Notch => (
            1.0,
            -2.0 * cos_w0,
            1.0,
            1.0 + alpha,
            -2.0 * cos_w0,
            1.0 - alpha,
        ),
        FilterKind::Peak => (
            1.0 + alpha * a,
            -2.0 * cos_w0,
            1.0 - alpha * a,
            1.0 + alpha / a,
            -2.0 * cos_w0,
            1.0 - alpha / a,
        ),
        FilterKind::Lowshelf => {
            let k = 2.0 * a.sqrt() * alpha;
            (
                a * ((a + 1.0) - (a - 1.0) * cos_w0 + k),
                2.0 * a * ((a - 1.0) - (a + 1.0) * cos_w0),
                a * ((a + 1.0) - (a - 1.0) * cos_w0 - k),
                (a + 1.0) + (a - 1.0) * cos_w0 + k,
                -2.0 * ((a - 1.0) + (a + 1.0) * cos_w0),
                (a + 1.0) + (a - 1.0) * cos_w0 - k,
            )
        }
        FilterKind::Highshelf => {
            let k = 2.0 * a.sqrt() * alpha;
            (
                a * ((a + 1.0) + (a - 1.0) * cos_w0 + k),
                -2.0 * a * ((a - 1.0) + (a + 1.0) * cos_w0),
                a * ((a + 1.0) + (a - 1.0) * cos_w0 - k),
                (a + 1.0) - (a - 1.0) * cos_w0 + k,
                2.0 * ((a - 1.0) - (a + 1.0) * cos_w0),
                (a + 1.0) - (a - 1.0) * cos_w0 - k,
            )
        }
    };
    let inv = 1.0 / a0;
    Coeffs {
        b0: b0 * inv,
        b1: b1 * inv,
        b2: b2 * inv,
        a1: a1 * inv,
        a2: a2 * inv,
    }
}

/// |H(e^jω)| in dB at `freq` Hz, evaluated in `f64`.
pub fn magnitude_db(c: &Coeffs, freq: f64, sample_rate: f64) -> f64 {
    let w = 2.0 * PI * freq / sample_rate;
    let (s1, c1) = w.sin_cos();
    let (s2, c2) = (2.0 * w).sin_cos();
    // z⁻¹ = e^{−jω} = cos ω − j sin ω.
    let num_re = c.b0 + c.b1 * c1 + c.b2 * c2;
    let num_im = -(c.b1 * s1 + c.b2 * s2);
    let den_re = 1.0 + c.a1 * c1 + c.a2 * c2;
    let den_im = -(c.a1 * s1 + c.a2 * s2);
    let num = num_re * num_re + num_im * num_im;
    let den = den_re * den_re + den_im * den_im;
    10.0 * (num / den).log10()
}

/// Direct-form-I state of one band on one channel: the last two inputs and outputs.
#[derive(Clone, Copy, Debug, Default)]
struct State {
    x1: f64,
    x2: f64,
    y1: f64,
    y2: f64,
}

/// One direct-form-I step. Summed so that y1 enters last: the recursion from one
/// output to the next is one multiply and one subtract (8 cycles), against 12 for
/// transposed direct form II; in f64 both are far below the −90 dB budget.
#[inline(always)]
fn step(k: &Coeffs, s: &mut State, x: f64) -> f64 {
    let y = ((k.b0 * x + k.b1 * s.x1) + (k.b2 * s.x2 - k.a2 * s.y2)) - k.a1 * s.y1;
    s.x2 = s.x1;
    s.x1 = x;
    s.y2 = s.y1;
    s.y1 = y;
    y
}

/// A cascade of biquads over 1 or 2 channels (more are run one by one), in list
/// order, state zero at the start.
///
/// Coefficients are designed in [`Processor::prepare`] for its sample rate.
#[derive(Debug, Clone)]
pub struct EqChain {
    bands: Vec<BandSpec>,
    coeffs: Vec<Coeffs>,
    /// `state[ch * bands + band]`.
    state: Vec<State>,
    channels: usize,
    /// Lanes of automated bands (empty: static), the prepared rate, and the
    /// [`AUTOMATION_STEP`] cell the coefficients were last designed for.
    auto: Vec<EqAutomation>,
    fs: f64,
    cell: u64,
}

impl EqChain {
    /// A chain of `bands` in order (no bands: pass-through).
    pub fn new(bands: &[BandSpec]) -> Self {
        EqChain {
            bands: bands.to_vec(),
            coeffs: Vec::new(),
            state: Vec::new(),
            channels: 0,
            auto: Vec::new(),
            fs: 0.0,
            cell: u64::MAX,
        }
    }

    /// A chain whose bands' gain and frequency may follow lanes; entries naming no
    /// band of `bands`, or with no lane, are dropped.
    pub fn automated(bands: &[BandSpec], automation: Vec<EqAutomation>) -> Self {
        let mut c = Self::new(bands);
        c.auto = automation
            .into_iter()
            .filter(|a| a.band < bands.len() && (a.gain_db.is_some() || a.freq.is_some()))
            .collect();
        c
    }

    /// Runs every channel over frames `r` with the current coefficients.
    fn run_range(&mut self, block: &mut [&mut [f32]], r: std::ops::Range<usize>) {
        let nb = self.coeffs.len();
        let chans = block.len().min(self.channels);
        let mut c = 0;
        while c < chans {
            if c + 1 < chans {
                let (a, b) = block.split_at_mut(c + 1);
                let (sa, sb) = self.state[c * nb..(c + 2) * nb].split_at_mut(nb);
                run_stereo(
                    &self.coeffs,
                    sa,
                    sb,
                    &mut a[c][r.clone()],
                    &mut b[0][r.clone()],
                );
                c += 2;
            } else {
                run_mono(
                    &self.coeffs,
                    &mut self.state[c * nb..(c + 1) * nb],
                    &mut block[c][r.clone()],
                );
                c += 1;
            }
        }
    }

    /// The automated path: pieces that end on [`AUTOMATION_STEP`] frames, automated
    /// bands redesigned at each new cell.
    fn process_automated(&mut self, block: &mut [&mut [f32]], start: u64) {
        let total = block.iter().map(|c| c.len()).min().unwrap_or(0);
        let mut i = 0;
        while i < total {
            let frame = start + i as u64;
            let cell = frame / AUTOMATION_STEP;
            if cell != self.cell {
                self.cell = cell;
                let at = cell * AUTOMATION_STEP;
                let nyq = self.fs / 2.0;
                for a in &self.auto {
                    let mut b = a.spec_at(&self.bands[a.band], at);
                    b.freq = b.freq.clamp(1e-3, nyq * 0.9999);
                    self.coeffs[a.band] = design(&b, self.fs);
                }
            }
            let run = ((AUTOMATION_STEP - frame % AUTOMATION_STEP) as usize).min(total - i);
            self.run_range(block, i..i + run);
            i += run;
        }
    }

    /// The designed coefficients (empty before `prepare`).
    pub fn coeffs(&self) -> &[Coeffs] {
        &self.coeffs
    }
}

impl Processor for EqChain {
    fn prepare(&mut self, spec: &ProcessSpec) -> crate::Result<()> {
        self.coeffs = self
            .bands
            .iter()
            .map(|b| design(b, spec.sample_rate))
            .collect();
        self.channels = spec.channels;
        self.state = vec![State::default(); spec.channels * self.bands.len()];
        self.fs = spec.sample_rate;
        self.cell = u64::MAX;
        Ok(())
    }

    fn reset(&mut self) {
        self.state.iter_mut().for_each(|s| *s = State::default());
        self.cell = u64::MAX;
    }

    fn process(&mut self, block: &mut [&mut [f32]], ctx: &ProcessCtx<'_>) {
        let nb = self.coeffs.len();
        if nb == 0 || block.is_empty() {
            return;
        }
        if !self.auto.is_empty() {
            self.process_automated(block, ctx.start);
            return;
        }
        // Channels beyond those prepared are left untouched (never a panic).
        let chans = block.len().min(self.channels);
        let mut c = 0;
        while c < chans {
            if c + 1 < chans {
                let (a, b) = block.split_at_mut(c + 1);
                let (sa, sb) = self.state[c * nb..(c + 2) * nb].split_at_mut(nb);
                run_stereo(&self.coeffs, sa, sb, a[c], b[0]);
                c += 2;
            } else {
                run_mono(
                    &self.coeffs,
                    &mut self.state[c * nb..(c + 1) * nb],
                    block[c],
                );
                c += 1;
            }
        }
    }
}

/// Runs all bands over one channel: two bands per pass, sample-major, so the two
/// recursions overlap and their state stays in registers.
fn run_mono(coeffs: &[Coeffs], state: &mut [State], x: &mut [f32]) {
    let mut b = 0;
    while b < coeffs.len() {
        if b + 1 < coeffs.len() {
            let (k0, k1) = (coeffs[b], coeffs[b + 1]);
            let (mut p, mut q) = (state[b], state[b + 1]);
            for v in x.iter_mut() {
                let y = step(&k0, &mut p, *v as f64);
                *v = step(&k1, &mut q, y) as f32;
            }
            state[b] = p;
            state[b + 1] = q;
            b += 2;
        } else {
            let k = coeffs[b];
            let mut p = state[b];
            for v in x.iter_mut() {
                *v = step(&k, &mut p, *v as f64) as f32;
            }
            state[b] = p;
            b += 1;
        }
    }
}

/// A pair of f64 lanes (left, right): one SSE2 register on x86_64 (baseline there,
/// and LLVM does not vectorise this loop by itself), a plain pair elsewhere.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod lanes {
    use std::arch::x86_64::{
        __m128d, _mm_add_pd, _mm_mul_pd, _mm_set_pd, _mm_set1_pd, _mm_storeu_pd, _mm_sub_pd,
    };

    #[derive(Clone, Copy, Debug)]
    pub(super) struct F2(__m128d);

    impl F2 {
        #[inline(always)]
        pub(super) fn new(l: f64, r: f64) -> F2 {
            // SAFETY: SSE2 is part of the x86_64 baseline (always enabled).
            F2(unsafe { _mm_set_pd(r, l) })
        }
        #[inline(always)]
        pub(super) fn splat(v: f64) -> F2 {
            // SAFETY: SSE2 is part of the x86_64 baseline (always enabled).
            F2(unsafe { _mm_set1_pd(v) })
        }
        #[inline(always)]
        pub(super) fn add(self, o: F2) -> F2 {
            // SAFETY: SSE2 is part of the x86_64 baseline (always enabled).
            F2(unsafe { _mm_add_pd(self.0, o.0) })
        }
        #[inline(always)]
        pub(super) fn sub(self, o: F2) -> F2 {
            // SAFETY: SSE2 is part of the x86_64 baseline (always enabled).
            F2(unsafe { _mm_sub_pd(self.0, o.0) })
        }
        #[inline(always)]
        pub(super) fn mul(self, o: F2) -> F2 {
            // SAFETY: SSE2 is part of the x86_64 baseline (always enabled).
            F2(unsafe { _mm_mul_pd(self.0, o.0) })
        }
        #[inline(always)]
        pub(super) fn get(self) -> (f64, f64) {
            let mut out = [0.0f64; 2];
            // SAFETY: `out` is two writable f64s; storeu has no alignment requirement.
            unsafe { _mm_storeu_pd(out.as_mut_ptr(), self.0) };
            (out[0], out[1])
        }
    }

    impl Default for F2 {
        fn default() -> F2 {
            F2::splat(0.0)
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
mod lanes {
    #[derive(Clone, Copy, Debug, Default)]
    pub(super) struct F2(f64, f64);

    impl F2 {
        #[inline(always)]
        pub(super) fn new(l: f64, r: f64) -> F2 {
            F2(l, r)
        }
        #[inline(always)]
        pub(super) fn splat(v: f64) -> F2 {
            F2(v, v)
        }
        #[inline(always)]
        pub(super) fn add(self, o: F2) -> F2 {
            F2(self.0 + o.0, self.1 + o.1)
        }
        #[inline(always)]
        pub(super) fn sub(self, o: F2) -> F2 {
            F2(self.0 - o.0, self.1 - o.1)
        }
        #[inline(always)]
        pub(super) fn mul(self, o: F2) -> F2 {
            F2(self.0 * o.0, self.1 * o.1)
        }
        #[inline(always)]
        pub(super) fn get(self) -> (f64, f64) {
            (self.0, self.1)
        }
    }
}

use lanes::F2;

/// Coefficients broadcast to both lanes.
#[derive(Clone, Copy)]
struct K2 {
    b0: F2,
    b1: F2,
    b2: F2,
    a1: F2,
    a2: F2,
}

impl K2 {
    fn new(k: &Coeffs) -> K2 {
        K2 {
            b0: F2::splat(k.b0),
            b1: F2::splat(k.b1),
            b2: F2::splat(k.b2),
            a1: F2::splat(k.a1),
            a2: F2::splat(k.a2),
        }
    }
}

/// Direct-form-I history of one band on both channels.
#[derive(Clone, Copy, Default)]
struct Hist2 {
    x1: F2,
    x2: F2,
    y1: F2,
    y2: F2,
}

impl Hist2 {
    fn load(l: &State, r: &State) -> Hist2 {
        Hist2 {
            x1: F2::new(l.x1, r.x1),
            x2: F2::new(l.x2, r.x2),
            y1: F2::new(l.y1, r.y1),
            y2: F2::new(l.y2, r.y2),
        }
    }
    fn store(&self, l: &mut State, r: &mut State) {
        let (x1, x2, y1, y2) = (self.x1.get(), self.x2.get(), self.y1.get(), self.y2.get());
        *l = State {
            x1: x1.0,
            x2: x2.0,
            y1: y1.0,
            y2: y2.0,
        };
        *r = State {
            x1: x1.1,
            x2: x2.1,
            y1: y1.1,
            y2: y2.1,
        };
    }
}

/// The direct-form-I step of [`step`] on both lanes.
#[inline(always)]
fn step2(k: &K2, s: &mut Hist2, x: F2) -> F2 {
    let y =
        k.b0.mul(x)
            .add(k.b1.mul(s.x1))
            .add(k.b2.mul(s.x2).sub(k.a2.mul(s.y2)))
            .sub(k.a1.mul(s.y1));
    s.x2 = s.x1;
    s.x1 = x;
    s.y2 = s.y1;
    s.y1 = y;
    y
}

/// Runs all bands over two channels, both in one loop (two lanes of one SSE2
/// register), two bands per pass.
///
/// Within a pass the signal stays in `f64`; between passes it is rounded to `f32`
/// (the block's format): −150 dB per pass.
fn run_stereo(coeffs: &[Coeffs], sl: &mut [State], sr: &mut [State], l: &mut [f32], r: &mut [f32]) {
    let n = l.len().min(r.len());
    let (l, r) = (&mut l[..n], &mut r[..n]);
    let mut b = 0;
    while b < coeffs.len() {
        if b + 1 < coeffs.len() {
            let (k0, k1) = (K2::new(&coeffs[b]), K2::new(&coeffs[b + 1]));
            let mut p = Hist2::load(&sl[b], &sr[b]);
            let mut q = Hist2::load(&sl[b + 1], &sr[b + 1]);
            for (vl, vr) in l.iter_mut().zip(r.iter_mut()) {
                let y = step2(&k0, &mut p, F2::new(*vl as f64, *vr as f64));
                let (zl, zr) = step2(&k1, &mut q, y).get();
                *vl = zl as f32;
                *vr = zr as f32;
            }
            let (a, c) = sl.split_at_mut(b + 1);
            let (d, e) = sr.split_at_mut(b + 1);
            p.store(&mut a[b], &mut d[b]);
            q.store(&mut c[0], &mut e[0]);
            b += 2;
        } else {
            let k = K2::new(&coeffs[b]);
            let mut p = Hist2::load(&sl[b], &sr[b]);
            for (vl, vr) in l.iter_mut().zip(r.iter_mut()) {
                let (yl, yr) = step2(&k, &mut p, F2::new(*vl as f64, *vr as f64)).get();
                *vl = yl as f32;
                *vr = yr as f32;
            }
            p.store(&mut sl[b], &mut sr[b]);
            b += 1;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FS: f64 = 48_000.0;
    const ALL: [FilterKind; 6] = [
        FilterKind::Highpass,
        FilterKind::Lowpass,
        FilterKind::Lowshelf,
        FilterKind::Highshelf,
        FilterKind::Peak,
        FilterKind::Notch,
    ];

    /// Minimal complex numbers for the reference.
    #[derive(Clone, Copy)]
    struct C(f64, f64);
    impl C {
        fn add(self, o: C) -> C {
            C(self.0 + o.0, self.1 + o.1)
        }
        fn mul(self, o: C) -> C {
            C(self.0 * o.0 - self.1 * o.1, self.0 * o.1 + self.1 * o.0)
        }
        fn scale(self, k: f64) -> C {
            C(self.0 * k, self.1 * k)
        }
        fn abs(self) -> f64 {
            self.0.hypot(self.1)
        }
    }

    /// Independent reference: the cookbook's analog prototype H(s) (written from the
    /// cookbook's s-domain formulas, not from `design`) evaluated at s = jΩ, with the
    /// bilinear transform's frequency warping Ω = tan(πf/fs) / tan(πf0/fs). The RBJ
    /// digital filters are exactly these prototypes under that transform.
    fn reference_mag(spec: &BandSpec, f: f64, fs: f64) -> f64 {
        let om = (PI * f / fs).tan() / (PI * spec.freq / fs).tan();
        let s = C(0.0, om);
        let s2 = s.mul(s);
        let q = spec.q;
        let a = 10f64.powf(spec.gain_db / 40.0);
        let one = C(1.0, 0.0);
        let (num, den) = match spec.kind {
            FilterKind::Lowpass => (one, s2.add(s.scale(1.0 / q)).add(one)),
            FilterKind::Highpass => (s2, s2.add(s.scale(1.0 / q)).add(one)),
            FilterKind::Notch => (s2.add(one), s2.add(s.scale(1.0 / q)).add(one)),
            FilterKind::Peak => (
                s2.add(s.scale(a / q)).add(one),
                s2.add(s.scale(1.0 / (a * q))).add(one),
            ),
            FilterKind::Lowshelf => (
                s2.add(s.scale(a.sqrt() / q)).add(C(a, 0.0)).scale(a),
                s2.scale(a).add(s.scale(a.sqrt() / q)).add(one),
            ),
            FilterKind::Highshelf => (
                s2.scale(a).add(s.scale(a.sqrt() / q)).add(one).scale(a),
                s2.add(s.scale(a.sqrt() / q)).add(C(a, 0.0)),
            ),
        };
        num.abs() / den.abs()
    }

    fn specs() -> Vec<BandSpec> {
        let mut v = Vec::new();
        for kind in ALL {
            for (freq, q, gain_db) in [(30.0, 0.707, 6.0), (1000.0, 1.0, -9.0), (8000.0, 4.0, 12.0)]
            {
                v.push(BandSpec {
                    kind,
                    freq,
                    q,
                    gain_db,
                });
            }
        }
        v
    }

    const PROBES: [f64; 9] = [
        20.0, 50.0, 200.0, 900.0, 1000.0, 3000.0, 8000.0, 12_000.0, 20_000.0,
    ];

    #[test]
    fn magnitude_matches_analog_prototype() {
        for spec in specs() {
            let c = design(&spec, FS);
            for f in PROBES.iter().copied().chain([spec.freq]) {
                let want = reference_mag(&spec, f, FS);
                let got = 10f64.powf(magnitude_db(&c, f, FS) / 20.0);
                // Relative where the response is audible, absolute in deep stop bands.
                assert!(
                    (got - want).abs() <= 1e-9 * want + 1e-10,
                    "{spec:?} at {f} Hz: got {got}, want {want}"
                );
            }
        }
    }

    #[test]
    fn known_properties() {
        let q = std::f64::consts::FRAC_1_SQRT_2;
        for f0 in [50.0, 1000.0, 10_000.0] {
            let hp = design(
                &BandSpec {
                    kind: FilterKind::Highpass,
                    freq: f0,
                    q,
                    gain_db: 0.0,
                },
                FS,
            );
            let lp = design(
                &BandSpec {
                    kind: FilterKind::Lowpass,
                    freq: f0,
                    q,
                    gain_db: 0.0,
                },
                FS,
            );
            assert!((magnitude_db(&hp, f0, FS) + 3.0103).abs() < 1e-3);
            assert!((magnitude_db(&lp, f0, FS) + 3.0103).abs() < 1e-3);
            assert!(magnitude_db(&lp, 1.0, FS).abs() < 1e-6);
            assert!(magnitude_db(&hp, FS / 2.0 - 1.0, FS).abs() < 1e-3);
            let notch = design(
                &BandSpec {
                    kind: FilterKind::Notch,
                    freq: f0,
                    q: 2.0,
                    gain_db: 0.0,
                },
                FS,
            );
            assert!(magnitude_db(&notch, f0, FS) < -120.0);
            for g in [-12.0, 3.0, 15.0] {
                let pk = design(
                    &BandSpec {
                        kind: FilterKind::Peak,
                        freq: f0,
                        q: 1.5,
                        gain_db: g,
                    },
                    FS,
                );
                assert!((magnitude_db(&pk, f0, FS) - g).abs() < 1e-9);
                let ls = design(
                    &BandSpec {
                        kind: FilterKind::Lowshelf,
                        freq: f0,
                        q,
                        gain_db: g,
                    },
                    FS,
                );
                let hs = design(
                    &BandSpec {
                        kind: FilterKind::Highshelf,
                        freq: f0,
                        q,
                        gain_db: g,
                    },
                    FS,
                );
                // Asymptotes: full gain on the shelf side (exact at DC / Nyquist), 0 dB on
                // the other, half the gain (in dB) at f0.
                assert!((magnitude_db(&ls, 0.0, FS) - g).abs() < 1e-9);
                assert!(magnitude_db(&ls, FS / 2.0, FS).abs() < 1e-9);
                assert!((magnitude_db(&hs, FS / 2.0, FS) - g).abs() < 1e-9);
                assert!(magnitude_db(&hs, 0.0, FS).abs() < 1e-9);
                assert!((magnitude_db(&ls, f0, FS) - g / 2.0).abs() < 1e-9);
                assert!((magnitude_db(&hs, f0, FS) - g / 2.0).abs() < 1e-9);
            }
        }
    }

    fn prepared(bands: &[BandSpec], channels: usize, max_block: usize) -> EqChain {
        let mut eq = EqChain::new(bands);
        eq.prepare(&ProcessSpec {
            sample_rate: FS,
            max_block,
            channels,
        })
        .unwrap();
        eq
    }

    fn run(eq: &mut EqChain, chans: &mut [Vec<f32>], block: usize) {
        let n = chans[0].len();
        let mut at = 0;
        while at < n {
            let k = block.min(n - at);
            let mut b: Vec<&mut [f32]> = chans.iter_mut().map(|c| &mut c[at..at + k]).collect();
            eq.process(&mut b, &ProcessCtx::default());
            at += k;
        }
    }

    /// Steady-state amplitude of `y` at integer frequency `f` over its last second
    /// (a whole number of cycles, so the sin/cos projections are exact).
    fn amplitude(y: &[f32], f: f64) -> f64 {
        let n = FS as usize;
        let tail = &y[y.len() - n..];
        let start = y.len() - n;
        let (mut s, mut c) = (0.0, 0.0);
        for (i, &v) in tail.iter().enumerate() {
            let ph = 2.0 * PI * f * (start + i) as f64 / FS;
            s += v as f64 * ph.sin();
            c += v as f64 * ph.cos();
        }
        2.0 * s.hypot(c) / n as f64
    }

    fn sine(f: f64, amp: f64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (amp * (2.0 * PI * f * i as f64 / FS).sin()) as f32)
            .collect()
    }

    #[test]
    fn measured_response_matches_analog_prototype() {
        let amp = 0.5;
        for spec in specs() {
            for f in [20.0, 200.0, 1000.0, 8000.0, 15_000.0] {
                let mut eq = prepared(&[spec], 1, 4096);
                // Half a second to settle, one second measured.
                let mut x = vec![sine(f, amp, (1.5 * FS) as usize)];
                run(&mut eq, &mut x, 4096);
                let got = amplitude(&x[0], f) / amp;
                let want = reference_mag(&spec, f, FS);
                // f32 input/output rounding bounds the agreement to about 1e-6.
                assert!(
                    (got - want).abs() <= 2e-6 + 1e-5 * want,
                    "{spec:?} at {f} Hz: measured {got}, analytic {want}"
                );
            }
        }
    }

    #[test]
    fn cascade_multiplies_responses_and_channels_are_independent() {
        // Three bands: one two-band pass and one single-band pass, mono and stereo.
        let bands = [
            BandSpec {
                kind: FilterKind::Highpass,
                freq: 30.0,
                q: 0.707,
                gain_db: 0.0,
            },
            BandSpec {
                kind: FilterKind::Peak,
                freq: 3000.0,
                q: 1.0,
                gain_db: 2.0,
            },
            BandSpec {
                kind: FilterKind::Highshelf,
                freq: 8000.0,
                q: 0.707,
                gain_db: -4.0,
            },
        ];
        for (fl, fr) in [(100.0, 3000.0), (50.0, 10_000.0)] {
            let n = (1.5 * FS) as usize;
            let mut st = vec![sine(fl, 0.5, n), sine(fr, 0.25, n)];
            let mut eq = prepared(&bands, 2, 4096);
            run(&mut eq, &mut st, 4096);
            let mut mono = vec![sine(fl, 0.5, n)];
            let mut eq1 = prepared(&bands, 1, 4096);
            run(&mut eq1, &mut mono, 4096);
            assert_eq!(st[0], mono[0], "stereo left equals the mono run");
            for (ch, f, amp) in [(0, fl, 0.5), (1, fr, 0.25)] {
                let want: f64 = bands.iter().map(|b| reference_mag(b, f, FS)).product();
                let got = amplitude(&st[ch], f) / amp;
                assert!(
                    (got - want).abs() < 1e-5 * want,
                    "ch {ch} {f} Hz: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn block_sizes_and_reset_give_identical_output() {
        let bands = [
            BandSpec {
                kind: FilterKind::Lowshelf,
                freq: 120.0,
                q: 0.707,
                gain_db: 3.0,
            },
            BandSpec {
                kind: FilterKind::Notch,
                freq: 60.0,
                q: 8.0,
                gain_db: 0.0,
            },
            BandSpec {
                kind: FilterKind::Lowpass,
                freq: 9000.0,
                q: 0.5,
                gain_db: 0.0,
            },
        ];
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let n = 10_000;
        let x: Vec<Vec<f32>> = (0..2)
            .map(|_| (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect())
            .collect();
        let mut first = x.clone();
        let mut eq = prepared(&bands, 2, 4096);
        run(&mut eq, &mut first, 4096);
        eq.reset();
        let mut again = x.clone();
        run(&mut eq, &mut again, 4096);
        assert_eq!(first, again, "reset repeats the first run");
        for block in [1usize, 64] {
            let mut y = x.clone();
            let mut eq = prepared(&bands, 2, block);
            run(&mut eq, &mut y, block);
            assert_eq!(first, y, "block size {block}");
        }
        // An impulse response check against the direct-form difference equation in f64.
        let c: Vec<Coeffs> = bands.iter().map(|b| design(b, FS)).collect();
        let mut sig: Vec<f64> = x[0].iter().map(|&v| v as f64).collect();
        for k in &c {
            let (mut x1, mut x2, mut y1, mut y2) = (0.0, 0.0, 0.0, 0.0);
            for v in sig.iter_mut() {
                let y = k.b0 * *v + k.b1 * x1 + k.b2 * x2 - k.a1 * y1 - k.a2 * y2;
                (x2, x1, y2, y1) = (x1, *v, y1, y);
                *v = y;
            }
        }
        let peak = sig.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let err = sig
            .iter()
            .zip(&first[0])
            .fold(0.0f64, |m, (a, b)| m.max((a - *b as f64).abs()));
        assert!(
            err < peak * 1e-6,
            "direct form f64 reference: err {err}, peak {peak}"
        );
    }

    #[test]
    fn empty_chain_passes_through() {
        let mut eq = prepared(&[], 2, 64);
        let mut x = vec![vec![0.5f32; 64], vec![-0.25f32; 64]];
        run(&mut eq, &mut x, 64);
        assert!(x[0].iter().all(|&v| v == 0.5) && x[1].iter().all(|&v| v == -0.25));
    }
}
