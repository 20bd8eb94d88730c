//! `kind = "eq"`: the first contract's RBJ bands, in list order.

use super::{BuildCtx, InsertCheck, InsertKind};
use crate::Result;
use crate::dsp::Processor;
use crate::dsp::automation::Lane;
use crate::dsp::biquad::{BandSpec, EqAutomation, EqChain, FilterKind};
use crate::session::reader::Tbl;
use crate::session::{EqBand, EqType};

/// `{ kind = "eq", bands = [...] }`.
#[derive(Debug, Clone, PartialEq)]
pub struct EqInsert {
    /// The bands, in order.
    pub bands: Vec<EqBand>,
}

/// A session band as the DSP's band spec (the one session→DSP mapping of EQ bands).
pub fn band_spec(b: &EqBand) -> BandSpec {
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

/// Most bands one EQ insert takes.
pub const MAX_BANDS: usize = 64;

impl InsertKind for EqInsert {
    const KIND: &'static str = "eq";

    fn parse(t: &Tbl<'_>) -> Result<Self> {
        t.check_keys(&["kind", "bands"])?;
        Ok(EqInsert {
            bands: crate::session::parse::parse_eq(t, "bands")?,
        })
    }

    fn validate(&self, ck: &InsertCheck<'_>) -> Result<()> {
        if self.bands.len() > MAX_BANDS {
            return Err(ck.err(
                "bands",
                format_args!("{} bands, at most {MAX_BANDS}", self.bands.len()),
            ));
        }
        for (j, b) in self.bands.iter().enumerate() {
            ck.freq(&format!("bands[{j}].freq"), b.freq)?;
            ck.within(&format!("bands[{j}].q"), b.q, 1e-3, 100.0, "")?;
            ck.within(
                &format!("bands[{j}].gain_db"),
                b.gain_db,
                -60.0,
                60.0,
                " dB",
            )?;
        }
        Ok(())
    }

    fn param_range(&self, param: &str) -> Option<(f64, f64)> {
        let rest = param.strip_prefix("bands.")?;
        let (j, what) = rest.split_once('.')?;
        // The index as the engine looks it up: plain digits, no sign or leading zero.
        if j.is_empty()
            || !j.bytes().all(|b| b.is_ascii_digit())
            || (j.len() > 1 && j.starts_with('0'))
        {
            return None;
        }
        let j: usize = j.parse().ok()?;
        let band = self.bands.get(j)?;
        let _ = band;
        match what {
            "gain_db" => Some((-60.0, 60.0)),
            // Nyquist is checked against the session rate by the caller's range below
            // (the lane keeps the band's own bounds).
            "freq" => Some((1.0, 192_000.0)),
            _ => None,
        }
    }

    fn toml_keys(&self) -> String {
        format!("bands = {}", crate::session::write::bands(&self.bands))
    }

    fn build(&self, ctx: &BuildCtx<'_>) -> Result<Box<dyn Processor>> {
        let bands: Vec<_> = self.bands.iter().map(band_spec).collect();
        if ctx.lanes.is_empty() {
            return Ok(Box::new(EqChain::new(&bands)));
        }
        // One entry per automated band, its gain and frequency lanes.
        let mut auto: Vec<EqAutomation> = Vec::new();
        for (param, pts) in &ctx.lanes {
            let Some((j, what)) = param
                .strip_prefix("bands.")
                .and_then(|r| r.split_once('.'))
                .and_then(|(j, w)| Some((j.parse::<usize>().ok()?, w)))
            else {
                continue;
            };
            let lane = Lane::linear(pts, ctx.rate).with_origin(ctx.origin);
            let i = match auto.iter().position(|a| a.band == j) {
                Some(i) => i,
                None => {
                    auto.push(EqAutomation {
                        band: j,
                        gain_db: None,
                        freq: None,
                    });
                    auto.len() - 1
                }
            };
            match what {
                "gain_db" => auto[i].gain_db = Some(lane),
                "freq" => auto[i].freq = Some(lane),
                _ => {}
            }
        }
        Ok(Box::new(EqChain::automated(&bands, auto)))
    }
}
