//! project.xml's tree → [`Session`] (CONTRACT.md, "DAWproject" and "Precise meanings of
//! the DAWproject mapping").
//!
//! Order of work: the tempo map; the Structure's channels (roles, names); the
//! Arrangement's timelines (clips in absolute seconds, raw automation by parameter
//! id); then each channel's strip (static parameters, devices → inserts, sends) and
//! its automation lanes in the session's units. Elements may come in any order and
//! unknown elements are ignored (debug log).

use std::collections::{HashMap, HashSet};

use super::tempo::TempoMap;
use super::units::{self, SILENCE_DB};
use super::xml::{NodeId, Tree};
use super::{AudioFile, AudioSource};
use crate::inserts::{EqInsert, Gate, Insert};
use crate::session::model::*;
use crate::{Error, Result};

/// Most loop passes one clip may expand to.
const MAX_PASSES: usize = 10_000;
/// Times beyond this (s) are absurd.
const MAX_TIME_S: f64 = 86_400.0;

/// What the mapping produced before audio files are looked at.
pub struct Mapped {
    pub session: Session,
    pub warnings: Vec<String>,
    pub mapped: Vec<String>,
    pub audio: Vec<AudioFile>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Beats,
    Seconds,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Regular,
    Master,
    Effect,
    Submix,
    Vca,
}

/// One Channel of the Structure.
struct Chan {
    node: NodeId,
    name: String,
    role: Role,
    audio_channels: Option<u8>,
    /// `destination` id.
    dest: Option<String>,
    /// What it becomes.
    kind: Kind,
    /// Session names (filled in once kinds are known).
    track_name: Option<String>,
    bus_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Track,
    Bus,
    Master,
    Vca,
}

/// Where one frame of a timeline sits.
#[derive(Debug, Clone)]
struct Frame {
    unit: Unit,
    /// The timeline's zero, absolute, in seconds and in beats.
    origin_s: f64,
    origin_b: f64,
    /// The absolute window (s) its content may sound in.
    win: (f64, f64),
    /// The channel its content plays on.
    chan: Option<usize>,
    /// Inside a clip (automation there is not mapped).
    in_clip: bool,
    /// The nearest clip's name, for messages.
    clip: Option<String>,
}

/// A session lane's points.
type Points = Vec<(f64, f64)>;

/// One automation point as read: (absolute s, value, hold until the next).
type RawPoint = (f64, f64, bool);

/// Automation of one parameter as read.
struct RawLane {
    points: Vec<RawPoint>,
    /// The Points element's own unit.
    unit: Option<String>,
    /// The Points element's RealPoint vs BoolPoint kind doesn't matter: values are numbers.
    node: NodeId,
}

/// What a parameter id moves.
#[derive(Debug, Clone)]
enum Param {
    Volume(Strip),
    Pan(Strip),
    Mute(Strip),
    Send(Strip, String),
    Insert(Strip, usize, String, Conv),
}

/// A strip of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Strip {
    Track(usize),
    Bus(usize),
    Master,
}

/// How a device parameter's value becomes the insert's.
#[derive(Debug, Clone)]
enum Conv {
    /// As it is (Hz, dB), plus an offset (compressor InputGain folding).
    Offset(f64),
    /// A compressor ratio in its unit.
    Ratio(String),
}

pub struct Mapper<'a> {
    tree: &'a Tree,
    /// The project file as named in messages.
    src: &'a str,
    strict: bool,
    ids: HashMap<&'a str, NodeId>,
    tempo: TempoMap,
    tempo_known: bool,
    tempo_param: Option<String>,
    beats_used: bool,
    chans: Vec<Chan>,
    /// Channel id and Track id → channel index.
    chan_by_id: HashMap<String, usize>,
    /// Clips per channel, absolute seconds.
    clips: Vec<(usize, Clip)>,
    /// Notes clips per channel (warned once each).
    notes: HashMap<usize, usize>,
    lanes: Vec<(String, RawLane)>,
    audio: Vec<AudioFile>,
    audio_by_path: HashMap<String, String>,
    params: HashMap<String, Param>,
    warnings: Vec<String>,
    mapped: Vec<String>,
}

fn num(s: &str) -> Option<f64> {
    let t = s.trim();
    match t {
        "inf" | "+inf" | "Infinity" => Some(f64::INFINITY),
        "-inf" | "-Infinity" => Some(f64::NEG_INFINITY),
        _ => t.parse::<f64>().ok().filter(|x| !x.is_nan()),
    }
}

impl<'a> Mapper<'a> {
    pub fn new(tree: &'a Tree, src: &'a str, strict: bool) -> Self {
        Mapper {
            tree,
            src,
            strict,
            ids: HashMap::new(),
            tempo: TempoMap::constant(120.0),
            tempo_known: false,
            tempo_param: None,
            beats_used: false,
            chans: Vec::new(),
            chan_by_id: HashMap::new(),
            clips: Vec::new(),
            notes: HashMap::new(),
            lanes: Vec::new(),
            audio: Vec::new(),
            audio_by_path: HashMap::new(),
            params: HashMap::new(),
            warnings: Vec::new(),
            mapped: Vec::new(),
        }
    }

    // ---- messages ----

    /// `<Name id=".." name=".."> (line N)`.
    fn describe(&self, n: NodeId) -> String {
        let node = self.tree.node(n);
        let mut s = format!("<{}", node.name);
        for key in ["id", "name"] {
            if let Some(v) = node.attr(key) {
                s.push_str(&format!(" {key}={v:?}"));
            }
        }
        s.push_str(&format!("> (line {})", node.line));
        s
    }

    fn err(&self, n: NodeId, msg: impl std::fmt::Display) -> Error {
        Error::InvalidSession(format!(
            "{}: project.xml: {}: {msg}",
            self.src,
            self.describe(n)
        ))
    }

    /// A warning; under `--strict`, the error.
    fn warn(&mut self, msg: String) -> Result<()> {
        if self.strict {
            return Err(Error::InvalidSession(format!(
                "{}: {msg} (an error under --strict)",
                self.src
            )));
        }
        tracing::warn!("{}: {msg}", self.src);
        self.warnings.push(msg);
        Ok(())
    }

    fn note(&mut self, msg: String) {
        self.mapped.push(msg);
    }

    // ---- attribute reading ----

    fn attr(&self, n: NodeId, key: &str) -> Option<&'a str> {
        self.tree.nodes[n]
            .attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A finite number attribute (absent: `None`).
    fn f64_attr(&self, n: NodeId, key: &str) -> Result<Option<f64>> {
        match self.attr(n, key) {
            None => Ok(None),
            Some(v) => match num(v) {
                Some(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(self.err(n, format_args!("{key} {v:?} is not a finite number"))),
            },
        }
    }

    fn bool_attr(&self, n: NodeId, key: &str) -> Result<Option<bool>> {
        match self.attr(n, key) {
            None => Ok(None),
            Some("true") | Some("1") => Ok(Some(true)),
            Some("false") | Some("0") => Ok(Some(false)),
            Some(v) => Err(self.err(n, format_args!("{key} {v:?} is not true or false"))),
        }
    }

    fn unit_attr(&self, n: NodeId, key: &str) -> Result<Option<Unit>> {
        match self.attr(n, key) {
            None => Ok(None),
            Some("beats") => Ok(Some(Unit::Beats)),
            Some("seconds") => Ok(Some(Unit::Seconds)),
            Some(v) => Err(self.err(n, format_args!("{key} {v:?} is not beats or seconds"))),
        }
    }

    /// A RealParameter's value (±inf allowed: −inf dB is silence).
    fn real_value(&self, n: NodeId) -> Result<Option<f64>> {
        match self.attr(n, "value") {
            None => Ok(None),
            Some(v) => match num(v) {
                Some(x) => Ok(Some(x)),
                None => Err(self.err(n, format_args!("value {v:?} is not a number"))),
            },
        }
    }

    fn unit_of(&self, n: NodeId) -> &'a str {
        self.attr(n, "unit").unwrap_or("")
    }

