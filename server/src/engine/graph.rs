//! The mix graph, rendered block by block: track strips in parallel on CPU threads,
//! then buses (and tracks keyed by a bus) in routing order, the master bus into the
//! mix buffer. Memory is bounded by blocks for the strips; only the mix itself is held
//! whole (mastering needs all of it).
//!
//! Strips are chains built from the session by the insert registry
//! ([`crate::inserts`]); this module only schedules them: sidechain keys are rendered
//! before the strips they key, and while the buses work on block k the CPU threads run
//! the track strips of block k + 1.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use super::reverb::ReverbProc;
use super::strip::{
    self, BLOCK, Chain, ClipPlan, Dest, EdgeDelay, Key, KeyStore, Pan, SendTap, Source, Tail,
    Targets, block_buf,
};
use super::{ProgressFn, StemResolver};
use crate::dsp::Processor;
use crate::dsp::automation::{GainEnvelope, Lane};
use crate::dsp::convolution::{ConvolutionBank, ImpulseResponse};
use crate::inserts::BuildCtx;
use crate::session::{
    self, Automation, Insert, LaneTarget, Output, Reverb, Session, StemRef, Track, ValidSession,
    Variant,
};
use crate::{Error, Result};

pub use crate::inserts::compressor::compressor_params;
pub use crate::inserts::eq::band_spec;

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

/// What the engine learnt from the files' headers before rendering: clip plans, track
/// widths, the mix length, and the impulse responses (loaded once per distinct file,
/// only where something feeds them).
pub struct MixPlan {
    /// Frames of the mix.
    pub total: u64,
    tracks: Vec<TrackPlan>,
    irs: HashMap<String, Arc<ImpulseResponse>>,
}

struct TrackPlan {
    clips: Vec<ClipPlan>,
    /// Width of the track's source (1 or 2).
    channels: usize,
}

fn round_frames(seconds: f64, rate: f64) -> u64 {
    // Validated finite and ≥ 0, and bounded by the limits, so the cast is exact.
    crate::dsp::round_half_away(seconds * rate).max(0.0) as u64
}

