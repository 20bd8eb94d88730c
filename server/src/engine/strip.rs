//! Strips: a track (clips → chain → fader → pan) or a bus (summed input → chain →
//! fader → pan), each a chain of processors built from the session through the insert
//! registry, with its send taps. The graph ([`super::graph`]) schedules them.

use std::path::PathBuf;

use crate::audio::decode::StemReader;
use crate::dsp::automation::{GainEnvelope, Lane};
use crate::dsp::pan::{balance_gains, mono_pan_gains};
use crate::dsp::{ProcessCtx, ProcessSpec, Processor};
use crate::{Error, Result};

/// Frames per block: the convolution partition too (FFT of twice this).
pub const BLOCK: usize = 16_384;

/// −3.01 dB: the centre of the mono pan law, used where a mono strip turns stereo.
const CENTRE: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// Where a strip sends its signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dest {
    Master,
    Bus(usize),
}

/// One clip of a track, planned at the session rate.
#[derive(Clone)]
pub(crate) struct ClipPlan {
    pub path: PathBuf,
    pub name: String,
    /// Timeline frame of the clip's first sample.
    pub at: u64,
    /// Frames of the (resampled) file skipped before the clip starts playing.
    pub skip: u64,
    /// Frames the clip plays (past the file's end: silence).
    pub len: u64,
    pub gain: f32,
    pub fade_in: u64,
    pub fade_out: u64,
}

struct ClipState {
    plan: ClipPlan,
    reader: Option<StemReader>,
    /// Clip frames already produced.
    pos: u64,
    done: bool,
}

/// A track's clips streamed onto its timeline: each file is opened when the timeline
/// reaches the clip and dropped after it, so memory stays bounded by blocks.
pub(crate) struct Source {
    clips: Vec<ClipState>,
    /// Width of the track (1 or 2).
    channels: usize,
    rate: u32,
    /// `Limits.max_stem_frames`: the reader stops a file whose data runs past it.
    max_frames: u64,
    scratch: [Vec<f32>; 2],
}

impl Source {
    pub fn new(
        mut clips: Vec<ClipPlan>,
        channels: usize,
        rate: u32,
        max_frames: u64,
    ) -> Result<Self> {
        clips.sort_by_key(|c| c.at);
        let mut scratch = [Vec::new(), Vec::new()];
        for s in &mut scratch {
            s.try_reserve_exact(BLOCK)
                .map_err(|e| Error::Limit(format!("track buffers: {e}")))?;
            s.resize(BLOCK, 0.0);
        }
        Ok(Source {
            clips: clips
                .into_iter()
                .map(|plan| ClipState {
                    plan,
                    reader: None,
                    pos: 0,
                    done: false,
                })
                .collect(),
            channels,
            rate,
            max_frames,
            scratch,
        })
    }

