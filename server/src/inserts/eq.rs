//! `kind = "eq"`: the first contract's RBJ bands, in list order.

use super::{BuildCtx, InsertCheck, InsertKind};
use crate::Result;
use crate::dsp::Processor;
use crate::dsp::biquad::{BandSpec, EqChain, FilterKind};
use crate::session::{EqBand, EqType};
use crate::session::reader::Tbl;

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
            ck.within(&format!("bands[{j}].gain_db"), b.gain_db, -60.0, 60.0, " dB")?;
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

    fn build(&self, ctx: &BuildCtx<'_>) -> Result<Box<dyn Processor>> {
        let bands: Vec<_> = self
            .bands
            .iter()
            .map(band_spec)
            .collect();
        let eq = EqChain::new(&bands);
        if !ctx.lanes.is_empty() {
            return Err(crate::Error::Unsupported(
                "automation of EQ insert bands is not wired yet".into(),
            ));
        }
        Ok(Box::new(eq))
    }
}
