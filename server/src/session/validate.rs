//! Every rule of CONTRACT.md, checked on the model (whether it came from TOML or proto).
//!
//! Each message is one line: `file: field path: value and what is wrong`, e.g.
//! `song.toml: track[2] "Kick".eq[0].freq: 30000 is outside (0, 24000) Hz (the Nyquist of session.sample_rate 48000)`.
//!
//! Ranges the contract leaves open, chosen here (what a studio would call sane):
//! pan [-1, 1]; width [0, 4]; knee [0, 48] dB; compressor threshold [-120, 24] dB;
//! automation values [-144, 60] dB (a fade may go far below a static gain);
//! send level, wet, bus, EQ gain within ±60 dB; predelay [0, 1000] ms; limiter
//! ceiling [-20, 0] dBTP, release [0, 10000] ms, look-ahead [0, 100] ms; deliverable
//! target [-40, -5] LUFS and ceiling [-20, 0] dBTP. Sends to the track's own output
//! bus are allowed (a parallel path a studio uses on purpose). Deliverable names are
//! compared case-insensitively ("Mix", duplicates differing in case) because they
//! become file names and some file systems fold case.

use std::collections::{HashMap, HashSet};

use super::limits::Limits;
use super::model::*;
use crate::inserts::InsertCheck;
use crate::{Error, Result};

/// Upper bounds that keep one request from exhausting a shared server (the counts
/// a request decides live in [`Limits`]).
const MAX_EQ_BANDS: usize = 64;
const MAX_SENDS: usize = 64;
const MAX_MULTIBAND_BANDS: usize = 16;

/// Gain and send lanes, and static send levels: −150 dB is silence (2026-12).
const LANE_DB: (f64, f64) = (-150.0, 60.0);

/// Checks every rule of CONTRACT.md (and the ranges above) against the default
/// [`Limits`]. The first problem found is returned, naming `session.source`, the field
/// path and the value.
pub fn validate(session: &Session) -> Result<()> {
    validate_with(session, &Limits::default())
}