    /// The first timeline frame any clip plays.
    pub fn first_frame(&self) -> u64 {
        self.clips
            .iter()
            .map(|c| c.plan.at)
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Writes timeline frames [start, start + n) into `out[..channels]` (zeros where no
    /// clip plays).
    pub fn read(&mut self, start: u64, n: usize, out: &mut [&mut [f32]]) -> Result<()> {
        for c in out.iter_mut() {
            c[..n].fill(0.0);
        }
        let end = start + n as u64;
        let mut written = false;
        for clip in &mut self.clips {
            let p = &clip.plan;
            if clip.done || p.at >= end {
                continue;
            }
            let clip_end = p.at + p.len;
            if clip_end <= start {
                clip.done = true;
                clip.reader = None;
                continue;
            }
            if clip.reader.is_none() && clip.pos == 0 {
                let mut r = StemReader::open_limited(&p.path, &p.name, self.rate, self.max_frames)?;
                // A chain with latency reads ahead, so the first block may begin inside
                // a clip that starts near 0: its frames before `start` are skipped.
                let late = start.saturating_sub(p.at);
                skip(&mut r, p.skip + late, &mut self.scratch)?;
                clip.pos = late;
                clip.reader = Some(r);
            }
            // This block's part of the clip: block frames [a, b), clip frames from pos.
            let a = p.at.max(start) - start;
            let b = clip_end.min(end) - start;
            let (a, b) = (a as usize, b as usize);
            let k = b - a;
            let from = clip.pos;
            let file_ch = clip.reader.as_ref().map_or(1, StemReader::channels);
            {
                let [s0, s1] = &mut self.scratch;
                let mut parts: [&mut [f32]; 2] = [&mut s0[..k], &mut s1[..k]];
                let mut got = 0;
                if let Some(r) = &mut clip.reader {
                    while got < k {
                        let [p0, p1] = &mut parts;
                        let mut view: [&mut [f32]; 2] = [&mut p0[got..], &mut p1[got..]];
                        let m = r.read(&mut view[..file_ch])?;
                        if m == 0 {
                            break;
                        }
                        got += m;
                    }
                    if got < k {
                        // Past the file's end: silence for the rest of the clip.
                        clip.reader = None;
                    }
                }
                for part in parts.iter_mut().take(file_ch) {
                    part[got..].fill(0.0);
                }
            }
            clip.pos += k as u64;
            // Gain and fades on the clip's own frames.
            let needs_gain = p.gain != 1.0
                || (p.fade_in > 0 && from < p.fade_in)
                || (p.fade_out > 0 && from + k as u64 > p.len - p.fade_out.min(p.len));
            if needs_gain {
                for i in 0..k {
                    let ci = from + i as u64;
                    let mut g = p.gain as f64;
                    if ci < p.fade_in {
                        g *= ci as f64 / p.fade_in as f64;
                    }
                    let back = p.len - 1 - ci;
                    if back < p.fade_out {
                        g *= back as f64 / p.fade_out as f64;
                    }
                    let g = g as f32;
                    for s in self.scratch.iter_mut().take(file_ch) {
                        s[i] *= g;
                    }
                }
            }
            // Onto the track's channels: a mono clip feeds both sides of a stereo track
            // at unity; a stereo clip on a 1-channel track is (L+R)/2.
            let [s0, s1] = &self.scratch;
            let put = |dst: &mut [f32], src: &[f32], first: bool| {
                if first {
                    dst.copy_from_slice(src);
                } else {
                    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                }
            };
            match (file_ch, self.channels) {
                (1, 1) => put(&mut out[0][a..b], &s0[..k], !written),
                (1, _) => {
                    put(&mut out[0][a..b], &s0[..k], !written);
                    put(&mut out[1][a..b], &s0[..k], !written);
                }
                (_, 1) => {
                    for (i, d) in out[0][a..b].iter_mut().enumerate() {
                        *d += (s0[i] + s1[i]) * 0.5;
                    }
                }
                _ => {
                    put(&mut out[0][a..b], &s0[..k], !written);
                    put(&mut out[1][a..b], &s1[..k], !written);
                }
            }
            written = true;
            if clip.pos >= p.len {
                clip.done = true;
                clip.reader = None;
            }
        }
        Ok(())
    }
}

/// Reads and drops `frames` frames (a clip's start inside its file).
fn skip(r: &mut StemReader, mut frames: u64, scratch: &mut [Vec<f32>; 2]) -> Result<()> {
    let ch = r.channels();
    while frames > 0 {
        let k = (frames.min(BLOCK as u64)) as usize;
        let [s0, s1] = scratch;
        let mut v: [&mut [f32]; 2] = [&mut s0[..k], &mut s1[..k]];
        let got = r.read(&mut v[..ch])?;
        if got == 0 {
            break;
        }
        frames -= got as u64;
    }
    Ok(())
}

/// One processor of a chain and how the chain feeds it.
pub(crate) struct Link {
    pub proc: Box<dyn Processor>,
    /// A mono strip turns stereo here (both sides at −3.01 dB).
    pub widen: bool,
    /// The chain's latency after this processor: it sees the block at the chain's
    /// input position minus (chain latency − ahead), the latency of those before it.
    pub ahead: u64,
    /// The sidechain key this processor listens to (index into the key store).
    pub key: Option<usize>,
}

/// A strip's processors in order, with its widths and total latency.
pub(crate) struct Chain {
    pub links: Vec<Link>,
    /// Width into the chain and out of it.
    pub width_in: usize,
    pub width_out: usize,
    /// Total latency (frames): the output lags the input by this much; the graph
    /// compensates it with delays on the other paths.
    pub latency: u64,
}

impl Chain {
    /// Prepares `procs` (with their keys) for a strip that starts `width` wide.
    pub fn new(
        procs: Vec<(Box<dyn Processor>, Option<usize>)>,
        width: usize,
        rate: f64,
    ) -> Result<Self> {
        let mut w = width;
        let mut links = Vec::with_capacity(procs.len());
        let mut lat = Vec::with_capacity(procs.len());
        for (mut proc, key) in procs {
            let out = proc.output_channels(w).clamp(1, 2);
            let widen = w == 1 && out == 2;
            let input = if widen { 2 } else { w };
            proc.prepare(&ProcessSpec {
                sample_rate: rate,
                max_block: BLOCK,
                channels: input,
            })?;
            lat.push(proc.latency() as u64);
            links.push(Link {
                proc,
                widen,
                ahead: 0,
                key,
            });
            w = out;
        }
        let total: u64 = lat.iter().sum();
        let mut before = 0;
        for (l, d) in links.iter_mut().zip(&lat) {
            l.ahead = total - before;
            before += d;
        }
        Ok(Chain {
            links,
            width_in: width,
            width_out: w,
            latency: total,
        })
    }

    /// Runs the chain over `buf[..]` (block frames `n`) whose *input* sits at timeline
    /// frame `start`. Returns the width out.
    pub fn process(
        &mut self,
        buf: &mut [Vec<f32>; 2],
        n: usize,
        start: u64,
        keys: &KeyStore,
    ) -> usize {
        let mut w = self.width_in;
        for l in &mut self.links {
            if l.widen && w == 1 {
                let [b0, b1] = buf;
                for (x, y) in b0[..n].iter_mut().zip(&mut b1[..n]) {
                    *x *= CENTRE;
                    *y = *x;
                }
                w = 2;
            }
            let key_views;
            let key = match l.key.and_then(|k| keys.get(k)) {
                Some(k) => {
                    key_views = k.views(n);
                    Some(&key_views[..k.width])
                }
                None => None,
            };
            // Before 0 the input is silence and lanes hold their first value, so 0
            // stands in for negative positions exactly.
            let ctx = ProcessCtx {
                start: start.saturating_sub(self.latency - l.ahead),
                key,
            };
            let [b0, b1] = buf;
            let mut chans: [&mut [f32]; 2] = [&mut b0[..n], &mut b1[..n]];
            l.proc.process(&mut chans[..w], &ctx);
            w = l.proc.output_channels(w).clamp(1, 2);
        }
        w
    }

    /// A failure a processor recorded (the GPU went away).
    pub fn failure(&mut self) -> Option<Error> {
        self.links.iter_mut().find_map(|l| l.proc.failure())
    }
}

/// A sidechain key signal for the current block.
pub(crate) struct Key {
    pub buf: [Vec<f32>; 2],
    pub width: usize,
}

impl Key {
    fn views(&self, n: usize) -> [&[f32]; 2] {
        [&self.buf[0][..n], &self.buf[1][..n]]
    }
}

/// Keys of this block, by index: filled by the graph before the strips that use them.
#[derive(Default)]
pub(crate) struct KeyStore {
    pub keys: Vec<Key>,
}

impl KeyStore {
    fn get(&self, i: usize) -> Option<&Key> {
        self.keys.get(i)
    }

    /// Copies a tap into key `i` (silence when `src` is `None`: a muted key).
    pub fn set(&mut self, i: usize, src: Option<(&[Vec<f32>; 2], usize)>, n: usize) {
        let k = &mut self.keys[i];
        match src {
            Some((b, w)) => {
                k.width = w;
                for (dst, src) in k.buf.iter_mut().zip(b).take(w) {
                    dst[..n].copy_from_slice(&src[..n]);
                }
            }
            None => {
                k.width = 1;
                k.buf[0][..n].fill(0.0);
            }
        }
    }
}

/// Pan: fixed gains, or a lane evaluated per sample.
pub(crate) enum Pan {
    Fixed(f32, f32),
    Auto { lane: Lane, mono: bool },
}

impl Pan {
    pub fn new(pan: f64, lane: Option<&[(f64, f64)]>, mono: bool, rate: f64, origin: u64) -> Self {
        match lane {
            Some(pts) => Pan::Auto {
                lane: Lane::linear(pts, rate).with_origin(origin),
                mono,
            },
            None => {
                let (l, r) = if mono {
                    mono_pan_gains(pan)
                } else {
                    balance_gains(pan)
                };
                Pan::Fixed(l as f32, r as f32)
            }
        }
    }
}

/// A send tap: to a bus, at a level (fixed or a dB lane), pre or post fader.
pub(crate) struct SendTap {
    pub bus: usize,
    pub level: GainEnvelope,
    pub pre: bool,
    /// Latency compensation on this edge (see [`EdgeDelay`]).
    pub delay: Option<EdgeDelay>,
}

/// A fixed delay on one edge of the graph: plugin-delay compensation. A bus whose chain
/// has latency (an oversampled saturation) delivers late; every other path into the
/// same destination is delayed to match, so nothing shifts against anything else.
/// `d` < BLOCK frames, and blocks are whole BLOCKs, so one block of history suffices.
pub(crate) struct EdgeDelay {
    d: usize,
    hist: [Vec<f32>; 2],
    /// What the edge carries this block, before the delay.
    pub buf: [Vec<f32>; 2],
}

impl EdgeDelay {
    /// None for no delay; an error when `d` is a block or more.
    pub fn new(d: u64) -> Result<Option<Self>> {
        if d == 0 {
            return Ok(None);
        }
        let d = usize::try_from(d)
            .ok()
            .filter(|&d| d < BLOCK)
            .ok_or_else(|| {
                Error::Limit(format!(
                    "{d} frames of insert latency on one path to the mix; at most {} can be compensated",
                    BLOCK - 1
                ))
            })?;
        let zeros = |len: usize| -> Result<Vec<f32>> {
            let mut v = Vec::new();
            v.try_reserve_exact(len)
                .map_err(|e| Error::Limit(format!("latency compensation: {e}")))?;
            v.resize(len, 0.0);
            Ok(v)
        };
        Ok(Some(EdgeDelay {
            d,
            hist: [zeros(d)?, zeros(d)?],
            buf: [block_buf()?, block_buf()?],
        }))
    }

    /// Adds `buf` delayed by `d` into `dst` (n ≥ d frames) and clears `buf`.
    pub fn add_into(&mut self, dst: &mut [Vec<f32>; 2], n: usize) {
        let d = self.d;
        for ((out, buf), hist) in dst.iter_mut().zip(&mut self.buf).zip(&mut self.hist) {
            for (o, h) in out[..d].iter_mut().zip(hist.iter()) {
                *o += h;
            }
            for (o, x) in out[d..n].iter_mut().zip(&buf[..n - d]) {
                *o += x;
            }
            hist.copy_from_slice(&buf[n - d..n]);
            buf[..n].fill(0.0);
        }
    }
}

/// The common tail of every strip: fader, pan, mute lane, sends, output.
pub(crate) struct Tail {
    pub fader: GainEnvelope,
    pub pan: Pan,
    /// A mute lane (muted where ≥ 0.5).
    pub mute: Option<Lane>,
    pub output: Option<Dest>,
    /// Latency compensation on the output edge.
    pub output_delay: Option<EdgeDelay>,
    pub sends: Vec<SendTap>,
    /// Post-pan stereo output.
    pub out: [Vec<f32>; 2],
    gain: Vec<f32>,
    pan_l: Vec<f32>,
    pan_r: Vec<f32>,
    /// Per-sample mute gains (1 or 0) when a mute lane exists.
    pub mute_gain: Vec<f32>,
    /// Per-sample send gains scratch.
    pub send_gain: Vec<f32>,
}

/// A zeroed f32 buffer of BLOCK frames, allocated fallibly.
pub(crate) fn block_buf() -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(BLOCK)
        .map_err(|e| Error::Limit(format!("strip buffers: {e}")))?;
    v.resize(BLOCK, 0.0);
    Ok(v)
}

impl Tail {
    pub fn new(
        fader: GainEnvelope,
        pan: Pan,
        mute: Option<Lane>,
        output: Option<Dest>,
        sends: Vec<SendTap>,
    ) -> Result<Self> {
        let auto_pan = matches!(pan, Pan::Auto { .. });
        let small = |on: bool| if on { block_buf() } else { Ok(Vec::new()) };
        Ok(Tail {
            fader,
            out: [block_buf()?, block_buf()?],
            gain: block_buf()?,
            pan_l: small(auto_pan)?,
            pan_r: small(auto_pan)?,
            mute_gain: small(mute.is_some())?,
            send_gain: small(sends.iter().any(|s| s.level.is_constant().is_none()))?,
            pan,
            mute,
            output,
            output_delay: None,
            sends,
        })
    }

