//! The mix graph, rendered block by block: track strips in parallel on CPU threads,
//! buses (reverb on the convolution backend) in routing order, the master bus into
//! the mix buffer. Memory is bounded by blocks for the tracks; only the mix itself
//! is held whole (mastering needs all of it).

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::audio::decode::StemReader;
use crate::dsp::Processor;
use crate::dsp::automation::GainEnvelope;
use crate::dsp::biquad::{BandSpec, EqChain, FilterKind};
use crate::dsp::compressor::{Compressor, CompressorParams, DetectorKind};
use crate::dsp::convolution::{ConvolutionBank, ImpulseResponse};
use crate::dsp::db_to_gain;
use crate::dsp::delay::Delay;
use crate::dsp::pan::{balance_gains, mono_pan_gains};
use crate::dsp::{ProcessCtx, ProcessSpec};
use crate::session::{self, Detector, EqType, Output, Session, Track, Variant};
use crate::{Error, Result};

use super::{ProgressFn, StemResolver};

/// Frames per block: the convolution partition too (FFT of twice this).
pub const BLOCK: usize = 16_384;

/// Where a strip or a bus sends its signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dest {
    Master,
    Bus(usize),
}

/// Does this track sound in this variant? (mute, solo, and the variant's tag rule)
pub fn sounds(session: &Session, track: &Track, variant: Variant) -> bool {
    let any_solo = session.tracks.iter().any(|t| t.solo);
    if track.mute || (any_solo && !track.solo) {
        return false;
    }
    let tagged = |tag: &str| track.tags.iter().any(|t| t == tag);
    match variant {
        Variant::Main => true,
        Variant::Instrumental => !tagged("vocal"),
        Variant::Acappella => tagged("vocal"),
        Variant::Tv => !tagged("lead"),
    }
}

fn dest(session: &Session, out: &Output) -> Result<Dest> {
    match out {
        Output::Master => Ok(Dest::Master),
        Output::Bus(name) => bus_index(session, name).map(Dest::Bus),
    }
}

fn bus_index(session: &Session, name: &str) -> Result<usize> {
    session
        .buses
        .iter()
        .position(|b| b.name == name)
        .ok_or_else(|| {
            Error::field(
                &session.source,
                "output",
                format!("no bus named \"{name}\""),
            )
        })
}

pub(crate) fn band_spec(b: &session::EqBand) -> BandSpec {
    let kind = match b.kind {
        EqType::Highpass => FilterKind::Highpass,
        EqType::Lowpass => FilterKind::Lowpass,
        EqType::Lowshelf => FilterKind::Lowshelf,
        EqType::Highshelf => FilterKind::Highshelf,
        EqType::Peak => FilterKind::Peak,
        EqType::Notch => FilterKind::Notch,
    };
    BandSpec {
        kind,
        freq: b.freq,
        q: b.q,
        gain_db: b.gain_db,
    }
}

pub(crate) fn compressor_params(c: &session::Compressor) -> CompressorParams {
    CompressorParams {
        threshold_db: c.threshold_db,
        ratio: c.ratio,
        attack_ms: c.attack_ms,
        release_ms: c.release_ms,
        knee_db: c.knee_db,
        makeup_db: c.makeup_db,
        detector: match c.detector {
            Detector::Peak => DetectorKind::Peak,
            Detector::Rms => DetectorKind::Rms,
        },
    }
}

/// One track strip: invert → eq → compressor → fader → pan, with its send taps.
struct Strip {
    reader: StemReader,
    channels: usize,
    /// Timeline frames where the stem starts and ends.
    offset: u64,
    end: u64,
    invert: bool,
    eq: EqChain,
    comp: Option<Compressor>,
    fader: GainEnvelope,
    /// Pan law gains (mono) or balance gains (stereo).
    pan: (f32, f32),
    output: Dest,
    /// (bus, linear level, pre-fader)
    sends: Vec<(usize, f32, bool)>,
    /// The strip's signal after the compressor (the pre-fader tap), `channels` used.
    buf: [Vec<f32>; 2],
    /// Post-pan stereo output.
    out: [Vec<f32>; 2],
    gain: Vec<f32>,
    /// False when this block's output is all zeros (before the stem starts).
    live: bool,
}