/// [`validate`] with explicit limits (counts, name lengths and timeline positions are
/// [`Error::Limit`]; bad values are [`Error::InvalidSession`]).
pub fn validate_with(session: &Session, limits: &Limits) -> Result<()> {
    let ck = Ck {
        src: &session.source,
    };
    ck.rate("session.sample_rate", session.sample_rate)?;
    let nyq = Nyquist(session.sample_rate);
    ck.within("session.tail_s", session.tail_s, 0.0, 600.0, " s")?;
    if let Some(bpm) = session.tempo_bpm {
        ck.within("session.tempo_bpm", bpm, 20.0, 999.0, " bpm")?;
    }

    if session.tracks.is_empty() {
        return Err(ck.err(
            "track",
            "the session has no tracks (add at least one [[track]])",
        ));
    }
    ck.limit("track", session.tracks.len(), limits.max_tracks, "tracks")?;
    ck.limit("bus", session.buses.len(), limits.max_buses, "buses")?;
    let clips: usize = session.tracks.iter().map(|t| t.clips.len()).sum();
    ck.limit("track", clips, limits.max_clips, "clips")?;
    let points: usize = session
        .tracks
        .iter()
        .map(|t| t.automation.points())
        .chain(session.buses.iter().map(|b| b.automation.points()))
        .chain(session.master_bus.iter().map(|m| m.automation.points()))
        .sum();
    ck.limit(
        "automation",
        points,
        limits.max_automation_points,
        "automation points",
    )?;
    let mut irs: HashSet<&str> = HashSet::new();
    for b in &session.buses {
        irs.extend(b.reverb.iter().map(|r| r.ir.name.as_str()));
    }
    for ins in session
        .tracks
        .iter()
        .flat_map(|t| &t.inserts)
        .chain(session.buses.iter().flat_map(|b| &b.inserts))
        .chain(session.master_bus.iter().flat_map(|m| &m.inserts))
    {
        irs.extend(ins.file().map(|f| f.name.as_str()));
    }
    ck.limit(
        "reverb",
        irs.len(),
        limits.max_irs,
        "impulse-response files",
    )?;

    // Buses first: track outputs and sends refer to them.
    let mut bus_index: HashMap<&str, usize> = HashMap::new();
    for (i, b) in session.buses.iter().enumerate() {
        ck.name_len(&format!("bus[{i}].name"), &b.name, limits)?;
        let p = format!("bus[{i}] {:?}", b.name);
        if b.name.is_empty() {
            return Err(ck.err(&format!("bus[{i}].name"), "must not be empty"));
        }
        if b.name == "master" {
            return Err(ck.err(
                &format!("{p}.name"),
                "\"master\" is reserved for the master bus; pick another bus name",
            ));
        }
        if let Some(j) = bus_index.insert(&b.name, i) {
            return Err(ck.err(
                &format!("{p}.name"),
                format_args!(
                    "{:?} is already the name of bus[{j}] (bus names are unique)",
                    b.name
                ),
            ));
        }
        ck.within(&format!("{p}.gain_db"), b.gain_db, -60.0, 60.0, " dB")?;
        if let Some(r) = &b.reverb {
            ck.stem(&format!("{p}.reverb.ir"), &r.ir, limits)?;
            ck.within(
                &format!("{p}.reverb.predelay_ms"),
                r.predelay_ms,
                0.0,
                1000.0,
                " ms",
            )?;
            ck.within(&format!("{p}.reverb.wet_db"), r.wet_db, -60.0, 60.0, " dB")?;
        }
    }
    for (i, b) in session.buses.iter().enumerate() {
        ck.output(
            &format!("bus[{i}] {:?}.output", b.name),
            &b.output,
            &bus_index,
        )?;
    }
    if let Some((start, cycle)) = find_cycle(session, &bus_index) {
        let names: Vec<String> = cycle
            .iter()
            .map(|&k| format!("{:?}", session.buses[k].name))
            .collect();
        return Err(ck.err(
            &format!("bus[{start}] {:?}.output", session.buses[start].name),
            format_args!("routing loop: bus {}", names.join(" -> ")),
        ));
    }
    let strips = StripCk {
        ck: &ck,
        rate: session.sample_rate,
        tempo_bpm: session.tempo_bpm,
        limits,
        buses: &bus_index,
    };
    for (i, b) in session.buses.iter().enumerate() {
        let p = format!("bus[{i}] {:?}", b.name);
        ck.within(&format!("{p}.pan"), b.pan, -1.0, 1.0, "")?;
        strips.strip(&p, &b.sends, &b.inserts, &b.automation)?;
    }

    let mut track_names: HashMap<&str, usize> = HashMap::new();
    let rate = f64::from(session.sample_rate);
    for (i, t) in session.tracks.iter().enumerate() {
        ck.name_len(&format!("track[{i}].name"), &t.name, limits)?;
        let p = format!("track[{i}] {:?}", t.name);
        if t.name.is_empty() {
            return Err(ck.err(&format!("track[{i}].name"), "must not be empty"));
        }
        if let Some(j) = track_names.insert(&t.name, i) {
            return Err(ck.err(
                &format!("{p}.name"),
                format_args!(
                    "{:?} is already the name of track[{j}] (track names are unique)",
                    t.name
                ),
            ));
        }
        if t.clips.is_empty() {
            return Err(ck.err(
                &format!("{p}.clips"),
                "the list is empty (give at least one clip, or file)",
            ));
        }
        for (j, c) in t.clips.iter().enumerate() {
            let cp = format!("{p}.clips[{j}]");
            let (file_f, at_f) = if t.from_file {
                (format!("{p}.file"), format!("{p}.offset_s"))
            } else {
                (format!("{cp}.file"), format!("{cp}.at_s"))
            };
            ck.stem(&file_f, &c.file, limits)?;
            ck.at_least(&at_f, c.at_s, 0.0, " s")?;
            ck.frames(&at_f, c.at_s, rate, limits)?;
            ck.at_least(&format!("{cp}.start_s"), c.start_s, 0.0, " s")?;
            if let Some(len) = c.length_s {
                let lf = format!("{cp}.length_s");
                ck.finite(&lf, len)?;
                if len <= 0.0 {
                    return Err(ck.err(&lf, format_args!("{len} s is not above 0 s")));
                }
                ck.frames(&lf, c.at_s + len, rate, limits)?;
            }
            ck.within(&format!("{cp}.gain_db"), c.gain_db, -60.0, 60.0, " dB")?;
            ck.at_least(&format!("{cp}.fade_in_s"), c.fade_in_s, 0.0, " s")?;
            ck.at_least(&format!("{cp}.fade_out_s"), c.fade_out_s, 0.0, " s")?;
        }
        ck.within(&format!("{p}.gain_db"), t.gain_db, -60.0, 60.0, " dB")?;
        ck.within(&format!("{p}.pan"), t.pan, -1.0, 1.0, "")?;
        ck.output(&format!("{p}.output"), &t.output, &bus_index)?;
        if let Some(c) = t.channels
            && !(1..=2).contains(&c)
        {
            return Err(ck.err(&format!("{p}.channels"), format_args!("{c} is not 1 or 2")));
        }
        ck.eq(&format!("{p}.eq"), &t.eq, nyq)?;
        if let Some(c) = &t.compressor {
            ck.compressor(&format!("{p}.compressor"), c)?;
        }
        for (j, tag) in t.tags.iter().enumerate() {
            ck.name_len(&format!("{p}.tags[{j}]"), tag, limits)?;
        }
        strips.strip(&p, &t.sends, &t.inserts, &t.automation)?;
    }

    if let Some(m) = &session.master_bus {
        ck.within("master_bus.gain_db", m.gain_db, -60.0, 60.0, " dB")?;
        ck.within("master_bus.pan", m.pan, -1.0, 1.0, "")?;
        strips.strip("master_bus", &[], &m.inserts, &m.automation)?;
    }

    check_keys_and_loops(session, &ck, &track_names, &bus_index)?;

    if let Some(m) = &session.master {
        ck.eq("master.eq", &m.eq, nyq)?;
        if let Some(mb) = &m.multiband {
            let n = mb.crossovers_hz.len();
            ck.limit(
                "master.multiband.bands",
                mb.bands.len(),
                MAX_MULTIBAND_BANDS,
                "bands",
            )?;
            if mb.bands.len() != n + 1 {
                return Err(ck.err(
                    "master.multiband.bands",
                    format_args!(
                        "{} bands for {n} crossovers (bands must be crossovers + 1 = {})",
                        mb.bands.len(),
                        n + 1
                    ),
                ));
            }
            for (j, &f) in mb.crossovers_hz.iter().enumerate() {
                let fp = format!("master.multiband.crossovers_hz[{j}]");
                ck.freq(&fp, f, nyq)?;
                if j > 0 && f <= mb.crossovers_hz[j - 1] {
                    return Err(ck.err(&fp, format_args!("{f} Hz is not above the previous crossover {} Hz (crossovers must increase)", mb.crossovers_hz[j - 1])));
                }
            }
            for (j, b) in mb.bands.iter().enumerate() {
                let bp = format!("master.multiband.bands[{j}]");
                ck.compressor(&bp, b)?;
                if b.detector != Detector::Peak {
                    return Err(ck.err(
                        &format!("{bp}.detector"),
                        "\"rms\" is not available in multiband bands (they use peak)",
                    ));
                }
            }
        }
        if let Some(w) = m.width {
            ck.within("master.width", w, 0.0, 4.0, "")?;
        }
        if let Some(l) = &m.limiter {
            ck.within(
                "master.limiter.ceiling_dbtp",
                l.ceiling_dbtp,
                -20.0,
                0.0,
                " dBTP",
            )?;
            ck.within(
                "master.limiter.release_ms",
                l.release_ms,
                0.0,
                10000.0,
                " ms",
            )?;
            ck.within(
                "master.limiter.lookahead_ms",
                l.lookahead_ms,
                0.0,
                100.0,
                " ms",
            )?;
        }
    }

    validate_deliverables_with(&session.source, &session.deliverables, false, limits)
}