    /// Fader and pan in one pass from `src` (width `w`) into `out`; then the mute lane
    /// on the taps (`src` too, for pre-fader sends).
    pub fn run(&mut self, src: &mut [Vec<f32>; 2], w: usize, start: u64, n: usize) {
        let [o0, o1] = &mut self.out;
        let (sl, sr) = if w == 1 {
            (&src[0][..n], &src[0][..n])
        } else {
            (&src[0][..n], &src[1][..n])
        };
        match &self.pan {
            Pan::Fixed(pl, pr) => {
                let (pl, pr) = (*pl, *pr);
                match self.fader.is_constant() {
                    Some(g) => {
                        let (gl, gr) = (g * pl, g * pr);
                        for i in 0..n {
                            o0[i] = sl[i] * gl;
                            o1[i] = sr[i] * gr;
                        }
                    }
                    None => {
                        self.fader.fill(start, &mut self.gain[..n]);
                        let g = &self.gain[..n];
                        for i in 0..n {
                            o0[i] = sl[i] * g[i] * pl;
                            o1[i] = sr[i] * g[i] * pr;
                        }
                    }
                }
            }
            Pan::Auto { lane, mono } => {
                lane.fill(start, &mut self.pan_l[..n]);
                for i in 0..n {
                    let p = f64::from(self.pan_l[i]).clamp(-1.0, 1.0);
                    let (l, r) = if *mono || w == 1 {
                        mono_pan_gains(p)
                    } else {
                        balance_gains(p)
                    };
                    self.pan_l[i] = l as f32;
                    self.pan_r[i] = r as f32;
                }
                self.fader.fill(start, &mut self.gain[..n]);
                let g = &self.gain[..n];
                for i in 0..n {
                    o0[i] = sl[i] * g[i] * self.pan_l[i];
                    o1[i] = sr[i] * g[i] * self.pan_r[i];
                }
            }
        }
        if let Some(m) = &self.mute {
            m.fill(start, &mut self.mute_gain[..n]);
            for v in &mut self.mute_gain[..n] {
                *v = if *v >= 0.5 { 0.0 } else { 1.0 };
            }
            let mg = &self.mute_gain[..n];
            for c in self.out.iter_mut().chain(src.iter_mut().take(w)) {
                c[..n].iter_mut().zip(mg).for_each(|(x, g)| *x *= g);
            }
        }
    }

