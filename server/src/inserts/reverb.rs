//! `kind = "reverb"`: convolution with an impulse response, as the bus `reverb` key.

use super::{BuildCtx, InsertCheck, InsertKind};
use crate::Result;
use crate::dsp::Processor;
use crate::session::reader::Tbl;
use crate::session::{Reverb, StemRef};

/// Checks a reverb's ranges (the bus key and the insert share them).
pub fn check(ck: &InsertCheck<'_>, r: &Reverb) -> Result<()> {
    ck.within("predelay_ms", r.predelay_ms, 0.0, 1000.0, " ms")?;
    ck.within("wet_db", r.wet_db, -60.0, 60.0, " dB")
}

impl InsertKind for Reverb {
    const KIND: &'static str = "reverb";

    fn parse(t: &Tbl<'_>) -> Result<Self> {
        t.check_keys(&["kind", "ir", "predelay_ms", "wet_db", "dry"])?;
        crate::session::parse::parse_reverb(t)
    }

    fn validate(&self, ck: &InsertCheck<'_>) -> Result<()> {
        check(ck, self)
    }

    fn param_range(&self, _param: &str) -> Option<(f64, f64)> {
        None
    }

    fn toml_keys(&self) -> String {
        crate::session::write::reverb_keys(self)
    }

    fn build(&self, ctx: &BuildCtx<'_>) -> Result<Box<dyn Processor>> {
        (ctx.reverb)(self, ctx.channels)
    }

    fn file(&self) -> Option<&StemRef> {
        Some(&self.ir)
    }

    fn file_mut(&mut self) -> Option<&mut StemRef> {
        Some(&mut self.ir)
    }
}