/// Checks of one strip (track, bus or master bus) that every kind of strip shares:
/// sends, inserts and automation lanes.
struct StripCk<'a> {
    ck: &'a Ck<'a>,
    rate: u32,
    tempo_bpm: Option<f64>,
    limits: &'a Limits,
    buses: &'a HashMap<&'a str, usize>,
}

impl StripCk<'_> {
    fn strip(&self, p: &str, sends: &[Send], inserts: &[Insert], auto: &Automation) -> Result<()> {
        let ck = self.ck;
        ck.limit(&format!("{p}.sends"), sends.len(), MAX_SENDS, "sends")?;
        let mut sent: HashMap<&str, usize> = HashMap::new();
        for (j, s) in sends.iter().enumerate() {
            let sp = format!("{p}.sends[{j}]");
            if !self.buses.contains_key(s.bus.as_str()) {
                let what = if s.bus == "master" {
                    " (sends go to buses; use output = \"master\")"
                } else {
                    ""
                };
                return Err(ck.err(
                    &format!("{sp}.bus"),
                    format_args!("{:?} is not a bus name{what}", s.bus),
                ));
            }
            ck.within(
                &format!("{sp}.level_db"),
                s.level_db,
                LANE_DB.0,
                LANE_DB.1,
                " dB",
            )?;
            if let Some(k) = sent.insert(&s.bus, j) {
                return Err(ck.err(
                    &format!("{sp}.bus"),
                    format_args!(
                        "{:?} already has a send from {p} (sends[{k}]); a strip has at most one send to a bus",
                        s.bus
                    ),
                ));
            }
        }
        ck.limit(
            &format!("{p}.inserts"),
            inserts.len(),
            self.limits.max_inserts,
            "inserts",
        )?;
        for (i, ins) in inserts.iter().enumerate() {
            let ip = format!("{p}.inserts[{i}]");
            if let Some(f) = ins.file() {
                ck.stem(&format!("{ip}.ir"), f, self.limits)?;
            }
            ins.validate(&InsertCheck {
                src: ck.src,
                path: ip,
                rate: self.rate,
                tempo_bpm: self.tempo_bpm,
            })?;
        }
        let mut seen: HashSet<&LaneTarget> = HashSet::new();
        for lane in &auto.lanes {
            let key = lane.target.key();
            let lp = format!("{p}.automation.{key}");
            if !seen.insert(&lane.target) {
                return Err(ck.err(&lp, "written twice (one lane per key)"));
            }
            if lane.points.is_empty() {
                return Err(ck.err(&lp, "a lane needs at least one [time_s, value] point"));
            }
            // (lo, hi, unit); None: any finite value.
            let mut nyquist = false;
            let range: Option<(f64, f64, &str)> = match &lane.target {
                LaneTarget::GainDb => Some((LANE_DB.0, LANE_DB.1, " dB")),
                LaneTarget::Pan => Some((-1.0, 1.0, "")),
                LaneTarget::Mute => None,
                LaneTarget::Send(bus) => {
                    if !self.buses.contains_key(bus.as_str()) {
                        return Err(ck.err(&lp, format_args!("{bus:?} is not a bus name")));
                    }
                    if !sends.iter().any(|s| &s.bus == bus) {
                        let how = if p == "master_bus" {
                            "the master bus has no sends"
                        } else {
                            "add it to sends"
                        };
                        return Err(ck.err(&lp, format_args!("{p} has no send to {bus:?} ({how})")));
                    }
                    Some((LANE_DB.0, LANE_DB.1, " dB"))
                }
                LaneTarget::Insert { index, param } => {
                    let Some(ins) = inserts.get(*index) else {
                        let has = match inserts.len() {
                            0 => "it has no inserts".to_string(),
                            1 => "it has inserts[0] only".to_string(),
                            n => format!("it has inserts[0] to inserts[{}]", n - 1),
                        };
                        return Err(
                            ck.err(&lp, format_args!("{p} has no inserts[{index}] ({has})"))
                        );
                    };
                    let Some((lo, hi)) = ins.param_range(param) else {
                        return Err(ck.err(
                            &lp,
                            format_args!(
                                "the {} has no automatable parameter {param:?}",
                                ins.kind()
                            ),
                        ));
                    };
                    nyquist = ins.kind() == "eq" && param.ends_with(".freq");
                    Some((lo, hi, ""))
                }
            };
            let mut prev = 0.0;
            for (j, &(time, value)) in lane.points.iter().enumerate() {
                let tf = format!("{lp}[{j}][0]");
                ck.at_least(&tf, time, 0.0, " s")?;
                if j > 0 && time < prev {
                    return Err(ck.err(
                        &tf,
                        format_args!("time {time} s comes before the previous point's {prev} s (times must not decrease)"),
                    ));
                }
                prev = time;
                let vf = format!("{lp}[{j}][1]");
                match range {
                    Some((lo, hi, unit)) => ck.within(&vf, value, lo, hi, unit)?,
                    None => ck.finite(&vf, value)?,
                }
                if nyquist {
                    ck.freq(&vf, value, Nyquist(self.rate))?;
                }
            }
        }
        Ok(())
    }
}