    /// Adds this strip's output and sends into `target(dest)`; `pre` is the pre-fader
    /// tap (width `w`).
    pub fn deliver(
        &mut self,
        pre: &[Vec<f32>; 2],
        w: usize,
        start: u64,
        n: usize,
        targets: &mut dyn Targets,
    ) {
        if let Some(d) = self.output {
            match &mut self.output_delay {
                None => add(targets.target(d), &self.out, 1.0, n),
                Some(dl) => {
                    add(&mut dl.buf, &self.out, 1.0, n);
                    dl.add_into(targets.target(d), n);
                }
            }
        }
        for s in &mut self.sends {
            let t = match &mut s.delay {
                Some(dl) => &mut dl.buf,
                None => targets.target(Dest::Bus(s.bus)),
            };
            match s.level.is_constant() {
                Some(level) => {
                    if !s.pre {
                        add(t, &self.out, level, n);
                    } else if w == 1 {
                        // A mono tap feeds the bus at centre by the pan law.
                        let g = level * CENTRE;
                        for c in t.iter_mut() {
                            for (o, x) in c[..n].iter_mut().zip(&pre[0][..n]) {
                                *o += x * g;
                            }
                        }
                    } else {
                        add(t, pre, level, n);
                    }
                }
                None => {
                    s.level.fill(start, &mut self.send_gain[..n]);
                    let g = &self.send_gain[..n];
                    let src: [&[f32]; 2] = if !s.pre {
                        [&self.out[0][..n], &self.out[1][..n]]
                    } else if w == 1 {
                        [&pre[0][..n], &pre[0][..n]]
                    } else {
                        [&pre[0][..n], &pre[1][..n]]
                    };
                    let c = if s.pre && w == 1 { CENTRE } else { 1.0 };
                    for (d, x) in t.iter_mut().zip(src) {
                        for i in 0..n {
                            d[i] += x[i] * (g[i] * c);
                        }
                    }
                }
            }
            if let Some(dl) = &mut s.delay {
                dl.add_into(targets.target(Dest::Bus(s.bus)), n);
            }
        }
    }
}

/// Where strips deliver: the summed inputs of buses and of the master bus.
pub(crate) trait Targets {
    fn target(&mut self, d: Dest) -> &mut [Vec<f32>; 2];
}

/// dst += src · g over the first n frames of both channels.
pub(crate) fn add(dst: &mut [Vec<f32>; 2], src: &[Vec<f32>; 2], g: f32, n: usize) {
    for (d, s) in dst.iter_mut().zip(src) {
        for (o, x) in d[..n].iter_mut().zip(&s[..n]) {
            *o += x * g;
        }
    }
}

/// A send's level: its `send.<BUS>` lane (dB, replacing the static level), else fixed.
pub(crate) fn send_level(
    level_db: f64,
    lane: Option<&[(f64, f64)]>,
    rate: f64,
    origin: u64,
) -> GainEnvelope {
    match lane {
        Some(pts) => GainEnvelope::new(0.0, pts, rate).with_origin(origin),
        None => GainEnvelope::new(level_db, &[], rate),
    }
}