/// Probes every file once (headers only), plans clips, sizes the mix and checks the
/// limits before anything large is allocated; loads the IRs that something feeds.
pub fn plan(
    session: &ValidSession,
    stems: StemResolver<'_>,
    cancel: &AtomicBool,
) -> Result<MixPlan> {
    let limits = session.limits();
    let rate = f64::from(session.sample_rate);
    let mut probes: HashMap<String, (PathBuf, crate::audio::StemInfo)> = HashMap::new();
    let mut probe = |s: &StemRef| -> Result<(PathBuf, crate::audio::StemInfo)> {
        let key = s.blake3.clone().unwrap_or_else(|| s.name.clone());
        if let Some(p) = probes.get(&key) {
            return Ok(p.clone());
        }
        let path = stems(s)?;
        let info = crate::audio::decode::probe(&path, &s.name)?;
        probes.insert(key, (path.clone(), info));
        Ok((path, info))
    };
    let mut longest = 0u64;
    let mut tracks = Vec::with_capacity(session.tracks.len());
    for (ti, t) in session.tracks.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let mut clips = Vec::with_capacity(t.clips.len());
        let mut stereo = false;
        for (ci, c) in t.clips.iter().enumerate() {
            let (path, info) = probe(&c.file)?;
            if info.channels > 2 {
                return Err(Error::BadAudio(format!(
                    "{}: {} channels; stems must be mono or stereo",
                    c.file.name, info.channels
                )));
            }
            stereo |= info.channels == 2;
            let frames = if info.sample_rate == session.sample_rate {
                info.frames
            } else {
                (u128::from(info.frames) * u128::from(session.sample_rate))
                    .div_ceil(u128::from(info.sample_rate))
                    .min(u128::from(u64::MAX)) as u64
            };
            if frames > limits.max_stem_frames {
                return Err(Error::Limit(format!(
                    "{}: {frames} frames at {} Hz, more than the {} a stem may have",
                    c.file.name, session.sample_rate, limits.max_stem_frames
                )));
            }
            let skip = round_frames(c.start_s, rate);
            let field = if t.from_file {
                format!("track[{ti}] {:?}.file", t.name)
            } else {
                format!("track[{ti}] {:?}.clips[{ci}].start_s", t.name)
            };
            if skip > 0 && skip >= frames {
                return Err(Error::field(
                    &session.source,
                    field,
                    format_args!(
                        "{} s is past the end of {} ({} s)",
                        c.start_s,
                        c.file.name,
                        frames as f64 / rate
                    ),
                ));
            }
            let len = match c.length_s {
                Some(l) => round_frames(l, rate),
                None => frames - skip,
            };
            let at = round_frames(c.at_s, rate);
            let end = at.saturating_add(len);
            if end > limits.max_mix_frames {
                return Err(mix_limit(session, end));
            }
            longest = longest.max(end);
            clips.push(ClipPlan {
                path,
                name: c.file.name.clone(),
                at,
                skip,
                len,
                gain: crate::dsp::db_to_gain(c.gain_db) as f32,
                fade_in: round_frames(c.fade_in_s, rate).min(len),
                fade_out: round_frames(c.fade_out_s, rate).min(len),
            });
        }
        let channels = match t.channels {
            Some(c) => usize::from(c),
            None if stereo => 2,
            None => 1,
        };
        tracks.push(TrackPlan { clips, channels });
    }
    let total = longest.saturating_add(round_frames(session.tail_s, rate));
    if total > limits.max_mix_frames {
        return Err(mix_limit(session, total));
    }
    // Mix (stereo f32), a copy per variant being mastered, block buffers per strip.
    let strips = (session.tracks.len() + session.buses.len() + 1) as u64;
    let estimate = total * 8 * 4 + strips * (BLOCK as u64) * 4 * 16;
    if estimate > limits.max_job_memory {
        return Err(Error::Limit(format!(
            "{}: this job needs about {} MB of memory, more than the {} MB a job may use",
            session.source,
            estimate >> 20,
            limits.max_job_memory >> 20
        )));
    }

    // IRs: once per distinct file, only for reverbs that something feeds.
    let fed = fed_buses(session);
    let mut wanted: Vec<&Reverb> = Vec::new();
    for (bi, b) in session.buses.iter().enumerate() {
        if !fed[bi] {
            continue;
        }
        wanted.extend(b.reverb.as_ref());
        wanted.extend(b.inserts.iter().filter_map(as_reverb));
    }
    for t in &session.tracks {
        wanted.extend(t.inserts.iter().filter_map(as_reverb));
    }
    if let Some(m) = &session.master_bus {
        wanted.extend(m.inserts.iter().filter_map(as_reverb));
    }
    let mut irs = HashMap::new();
    for r in wanted {
        let key = ir_key(&r.ir);
        if irs.contains_key(&key) {
            continue;
        }
        if irs.len() >= limits.max_irs {
            return Err(Error::Limit(format!(
                "{}: more than {} distinct impulse responses",
                session.source, limits.max_irs
            )));
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        irs.insert(key, Arc::new(load_ir(session, &r.ir, stems)?));
    }
    Ok(MixPlan { total, tracks, irs })
}

fn mix_limit(session: &ValidSession, frames: u64) -> Error {
    let limits = session.limits();
    Error::Limit(format!(
        "{}: the mix would be {frames} frames ({:.0} s at {} Hz), more than the {} frames a job may render",
        session.source,
        frames as f64 / f64::from(session.sample_rate),
        session.sample_rate,
        limits.max_mix_frames
    ))
}

fn as_reverb(i: &Insert) -> Option<&Reverb> {
    match i {
        Insert::Reverb(r) => Some(r),
        _ => None,
    }
}

fn ir_key(s: &StemRef) -> String {
    s.blake3.clone().unwrap_or_else(|| s.name.clone())
}

/// Bus index by name.
fn bus_names(session: &Session) -> HashMap<&str, usize> {
    session
        .buses
        .iter()
        .enumerate()
        .map(|(i, b)| (b.name.as_str(), i))
        .collect()
}

/// Buses that anything feeds (a track or bus output or send), transitively from tracks.
fn fed_buses(session: &Session) -> Vec<bool> {
    let n = session.buses.len();
    let index = bus_names(session);
    let mut fed = vec![false; n];
    let mut stack = Vec::new();
    let push = |name: &str, fed: &mut Vec<bool>, stack: &mut Vec<usize>| {
        if let Some(&i) = index.get(name)
            && !fed[i]
        {
            fed[i] = true;
            stack.push(i);
        }
    };
    for t in &session.tracks {
        if let Output::Bus(b) = &t.output {
            push(b, &mut fed, &mut stack);
        }
        for s in &t.sends {
            push(&s.bus, &mut fed, &mut stack);
        }
    }
    while let Some(i) = stack.pop() {
        let b = &session.buses[i];
        if let Output::Bus(o) = &b.output {
            push(o, &mut fed, &mut stack);
        }
        for s in &b.sends {
            push(&s.bus, &mut fed, &mut stack);
        }
    }
    fed
}