/// A node of the routing graph: a track or a bus.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
enum Node {
    Track(usize),
    Bus(usize),
}

/// A strip (None: the master bus), its path, and its sidechain keys (field, name).
type Keyed<'a> = (Option<Node>, String, Vec<(String, &'a str)>);

/// An edge `from → to` (`to` needs `from`'s signal): why, and the field that says so.
struct Edge {
    to: Node,
    why: &'static str,
    field: String,
}

/// Sidechain keys name exactly one other track or bus; no routing loop through
/// outputs, sends and keys (muted or not).
fn check_keys_and_loops(
    session: &Session,
    ck: &Ck<'_>,
    tracks: &HashMap<&str, usize>,
    buses: &HashMap<&str, usize>,
) -> Result<()> {
    let nt = session.tracks.len();
    let id = |n: Node| match n {
        Node::Track(i) => i,
        Node::Bus(i) => nt + i,
    };
    let mut edges: Vec<Vec<Edge>> = (0..nt + session.buses.len()).map(|_| Vec::new()).collect();
    let mut route = |from: Node, p: &str, output: &Output, sends: &[Send]| {
        if let Output::Bus(b) = output
            && let Some(&k) = buses.get(b.as_str())
        {
            edges[id(from)].push(Edge {
                to: Node::Bus(k),
                why: "output",
                field: format!("{p}.output"),
            });
        }
        for (j, s) in sends.iter().enumerate() {
            if let Some(&k) = buses.get(s.bus.as_str()) {
                edges[id(from)].push(Edge {
                    to: Node::Bus(k),
                    why: "send",
                    field: format!("{p}.sends[{j}].bus"),
                });
            }
        }
    };
    // The strips' key references: (strip, its path, (field, name)).
    let mut keyed: Vec<Keyed<'_>> = Vec::new();
    for (i, t) in session.tracks.iter().enumerate() {
        let p = format!("track[{i}] {:?}", t.name);
        route(Node::Track(i), &p, &t.output, &t.sends);
        let mut ks: Vec<(String, &str)> = Vec::new();
        if let Some(k) = t.compressor.as_ref().and_then(|c| c.sidechain.as_deref()) {
            ks.push((format!("{p}.compressor.sidechain"), k));
        }
        for (j, ins) in t.inserts.iter().enumerate() {
            if let Some(k) = ins.key() {
                ks.push((format!("{p}.inserts[{j}].sidechain"), k));
            }
        }
        keyed.push((Some(Node::Track(i)), p, ks));
    }
    for (i, b) in session.buses.iter().enumerate() {
        let p = format!("bus[{i}] {:?}", b.name);
        route(Node::Bus(i), &p, &b.output, &b.sends);
        let mut ks: Vec<(String, &str)> = Vec::new();
        for (j, ins) in b.inserts.iter().enumerate() {
            if let Some(k) = ins.key() {
                ks.push((format!("{p}.inserts[{j}].sidechain"), k));
            }
        }
        keyed.push((Some(Node::Bus(i)), p, ks));
    }
    if let Some(m) = &session.master_bus {
        let mut ks: Vec<(String, &str)> = Vec::new();
        for (j, ins) in m.inserts.iter().enumerate() {
            if let Some(k) = ins.key() {
                ks.push((format!("master_bus.inserts[{j}].sidechain"), k));
            }
        }
        keyed.push((None, "master_bus".into(), ks));
    }
    for (strip, p, ks) in &keyed {
        for (field, name) in ks {
            let key = match (tracks.get(name), buses.get(name)) {
                (Some(t), Some(b)) => {
                    return Err(ck.err(
                        field,
                        format_args!(
                            "{name:?} names both track[{t}] and bus[{b}]; a sidechain key must name exactly one track or bus (rename one)"
                        ),
                    ));
                }
                (Some(&t), None) => Node::Track(t),
                (None, Some(&b)) => Node::Bus(b),
                (None, None) => {
                    return Err(ck.err(field, format_args!("{name:?} is not a track or bus name")));
                }
            };
            if Some(key) == *strip {
                return Err(ck.err(field, format_args!("{p} cannot be its own sidechain key")));
            }
            if let Some(s) = strip {
                edges[id(key)].push(Edge {
                    to: *s,
                    why: "sidechain key",
                    field: field.clone(),
                });
            }
        }
    }
    let nodes: Vec<Node> = (0..nt)
        .map(Node::Track)
        .chain((0..session.buses.len()).map(Node::Bus))
        .collect();
    let Some(cycle) = graph_cycle(&nodes, &edges, id) else {
        return Ok(());
    };
    let name = |n: Node| match n {
        Node::Track(i) => format!("track {:?}", session.tracks[i].name),
        Node::Bus(i) => format!("bus {:?}", session.buses[i].name),
    };
    // cycle: (node, index of the edge leaving it), starting at its lowest node.
    let mut msg = name(cycle[0].0);
    for &(n, e) in &cycle {
        let edge = &edges[id(n)][e];
        msg.push_str(&format!(" -> {} ({})", name(edge.to), edge.why));
    }
    let first = &edges[id(cycle[0].0)][cycle[0].1];
    Err(ck.err(&first.field, format_args!("routing loop: {msg}")))
}

