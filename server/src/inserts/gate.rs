//! `kind = "gate"`: a downward expander with hold (CONTRACT.md, "Gate").

use super::{BuildCtx, InsertCheck, InsertKind};
use crate::Result;
use crate::dsp::Processor;
use crate::session::reader::Tbl;
use crate::session::write::float;

/// `{ kind = "gate", threshold_db, range_db, attack_ms, hold_ms, release_ms }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gate {
    /// Required, −120..0.
    pub threshold_db: f64,
    /// Default −80, −120..0.
    pub range_db: f64,
    /// Default 1.
    pub attack_ms: f64,
    /// Default 10.
    pub hold_ms: f64,
    /// Default 100.
    pub release_ms: f64,
}

impl InsertKind for Gate {
    const KIND: &'static str = "gate";

    fn parse(t: &Tbl<'_>) -> Result<Self> {
        t.check_keys(&[
            "kind",
            "threshold_db",
            "range_db",
            "attack_ms",
            "hold_ms",
            "release_ms",
        ])?;
        Ok(Gate {
            threshold_db: t.f64_req("threshold_db")?,
            range_db: t.f64_or("range_db", -80.0)?,
            attack_ms: t.f64_or("attack_ms", 1.0)?,
            hold_ms: t.f64_or("hold_ms", 10.0)?,
            release_ms: t.f64_or("release_ms", 100.0)?,
        })
    }

    fn validate(&self, ck: &InsertCheck<'_>) -> Result<()> {
        ck.within("threshold_db", self.threshold_db, -120.0, 0.0, " dB")?;
        ck.within("range_db", self.range_db, -120.0, 0.0, " dB")?;
        ck.within("attack_ms", self.attack_ms, 0.0, 10000.0, " ms")?;
        ck.within("hold_ms", self.hold_ms, 0.0, 10000.0, " ms")?;
        ck.within("release_ms", self.release_ms, 0.0, 10000.0, " ms")
    }

    fn param_range(&self, param: &str) -> Option<(f64, f64)> {
        (param == "threshold_db").then_some((-120.0, 0.0))
    }

    fn toml_keys(&self) -> String {
        format!(
            "threshold_db = {}, range_db = {}, attack_ms = {}, hold_ms = {}, release_ms = {}",
            float(self.threshold_db),
            float(self.range_db),
            float(self.attack_ms),
            float(self.hold_ms),
            float(self.release_ms)
        )
    }

    fn build(&self, ctx: &BuildCtx<'_>) -> Result<Box<dyn Processor>> {
        use crate::dsp::gate::{Gate as G, GateParams};
        Ok(Box::new(G::new(GateParams {
            threshold_db: ctx.param("threshold_db", self.threshold_db),
            range_db: self.range_db,
            attack_ms: self.attack_ms,
            hold_ms: self.hold_ms,
            release_ms: self.release_ms,
        })))
    }
}