/// Loads an impulse response at the session rate. An IR at another rate is resampled
/// and scaled by ir_rate / session_rate, so its frequency response (a sum over
/// samples) is kept.
pub fn load_ir(
    session: &ValidSession,
    ir: &session::StemRef,
    stems: StemResolver<'_>,
) -> Result<ImpulseResponse> {
    let path = stems(ir)?;
    let info = crate::audio::decode::probe(&path, &ir.name)?;
    let max = session.limits().max_ir_frames;
    let frames = u128::from(info.frames) * u128::from(session.sample_rate)
        / u128::from(info.sample_rate.max(1));
    if frames > u128::from(max) {
        return Err(Error::Limit(format!(
            "{}: impulse response of {frames} frames at {} Hz, more than the {max} allowed",
            ir.name, session.sample_rate
        )));
    }
    // The same limit at the file's rate, counted again while decoding.
    let at_file_rate = (u128::from(max) * u128::from(info.sample_rate))
        .div_ceil(u128::from(session.sample_rate.max(1)));
    let buf = crate::audio::decode::read_all_limited(
        &path,
        &ir.name,
        u64::try_from(at_file_rate).unwrap_or(u64::MAX),
    )?;
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

/// Builds one strip's chain from its inserts (and the first contract's `eq` and
/// `compressor` keys before them).
struct ChainBuilder<'a> {
    session: &'a ValidSession,
    plan: &'a MixPlan,
    bank: &'a (dyn Fn() -> Result<Box<dyn ConvolutionBank>> + Sync),
    /// Key index of each key name used in this variant.
    keys: &'a HashMap<String, usize>,
    /// Timeline frame of time 0 for every lane (latency compensation).
    origin: u64,
}

impl ChainBuilder<'_> {
    fn reverb(&self, r: &Reverb, _channels: usize) -> Result<Box<dyn Processor>> {
        let ir = self.plan.irs.get(&ir_key(&r.ir)).cloned().ok_or_else(|| {
            Error::Internal(format!("{}: impulse response not loaded", r.ir.name))
        })?;
        let rate = f64::from(self.session.sample_rate);
        Ok(Box::new(ReverbProc::new((self.bank)()?, ir, r, rate)?))
    }

    fn build(
        &self,
        eq: &[session::EqBand],
        comp: Option<&session::Compressor>,
        inserts: &[Insert],
        automation: &Automation,
        width: usize,
    ) -> Result<Chain> {
        let rate = f64::from(self.session.sample_rate);
        let reverb = |r: &Reverb, ch: usize| self.reverb(r, ch);
        let key_of = |name: Option<&str>| name.and_then(|n| self.keys.get(n).copied());
        let mut procs: Vec<(Box<dyn Processor>, Option<usize>)> = Vec::new();
        if !eq.is_empty() {
            let bands: Vec<_> = eq.iter().map(band_spec).collect();
            procs.push((Box::new(crate::dsp::biquad::EqChain::new(&bands)), None));
        }
        if let Some(c) = comp {
            procs.push((
                Box::new(crate::dsp::compressor::Compressor::new(compressor_params(
                    c,
                ))),
                key_of(c.sidechain.as_deref()),
            ));
        }
        // Widths are decided as the chain is built: a processor sees the width the
        // ones before it leave.
        let mut w = width;
        for p in &procs {
            w = p.0.output_channels(w);
        }
        for (i, ins) in inserts.iter().enumerate() {
            let ctx = BuildCtx {
                origin: self.origin,
                rate,
                tempo_bpm: self.session.tempo_bpm,
                channels: w,
                lanes: automation.of_insert(i).collect(),
                reverb: &reverb,
            };
            let p = ins.build(&ctx)?;
            w = p.output_channels(w).clamp(1, 2);
            procs.push((p, key_of(ins.key())));
        }
        Chain::new(procs, width, rate)
    }
}

/// A track strip: clips → invert → chain → (pre tap) → fader → pan → output.
struct TrackStrip {
    source: Source,
    invert: bool,
    chain: Chain,
    tail: Tail,
    buf: [Vec<f32>; 2],
    /// Width after the chain (the pre-fader tap's).
    width: usize,
    first: u64,
    /// Engine frame of time 0.
    origin: u64,
    /// False when this block's output is all zeros (before the first clip).
    live: bool,
    /// Key indices this strip's pre-fader tap serves.
    serves: Vec<usize>,
}

impl TrackStrip {
    /// Where this block's output sits on the timeline (its input sits at `start`).
    fn out_pos(&self, start: u64) -> u64 {
        start.saturating_sub(self.chain.latency)
    }

