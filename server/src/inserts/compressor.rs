//! `kind = "compressor"`: the first contract's compressor, with an optional sidechain.

use super::{BuildCtx, InsertCheck, InsertKind};
use crate::Result;
use crate::dsp::Processor;
use crate::dsp::automation::Lane;
use crate::dsp::compressor::{
    Compressor as Comp, CompressorAutomation, CompressorParams, DetectorKind,
};
use crate::session::reader::Tbl;
use crate::session::{Compressor, Detector};

/// A session compressor as the DSP's parameters (the one session→DSP mapping).
pub fn compressor_params(c: &Compressor) -> CompressorParams {
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

/// Checks a compressor's ranges (the `compressor` key and the insert share them).
pub fn check(ck: &InsertCheck<'_>, c: &Compressor, threshold_max: f64) -> Result<()> {
    ck.within("threshold_db", c.threshold_db, -120.0, threshold_max, " dB")?;
    if !c.ratio.is_finite() || c.ratio < 1.0 {
        return Err(ck.err("ratio", format_args!("{} is below 1", c.ratio)));
    }
    ck.within("ratio", c.ratio, 1.0, 1000.0, "")?;
    ck.within("attack_ms", c.attack_ms, 0.0, 10000.0, " ms")?;
    ck.within("release_ms", c.release_ms, 0.0, 10000.0, " ms")?;
    ck.within("knee_db", c.knee_db, 0.0, 48.0, " dB")?;
    ck.within("makeup_db", c.makeup_db, -60.0, 60.0, " dB")?;
    Ok(())
}

/// The processor for a compressor (key or insert), its automation read from `ctx`.
pub fn processor(c: &Compressor, ctx: &BuildCtx<'_>) -> Result<Box<dyn Processor>> {
    let p = compressor_params(c);
    if ctx.lanes.is_empty() {
        return Ok(Box::new(Comp::new(p)));
    }
    let lane = |k: &str| {
        ctx.lane(k)
            .map(|pts| Lane::linear(pts, ctx.rate).with_origin(ctx.origin))
    };
    Ok(Box::new(Comp::automated(
        p,
        CompressorAutomation {
            threshold_db: lane("threshold_db"),
            ratio: lane("ratio"),
            makeup_db: lane("makeup_db"),
        },
    )))
}

impl InsertKind for Compressor {
    const KIND: &'static str = "compressor";

    fn parse(t: &Tbl<'_>) -> Result<Self> {
        crate::session::parse::parse_compressor_insert(t)
    }

    fn validate(&self, ck: &InsertCheck<'_>) -> Result<()> {
        check(ck, self, 0.0)
    }

    fn param_range(&self, param: &str) -> Option<(f64, f64)> {
        match param {
            "threshold_db" => Some((-120.0, 0.0)),
            "ratio" => Some((1.0, 1000.0)),
            "makeup_db" => Some((-60.0, 60.0)),
            _ => None,
        }
    }

    fn toml_keys(&self) -> String {
        crate::session::write::compressor_keys(self, true)
    }

    fn build(&self, ctx: &BuildCtx<'_>) -> Result<Box<dyn Processor>> {
        processor(self, ctx)
    }

    fn key(&self) -> Option<&str> {
        self.sidechain.as_deref()
    }
}
