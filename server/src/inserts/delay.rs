//! `kind = "delay"`: a feedback delay, optionally ping-pong (CONTRACT.md, "Delay").

use super::{BuildCtx, InsertCheck, InsertKind};
use crate::Result;
use crate::dsp::Processor;
use crate::session::reader::Tbl;
use crate::session::write::float;

/// A delay time: in ms, or in beats at `session.tempo_bpm`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DelayTime {
    /// `time_ms`.
    Ms(f64),
    /// `time_beats`.
    Beats(f64),
}

/// `{ kind = "delay", time_ms | time_beats, feedback, mix, ping_pong }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DelayFx {
    /// Exactly one of time_ms and time_beats.
    pub time: DelayTime,
    /// Default 0, 0–0.99.
    pub feedback: f64,
    /// Default 0.5, 0–1.
    pub mix: f64,
    /// Default false.
    pub ping_pong: bool,
}

impl DelayFx {
    /// D in samples: round(time_ms × rate / 1000), or round(beats × 60 / bpm × rate).
    pub fn samples(&self, rate: f64, tempo_bpm: Option<f64>) -> Option<f64> {
        match self.time {
            DelayTime::Ms(ms) => Some(crate::dsp::round_half_away(ms * rate / 1000.0)),
            DelayTime::Beats(b) => {
                tempo_bpm.map(|bpm| crate::dsp::round_half_away(b * 60.0 / bpm * rate))
            }
        }
    }
}

impl InsertKind for DelayFx {
    const KIND: &'static str = "delay";

    fn parse(t: &Tbl<'_>) -> Result<Self> {
        t.check_keys(&[
            "kind",
            "time_ms",
            "time_beats",
            "feedback",
            "mix",
            "ping_pong",
        ])?;
        let time = match (t.f64_opt("time_ms")?, t.f64_opt("time_beats")?) {
            (Some(ms), None) => DelayTime::Ms(ms),
            (None, Some(b)) => DelayTime::Beats(b),
            (Some(_), Some(_)) => {
                return Err(crate::Error::field(
                    t.doc.source,
                    t.field("time_ms"),
                    "give time_ms or time_beats, not both",
                ));
            }
            (None, None) => return Err(t.missing("time_ms")),
        };
        Ok(DelayFx {
            time,
            feedback: t.f64_or("feedback", 0.0)?,
            mix: t.f64_or("mix", 0.5)?,
            ping_pong: t.bool_or("ping_pong", false)?,
        })
    }

    fn validate(&self, ck: &InsertCheck<'_>) -> Result<()> {
        let rate = f64::from(ck.rate);
        let (key, v) = match self.time {
            DelayTime::Ms(ms) => ("time_ms", ms),
            DelayTime::Beats(b) => ("time_beats", b),
        };
        if !v.is_finite() || v <= 0.0 {
            return Err(ck.err(key, format_args!("{v} is not a positive number")));
        }
        if let DelayTime::Beats(_) = self.time {
            match ck.tempo_bpm {
                None => {
                    return Err(ck.err(
                        key,
                        "a time in beats needs session.tempo_bpm (set it in [session])",
                    ));
                }
                Some(bpm) if !(20.0..=999.0).contains(&bpm) => {
                    return Err(ck.err(
                        key,
                        format_args!("session.tempo_bpm {bpm} is outside [20, 999]"),
                    ));
                }
                Some(_) => {}
            }
        }
        let d = self.samples(rate, ck.tempo_bpm).unwrap_or(0.0);
        let ms = d * 1000.0 / rate;
        if !(1.0..=10_000.0).contains(&ms) {
            return Err(ck.err(
                key,
                format_args!("{v} gives {ms:.3} ms, outside the delay's [1, 10000] ms"),
            ));
        }
        ck.within("feedback", self.feedback, 0.0, 0.99, "")?;
        ck.within("mix", self.mix, 0.0, 1.0, "")
    }

    fn param_range(&self, param: &str) -> Option<(f64, f64)> {
        match param {
            "feedback" => Some((0.0, 0.99)),
            "mix" => Some((0.0, 1.0)),
            _ => None,
        }
    }

    fn toml_keys(&self) -> String {
        let time = match self.time {
            DelayTime::Ms(ms) => format!("time_ms = {}", float(ms)),
            DelayTime::Beats(b) => format!("time_beats = {}", float(b)),
        };
        format!(
            "{time}, feedback = {}, mix = {}, ping_pong = {}",
            float(self.feedback),
            float(self.mix),
            self.ping_pong
        )
    }

    fn build(&self, ctx: &BuildCtx<'_>) -> Result<Box<dyn Processor>> {
        use crate::dsp::echo::{Echo, EchoParams};
        let d = self.samples(ctx.rate, ctx.tempo_bpm).ok_or_else(|| {
            crate::Error::InvalidSession("delay: a time in beats needs session.tempo_bpm".into())
        })?;
        Ok(Box::new(Echo::new(EchoParams {
            // Validated to 1 ms–10 s at the session rate.
            delay_samples: d as usize,
            feedback: ctx.param("feedback", self.feedback),
            mix: ctx.param("mix", self.mix),
            ping_pong: self.ping_pong,
        })))
    }
}