    /// Renders the block whose input is engine frames [start, start + n) (time 0 is
    /// frame `origin`); its output lags by the chain's latency.
    fn process(&mut self, start: u64, n: usize, keys: &KeyStore) -> Result<()> {
        // Before its first clip a strip's state is still zero, so it outputs zeros.
        // Frames before time 0 hold nothing.
        let Some(t) = start.checked_sub(self.origin) else {
            self.live = false;
            return Ok(());
        };
        if t + n as u64 <= self.first {
            self.live = false;
            return Ok(());
        }
        self.live = true;
        let w_in = self.chain.width_in;
        {
            let [b0, b1] = &mut self.buf;
            let mut chans: [&mut [f32]; 2] = [&mut b0[..n], &mut b1[..n]];
            self.source.read(t, n, &mut chans[..w_in])?;
            if self.invert {
                for c in chans.iter_mut().take(w_in) {
                    c.iter_mut().for_each(|x| *x = -*x);
                }
            }
        }
        self.width = self.chain.process(&mut self.buf, n, start, keys);
        if let Some(e) = self.chain.failure() {
            return Err(e);
        }
        let pos = self.out_pos(start);
        self.tail.run(&mut self.buf, self.width, pos, n);
        Ok(())
    }
}

/// A bus strip (or the master bus): summed input → chain → (pre tap) → fader → pan.
struct BusStrip {
    input: [Vec<f32>; 2],
    chain: Chain,
    tail: Tail,
    muted: bool,
    /// Key indices this bus's summed input serves.
    serves: Vec<usize>,
}

impl BusStrip {
    /// Runs the block whose summed input sits at `start`; returns (width, output position).
    fn process(&mut self, start: u64, n: usize, keys: &KeyStore) -> Result<(usize, u64)> {
        let w = self.chain.process(&mut self.input, n, start, keys);
        if let Some(e) = self.chain.failure() {
            return Err(e);
        }
        let pos = start.saturating_sub(self.chain.latency);
        self.tail.run(&mut self.input, w, pos, n);
        Ok((w, pos))
    }
}

/// Summed inputs of every bus and of the master bus for the current block.
struct Sums {
    buses: Vec<[Vec<f32>; 2]>,
    master: [Vec<f32>; 2],
}