    fn resolve(&self, from: NodeId, key: &str, id: &str) -> Result<NodeId> {
        self.ids
            .get(id)
            .copied()
            .ok_or_else(|| self.err(from, format_args!("{key} {id:?} names no element")))
    }

    /// The element `child` of `n` named `name`, if enabled (a BoolParameter `Enabled`).
    fn enabled(&self, n: NodeId, elem: &str) -> Result<bool> {
        match self.tree.child(n, elem) {
            Some(e) => Ok(self.bool_attr(e, "value")?.unwrap_or(true)),
            None => Ok(true),
        }
    }

    // ---- position conversions ----

    fn abs_s(&self, f: &Frame, t: f64) -> f64 {
        match f.unit {
            Unit::Seconds => f.origin_s + t,
            Unit::Beats => self.tempo.secs_at(f.origin_b + t),
        }
    }

    fn check_time(&self, n: NodeId, what: &str, s: f64) -> Result<()> {
        if !s.is_finite() || s.abs() > MAX_TIME_S {
            return Err(self.err(
                n,
                format_args!("{what} is at {s} s, beyond 24 h of timeline"),
            ));
        }
        Ok(())
    }

    // ---- the whole project ----

    pub fn run(mut self, project_name: &str) -> Result<Mapped> {
        let tree = self.tree;
        let root = tree.root();
        if tree.node(root).name != "Project" {
            return Err(self.err(root, "the root element is not <Project>"));
        }
        for (i, n) in tree.nodes.iter().enumerate() {
            if let Some(id) = n.attr("id")
                && self.ids.insert(id, i).is_some()
            {
                return Err(self.err(i, format_args!("id {id:?} is used twice")));
            }
        }
        self.read_tempo(root)?;
        if let Some(s) = tree.child(root, "Structure") {
            self.read_structure(s, None)?;
        }
        self.decide_kinds()?;
        if let Some(arr) = tree.child(root, "Arrangement") {
            let frame = Frame {
                unit: Unit::Beats,
                origin_s: 0.0,
                origin_b: 0.0,
                win: (f64::NEG_INFINITY, f64::INFINITY),
                chan: None,
                in_clip: false,
                clip: None,
            };
            for c in tree.children(arr) {
                match tree.node(c).name.as_str() {
                    "Lanes" => self.walk(c, &frame)?,
                    "TempoAutomation" | "TimeSignatureAutomation" | "Markers" => {}
                    other => tracing::debug!("Arrangement: <{other}> ignored"),
                }
            }
        }
        if let Some(sc) = tree.child(root, "Scenes") {
            let n = tree.children(sc).count();
            if n > 0 {
                self.note(format!(
                    "scenes: {n} clip-launcher scene(s) not part of the arrangement, not rendered"
                ));
            }
        }
        let mut notes: Vec<(usize, usize)> = self.notes.iter().map(|(a, b)| (*a, *b)).collect();
        notes.sort_unstable();
        for (c, count) in notes {
            let name = self.chans[c].name.clone();
            self.warn(format!(
                "track {name:?}: {count} clip(s) of notes (an instrument track) cannot be rendered; left out"
            ))?;
        }
        if self.beats_used && !self.tempo_known {
            self.warn("the project has no Tempo: beats are read at 120 bpm".into())?;
        }
        self.build(project_name)
    }

    fn read_tempo(&mut self, root: NodeId) -> Result<()> {
        let tree = self.tree;
        let mut base = 120.0;
        if let Some(tr) = tree.child(root, "Transport")
            && let Some(t) = tree.child(tr, "Tempo")
        {
            if let Some(v) = self.real_value(t)? {
                if !v.is_finite() || v <= 0.0 {
                    return Err(self.err(t, format_args!("tempo {v} is not a positive number")));
                }
                base = v;
                self.tempo_known = true;
            }
            self.tempo_param = self.attr(t, "id").map(str::to_string);
        }
        let mut points: Vec<(f64, f64, bool)> = Vec::new();
        if let Some(arr) = tree.child(root, "Arrangement")
            && let Some(ta) = tree.child(arr, "TempoAutomation")
        {
            if self.unit_attr(ta, "timeUnit")? == Some(Unit::Seconds) {
                self.warn(
                    "TempoAutomation in seconds is not supported: the tempo stays constant".into(),
                )?;
            } else {
                for p in tree.children(ta) {
                    if tree.node(p).name == "Target" {
                        continue;
                    }
                    let t = self
                        .f64_attr(p, "time")?
                        .ok_or_else(|| self.err(p, "no time"))?;
                    let v = self.real_value(p)?.ok_or_else(|| self.err(p, "no value"))?;
                    if !v.is_finite() || v <= 0.0 {
                        return Err(self.err(p, format_args!("tempo {v} is not a positive number")));
                    }
                    if let Some(&(pt, _, _)) = points.last()
                        && t < pt
                    {
                        return Err(self.err(p, "tempo points are not in time order"));
                    }
                    let hold = self.attr(p, "interpolation") == Some("hold");
                    points.push((t, v, hold));
                }
                if !points.is_empty() {
                    self.tempo_known = true;
                }
            }
        }
        self.tempo = TempoMap::from_points(base, &points);
        if !self.tempo.secs_at(0.0).is_finite() {
            return Err(Error::InvalidSession(format!(
                "{}: project.xml: the tempo map is not usable",
                self.src
            )));
        }
        Ok(())
    }

    fn read_structure(&mut self, n: NodeId, track: Option<NodeId>) -> Result<()> {
        let tree = self.tree;
        for c in tree.children(n) {
            match tree.node(c).name.as_str() {
                "Track" => self.read_structure(c, Some(c))?,
                "Channel" => self.add_channel(c, track)?,
                other => tracing::debug!("Structure: <{other}> ignored"),
            }
        }
        Ok(())
    }