/// The first cycle of the graph (nodes in order, iterative DFS): each node with the
/// index of its edge to the next, rotated to start at the lowest node.
fn graph_cycle(
    nodes: &[Node],
    edges: &[Vec<Edge>],
    id: impl Fn(Node) -> usize,
) -> Option<Vec<(Node, usize)>> {
    // 0 unvisited, 1 on the stack, 2 done.
    let mut state = vec![0u8; nodes.len()];
    for &start in nodes {
        if state[id(start)] != 0 {
            continue;
        }
        let mut stack: Vec<(Node, usize)> = vec![(start, 0)];
        state[id(start)] = 1;
        while let Some(&mut (n, ref mut e)) = stack.last_mut() {
            let Some(edge) = edges[id(n)].get(*e) else {
                state[id(n)] = 2;
                stack.pop();
                continue;
            };
            *e += 1;
            match state[id(edge.to)] {
                0 => {
                    state[id(edge.to)] = 1;
                    stack.push((edge.to, 0));
                }
                1 => {
                    let pos = stack.iter().position(|(m, _)| *m == edge.to)?;
                    // The edge just taken from each node is its index minus one.
                    let mut cycle: Vec<(Node, usize)> = stack[pos..]
                        .iter()
                        .map(|&(m, k)| (m, k.saturating_sub(1)))
                        .collect();
                    let min = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, (m, _))| *m)
                        .map(|(i, _)| i)
                        .unwrap_or(0);
                    cycle.rotate_left(min);
                    return Some(cycle);
                }
                _ => {}
            }
        }
    }
    None
}

/// Deliverable rules (shared with album files), against the default [`Limits`].
pub(crate) fn validate_deliverables(
    src: &str,
    ds: &[Deliverable],
    rate_zero_ok: bool,
) -> Result<()> {
    validate_deliverables_with(src, ds, rate_zero_ok, &Limits::default())
}

