//! `kind = "width"`: stereo width as a side gain, the `[master].width` of the first
//! contract as an insert. M = (L + R)/2, S = (L − R)/2 · width, L = M + S, R = M − S:
//! 0 is mono, 1 leaves the signal as it is, above 1 widens. On a mono strip it does
//! nothing (there is no side). `width` may be automated (per sample).

use super::{BuildCtx, InsertCheck, InsertKind};
use crate::Result;
use crate::dsp::automation::Param;
use crate::dsp::{ProcessCtx, ProcessSpec, Processor};
use crate::session::reader::Tbl;
use crate::session::write::float;

/// `{ kind = "width", width }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Width {
    /// Side gain, 0..4 (default 1).
    pub width: f64,
}

impl InsertKind for Width {
    const KIND: &'static str = "width";

    fn parse(t: &Tbl<'_>) -> Result<Self> {
        t.check_keys(&["kind", "width"])?;
        Ok(Width {
            width: t.f64_or("width", 1.0)?,
        })
    }

    fn validate(&self, ck: &InsertCheck<'_>) -> Result<()> {
        ck.within("width", self.width, 0.0, 4.0, "")
    }

    fn param_range(&self, param: &str) -> Option<(f64, f64)> {
        (param == "width").then_some((0.0, 4.0))
    }

    fn toml_keys(&self) -> String {
        format!("width = {}", float(self.width))
    }

    fn build(&self, ctx: &BuildCtx<'_>) -> Result<Box<dyn Processor>> {
        Ok(Box::new(WidthProc {
            width: ctx.param("width", self.width),
            gains: Vec::new(),
        }))
    }
}

/// The processor: a per-sample side gain.
struct WidthProc {
    width: Param,
    /// Per-sample widths of the block (automated case).
    gains: Vec<f32>,
}

impl Processor for WidthProc {
    fn prepare(&mut self, spec: &ProcessSpec) -> Result<()> {
        let mut g = Vec::new();
        g.try_reserve_exact(spec.max_block)
            .map_err(|e| crate::Error::Limit(format!("width: {e}")))?;
        g.resize(spec.max_block, 0.0);
        self.gains = g;
        Ok(())
    }

    fn reset(&mut self) {}

    fn process(&mut self, block: &mut [&mut [f32]], ctx: &ProcessCtx<'_>) {
        let [l, r] = block else {
            return; // mono: no side to scale
        };
        let n = l.len().min(r.len());
        let side = |l: &mut f32, r: &mut f32, w: f32| {
            let m = 0.5 * (*l + *r);
            let s = 0.5 * (*l - *r) * w;
            *l = m + s;
            *r = m - s;
        };
        match self.width.fixed() {
            Some(w) => {
                let w = w as f32;
                for (a, b) in l[..n].iter_mut().zip(&mut r[..n]) {
                    side(a, b, w);
                }
            }
            None => {
                let Some(g) = self.gains.get_mut(..n) else {
                    return; // not prepared for this block size: a bug upstream
                };
                self.width.fill(ctx.start, g);
                for ((a, b), &w) in l[..n].iter_mut().zip(&mut r[..n]).zip(g.iter()) {
                    side(a, b, w);
                }
            }
        }
    }
}