impl Targets for Sums {
    fn target(&mut self, d: Dest) -> &mut [Vec<f32>; 2] {
        match d {
            Dest::Master => &mut self.master,
            Dest::Bus(i) => &mut self.buses[i],
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn tail_for(
    session: &Session,
    gain_db: f64,
    pan: f64,
    automation: &Automation,
    sends: &[session::Send],
    output: Option<Dest>,
    mono: bool,
    origin: u64,
) -> Result<Tail> {
    let rate = f64::from(session.sample_rate);
    let fader = GainEnvelope::new(gain_db, automation.gain_db(), rate).with_origin(origin);
    let pan = Pan::new(pan, automation.get(&LaneTarget::Pan), mono, rate, origin);
    let mute = automation
        .get(&LaneTarget::Mute)
        .map(|pts| Lane::steps(pts, rate).with_origin(origin));
    let sends = sends
        .iter()
        .map(|s| {
            Ok(SendTap {
                bus: bus_index(session, &s.bus)?,
                level: strip::send_level(
                    s.level_db,
                    automation.get(&LaneTarget::Send(s.bus.clone())),
                    rate,
                    origin,
                ),
                pre: s.pre_fader,
                delay: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Tail::new(fader, pan, mute, output, sends)
}

/// The order of the bus stage: buses and bus-keyed tracks by routing depth (a node
/// comes after everything that feeds or keys it), ties buses first in file order.
enum Node {
    Bus(usize),
    Track(usize),
}

/// Renders one variant's mix (the master bus before `[master]`), stereo at the session rate.
pub fn render_mix(
    session: &ValidSession,
    variant: Variant,
    plan: &MixPlan,
    bank: &(dyn Fn() -> Result<Box<dyn ConvolutionBank>> + Sync),
    progress: ProgressFn<'_>,
    cancel: &AtomicBool,
) -> Result<[Vec<f32>; 2]> {
    let total = usize::try_from(plan.total)
        .map_err(|_| Error::Limit("mix too long for this machine".into()))?;
    let rate = session.sample_rate;

    // Sidechain keys: one slot per distinct key name used by any strip.
    let mut key_names: Vec<String> = Vec::new();
    let mut note_key = |name: Option<&str>| {
        if let Some(n) = name
            && !key_names.iter().any(|k| k == n)
        {
            key_names.push(n.to_string());
        }
    };
    for t in &session.tracks {
        note_key(t.compressor.as_ref().and_then(|c| c.sidechain.as_deref()));
        t.inserts.iter().for_each(|i| note_key(i.key()));
    }
    for b in &session.buses {
        b.inserts.iter().for_each(|i| note_key(i.key()));
    }
    if let Some(m) = &session.master_bus {
        m.inserts.iter().for_each(|i| note_key(i.key()));
    }
    let keys_index: HashMap<String, usize> = key_names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), i))
        .collect();
    let mut keys = KeyStore::default();
    for _ in &key_names {
        keys.keys.push(Key {
            buf: [block_buf()?, block_buf()?],
            width: 1,
        });
    }
    // Latency compensation runs the graph ahead of time 0 by at most the latency of
    // every latent insert in the session; that bound is time 0's frame for all lanes,
    // so no strip's position is ever negative. Without latent inserts it is 0.
    let latent = session
        .tracks
        .iter()
        .flat_map(|t| &t.inserts)
        .chain(session.buses.iter().flat_map(|b| &b.inserts))
        .chain(session.master_bus.iter().flat_map(|m| &m.inserts))
        .filter(|i| matches!(i, Insert::Saturation(_)))
        .count() as u64;
    let origin = if latent > 0 {
        latent * crate::dsp::oversample::Oversampler::new(f64::from(rate))?.latency() as u64
    } else {
        0
    };
    let builder = ChainBuilder {
        session,
        plan,
        bank,
        keys: &keys_index,
        origin,
    };

    // Tracks that sound in this variant.
    let mut strips: Vec<TrackStrip> = Vec::new();
    let mut strip_track: Vec<usize> = Vec::new();
    for (ti, t) in session.tracks.iter().enumerate() {
        if !sounds(session, t, variant) {
            continue;
        }
        let tp = &plan.tracks[ti];
        let clips = tp.clips.clone();
        let source = Source::new(clips, tp.channels, rate, session.limits().max_stem_frames)?;
        let first = source.first_frame();
        let chain = builder.build(
            &t.eq,
            t.compressor.as_ref(),
            &t.inserts,
            &t.automation,
            tp.channels,
        )?;
        let mono = chain.width_out == 1;
        let tail = tail_for(
            session,
            t.gain_db,
            t.pan,
            &t.automation,
            &t.sends,
            Some(dest(session, &t.output)?),
            mono,
            origin,
        )?;
        let serves = keys_index.get(&t.name).into_iter().copied().collect();
        strips.push(TrackStrip {
            source,
            invert: t.invert,
            width: chain.width_out,
            chain,
            tail,
            buf: [block_buf()?, block_buf()?],
            first,
            origin,
            live: false,
            serves,
        });
        strip_track.push(ti);
    }
    // A muted or unsoloed key track keys nothing: its key slot stays silent.

    let mut buses = Vec::with_capacity(session.buses.len());
    for b in &session.buses {
        let mut inserts: Vec<Insert> = Vec::with_capacity(b.inserts.len() + 1);
        inserts.extend(b.reverb.clone().map(Insert::Reverb));
        inserts.extend(b.inserts.iter().cloned());
        // The reverb key runs first; automation indices address `inserts` only.
        let mut automation = b.automation.clone();
        if b.reverb.is_some() {
            for l in &mut automation.lanes {
                if let LaneTarget::Insert { index, .. } = &mut l.target {
                    *index += 1;
                }
            }
        }
        let chain = builder.build(&[], None, &inserts, &automation, 2)?;
        let tail = tail_for(
            session,
            b.gain_db,
            b.pan,
            &b.automation,
            &b.sends,
            Some(dest(session, &b.output)?),
            false,
            origin,
        )?;
        buses.push(BusStrip {
            input: [block_buf()?, block_buf()?],
            chain,
            tail,
            muted: b.mute,
            serves: keys_index.get(&b.name).into_iter().copied().collect(),
        });
    }
    let mut master_bus = match &session.master_bus {
        Some(m) => {
            let chain = builder.build(&[], None, &m.inserts, &m.automation, 2)?;
            let tail = tail_for(
                session,
                m.gain_db,
                m.pan,
                &m.automation,
                &[],
                None,
                false,
                origin,
            )?;
            Some(BusStrip {
                input: [Vec::new(), Vec::new()],
                chain,
                tail,
                muted: m.mute,
                serves: Vec::new(),
            })
        }
        None => None,
    };

    // Latency compensation: a track delivers at its chain's latency, a bus at (the
    // latency of its input) + (its chain's). Every edge into a bus or the master is
    // delayed up to the latest arrival there, so every path to the mix has the same
    // latency, `lead`; the mix is then taken `lead` frames late (the graph runs that
    // much longer). Without latent inserts every delay is 0 and nothing changes.
    let nb = buses.len();
    let bus_lat: Vec<u64> = buses.iter().map(|b| b.chain.latency).collect();
    let mut arrival = vec![0u64; nb];
    let mut master_arrival = 0u64;
    let dest_of = |d: Option<Dest>| match d {
        Some(Dest::Bus(i)) => Some(i),
        _ => None,
    };
    for s in &strips {
        let out = s.chain.latency;
        match s.tail.output {
            Some(Dest::Bus(i)) => arrival[i] = arrival[i].max(out),
            Some(Dest::Master) => master_arrival = master_arrival.max(out),
            None => {}
        }
        for t in &s.tail.sends {
            arrival[t.bus] = arrival[t.bus].max(out);
        }
    }
    // Validation rules out routing loops, so this settles within nb passes.
    for _ in 0..=nb {
        let mut changed = false;
        for bi in 0..nb {
            let out = arrival[bi] + bus_lat[bi];
            let t = &buses[bi].tail;
            for d in dest_of(t.output)
                .into_iter()
                .chain(t.sends.iter().map(|s| s.bus))
            {
                if arrival[d] < out {
                    arrival[d] = out;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let master_arrival = (0..nb)
        .filter(|&bi| buses[bi].tail.output == Some(Dest::Master))
        .map(|bi| arrival[bi] + bus_lat[bi])
        .fold(master_arrival, u64::max);
    let lead = master_arrival + master_bus.as_ref().map_or(0, |m| m.chain.latency);
    if lead > origin {
        return Err(Error::Internal(format!(
            "latency {lead} past its bound {origin}"
        )));
    }
    let arrival_at = |d: Dest| match d {
        Dest::Master => master_arrival,
        Dest::Bus(i) => arrival[i],
    };
    let compensate = |tail: &mut Tail, out_latency: u64| -> Result<()> {
        if let Some(d) = tail.output {
            tail.output_delay = EdgeDelay::new(arrival_at(d) - out_latency)?;
        }
        for s in &mut tail.sends {
            s.delay = EdgeDelay::new(arrival[s.bus] - out_latency)?;
        }
        Ok(())
    };
    if lead > 0 {
        for s in &mut strips {
            let out = s.chain.latency;
            compensate(&mut s.tail, out)?;
        }
        for (bi, b) in buses.iter_mut().enumerate() {
            compensate(&mut b.tail, arrival[bi] + bus_lat[bi])?;
        }
    }

    // Which tracks wait for a bus: keyed by a bus, or by a track that waits.
    let bus_names = bus_names(session);
    let track_pos: HashMap<&str, usize> = strip_track
        .iter()
        .enumerate()
        .map(|(si, &ti)| (session.tracks[ti].name.as_str(), si))
        .collect();
    let strip_keys = |si: usize| -> Vec<String> {
        let t = &session.tracks[strip_track[si]];
        t.compressor
            .as_ref()
            .and_then(|c| c.sidechain.clone())
            .into_iter()
            .chain(t.inserts.iter().filter_map(|i| i.key().map(str::to_string)))
            .collect()
    };
    let n_strips = strips.len();
    // level[si]: sidechain depth among tracks; None: waits for a bus.
    let mut level: Vec<Option<usize>> = vec![Some(0); n_strips];
    // Validation rules out loops, so depth settles within n passes.
    for _ in 0..=n_strips {
        let mut changed = false;
        for si in 0..n_strips {
            let mut lv = Some(0);
            for k in strip_keys(si) {
                let dep = if bus_names.contains_key(k.as_str()) {
                    None
                } else if let Some(&ki) = track_pos.get(k.as_str()) {
                    level[ki].map(|l| l + 1)
                } else {
                    Some(0) // a key track that does not sound: silence
                };
                lv = match (lv, dep) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            if lv != level[si] {
                level[si] = lv;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let max_level = level.iter().flatten().max().copied().unwrap_or(0);
    let late_ids: Vec<usize> = (0..n_strips).filter(|&si| level[si].is_none()).collect();
    let stage_b = stage_b_order(session, &late_ids, &strip_track);
    // Split the strips: early ones (by sidechain level) and late ones (after buses).
    let mut early_strips = Vec::new();
    let mut early_levels: Vec<usize> = Vec::new();
    let mut late_strips = Vec::new();
    for (si, s) in strips.into_iter().enumerate() {
        match level[si] {
            Some(l) => {
                early_strips.push(s);
                early_levels.push(l);
            }
            None => late_strips.push(s),
        }
    }

    let mut sums = Sums {
        buses: (0..session.buses.len())
            .map(|_| Ok([block_buf()?, block_buf()?]))
            .collect::<Result<Vec<_>>>()?,
        master: [block_buf()?, block_buf()?],
    };
    let mut mix = [alloc_mix(total)?, alloc_mix(total)?];
    let mut keys_bus = KeyStore::default();
    for _ in &key_names {
        keys_bus.keys.push(Key {
            buf: [block_buf()?, block_buf()?],
            width: 1,
        });
    }

    let run_early = |strips: &mut [TrackStrip], keys: &mut KeyStore, k: usize| -> Result<()> {
        let start = (k * BLOCK) as u64 + origin;
        for lvl in 0..=max_level {
            {
                let keys_ref: &KeyStore = keys;
                let mut chosen: Vec<&mut TrackStrip> = strips
                    .iter_mut()
                    .zip(&early_levels)
                    .filter(|(_, l)| **l == lvl)
                    .map(|(s, _)| s)
                    .collect();
                chosen
                    .par_iter_mut()
                    .try_for_each(|s| s.process(start, BLOCK, keys_ref))?;
            }
            for (s, _) in strips.iter().zip(&early_levels).filter(|(_, l)| **l == lvl) {
                for &ki in &s.serves {
                    keys.set(ki, s.live.then_some((&s.buf, s.width)), BLOCK);
                }
            }
        }
        Ok(())
    };
    let lead_frames = usize::try_from(lead).unwrap_or(usize::MAX);
    let blocks = (total + lead_frames).div_ceil(BLOCK);
    if blocks > 0 {
        run_early(&mut early_strips, &mut keys, 0)?;
    }
    for k in 0..blocks {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        // Tracks' input position (`origin` is time 0 on the engine's timeline).
        let start = (k * BLOCK) as u64 + origin;
        // Early strips into the sums (their buffers are reused for block k + 1), and
        // their keys kept for the bus stage of this block.
        for b in &mut sums.buses {
            b.iter_mut().for_each(|c| c.fill(0.0));
        }
        sums.master.iter_mut().for_each(|c| c.fill(0.0));
        for s in &mut early_strips {
            if s.live {
                let pos = s.out_pos(start);
                s.tail.deliver(&s.buf, s.width, pos, BLOCK, &mut sums);
            }
        }
        for (dst, src) in keys_bus.keys.iter_mut().zip(&keys.keys) {
            dst.width = src.width;
            for c in 0..src.width {
                dst.buf[c].copy_from_slice(&src.buf[c]);
            }
        }
        // Pipeline: while the buses (the convolution backend) work on block k, the CPU
        // threads run the early strips of block k + 1.
        let (a, b) = rayon::join(
            || {
                let _s = tracing::trace_span!("buses", block = k).entered();
                bus_stage(
                    &stage_b,
                    &mut buses,
                    &mut late_strips,
                    &mut sums,
                    &mut keys_bus,
                    Positions {
                        tracks: start,
                        buses: &arrival,
                    },
                )
            },
            || {
                let _s = tracing::trace_span!("strips", block = k + 1).entered();
                if k + 1 < blocks {
                    run_early(&mut early_strips, &mut keys, k + 1)
                } else {
                    Ok(())
                }
            },
        );
        a?;
        b?;
        // The master bus strip, then the mix.
        let out: &[Vec<f32>; 2] = match &mut master_bus {
            Some(m) => {
                std::mem::swap(&mut m.input, &mut sums.master);
                m.process(start - master_arrival, BLOCK, &keys_bus)?;
                std::mem::swap(&mut m.input, &mut sums.master);
                if m.muted {
                    sums.master.iter_mut().for_each(|c| c.fill(0.0));
                    &sums.master
                } else {
                    &m.tail.out
                }
            }
            None => &sums.master,
        };
        // This block's output is the mix from k·BLOCK − lead on.
        let (at, skip) = match (k * BLOCK).checked_sub(lead_frames) {
            Some(at) => (at, 0),
            None => (0, lead_frames - k * BLOCK),
        };
        for (mx, m) in mix.iter_mut().zip(out) {
            let take = (BLOCK - skip.min(BLOCK)).min(mx.len().saturating_sub(at));
            mx[at..at + take].copy_from_slice(&m[skip..skip + take]);
        }
        progress("mix", (k + 1) as f64 / blocks as f64);
    }
    Ok(mix)
}

/// Where one block sits on the timeline for each kind of strip (latency compensation).
struct Positions<'a> {
    /// Tracks: the block's start.
    tracks: u64,
    /// Per bus: how far its summed input lags the tracks' input.
    buses: &'a [u64],
}

impl Positions<'_> {
    /// A bus's input position. Before 0 its input is silence and every lane holds its
    /// first value, so 0 stands in for the negative times exactly.
    fn bus(&self, bi: usize) -> u64 {
        self.tracks.saturating_sub(self.buses[bi])
    }
}

/// Runs the buses and the late tracks of one block in `order`, each after all that
/// feeds or keys it.
fn bus_stage(
    order: &[Node],
    buses: &mut [BusStrip],
    late: &mut [TrackStrip],
    sums: &mut Sums,
    keys: &mut KeyStore,
    at: Positions<'_>,
) -> Result<()> {
    for node in order {
        match *node {
            Node::Bus(bi) => {
                let b = &mut buses[bi];
                std::mem::swap(&mut b.input, &mut sums.buses[bi]);
                for &ki in &b.serves {
                    keys.set(ki, Some((&b.input, 2)), BLOCK);
                }
                let (w, pos) = b.process(at.bus(bi), BLOCK, keys)?;
                if !b.muted {
                    b.tail.deliver(&b.input, w, pos, BLOCK, sums);
                }
                std::mem::swap(&mut b.input, &mut sums.buses[bi]);
            }
            Node::Track(li) => {
                let s = &mut late[li];
                s.process(at.tracks, BLOCK, keys)?;
                for &ki in &s.serves {
                    keys.set(ki, s.live.then_some((&s.buf, s.width)), BLOCK);
                }
                if s.live {
                    let pos = s.out_pos(at.tracks);
                    s.tail.deliver(&s.buf, s.width, pos, BLOCK, sums);
                }
            }
        }
    }
    Ok(())
}

/// Buses and late tracks in dependency order: depth = 1 + the deepest node that feeds
/// or keys it; ties buses first, in file order.
fn stage_b_order(session: &ValidSession, late: &[usize], strip_track: &[usize]) -> Vec<Node> {
    let nb = session.buses.len();
    let bus_names = bus_names(session);
    // Node ids: buses 0..nb, late tracks nb..
    let n = nb + late.len();
    let mut feeds: Vec<Vec<usize>> = vec![Vec::new(); n]; // edges u -> v
    let target = |o: &Output| match o {
        Output::Bus(b) => bus_names.get(b.as_str()).copied(),
        Output::Master => None,
    };
    for (bi, b) in session.buses.iter().enumerate() {
        if let Some(t) = target(&b.output) {
            feeds[bi].push(t);
        }
        for s in &b.sends {
            if let Some(&t) = bus_names.get(s.bus.as_str()) {
                feeds[bi].push(t);
            }
        }
        // A bus keyed by a bus waits for it.
        for k in b.inserts.iter().filter_map(Insert::key) {
            if let Some(&kb) = bus_names.get(k) {
                feeds[kb].push(bi);
            }
        }
    }
    for (li, &si) in late.iter().enumerate() {
        let t = &session.tracks[strip_track[si]];
        let id = nb + li;
        if let Some(o) = target(&t.output) {
            feeds[id].push(o);
        }
        for s in &t.sends {
            if let Some(&o) = bus_names.get(s.bus.as_str()) {
                feeds[id].push(o);
            }
        }
        let keys = t
            .compressor
            .as_ref()
            .and_then(|c| c.sidechain.as_deref())
            .into_iter()
            .chain(t.inserts.iter().filter_map(Insert::key));
        for k in keys {
            if let Some(&kb) = bus_names.get(k) {
                feeds[kb].push(id);
            } else if let Some(lj) = late
                .iter()
                .position(|&sj| session.tracks[strip_track[sj]].name == k)
            {
                feeds[nb + lj].push(id);
            }
        }
    }
    // Longest-path depth (validation rules out loops; the pass count bounds it anyway).
    let mut depth = vec![0usize; n];
    for _ in 0..=n {
        let mut changed = false;
        for u in 0..n {
            for &v in &feeds[u] {
                if depth[v] < depth[u] + 1 {
                    depth[v] = depth[u] + 1;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut ids: Vec<usize> = (0..n).collect();
    ids.sort_by_key(|&i| (depth[i], i));
    ids.into_iter()
        .map(|i| {
            if i < nb {
                Node::Bus(i)
            } else {
                Node::Track(i - nb)
            }
        })
        .collect()
}

fn alloc_mix(total: usize) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(total).map_err(|e| {
        Error::Limit(format!(
            "the mix of {total} frames does not fit in memory: {e}"
        ))
    })?;
    v.resize(total, 0.0);
    Ok(v)
}