/// Deliverable rules (shared with album files). With `rate_zero_ok`, `sample_rate` 0
/// means "each song's own rate" (an album's deliverables).
fn validate_deliverables_with(
    src: &str,
    ds: &[Deliverable],
    rate_zero_ok: bool,
    limits: &Limits,
) -> Result<()> {
    let ck = Ck { src };
    ck.limit(
        "deliverable",
        ds.len(),
        limits.max_deliverables,
        "deliverables",
    )?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, d) in ds.iter().enumerate() {
        ck.name_len(&format!("deliverable[{i}].name"), &d.name, limits)?;
        let p = format!("deliverable[{i}] {:?}", d.name);
        let np = format!("{p}.name");
        let n = &d.name;
        if n.is_empty() {
            return Err(ck.err(&format!("deliverable[{i}].name"), "must not be empty"));
        }
        if n.contains('/')
            || n.contains('\\')
            || n == ".."
            || n == "."
            || n.chars().any(char::is_control)
        {
            return Err(ck.err(&np, format_args!("{n:?} is not a plain file name (no path separators, \"..\" or control characters)")));
        }
        if n.eq_ignore_ascii_case("mix") {
            return Err(ck.err(
                &np,
                format_args!("{n:?} is taken by the mix (mix.wav); pick another name"),
            ));
        }
        if let Some(j) = seen.insert(n.to_lowercase(), i) {
            return Err(ck.err(&np, format_args!("{n:?} is already the name of deliverable[{j}] (names are unique, ignoring case)")));
        }
        if let Some(g) = d.album_gain_db {
            ck.within(&format!("{p}.album_gain_db"), g, -60.0, 60.0, " dB")?;
        }
        if let Some(t) = d.target_lufs {
            ck.within(&format!("{p}.target_lufs"), t, -40.0, -5.0, " LUFS")?;
        }
        if let Some(c) = d.ceiling_dbtp {
            ck.within(&format!("{p}.ceiling_dbtp"), c, -20.0, 0.0, " dBTP")?;
        }
        if !(rate_zero_ok && d.sample_rate == 0) {
            ck.rate(&format!("{p}.sample_rate"), d.sample_rate)?;
        }
        if ![16, 24, 32].contains(&d.bit_depth) {
            return Err(ck.err(
                &format!("{p}.bit_depth"),
                format_args!("{} is not 16, 24 or 32", d.bit_depth),
            ));
        }
        if d.format == Format::Flac && d.bit_depth == 32 {
            return Err(ck.err(
                &format!("{p}.bit_depth"),
                "32 is not available for flac (16 or 24; use format = \"wav\" for 32-bit float)",
            ));
        }
    }
    Ok(())
}

/// Bus indices in an order where every bus comes after all buses that feed it (the
/// engine sums buses in this order). Ties keep file order. A loop is an error.
pub fn bus_order(session: &Session) -> Result<Vec<usize>> {
    let ck = Ck {
        src: &session.source,
    };
    let index: HashMap<&str, usize> = session
        .buses
        .iter()
        .enumerate()
        .map(|(i, b)| (b.name.as_str(), i))
        .collect();
    let n = session.buses.len();
    // Every bus a bus feeds: its output and its sends.
    let targets_of = |i: usize| -> Result<Vec<usize>> {
        let b = &session.buses[i];
        let mut out = Vec::new();
        if let Output::Bus(name) = &b.output {
            out.push(index.get(name.as_str()).copied().ok_or_else(|| {
                ck.err(
                    &format!("bus[{i}] {:?}.output", b.name),
                    format_args!("{name:?} is not a bus name"),
                )
            })?);
        }
        for (j, s) in b.sends.iter().enumerate() {
            out.push(index.get(s.bus.as_str()).copied().ok_or_else(|| {
                ck.err(
                    &format!("bus[{i}] {:?}.sends[{j}].bus", b.name),
                    format_args!("{:?} is not a bus name", s.bus),
                )
            })?);
        }
        Ok(out)
    };
    let mut feeders = vec![0usize; n];
    let mut targets = Vec::with_capacity(n);
    for i in 0..n {
        let t = targets_of(i)?;
        for &k in &t {
            feeders[k] += 1;
        }
        targets.push(t);
    }
    let mut order = Vec::with_capacity(n);
    let mut done = vec![false; n];
    while order.len() < n {
        // The first ready bus in file order: n is small, O(n²) is fine.
        let Some(i) = (0..n).find(|&i| !done[i] && feeders[i] == 0) else {
            let Some((start, cycle)) = find_cycle(session, &index) else {
                return Err(ck.err("bus", "routing loop among bus sends"));
            };
            let names: Vec<String> = cycle
                .iter()
                .map(|&k| format!("{:?}", session.buses[k].name))
                .collect();
            return Err(ck.err(
                &format!("bus[{start}] {:?}.output", session.buses[start].name),
                format_args!("routing loop: bus {}", names.join(" -> ")),
            ));
        };
        done[i] = true;
        order.push(i);
        for &k in &targets[i] {
            feeders[k] -= 1;
        }
    }
    Ok(order)
}

/// The first routing loop among bus outputs: (index of its first bus in file order,
/// the cycle's buses with the first repeated at the end).
fn find_cycle(session: &Session, index: &HashMap<&str, usize>) -> Option<(usize, Vec<usize>)> {
    let next = |i: usize| match &session.buses[i].output {
        Output::Bus(n) => index.get(n.as_str()).copied(),
        Output::Master => None,
    };
    let mut cleared: HashSet<usize> = HashSet::new();
    for start in 0..session.buses.len() {
        let mut path = vec![start];
        let mut cur = start;
        while let Some(nx) = next(cur) {
            if cleared.contains(&nx) {
                break;
            }
            if let Some(pos) = path.iter().position(|&k| k == nx) {
                // Rotate so the loop starts at its lowest-index bus (stable messages).
                let mut cycle: Vec<usize> = path[pos..].to_vec();
                let min_pos = cycle
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, k)| **k)
                    .map(|(p, _)| p)
                    .unwrap_or(0);
                cycle.rotate_left(min_pos);
                cycle.push(cycle[0]);
                return Some((cycle[0], cycle));
            }
            path.push(nx);
            cur = nx;
        }
        cleared.extend(path);
    }
    None
}

