//! `kind = "saturation"`: tanh waveshaping, oversampled (CONTRACT.md, "Saturation").

use super::{BuildCtx, InsertCheck, InsertKind};
use crate::Result;
use crate::dsp::Processor;
use crate::session::reader::Tbl;
use crate::session::write::float;

/// `{ kind = "saturation", drive_db, output_db, mix }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Saturation {
    /// Default 0, 0–48.
    pub drive_db: f64,
    /// Default 0.
    pub output_db: f64,
    /// Default 1, 0–1.
    pub mix: f64,
}

impl InsertKind for Saturation {
    const KIND: &'static str = "saturation";

    fn parse(t: &Tbl<'_>) -> Result<Self> {
        t.check_keys(&["kind", "drive_db", "output_db", "mix"])?;
        Ok(Saturation {
            drive_db: t.f64_or("drive_db", 0.0)?,
            output_db: t.f64_or("output_db", 0.0)?,
            mix: t.f64_or("mix", 1.0)?,
        })
    }

    fn validate(&self, ck: &InsertCheck<'_>) -> Result<()> {
        ck.within("drive_db", self.drive_db, 0.0, 48.0, " dB")?;
        ck.within("output_db", self.output_db, -60.0, 60.0, " dB")?;
        ck.within("mix", self.mix, 0.0, 1.0, "")
    }

    fn param_range(&self, param: &str) -> Option<(f64, f64)> {
        match param {
            "drive_db" => Some((0.0, 48.0)),
            "output_db" => Some((-60.0, 60.0)),
            "mix" => Some((0.0, 1.0)),
            _ => None,
        }
    }

    fn toml_keys(&self) -> String {
        format!(
            "drive_db = {}, output_db = {}, mix = {}",
            float(self.drive_db),
            float(self.output_db),
            float(self.mix)
        )
    }

    fn build(&self, ctx: &BuildCtx<'_>) -> Result<Box<dyn Processor>> {
        use crate::dsp::saturation::{Saturation as S, SaturationParams};
        Ok(Box::new(S::new(SaturationParams {
            drive_db: ctx.param("drive_db", self.drive_db),
            output_db: ctx.param("output_db", self.output_db),
            mix: ctx.param("mix", self.mix),
        })))
    }
}