    fn add_channel(&mut self, c: NodeId, track: Option<NodeId>) -> Result<()> {
        let role = match self.attr(c, "role").unwrap_or("regular") {
            "regular" => Role::Regular,
            "master" => Role::Master,
            "effect" => Role::Effect,
            "submix" => Role::Submix,
            "vca" => Role::Vca,
            other => return Err(self.err(c, format_args!("role {other:?} is not a mixer role"))),
        };
        let name = track
            .and_then(|t| self.attr(t, "name"))
            .or_else(|| self.attr(c, "name"))
            .map(str::to_string)
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| format!("Channel {}", self.chans.len() + 1));
        let audio_channels = match self.f64_attr(c, "audioChannels")? {
            None => None,
            Some(1.0) => Some(1),
            Some(2.0) => Some(2),
            Some(x) => {
                self.note(format!(
                    "channel {name:?}: audioChannels {x} imported as stereo"
                ));
                Some(2)
            }
        };
        let i = self.chans.len();
        for id in [self.attr(c, "id"), track.and_then(|t| self.attr(t, "id"))]
            .into_iter()
            .flatten()
        {
            self.chan_by_id.insert(id.to_string(), i);
        }
        self.chans.push(Chan {
            node: c,
            name,
            role,
            audio_channels,
            dest: self.attr(c, "destination").map(str::to_string),
            kind: Kind::Track,
            track_name: None,
            bus_name: None,
        });
        Ok(())
    }

    /// The channel an id names (a Channel or its Track), or an error.
    fn chan_of(&self, from: NodeId, key: &str, id: &str) -> Result<usize> {
        match self.chan_by_id.get(id) {
            Some(&i) => Ok(i),
            None => {
                self.resolve(from, key, id)?;
                Err(self.err(from, format_args!("{key} {id:?} is not a channel")))
            }
        }
    }

    fn decide_kinds(&mut self) -> Result<()> {
        let mut targets: HashSet<usize> = HashSet::new();
        for i in 0..self.chans.len() {
            let c = self.chans[i].node;
            if let Some(d) = self.chans[i].dest.clone() {
                targets.insert(self.chan_of(c, "destination", &d)?);
            }
            if let Some(sends) = self.tree.child(c, "Sends") {
                for s in self.tree.children_named(sends, "Send") {
                    if let Some(d) = self.attr(s, "destination") {
                        targets.insert(self.chan_of(s, "destination", d)?);
                    }
                }
            }
        }
        let mut masters = 0;
        for i in 0..self.chans.len() {
            let kind = match self.chans[i].role {
                Role::Master if masters == 0 => {
                    masters += 1;
                    Kind::Master
                }
                Role::Master => {
                    let name = self.chans[i].name.clone();
                    self.warn(format!(
                        "channel {name:?}: a second master channel, imported as a bus"
                    ))?;
                    Kind::Bus
                }
                Role::Vca => Kind::Vca,
                Role::Effect | Role::Submix => Kind::Bus,
                Role::Regular if targets.contains(&i) => Kind::Bus,
                Role::Regular => Kind::Track,
            };
            self.chans[i].kind = kind;
        }
        // Bus names: unique, never "master".
        let mut used: HashSet<String> = HashSet::from(["master".to_string()]);
        for i in 0..self.chans.len() {
            if self.chans[i].kind == Kind::Bus {
                let n = unique(&self.chans[i].name, &mut used);
                self.chans[i].bus_name = Some(n);
            }
        }
        Ok(())
    }

    // ---- timelines ----

    fn walk(&mut self, n: NodeId, parent: &Frame) -> Result<()> {
        let tree = self.tree;
        let mut f = parent.clone();
        if let Some(u) = self.unit_attr(n, "timeUnit")? {
            f.unit = u;
        }
        if let Some(t) = self.attr(n, "track") {
            f.chan = Some(self.chan_of(n, "track", t)?);
        }
        match tree.node(n).name.as_str() {
            "Lanes" | "Timeline" => {
                for c in tree.children(n) {
                    self.walk(c, &f)?;
                }
            }
            "Clips" => {
                for c in tree.children(n) {
                    match tree.node(c).name.as_str() {
                        "Clip" => self.clip(c, &f)?,
                        other => tracing::debug!("Clips: <{other}> ignored"),
                    }
                }
            }
            "Clip" => self.clip(n, &f)?,
            "Audio" => self.audio(n, &f)?,
            "Warps" => self.warps(n, &f)?,
            "Notes" => {
                let has = tree.children_named(n, "Note").next().is_some();
                if let (Some(c), true) = (f.chan, has) {
                    *self.notes.entry(c).or_insert(0) += 1;
                }
            }
            "Points" => self.points(n, &f)?,
            "Video" => {
                let who = self.who(&f);
                self.warn(format!("{who}: a video clip cannot be rendered; left out"))?;
            }
            "ClipSlot" => {
                let who = self.who(&f);
                self.note(format!(
                    "{who}: a clip-launcher slot is not part of the arrangement"
                ));
            }
            "Markers" | "markers" | "Warp" => {}
            other => tracing::debug!("timeline <{other}> ignored"),
        }
        Ok(())
    }

    /// `track "X"` (and `clip "Y"`) for messages.
    fn who(&self, f: &Frame) -> String {
        let t = match f.chan {
            Some(c) => format!("track {:?}", self.chans[c].name),
            None => "the arrangement".to_string(),
        };
        match &f.clip {
            Some(c) => format!("{t}: clip {c:?}"),
            None => t,
        }
    }

    /// The timeline a Clip plays: its child, or the element its `reference` names.
    fn clip_content(&self, n: NodeId) -> Result<Option<NodeId>> {
        if let Some(r) = self.attr(n, "reference") {
            return Ok(Some(self.resolve(n, "reference", r)?));
        }
        Ok(self.tree.children(n).next())
    }

    fn clip(&mut self, n: NodeId, f: &Frame) -> Result<()> {
        let mut cf = f.clone();
        if let Some(name) = self.attr(n, "name") {
            cf.clip = Some(name.to_string());
        }
        if self.bool_attr(n, "enable")? == Some(false) {
            let who = self.who(&cf);
            self.note(format!("{who}: disabled clip, left out"));
            return Ok(());
        }
        let time = self
            .f64_attr(n, "time")?
            .ok_or_else(|| self.err(n, "a Clip needs a time"))?;
        let duration = self.f64_attr(n, "duration")?;
        if let Some(d) = duration
            && d < 0.0
        {
            return Err(self.err(n, format_args!("duration {d} is negative")));
        }
        if f.unit == Unit::Beats {
            self.beats_used = true;
        }
        let start_s = self.abs_s(f, time);
        self.check_time(n, "the clip's start", start_s)?;
        let end_s = match duration {
            Some(d) => {
                let e = self.abs_s(f, time + d);
                self.check_time(n, "the clip's end", e)?;
                e
            }
            None => f64::INFINITY,
        };
        let win = (start_s.max(f.win.0), end_s.min(f.win.1));
        if win.0 >= win.1 {
            return Ok(());
        }
        let cu = self.unit_attr(n, "contentTimeUnit")?.unwrap_or(f.unit);
        let play_start = self.f64_attr(n, "playStart")?.unwrap_or(0.0);
        let play_stop = self.f64_attr(n, "playStop")?;
        let loop_start = self.f64_attr(n, "loopStart")?;
        let loop_end = self.f64_attr(n, "loopEnd")?;
        let Some(content) = self.clip_content(n)? else {
            return Ok(());
        };
        // Positions in the content's unit, absolute.
        let (s_cu, e_cu) = match cu {
            Unit::Seconds => (start_s, end_s),
            Unit::Beats => {
                self.beats_used = true;
                let sb = if f.unit == Unit::Beats {
                    f.origin_b + time
                } else {
                    self.tempo.beat_at(start_s)
                };
                let eb = match duration {
                    Some(d) if f.unit == Unit::Beats => f.origin_b + time + d,
                    Some(_) => self.tempo.beat_at(end_s),
                    None => f64::INFINITY,
                };
                (sb, eb)
            }
        };
        // Passes: (content origin in cu, window start, window end), absolute in cu.
        let mut passes: Vec<(f64, f64, f64)> = Vec::new();
        match (loop_start, loop_end) {
            (Some(ls), Some(le)) if le > ls => {
                if !e_cu.is_finite() {
                    return Err(self.err(n, "a looped clip needs a duration"));
                }
                let len = le - ls;
                let mut c = if play_start >= le {
                    ls + (play_start - ls).rem_euclid(len)
                } else {
                    play_start
                };
                let mut pos = s_cu;
                while pos < e_cu {
                    if passes.len() >= MAX_PASSES {
                        return Err(self.err(
                            n,
                            format_args!("the loop repeats more than {MAX_PASSES} times"),
                        ));
                    }
                    let pass_len = le - c;
                    let end = (pos + pass_len).min(e_cu);
                    passes.push((pos - c, pos, end));
                    pos += pass_len;
                    c = ls;
                }
            }
            _ => {
                let end = match play_stop {
                    Some(stop) => (s_cu + (stop - play_start)).min(e_cu),
                    None => e_cu,
                };
                passes.push((s_cu - play_start, s_cu, end));
            }
        }
        let first = self.clips.len();
        for (origin, w0, w1) in passes {
            let (origin_s, origin_b, w0s, w1s) = match cu {
                Unit::Seconds => (origin, self.tempo.beat_at(origin), w0, w1),
                Unit::Beats => (
                    self.tempo.secs_at(origin),
                    origin,
                    self.tempo.secs_at(w0),
                    if w1.is_finite() {
                        self.tempo.secs_at(w1)
                    } else {
                        w1
                    },
                ),
            };
            let pf = Frame {
                unit: cu,
                origin_s,
                origin_b,
                win: (w0s.max(win.0), w1s.min(win.1)),
                chan: cf.chan,
                in_clip: true,
                clip: cf.clip.clone(),
            };
            if pf.win.0 < pf.win.1 {
                self.walk(content, &pf)?;
            }
        }
        // Fades, in fadeTimeUnit, else the parent's unit (beats at the clip's start tempo).
        let fu = self.unit_attr(n, "fadeTimeUnit")?.unwrap_or(f.unit);
        let to_s = |m: &Self, v: f64| match fu {
            Unit::Seconds => v.abs(),
            Unit::Beats => v.abs() * 60.0 / m.tempo.bpm_at(m.tempo.beat_at(start_s)),
        };
        let fade_in = self.f64_attr(n, "fadeInTime")?.map(|v| to_s(self, v));
        let fade_out = self.f64_attr(n, "fadeOutTime")?.map(|v| to_s(self, v));
        for (_, c) in &mut self.clips[first..] {
            if let Some(fi) = fade_in
                && fi > 0.0
                && (c.at_s - start_s).abs() < 1e-9
            {
                c.fade_in_s = c.fade_in_s.max(fi);
            }
            if let (Some(fo), Some(len)) = (fade_out, c.length_s)
                && fo > 0.0
                && (c.at_s + len - end_s).abs() < 1e-9
            {
                c.fade_out_s = c.fade_out_s.max(fo);
            }
        }
        Ok(())
    }

    fn warps(&mut self, n: NodeId, f: &Frame) -> Result<()> {
        let tree = self.tree;
        let ct_unit = self
            .unit_attr(n, "contentTimeUnit")?
            .unwrap_or(Unit::Seconds);
        let to_s = |m: &Self, unit: Unit, t: f64| match unit {
            Unit::Seconds => t,
            Unit::Beats => m.tempo.secs_at(f.origin_b + t) - f.origin_s,
        };
        let mut identity = true;
        let mut content = None;
        for c in tree.children(n) {
            if tree.node(c).name == "Warp" {
                let t = self
                    .f64_attr(c, "time")?
                    .ok_or_else(|| self.err(c, "a Warp needs a time"))?;
                let ct = self
                    .f64_attr(c, "contentTime")?
                    .ok_or_else(|| self.err(c, "a Warp needs a contentTime"))?;
                let a = to_s(self, f.unit, t);
                let b = to_s(self, ct_unit, ct);
                if (a - b).abs() > 1e-4 * a.abs().max(b.abs()) + 1e-9 {
                    identity = false;
                }
            } else if content.is_none() {
                content = Some(c);
            }
        }
        if !identity {
            let who = self.who(f);
            return self.warn(format!(
                "{who}: time-stretched audio (its Warps are not identity) cannot be rendered; left out"
            ));
        }
        if let Some(c) = content {
            // Identity: the content plays in real time from this timeline's zero.
            let mut cf = f.clone();
            cf.unit = Unit::Seconds;
            self.walk(c, &cf)?;
        }
        Ok(())
    }

    fn audio(&mut self, n: NodeId, f: &Frame) -> Result<()> {
        let tree = self.tree;
        let file = tree
            .child(n, "File")
            .ok_or_else(|| self.err(n, "an Audio element needs a File"))?;
        let path = self
            .attr(file, "path")
            .ok_or_else(|| self.err(file, "a File needs a path"))?;
        let external = self.bool_attr(file, "external")?.unwrap_or(false);
        let Some(chan) = f.chan else {
            return self.warn(format!(
                "audio {path:?} is on no track (no `track` on its lanes); left out"
            ));
        };
        if self.chans[chan].kind == Kind::Vca {
            return Ok(());
        }
        let origin = f.origin_s;
        let at = f.win.0.max(origin).max(0.0);
        if at >= f.win.1 {
            if f.win.1 <= 0.0 {
                let who = self.who(f);
                self.note(format!("{who}: entirely before time 0, left out"));
            }
            return Ok(());
        }
        let length = f.win.1.is_finite().then_some(f.win.1 - at);
        let name = self.audio_name(file, path, external)?;
        self.clips.push((
            chan,
            Clip {
                file: StemRef {
                    name,
                    path: None,
                    blake3: None,
                },
                at_s: at,
                start_s: at - origin,
                length_s: length,
                gain_db: 0.0,
                fade_in_s: 0.0,
                fade_out_s: 0.0,
            },
        ));
        Ok(())
    }

    /// The session name of an audio file (under `audio/`), registering it once.
    fn audio_name(&mut self, file: NodeId, path: &str, external: bool) -> Result<String> {
        let key = format!("{external}:{path}");
        if let Some(n) = self.audio_by_path.get(&key) {
            return Ok(n.clone());
        }
        let (name, source) = if external {
            let base = std::path::Path::new(path)
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| self.err(file, format_args!("path {path:?} names no file")))?;
            let mut candidate = format!("audio/external/{base}");
            let mut k = 2;
            while self.audio.iter().any(|a| a.name == candidate) {
                candidate = format!("audio/external/{k}-{base}");
                k += 1;
            }
            (candidate, AudioSource::External(path.into()))
        } else {
            let clean = super::zip_path(path)
                .ok_or_else(|| self.err(file, format_args!("path {path:?} leaves the archive")))?;
            (format!("audio/{clean}"), AudioSource::Zip(clean))
        };
        self.audio.push(AudioFile {
            name: name.clone(),
            source,
            element: self.describe(file),
        });
        self.audio_by_path.insert(key, name.clone());
        Ok(name)
    }

    fn points(&mut self, n: NodeId, f: &Frame) -> Result<()> {
        let tree = self.tree;
        let target = tree
            .child(n, "Target")
            .ok_or_else(|| self.err(n, "Points need a Target"))?;
        let Some(param) = self.attr(target, "parameter") else {
            let who = self.who(f);
            let what = self.attr(target, "expression").unwrap_or("unknown");
            return self.warn(format!(
                "{who}: automation of the {what} expression (MIDI) cannot be rendered; left out"
            ));
        };
        let pnode = self.resolve(target, "parameter", param)?;
        if Some(param) == self.tempo_param.as_deref() {
            return Ok(()); // read with the tempo map
        }
        if f.in_clip {
            let who = self.who(f);
            return self.warn(format!(
                "{who}: automation inside a clip (of {}) is not mapped; left out",
                self.describe(pnode)
            ));
        }
        if f.unit == Unit::Beats {
            self.beats_used = true;
        }
        let mut pts: Vec<RawPoint> = Vec::new();
        for p in tree.children(n) {
            let name = tree.node(p).name.as_str();
            if name == "Target" {
                continue;
            }
            let t = self
                .f64_attr(p, "time")?
                .ok_or_else(|| self.err(p, "a point needs a time"))?;
            let v = match name {
                "BoolPoint" => match self.bool_attr(p, "value")? {
                    Some(b) => f64::from(u8::from(b)),
                    None => return Err(self.err(p, "a point needs a value")),
                },
                _ => self
                    .real_value(p)?
                    .ok_or_else(|| self.err(p, "a point needs a value"))?,
            };
            let s = self.abs_s(f, t);
            self.check_time(p, "the point", s)?;
            if let Some(&(ps, _, _)) = pts.last()
                && s < ps
            {
                return Err(self.err(p, "points are not in time order"));
            }
            pts.push((s, v, self.attr(p, "interpolation") == Some("hold")));
        }
        if pts.is_empty() {
            return Ok(());
        }
        self.lanes.push((
            param.to_string(),
            RawLane {
                points: pts,
                unit: self.attr(n, "unit").map(str::to_string),
                node: n,
            },
        ));
        Ok(())
    }

    // ---- the session ----

    fn build(mut self, project_name: &str) -> Result<Mapped> {
        let tree = self.tree;
        let automated: HashSet<String> = self.lanes.iter().map(|(id, _)| id.clone()).collect();
        let mut tracks: Vec<Track> = Vec::new();
        let mut buses: Vec<Bus> = Vec::new();
        let mut master_bus: Option<MasterBus> = None;
        let mut track_names: HashSet<String> = HashSet::new();
        let mut clips_by_chan: HashMap<usize, Vec<Clip>> = HashMap::new();
        for (c, clip) in std::mem::take(&mut self.clips) {
            clips_by_chan.entry(c).or_default().push(clip);
        }

        for i in 0..self.chans.len() {
            let node = self.chans[i].node;
            let name = self.chans[i].name.clone();
            let kind = self.chans[i].kind;
            if kind == Kind::Vca {
                self.warn(format!(
                    "channel {name:?}: a VCA channel cannot be applied (Bounce has no VCA); left out"
                ))?;
                continue;
            }
            let clips = clips_by_chan.remove(&i).unwrap_or_default();
            let output = self.output_of(i)?;
            let strip_desc = match kind {
                Kind::Track => format!("track {name:?}"),
                Kind::Bus => format!("bus {name:?}"),
                _ => "master_bus".to_string(),
            };
            // Strip parameters.
            let strip = match kind {
                Kind::Track => Strip::Track(tracks.len()),
                Kind::Bus => Strip::Bus(buses.len()),
                _ => Strip::Master,
            };
            if kind == Kind::Track && clips.is_empty() {
                // Its devices are still named (an instrument track's plug-in).
                self.devices(node, strip, &strip_desc)?;
                self.note(format!(
                    "track {name:?}: no audio clips, nothing to render; left out"
                ));
                continue;
            }
            let (gain_db, mute, vol_lane) = self.volume(node, strip, &strip_desc, &automated)?;
            let pan = self.pan(node, strip, &automated)?;
            let mute = mute || self.mute(node, strip, &automated)?;
            let solo = self.bool_attr(node, "solo")?.unwrap_or(false);
            let inserts = self.devices(node, strip, &strip_desc)?;
            let sends = self.sends(node, strip, &strip_desc, &automated)?;
            let mut automation = Automation::default();
            if let Some(l) = vol_lane {
                automation.lanes.push(l);
            }
            match kind {
                Kind::Track => {
                    let tname = unique(&name, &mut track_names);
                    self.chans[i].track_name = Some(tname.clone());
                    self.note(format!(
                        "track {tname:?} ← {} ({} clip(s))",
                        self.describe(node),
                        clips.len()
                    ));
                    tracks.push(Track {
                        name: tname,
                        clips,
                        from_file: false,
                        gain_db,
                        pan,
                        mute,
                        solo,
                        invert: false,
                        output,
                        channels: self.chans[i].audio_channels,
                        eq: Vec::new(),
                        compressor: None,
                        inserts,
                        sends,
                        automation,
                        tags: Vec::new(),
                    });
                }
                Kind::Bus | Kind::Master => {
                    if solo {
                        self.warn(format!(
                            "{strip_desc}: solo on a bus or master is not mapped; ignored"
                        ))?;
                    }
                    if kind == Kind::Bus {
                        let bname = self.chans[i].bus_name.clone().unwrap_or(name.clone());
                        self.note(format!("bus {bname:?} ← {}", self.describe(node)));
                        buses.push(Bus {
                            name: bname,
                            output,
                            gain_db,
                            pan,
                            mute,
                            reverb: None,
                            inserts,
                            sends,
                            automation,
                        });
                    } else {
                        if !sends.is_empty() {
                            self.warn(format!(
                                "master channel {name:?}: sends from the master are not mapped; left out"
                            ))?;
                        }
                        self.note(format!("master_bus ← {}", self.describe(node)));
                        master_bus = Some(MasterBus {
                            gain_db,
                            pan,
                            mute,
                            inserts,
                            automation,
                        });
                    }
                    if !clips.is_empty() {
                        // Clips on a bus or the master: a track named after it feeding it.
                        let out = match kind {
                            Kind::Bus => {
                                Output::Bus(self.chans[i].bus_name.clone().unwrap_or(name.clone()))
                            }
                            _ => Output::Master,
                        };
                        let tname = unique(&name, &mut track_names);
                        self.note(format!(
                            "track {tname:?} ← the clips of {} ({} clip(s)), feeding it",
                            self.describe(node),
                            clips.len()
                        ));
                        tracks.push(Track {
                            name: tname,
                            clips,
                            from_file: false,
                            gain_db: 0.0,
                            pan: 0.0,
                            mute: false,
                            solo: false,
                            invert: false,
                            output: out,
                            channels: self.chans[i].audio_channels,
                            eq: Vec::new(),
                            compressor: None,
                            inserts: Vec::new(),
                            sends: Vec::new(),
                            automation: Automation::default(),
                            tags: Vec::new(),
                        });
                    }
                }
                Kind::Vca => {}
            }
        }
        for (c, v) in clips_by_chan {
            let name = self.chans[c].name.clone();
            self.warn(format!(
                "channel {name:?}: {} clip(s) on a VCA channel cannot be rendered; left out",
                v.len()
            ))?;
        }

        // Automation lanes.
        let lanes = std::mem::take(&mut self.lanes);
        for (id, raw) in lanes {
            let Some(param) = self.params.get(&id).cloned() else {
                let pnode = self.ids.get(id.as_str()).copied().unwrap_or(raw.node);
                let desc = self.describe(pnode);
                self.warn(format!(
                    "automation of {desc} has no session key (a plug-in or unmapped parameter); left out"
                ))?;
                continue;
            };
            let pnode = self.ids.get(id.as_str()).copied().unwrap_or(raw.node);
            let (strip, target, points) = self.convert_lane(&param, pnode, &raw)?;
            let auto = match strip {
                Strip::Track(t) => tracks.get_mut(t).map(|t| &mut t.automation),
                Strip::Bus(b) => buses.get_mut(b).map(|b| &mut b.automation),
                Strip::Master => master_bus.as_mut().map(|m| &mut m.automation),
            };
            let Some(auto) = auto else { continue };
            if auto.lanes.iter().any(|l| l.target == target) {
                let desc = self.describe(pnode);
                self.warn(format!(
                    "a second automation lane of {desc} is not mapped; left out"
                ))?;
                continue;
            }
            self.mapped.push(format!(
                "automation {} ← {} ({} points)",
                target.key(),
                self.describe(raw.node),
                points.len()
            ));
            // Volume automation replaces the fader's static lane.
            auto.lanes
                .retain(|l| !(l.target == LaneTarget::GainDb && target == LaneTarget::GainDb));
            auto.lanes.push(AutoLane { target, points });
        }
        let _ = tree;
        let tempo_bpm = self
            .tempo
            .constant_bpm()
            .filter(|b| (20.0..=999.0).contains(b) && self.tempo_known);
        let session = Session {
            name: project_name.to_string(),
            sample_rate: 48000,
            tail_s: 2.0,
            tempo_bpm,
            tracks,
            buses,
            master_bus,
            master: None,
            deliverables: Vec::new(),
            source: self.src.to_string(),
        };
        Ok(Mapped {
            session,
            warnings: self.warnings,
            mapped: self.mapped,
            audio: self.audio,
        })
    }

    fn output_of(&mut self, i: usize) -> Result<Output> {
        let node = self.chans[i].node;
        let Some(d) = self.chans[i].dest.clone() else {
            return Ok(Output::Master);
        };
        let j = self.chan_of(node, "destination", &d)?;
        match self.chans[j].kind {
            Kind::Master => Ok(Output::Master),
            Kind::Bus => Ok(Output::Bus(
                self.chans[j].bus_name.clone().unwrap_or_default(),
            )),
            _ => {
                let (a, b) = (self.chans[i].name.clone(), self.chans[j].name.clone());
                self.warn(format!(
                    "channel {a:?}: its destination {b:?} is not a bus; routed to the master"
                ))?;
                Ok(Output::Master)
            }
        }
    }

    /// Static Volume: (gain_db, mute for silence, a one-point lane for −150..−60 dB).
    fn volume(
        &mut self,
        ch: NodeId,
        strip: Strip,
        desc: &str,
        automated: &HashSet<String>,
    ) -> Result<(f64, bool, Option<AutoLane>)> {
        let Some(v) = self.tree.child(ch, "Volume") else {
            return Ok((0.0, false, None));
        };
        if let Some(id) = self.attr(v, "id") {
            self.params.insert(id.to_string(), Param::Volume(strip));
            if automated.contains(id) {
                return Ok((0.0, false, None));
            }
        }
        let Some(value) = self.real_value(v)? else {
            return Ok((0.0, false, None));
        };
        let mut note = false;
        let unit = self.unit_of(v);
        let db = units::volume_db(value, unit, &mut note)
            .ok_or_else(|| self.err(v, format_args!("unit {unit:?} is not a volume unit")))?;
        if note {
            self.note(format!(
                "{desc}: Volume in {unit} read as amplitude ({value})"
            ));
        }
        if db == f64::NEG_INFINITY || db < SILENCE_DB {
            return Ok((0.0, true, None));
        }
        if db < -60.0 {
            // Below the static range: the same gain as a one-point lane.
            return Ok((
                0.0,
                false,
                Some(AutoLane {
                    target: LaneTarget::GainDb,
                    points: vec![(0.0, db)],
                }),
            ));
        }
        if !db.is_finite() {
            return Err(self.err(v, format_args!("volume {value} is not finite")));
        }
        Ok((db, false, None))
    }

    fn pan(&mut self, ch: NodeId, strip: Strip, automated: &HashSet<String>) -> Result<f64> {
        let Some(p) = self.tree.child(ch, "Pan") else {
            return Ok(0.0);
        };
        if let Some(id) = self.attr(p, "id") {
            self.params.insert(id.to_string(), Param::Pan(strip));
            if automated.contains(id) {
                return Ok(0.0);
            }
        }
        let Some(value) = self.real_value(p)? else {
            return Ok(0.0);
        };
        let unit = self.unit_of(p);
        units::pan(
            value,
            unit,
            self.f64_attr(p, "min")?,
            self.f64_attr(p, "max")?,
        )
        .filter(|x| x.is_finite())
        .ok_or_else(|| {
            self.err(
                p,
                format_args!("pan {value} in unit {unit:?} cannot be read"),
            )
        })
    }

    fn mute(&mut self, ch: NodeId, strip: Strip, automated: &HashSet<String>) -> Result<bool> {
        let Some(m) = self.tree.child(ch, "Mute") else {
            return Ok(false);
        };
        if let Some(id) = self.attr(m, "id") {
            self.params.insert(id.to_string(), Param::Mute(strip));
            if automated.contains(id) {
                return Ok(false);
            }
        }
        Ok(self.bool_attr(m, "value")?.unwrap_or(false))
    }

    fn sends(
        &mut self,
        ch: NodeId,
        strip: Strip,
        desc: &str,
        automated: &HashSet<String>,
    ) -> Result<Vec<Send>> {
        let tree = self.tree;
        let mut out: Vec<(Send, bool)> = Vec::new();
        let Some(list) = tree.child(ch, "Sends") else {
            return Ok(Vec::new());
        };
        for s in tree.children_named(list, "Send") {
            let Some(d) = self.attr(s, "destination") else {
                self.note(format!(
                    "{desc}: {} has no destination, left out",
                    self.describe(s)
                ));
                continue;
            };
            let j = self.chan_of(s, "destination", d)?;
            let Some(bus) = self.chans[j]
                .bus_name
                .clone()
                .filter(|_| self.chans[j].kind == Kind::Bus)
            else {
                let to = self.chans[j].name.clone();
                self.warn(format!(
                    "{desc}: a send to {to:?} (not an effect or submix channel) is not mapped; left out"
                ))?;
                continue;
            };
            if !self.enabled(s, "Enable")? {
                self.note(format!("{desc}: the disabled send to {bus:?} is left out"));
                continue;
            }
            let pre_fader = match self.attr(s, "type").unwrap_or("post") {
                "pre" => true,
                "post" => false,
                other => return Err(self.err(s, format_args!("type {other:?} is not pre or post"))),
            };
            if let Some(p) = tree.child(s, "Pan")
                && let Some(v) = self.real_value(p)?
            {
                let unit = self.unit_of(p);
                let pv = units::pan(v, unit, self.f64_attr(p, "min")?, self.f64_attr(p, "max")?);
                if pv.is_some_and(|x| x.abs() > 1e-9) {
                    self.warn(format!(
                        "{desc}: the send to {bus:?} has a pan, which sends do not have; sent centred"
                    ))?;
                }
            }
            let vol = tree.child(s, "Volume");
            let vid = vol.and_then(|v| self.attr(v, "id"));
            let is_auto = vid.is_some_and(|id| automated.contains(id));
            if let Some(id) = vid {
                self.params
                    .insert(id.to_string(), Param::Send(strip, bus.clone()));
            }
            let mut level_db = 0.0;
            if let Some(v) = vol
                && let Some(value) = self.real_value(v)?
            {
                let mut note = false;
                let unit = self.unit_of(v);
                level_db = units::volume_db(value, unit, &mut note).ok_or_else(|| {
                    self.err(v, format_args!("unit {unit:?} is not a volume unit"))
                })?;
            }
            if level_db < SILENCE_DB {
                if !is_auto {
                    self.note(format!(
                        "{desc}: the send to {bus:?} is at silence, left out"
                    ));
                    continue;
                }
                level_db = SILENCE_DB;
            }
            if let Some((prev, prev_auto)) = out.iter_mut().find(|(x, _)| x.bus == bus) {
                if !is_auto && !*prev_auto && prev.pre_fader == pre_fader {
                    let a = 10f64.powf(prev.level_db / 20.0) + 10f64.powf(level_db / 20.0);
                    prev.level_db = 20.0 * a.log10();
                    self.note(format!("{desc}: two sends to {bus:?} merged into one"));
                } else {
                    self.warn(format!(
                        "{desc}: a second send to {bus:?} cannot be kept beside the first; left out"
                    ))?;
                }
                continue;
            }
            self.note(format!(
                "{desc}: send to {bus:?} ({})",
                if pre_fader { "pre" } else { "post" }
            ));
            out.push((
                Send {
                    bus,
                    level_db,
                    pre_fader,
                },
                is_auto,
            ));
        }
        Ok(out.into_iter().map(|(s, _)| s).collect())
    }

    /// A device's RealParameter child: (value, unit, id).
    fn dparam(&self, dev: NodeId, name: &str) -> Result<Option<(f64, &'a str, Option<&'a str>)>> {
        let Some(p) = self.tree.child(dev, name) else {
            return Ok(None);
        };
        let Some(v) = self.real_value(p)? else {
            return Ok(None);
        };
        Ok(Some((v, self.unit_of(p), self.attr(p, "id"))))
    }

    fn devices(&mut self, ch: NodeId, strip: Strip, desc: &str) -> Result<Vec<Insert>> {
        let tree = self.tree;
        let mut out = Vec::new();
        let Some(list) = tree.child(ch, "Devices") else {
            return Ok(out);
        };
        for d in tree.children(list) {
            let el = tree.node(d).name.clone();
            let dname = self
                .attr(d, "deviceName")
                .or_else(|| self.attr(d, "name"))
                .unwrap_or(&el)
                .to_string();
            if !self.enabled(d, "Enabled")? {
                self.note(format!("{desc}: disabled device {dname:?} ({el}) left out"));
                continue;
            }
            let role = self.attr(d, "deviceRole").unwrap_or("audioFX");
            let index = out.len();
            match el.as_str() {
                "Vst2Plugin" | "Vst3Plugin" | "ClapPlugin" | "AuPlugin" => {
                    let what = if role == "instrument" {
                        "instrument"
                    } else {
                        "plug-in"
                    };
                    self.warn(format!(
                        "{desc}: {what} {dname:?} ({el}) cannot be rendered; left out"
                    ))?;
                }
                "Equalizer" => {
                    if let Some(ins) = self.equalizer(d, strip, index, desc, &dname)? {
                        self.note(format!("{desc}: Equalizer {dname:?} → inserts[{index}] eq"));
                        out.push(ins);
                    }
                }
                "Compressor" => {
                    out.push(self.compressor(d, strip, index, desc, &dname)?);
                    self.note(format!(
                        "{desc}: Compressor {dname:?} → inserts[{index}] compressor"
                    ));
                }
                "NoiseGate" => {
                    out.push(self.gate(d, strip, index, desc, &dname)?);
                    self.note(format!(
                        "{desc}: NoiseGate {dname:?} → inserts[{index}] gate"
                    ));
                }
                "Limiter" => {
                    self.warn(format!(
                        "{desc}: Limiter {dname:?}: Bounce has no limiter insert on strips yet; left out"
                    ))?;
                }
                "Device" | "BuiltinDevice" => {
                    self.warn(format!(
                        "{desc}: device {dname:?} ({el}, {role}) has no Bounce equivalent; left out"
                    ))?;
                }
                other => tracing::debug!("Devices: <{other}> ignored"),
            }
        }
        Ok(out)
    }

    fn equalizer(
        &mut self,
        d: NodeId,
        strip: Strip,
        index: usize,
        desc: &str,
        dname: &str,
    ) -> Result<Option<Insert>> {
        let tree = self.tree;
        let mut bands: Vec<NodeId> = tree.children_named(d, "Band").collect();
        let mut orders = Vec::new();
        for &b in &bands {
            orders.push(self.f64_attr(b, "order")?);
        }
        if orders.iter().all(Option::is_some) {
            let mut idx: Vec<usize> = (0..bands.len()).collect();
            idx.sort_by(|&a, &b| {
                orders[a]
                    .unwrap_or(0.0)
                    .total_cmp(&orders[b].unwrap_or(0.0))
            });
            bands = idx.into_iter().map(|i| bands[i]).collect();
        }
        let mut out = Vec::new();
        for b in bands {
            if !self.enabled(b, "Enabled")? {
                self.note(format!(
                    "{desc}: Equalizer {dname:?}: a disabled band left out"
                ));
                continue;
            }
            let ty = self.attr(b, "type").unwrap_or("");
            let kind = match ty {
                "highPass" => EqType::Highpass,
                "lowPass" => EqType::Lowpass,
                "highShelf" => EqType::Highshelf,
                "lowShelf" => EqType::Lowshelf,
                "bell" => EqType::Peak,
                "notch" => EqType::Notch,
                "bandPass" => {
                    self.note(format!(
                        "{desc}: Equalizer {dname:?}: a bandPass band imported as a peak band of the same Q"
                    ));
                    EqType::Peak
                }
                other => {
                    self.warn(format!(
                        "{desc}: Equalizer {dname:?}: band type {other:?} is not known; left out"
                    ))?;
                    continue;
                }
            };
            let Some((freq, funit, fid)) = self.dparam(b, "Freq")? else {
                return Err(self.err(b, "an EQ band needs a Freq"));
            };
            if !funit.is_empty() && funit != "hertz" {
                return Err(self.err(b, format_args!("Freq in {funit:?}, expected hertz")));
            }
            let gain = self.dparam(b, "Gain")?;
            let q = self.dparam(b, "Q")?;
            let j = out.len();
            if let Some(id) = fid {
                self.params.insert(
                    id.to_string(),
                    Param::Insert(strip, index, format!("bands.{j}.freq"), Conv::Offset(0.0)),
                );
            }
            if let Some((_, _, Some(id))) = gain {
                self.params.insert(
                    id.to_string(),
                    Param::Insert(
                        strip,
                        index,
                        format!("bands.{j}.gain_db"),
                        Conv::Offset(0.0),
                    ),
                );
            }
            out.push(EqBand {
                kind,
                freq,
                q: q.map(|x| x.0).unwrap_or(0.707),
                gain_db: gain.map(|x| x.0).unwrap_or(0.0),
            });
        }
        for g in ["InputGain", "OutputGain"] {
            if let Some((v, _, _)) = self.dparam(d, g)?
                && v != 0.0
            {
                self.warn(format!(
                    "{desc}: Equalizer {dname:?}: {g} {v} dB is not mapped (an EQ insert has no gain); left out"
                ))?;
            }
        }
        if out.is_empty() {
            self.note(format!(
                "{desc}: Equalizer {dname:?} has no enabled bands; left out"
            ));
            return Ok(None);
        }
        Ok(Some(Insert::Eq(EqInsert { bands: out })))
    }

    fn time_param(&self, d: NodeId, name: &str, default_ms: f64) -> Result<f64> {
        match self.dparam(d, name)? {
            None => Ok(default_ms),
            Some((v, unit, _)) => units::time_ms(v, unit).ok_or_else(|| {
                let p = self.tree.child(d, name).unwrap_or(d);
                self.err(p, format_args!("unit {unit:?} is not a time unit"))
            }),
        }
    }

    fn compressor(
        &mut self,
        d: NodeId,
        strip: Strip,
        index: usize,
        desc: &str,
        dname: &str,
    ) -> Result<Insert> {
        let g = self.dparam(d, "InputGain")?.map(|x| x.0).unwrap_or(0.0);
        let o = self.dparam(d, "OutputGain")?;
        let t = self.dparam(d, "Threshold")?;
        let r = self.dparam(d, "Ratio")?;
        let ratio = match r {
            Some((v, unit, _)) => units::ratio(v, if unit.is_empty() { "linear" } else { unit })
                .ok_or_else(|| self.err(d, format_args!("Ratio in {unit:?} cannot be read")))?,
            None => 1.0,
        };
        if let Some(id) = t.and_then(|x| x.2) {
            self.params.insert(
                id.to_string(),
                Param::Insert(strip, index, "threshold_db".into(), Conv::Offset(-g)),
            );
        }
        if let Some((_, unit, Some(id))) = r {
            self.params.insert(
                id.to_string(),
                Param::Insert(strip, index, "ratio".into(), Conv::Ratio(unit.to_string())),
            );
        }
        if let Some((_, _, Some(id))) = o {
            self.params.insert(
                id.to_string(),
                Param::Insert(strip, index, "makeup_db".into(), Conv::Offset(g)),
            );
        }
        if let Some(a) = self.tree.child(d, "AutoMakeup")
            && self.bool_attr(a, "value")? == Some(true)
        {
            self.warn(format!(
                "{desc}: Compressor {dname:?}: AutoMakeup is not mapped (no makeup added)"
            ))?;
        }
        Ok(Insert::Compressor(Compressor {
            threshold_db: t.map(|x| x.0).unwrap_or(0.0) - g,
            ratio,
            attack_ms: self.time_param(d, "Attack", 10.0)?,
            release_ms: self.time_param(d, "Release", 100.0)?,
            knee_db: 0.0,
            makeup_db: g + o.map(|x| x.0).unwrap_or(0.0),
            detector: Detector::Peak,
            sidechain: None,
        }))
    }

    fn gate(
        &mut self,
        d: NodeId,
        strip: Strip,
        index: usize,
        desc: &str,
        dname: &str,
    ) -> Result<Insert> {
        let t = self.dparam(d, "Threshold")?;
        if let Some(id) = t.and_then(|x| x.2) {
            self.params.insert(
                id.to_string(),
                Param::Insert(strip, index, "threshold_db".into(), Conv::Offset(0.0)),
            );
        }
        let range = match self.dparam(d, "Range")? {
            None => -80.0,
            Some((v, _, _)) if v == f64::NEG_INFINITY => -120.0,
            Some((v, _, _)) if v > 0.0 => (-v).max(-120.0),
            Some((v, _, _)) => v.max(-120.0),
        };
        if let Some((r, _, _)) = self.dparam(d, "Ratio")?
            && r.is_finite()
            && r < 100.0
        {
            self.note(format!(
                "{desc}: NoiseGate {dname:?}: ratio 1:{r} approximated by its Range ({range} dB)"
            ));
        }
        Ok(Insert::Gate(Gate {
            threshold_db: t.map(|x| x.0).unwrap_or(-60.0),
            range_db: range,
            attack_ms: self.time_param(d, "Attack", 1.0)?,
            hold_ms: 10.0,
            release_ms: self.time_param(d, "Release", 100.0)?,
        }))
    }

    /// A raw lane in the session's units: (strip, target, points), hold points as steps,
    /// parts before time 0 cut.
    fn convert_lane(
        &mut self,
        param: &Param,
        pnode: NodeId,
        raw: &RawLane,
    ) -> Result<(Strip, LaneTarget, Points)> {
        let unit = raw
            .unit
            .clone()
            .unwrap_or_else(|| self.unit_of(pnode).to_string());
        let (min, max) = (self.f64_attr(pnode, "min")?, self.f64_attr(pnode, "max")?);
        let level = |v: f64| -> Option<f64> {
            let mut note = false;
            units::volume_db(v, &unit, &mut note).map(|d| d.max(SILENCE_DB))
        };
        let (strip, target): (Strip, LaneTarget) = match param {
            Param::Volume(s) => (*s, LaneTarget::GainDb),
            Param::Pan(s) => (*s, LaneTarget::Pan),
            Param::Mute(s) => (*s, LaneTarget::Mute),
            Param::Send(s, bus) => (*s, LaneTarget::Send(bus.clone())),
            Param::Insert(s, i, p, _) => (
                *s,
                LaneTarget::Insert {
                    index: *i,
                    param: p.clone(),
                },
            ),
        };
        let conv = |v: f64| -> Option<f64> {
            match param {
                Param::Volume(_) | Param::Send(..) => level(v),
                Param::Pan(_) => units::pan(v, &unit, min, max),
                Param::Mute(_) => Some(if v >= 0.5 { 1.0 } else { 0.0 }),
                Param::Insert(_, _, _, Conv::Offset(o)) => Some(v + o),
                Param::Insert(_, _, _, Conv::Ratio(u)) => {
                    units::ratio(v, if u.is_empty() { "linear" } else { u })
                }
            }
        };
        let is_level = matches!(param, Param::Volume(_) | Param::Send(..));
        let linear_amp = is_level && unit != "decibel";
        let mut pts: Vec<(f64, f64)> = Vec::new();
        let n = raw.points.len();
        for k in 0..n {
            let (t, v, hold) = raw.points[k];
            let cv = conv(v).filter(|x| x.is_finite()).ok_or_else(|| {
                self.err(
                    raw.node,
                    format_args!("value {v} cannot be read in unit {unit:?}"),
                )
            })?;
            pts.push((t, cv));
            if let Some(&(nt, nv, _)) = raw.points.get(k + 1) {
                if hold || matches!(param, Param::Mute(_)) {
                    pts.push((nt, cv));
                } else if linear_amp && nt > t {
                    let amp = |x: f64| match unit.as_str() {
                        "percent" => x / 100.0,
                        _ => x,
                    };
                    pts.extend(units::linear_ramp_points(t, amp(v), nt, amp(nv)));
                }
            }
        }
        // Cut before time 0: the value at 0, then the rest.
        if pts.first().is_some_and(|p| p.0 < 0.0) {
            let k = pts.partition_point(|p| p.0 < 0.0);
            let v0 = match pts.get(k) {
                Some(&(t1, v1)) if t1 > 0.0 && !matches!(param, Param::Mute(_)) => {
                    let (t0, va) = pts[k - 1];
                    va + (v1 - va) * (0.0 - t0) / (t1 - t0)
                }
                Some(&(0.0, v1)) => v1,
                _ => pts[k - 1].1,
            };
            let mut rest = vec![(0.0, v0)];
            rest.extend_from_slice(&pts[k..]);
            pts = rest;
        }
        Ok((strip, target, pts))
    }
}

/// `name`, or `name (2)`, `name (3)` … the first not in `used` (then marked used).
fn unique(name: &str, used: &mut HashSet<String>) -> String {
    let mut n = name.to_string();
    let mut k = 2;
    while used.contains(&n) {
        n = format!("{name} ({k})");
        k += 1;
    }
    used.insert(n.clone());
    n
}