/// A number as messages write it: huge ones in exponent form (1e300, not 301 digits).
fn short(v: f64) -> String {
    if v.is_finite() && v.abs() >= 1e15 {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

#[derive(Clone, Copy)]
struct Nyquist(u32);

/// Field checks bound to one source file.
struct Ck<'a> {
    src: &'a str,
}

impl Ck<'_> {
    fn err(&self, field: &str, msg: impl std::fmt::Display) -> Error {
        Error::field(self.src, field, msg)
    }

    fn limit(&self, field: &str, n: usize, max: usize, what: &str) -> Result<()> {
        if n > max {
            let at = if self.src.is_empty() {
                String::new()
            } else {
                format!("{}: ", self.src)
            };
            return Err(Error::Limit(format!(
                "{at}{field}: {n} {what}, at most {max}"
            )));
        }
        Ok(())
    }

    fn finite(&self, field: &str, v: f64) -> Result<()> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(self.err(field, format_args!("{v} is not a finite number")))
        }
    }

    /// v in [lo, hi].
    fn within(&self, field: &str, v: f64, lo: f64, hi: f64, unit: &str) -> Result<()> {
        self.finite(field, v)?;
        if v < lo || v > hi {
            return Err(self.err(field, format_args!("{v} is outside [{lo}, {hi}]{unit}")));
        }
        Ok(())
    }

    fn at_least(&self, field: &str, v: f64, lo: f64, unit: &str) -> Result<()> {
        self.finite(field, v)?;
        if v < lo {
            return Err(self.err(field, format_args!("{v}{unit} is below {lo}{unit}")));
        }
        Ok(())
    }

    fn rate(&self, field: &str, r: u32) -> Result<()> {
        if !(8000..=384_000).contains(&r) {
            return Err(self.err(field, format_args!("{r} is outside [8000, 384000] Hz")));
        }
        Ok(())
    }

    fn freq(&self, field: &str, f: f64, nyq: Nyquist) -> Result<()> {
        self.finite(field, f)?;
        let n = f64::from(nyq.0) / 2.0;
        if f <= 0.0 || f >= n {
            return Err(self.err(
                field,
                format_args!(
                    "{f} is outside (0, {n}) Hz (the Nyquist of session.sample_rate {})",
                    nyq.0
                ),
            ));
        }
        Ok(())
    }

    /// A name, tag or path no longer than `limits.max_name_bytes`.
    fn name_len(&self, field: &str, s: &str, limits: &Limits) -> Result<()> {
        self.limit(field, s.len(), limits.max_name_bytes, "bytes")
    }

    /// round(t × rate) within the frames a mix may hold.
    fn frames(&self, field: &str, t: f64, rate: f64, limits: &Limits) -> Result<()> {
        let frames = crate::dsp::round_half_away(t * rate);
        if !frames.is_finite() || frames > limits.max_mix_frames as f64 {
            let at = if self.src.is_empty() {
                String::new()
            } else {
                format!("{}: ", self.src)
            };
            return Err(Error::Limit(format!(
                "{at}{field}: {} s is past the longest mix ({} frames at {rate} Hz)",
                short(t),
                limits.max_mix_frames
            )));
        }
        Ok(())
    }

    fn stem(&self, field: &str, s: &StemRef, limits: &Limits) -> Result<()> {
        if s.name.is_empty() {
            return Err(self.err(field, "must not be empty"));
        }
        self.name_len(field, &s.name, limits)?;
        if let Some(h) = &s.blake3
            && !(h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        {
            return Err(self.err(
                field,
                format_args!("{}: blake3 {h:?} is not 64 lower-case hex digits", s.name),
            ));
        }
        Ok(())
    }

    fn output(&self, field: &str, o: &Output, buses: &HashMap<&str, usize>) -> Result<()> {
        match o {
            Output::Master => Ok(()),
            Output::Bus(n) if buses.contains_key(n.as_str()) => Ok(()),
            Output::Bus(n) => Err(self.err(
                field,
                format_args!("{n:?} is not a bus name (nor \"master\")"),
            )),
        }
    }

    fn eq(&self, path: &str, bands: &[EqBand], nyq: Nyquist) -> Result<()> {
        self.limit(path, bands.len(), MAX_EQ_BANDS, "bands")?;
        for (j, b) in bands.iter().enumerate() {
            let p = format!("{path}[{j}]");
            self.freq(&format!("{p}.freq"), b.freq, nyq)?;
            self.finite(&format!("{p}.q"), b.q)?;
            if b.q <= 0.0 {
                return Err(self.err(&format!("{p}.q"), format_args!("{} is not above 0", b.q)));
            }
            self.within(&format!("{p}.gain_db"), b.gain_db, -60.0, 60.0, " dB")?;
        }
        Ok(())
    }

    fn compressor(&self, p: &str, c: &Compressor) -> Result<()> {
        self.within(
            &format!("{p}.threshold_db"),
            c.threshold_db,
            -120.0,
            24.0,
            " dB",
        )?;
        self.finite(&format!("{p}.ratio"), c.ratio)?;
        if c.ratio < 1.0 {
            return Err(self.err(
                &format!("{p}.ratio"),
                format_args!("{} is below 1", c.ratio),
            ));
        }
        self.within(&format!("{p}.attack_ms"), c.attack_ms, 0.0, 10000.0, " ms")?;
        self.within(
            &format!("{p}.release_ms"),
            c.release_ms,
            0.0,
            10000.0,
            " ms",
        )?;
        self.within(&format!("{p}.knee_db"), c.knee_db, 0.0, 48.0, " dB")?;
        self.within(&format!("{p}.makeup_db"), c.makeup_db, -60.0, 60.0, " dB")?;
        Ok(())
    }
}