impl Strip {
    fn new(session: &Session, track: &Track, stems: StemResolver<'_>) -> Result<Self> {
        let rate = session.sample_rate;
        let path = stems(&track.file)?;
        let reader = StemReader::open(&path, &track.file.name, rate)?;
        let channels = reader.channels();
        let offset = (track.offset_s * rate as f64).round() as u64;
        let end = offset + reader.frames();
        let spec = ProcessSpec {
            sample_rate: rate as f64,
            max_block: BLOCK,
            channels,
        };
        let bands: Vec<BandSpec> = track.eq.iter().map(band_spec).collect();
        let mut eq = EqChain::new(&bands);
        eq.prepare(&spec)?;
        let comp = match &track.compressor {
            Some(c) => {
                let mut comp = Compressor::new(compressor_params(c));
                comp.prepare(&spec)?;
                Some(comp)
            }
            None => None,
        };
        let fader = GainEnvelope::new(track.gain_db, &track.gain_automation, rate as f64);
        let (l, r) = if channels == 1 {
            mono_pan_gains(track.pan)
        } else {
            balance_gains(track.pan)
        };
        let sends = track
            .sends
            .iter()
            .map(|s| {
                Ok((
                    bus_index(session, &s.bus)?,
                    db_to_gain(s.level_db) as f32,
                    s.pre_fader,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Strip {
            reader,
            channels,
            offset,
            end,
            invert: track.invert,
            eq,
            comp,
            fader,
            pan: (l as f32, r as f32),
            output: dest(session, &track.output)?,
            sends,
            buf: [vec![0.0; BLOCK], vec![0.0; BLOCK]],
            out: [vec![0.0; BLOCK], vec![0.0; BLOCK]],
            gain: vec![0.0; BLOCK],
            live: false,
        })
    }

    /// Renders timeline frames [start, start + n).
    fn process(&mut self, start: u64, n: usize) -> Result<()> {
        // Before the stem starts the strip's state is still zero, so it outputs zeros.
        if start + n as u64 <= self.offset {
            self.live = false;
            return Ok(());
        }
        self.live = true;
        // Stem frames that fall in this block: [from, to) in block coordinates.
        let from = self.offset.saturating_sub(start) as usize;
        let to = (self.end.saturating_sub(start) as usize).min(n);
        let [b0, b1] = &mut self.buf;
        let chans: &mut [&mut [f32]] = &mut [&mut b0[..n], &mut b1[..n]][..self.channels];
        for c in chans.iter_mut() {
            c[..from.min(n)].fill(0.0);
        }
        let mut at = from;
        while at < to {
            let mut parts: [&mut [f32]; 2] = {
                let [b0, b1] = &mut self.buf;
                [&mut b0[at..to], &mut b1[at..to]]
            };
            let got = self.reader.read(&mut parts[..self.channels])?;
            if got == 0 {
                break;
            }
            at += got;
        }
        let [b0, b1] = &mut self.buf;
        let chans: &mut [&mut [f32]] = &mut [&mut b0[..n], &mut b1[..n]][..self.channels];
        for c in chans.iter_mut() {
            c[at.max(from).min(n)..].fill(0.0);
            if self.invert {
                c.iter_mut().for_each(|x| *x = -*x);
            }
        }
        self.eq.process(chans, &ProcessCtx::default());
        if let Some(comp) = &mut self.comp {
            comp.process(chans, &ProcessCtx::default());
        }
        // Fader and pan in one pass.
        let (pl, pr) = self.pan;
        let [o0, o1] = &mut self.out;
        let (src_l, src_r) = if self.channels == 1 {
            (&b0[..n], &b0[..n])
        } else {
            (&b0[..n], &b1[..n])
        };
        match self.fader.is_constant() {
            Some(g) => {
                let (gl, gr) = (g * pl, g * pr);
                for i in 0..n {
                    o0[i] = src_l[i] * gl;
                    o1[i] = src_r[i] * gr;
                }
            }
            None => {
                self.fader.fill(start, &mut self.gain[..n]);
                let g = &self.gain[..n];
                for i in 0..n {
                    o0[i] = src_l[i] * g[i] * pl;
                    o1[i] = src_r[i] * g[i] * pr;
                }
            }
        }
        Ok(())
    }
}

/// A bus: inputs summed → reverb → gain → output.
struct BusState {
    output: Dest,
    gain: f32,
    reverb: Option<BusReverb>,
    input: [Vec<f32>; 2],
}

struct BusReverb {
    slot: usize,
    wet: f32,
    dry: bool,
    predelay: Delay,
    out: [Vec<f32>; 2],
}

/// Everything after the strips: buses and the master bus, writing the mix.
struct BusStage<'a> {
    buses: Vec<BusState>,
    /// Bus indices grouped by routing depth: a group's reverbs run as one batch.
    levels: Vec<Vec<usize>>,
    bank: &'a mut dyn ConvolutionBank,
    master: [Vec<f32>; 2],
    mix: [Vec<f32>; 2],
}

impl BusStage<'_> {
    fn clear_inputs(&mut self, n: usize) {
        for b in &mut self.buses {
            b.input.iter_mut().for_each(|c| c[..n].fill(0.0));
        }
        self.master.iter_mut().for_each(|c| c[..n].fill(0.0));
    }

    fn target(&mut self, d: Dest) -> &mut [Vec<f32>; 2] {
        match d {
            Dest::Master => &mut self.master,
            Dest::Bus(i) => &mut self.buses[i].input,
        }
    }

    /// Sums the strips' block into bus and master inputs (sends included).
    fn collect(&mut self, strips: &[Strip], n: usize) {
        self.clear_inputs(n);
        // Pre-fader sends of a mono stem feed the bus at centre by the pan law.
        let centre = std::f32::consts::FRAC_1_SQRT_2;
        for s in strips.iter().filter(|s| s.live) {
            add(self.target(s.output), &s.out, 1.0, n);
            for &(bus, level, pre) in &s.sends {
                let t = &mut self.buses[bus].input;
                if !pre {
                    add(t, &s.out, level, n);
                } else if s.channels == 1 {
                    let g = level * centre;
                    for c in t.iter_mut() {
                        for (o, x) in c[..n].iter_mut().zip(&s.buf[0][..n]) {
                            *o += x * g;
                        }
                    }
                } else {
                    add(t, &s.buf, level, n);
                }
            }
        }
    }

    /// Runs the buses for a whole block and writes the master bus into the mix at
    /// `start` (clipped to the mix length).
    fn process(&mut self, start: usize) -> Result<()> {
        let n = BLOCK;
        for li in 0..self.levels.len() {
            let level = self.levels[li].clone();
            // Reverbs of this routing depth, in one batch.
            let mut slots = Vec::with_capacity(level.len());
            let mut ins: Vec<[&[f32]; 2]> = Vec::with_capacity(level.len());
            let mut outs: Vec<[&mut [f32]; 2]> = Vec::with_capacity(level.len());
            for (bi, b) in self.buses.iter_mut().enumerate() {
                if !level.contains(&bi) {
                    continue;
                }
                if let Some(r) = &mut b.reverb {
                    slots.push(r.slot);
                    ins.push([&b.input[0][..n], &b.input[1][..n]]);
                    let [o0, o1] = &mut r.out;
                    outs.push([&mut o0[..n], &mut o1[..n]]);
                }
            }
            if !slots.is_empty() {
                self.bank.process(&slots, &ins, &mut outs)?;
            }
            drop((ins, outs));
            for &bi in &level {
                let b = &mut self.buses[bi];
                if let Some(r) = &mut b.reverb {
                    {
                        let [o0, o1] = &mut r.out;
                        r.predelay
                            .process(&mut [&mut o0[..n], &mut o1[..n]], &ProcessCtx::default());
                    }
                    for (inp, wet) in b.input.iter_mut().zip(&r.out) {
                        if r.dry {
                            for (x, w) in inp[..n].iter_mut().zip(&wet[..n]) {
                                *x += w * r.wet;
                            }
                        } else {
                            for (x, w) in inp[..n].iter_mut().zip(&wet[..n]) {
                                *x = w * r.wet;
                            }
                        }
                    }
                }
                let gain = b.gain;
                let output = b.output;
                let signal = std::mem::take(&mut b.input);
                add(self.target(output), &signal, gain, n);
                self.buses[bi].input = signal;
            }
        }
        for (mix, m) in self.mix.iter_mut().zip(&self.master) {
            let take = n.min(mix.len().saturating_sub(start));
            mix[start..start + take].copy_from_slice(&m[..take]);
        }
        Ok(())
    }
}

fn add(dst: &mut [Vec<f32>; 2], src: &[Vec<f32>; 2], g: f32, n: usize) {
    for (d, s) in dst.iter_mut().zip(src) {
        for (o, x) in d[..n].iter_mut().zip(&s[..n]) {
            *o += x * g;
        }
    }
}

/// Mix length in frames: the longest (offset + stem) over all tracks, muted ones
/// included, plus the tail.
pub fn mix_frames(session: &Session, stems: StemResolver<'_>) -> Result<u64> {
    let rate = session.sample_rate as f64;
    let mut longest = 0u64;
    for t in &session.tracks {
        let info = crate::audio::decode::probe(&stems(&t.file)?, &t.file.name)?;
        let frames = if info.sample_rate == session.sample_rate {
            info.frames
        } else {
            (info.frames as u128 * session.sample_rate as u128).div_ceil(info.sample_rate as u128)
                as u64
        };
        longest = longest.max((t.offset_s * rate).round() as u64 + frames);
    }
    Ok(longest + (session.tail_s * rate).round() as u64)
}

/// Loads a bus's impulse response at the session rate. An IR at another rate is
/// resampled and scaled by ir_rate / session_rate, so its frequency response
/// (a sum over samples) is kept.
pub fn load_ir(
    session: &Session,
    ir: &session::StemRef,
    stems: StemResolver<'_>,
) -> Result<ImpulseResponse> {
    let buf = crate::audio::decode::read_all(&stems(ir)?, &ir.name)?;
    let channels = if buf.sample_rate == session.sample_rate {
        buf.channels
    } else {
        let scale = buf.sample_rate as f32 / session.sample_rate as f32;
        let mut c =
            crate::audio::resample::resample(&buf.channels, buf.sample_rate, session.sample_rate)?;
        c.iter_mut().flatten().for_each(|x| *x *= scale);
        c
    };
    ImpulseResponse::new(channels, &ir.name)
}

/// Renders one variant's mix (the master bus before `[master]`), stereo at the session rate.
#[allow(clippy::too_many_arguments)]
pub fn render_mix(
    session: &Session,
    variant: Variant,
    stems: StemResolver<'_>,
    irs: &[Option<ImpulseResponse>],
    bank: &mut dyn ConvolutionBank,
    total: u64,
    progress: ProgressFn<'_>,
    cancel: &AtomicBool,
) -> Result<[Vec<f32>; 2]> {
    let total =
        usize::try_from(total).map_err(|_| Error::Limit("mix too long for this machine".into()))?;
    let mut strips = session
        .tracks
        .iter()
        .filter(|t| sounds(session, t, variant))
        .map(|t| Strip::new(session, t, stems))
        .collect::<Result<Vec<_>>>()?;

    let order = session::bus_order(session)?;
    let mut depth = vec![0usize; session.buses.len()];
    // Depth = 1 + the deepest bus feeding it; `order` puts feeders first.
    for &bi in &order {
        let feeders = session
            .buses
            .iter()
            .enumerate()
            .filter(|(_, b)| b.output == Output::Bus(session.buses[bi].name.clone()));
        depth[bi] = feeders.map(|(fi, _)| depth[fi] + 1).max().unwrap_or(0);
    }
    let nlevels = depth.iter().max().map_or(0, |d| d + 1);
    let mut levels = vec![Vec::new(); nlevels];
    for &bi in &order {
        levels[depth[bi]].push(bi);
    }

    let rate = session.sample_rate as f64;
    let mut buses = Vec::with_capacity(session.buses.len());
    for (bi, b) in session.buses.iter().enumerate() {
        let reverb = match (&b.reverb, irs.get(bi).and_then(Option::as_ref)) {
            (Some(r), Some(ir)) => {
                let slot = bank.add(ir)?;
                let mut predelay = Delay::new((r.predelay_ms * 1e-3 * rate).round() as usize);
                predelay.prepare(&ProcessSpec {
                    sample_rate: rate,
                    max_block: BLOCK,
                    channels: 2,
                })?;
                Some(BusReverb {
                    slot,
                    wet: db_to_gain(r.wet_db) as f32,
                    dry: r.dry,
                    predelay,
                    out: [vec![0.0; BLOCK], vec![0.0; BLOCK]],
                })
            }
            _ => None,
        };
        buses.push(BusState {
            output: dest(session, &b.output)?,
            gain: db_to_gain(b.gain_db) as f32,
            reverb,
            input: [vec![0.0; BLOCK], vec![0.0; BLOCK]],
        });
    }
    let mut stage = BusStage {
        buses,
        levels,
        bank,
        master: [vec![0.0; BLOCK], vec![0.0; BLOCK]],
        mix: [vec![0.0; total], vec![0.0; total]],
    };

    // Every block is processed whole (the convolution backend takes whole blocks);
    // the last one is clipped when written into the mix.
    let blocks = total.div_ceil(BLOCK);
    let run_strips = |strips: &mut Vec<Strip>, k: usize| -> Result<()> {
        strips
            .par_iter_mut()
            .try_for_each(|s| s.process((k * BLOCK) as u64, BLOCK))
    };
    if blocks > 0 {
        run_strips(&mut strips, 0)?;
    }
    // Pipeline: while the buses (the convolution backend) work on block k, the CPU
    // threads run the strips of block k + 1.
    for k in 0..blocks {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        stage.collect(&strips, BLOCK);
        let (a, b) = rayon::join(
            || {
                let _s = tracing::trace_span!("buses", block = k).entered();
                stage.process(k * BLOCK)
            },
            || {
                let _s = tracing::trace_span!("strips", block = k + 1).entered();
                if k + 1 < blocks {
                    run_strips(&mut strips, k + 1)
                } else {
                    Ok(())
                }
            },
        );
        a?;
        b?;
        progress("mix", (k + 1) as f64 / blocks as f64);
    }
    Ok(stage.mix)
}