/// A session that passed [`validate`] against a set of [`Limits`]: the one type the
/// engine accepts, so nothing downstream re-checks ranges or references.
#[derive(Debug, Clone)]
pub struct ValidSession {
    session: Session,
    limits: Limits,
}

impl ValidSession {
    /// Validates `session` once (every rule of CONTRACT.md and `limits`).
    pub fn new(session: Session, limits: &Limits) -> Result<Self> {
        validate_with(&session, limits)?;
        Ok(ValidSession {
            session,
            limits: limits.clone(),
        })
    }

    /// The limits it was validated against (the engine holds stems and IRs to them).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The session itself.
    pub fn into_inner(self) -> Session {
        self.session
    }
}

impl std::ops::Deref for ValidSession {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stem(name: &str) -> StemRef {
        StemRef {
            name: name.into(),
            path: None,
            blake3: None,
        }
    }

    fn track(name: &str, output: Output) -> Track {
        Track {
            name: name.into(),
            clips: vec![Clip::whole(stem("a.wav"), 0.0)],
            from_file: true,
            gain_db: 0.0,
            pan: 0.0,
            mute: false,
            solo: false,
            invert: false,
            output,
            channels: None,
            eq: vec![],
            compressor: None,
            inserts: vec![],
            sends: vec![],
            automation: Automation::default(),
            tags: vec![],
        }
    }

    fn bus(name: &str, output: Output) -> Bus {
        Bus {
            name: name.into(),
            output,
            gain_db: 0.0,
            pan: 0.0,
            mute: false,
            reverb: None,
            inserts: vec![],
            sends: vec![],
            automation: Automation::default(),
        }
    }

    fn session(buses: Vec<Bus>) -> Session {
        Session {
            name: String::new(),
            sample_rate: 48000,
            tail_s: 2.0,
            tempo_bpm: None,
            tracks: vec![track("A", Output::Master)],
            buses,
            master_bus: None,
            master: None,
            deliverables: vec![],
            source: "s.toml".into(),
        }
    }

    #[test]
    fn bus_order_puts_feeders_first() {
        // C -> B -> A -> master, D -> master, listed A, B, C, D.
        let s = session(vec![
            bus("A", Output::Master),
            bus("B", Output::Bus("A".into())),
            bus("C", Output::Bus("B".into())),
            bus("D", Output::Master),
        ]);
        validate(&s).unwrap();
        let order = bus_order(&s).unwrap();
        let pos = |i: usize| order.iter().position(|&k| k == i).unwrap();
        assert_eq!(order.len(), 4);
        assert!(pos(2) < pos(1) && pos(1) < pos(0));
        assert_eq!(order, vec![2, 1, 0, 3]);
    }

    #[test]
    fn loop_is_named() {
        let s = session(vec![
            bus("X", Output::Master),
            bus("A", Output::Bus("B".into())),
            bus("B", Output::Bus("A".into())),
        ]);
        let e = validate(&s).unwrap_err().to_string();
        assert_eq!(
            e,
            "s.toml: bus[1] \"A\".output: routing loop: bus \"A\" -> \"B\" -> \"A\""
        );
        let e = bus_order(&s).unwrap_err().to_string();
        assert!(e.contains("bus \"A\" -> \"B\" -> \"A\""), "{e}");
    }

    #[test]
    fn self_loop_is_named() {
        let s = session(vec![bus("Self", Output::Bus("Self".into()))]);
        let e = validate(&s).unwrap_err().to_string();
        assert!(e.contains("bus \"Self\" -> \"Self\""), "{e}");
    }

    #[test]
    fn send_to_own_output_bus_is_allowed() {
        let mut s = session(vec![bus("Verb", Output::Master)]);
        s.tracks[0].output = Output::Bus("Verb".into());
        s.tracks[0].sends.push(Send {
            bus: "Verb".into(),
            level_db: -6.0,
            pre_fader: false,
        });
        validate(&s).unwrap();
    }

    #[test]
    fn nyquist_message_matches_contract_example() {
        let mut s = session(vec![]);
        s.source = "song.toml".into();
        s.tracks[0].name = "Kick".into();
        s.tracks[0].eq.push(EqBand {
            kind: EqType::Peak,
            freq: 30000.0,
            q: 1.0,
            gain_db: 0.0,
        });
        let mut s2 = s.clone();
        s2.tracks.insert(0, track("x", Output::Master));
        s2.tracks.insert(0, track("y", Output::Master));
        assert_eq!(
            validate(&s2).unwrap_err().to_string(),
            "song.toml: track[2] \"Kick\".eq[0].freq: 30000 is outside (0, 24000) Hz (the Nyquist of session.sample_rate 48000)"
        );
    }
}
