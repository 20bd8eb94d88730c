//! Inserts: the effects a strip's `inserts` list may hold, one module per `kind`.
//!
//! # Brief overview
//! Each kind is one type implementing [`InsertKind`]: how it is parsed from its TOML
//! table, the ranges it must hold (checked once, by session validation), which of its
//! parameters automation may move, and how it becomes a [`Processor`]. The
//! [`registry!`] line below lists the kinds: it generates the [`Insert`] enum and the
//! dispatch from `kind = "…"`. A new effect is one module plus one registry line (and
//! its docs and tests); the session model, validation and the engine need no change.

use std::fmt::Debug;

use crate::Result;
use crate::dsp::Processor;
use crate::session::reader::Tbl;
use crate::session::{Reverb, StemRef};

pub mod check;
pub mod compressor;
pub mod delay;
pub mod eq;
pub mod gate;
pub mod reverb;
pub mod saturation;
pub mod width;

pub use check::InsertCheck;
pub use delay::{DelayFx, DelayTime};
pub use eq::EqInsert;
pub use gate::Gate;
pub use saturation::Saturation;
pub use width::Width;

/// Makes a reverb's convolution processor for a strip of the given width.
pub type ReverbFactory<'a> = dyn Fn(&Reverb, usize) -> Result<Box<dyn Processor>> + 'a;

/// What building a processor may need besides the insert's own parameters.
pub struct BuildCtx<'a> {
    /// The session rate (Hz).
    pub rate: f64,
    /// `session.tempo_bpm`, for times in beats.
    pub tempo_bpm: Option<f64>,
    /// Width of the strip at this insert (1 or 2).
    pub channels: usize,
    /// This insert's automation lanes: (`param` as written after `inserts.<i>.`, points).
    pub lanes: Vec<(&'a str, &'a [(f64, f64)])>,
    /// Makes the convolution processor of a reverb (the engine owns the backend and
    /// the IR cache).
    pub reverb: &'a ReverbFactory<'a>,
    /// The frame that is time 0 for the processor's lanes (latency compensation runs
    /// the graph ahead of it); 0 when nothing in the session has latency.
    pub origin: u64,
}

impl BuildCtx<'_> {
    /// The points of the lane for `param`, if automated.
    pub fn lane(&self, param: &str) -> Option<&[(f64, f64)]> {
        self.lanes
            .iter()
            .find(|(p, _)| *p == param)
            .map(|(_, pts)| *pts)
    }

    /// `param` as a [`crate::dsp::automation::Param`]: its lane, else `fixed`.
    pub fn param(&self, param: &str, fixed: f64) -> crate::dsp::automation::Param {
        use crate::dsp::automation::{Lane, Param};
        match self.lane(param) {
            Some(pts) => Param::Auto(Lane::linear(pts, self.rate).with_origin(self.origin)),
            None => Param::Fixed(fixed),
        }
    }
}

/// One kind of insert.
///
/// # For implementations
/// `parse` reads the insert's table (its `kind` key already checked) and must reject
/// unknown keys naming them; `validate` checks every range (messages through
/// [`InsertCheck`] name the strip, `inserts[i]` and the key); `param_range` answers
/// for every parameter automation may move (others: `None`, an error naming the lane);
/// `build` makes the processor, reading automated parameters from `ctx`.
pub trait InsertKind: Sized + Clone + PartialEq + Debug + Send + Sync {
    /// The `kind` written in session files (case-sensitive).
    const KIND: &'static str;
    /// Parses the insert's table.
    fn parse(t: &Tbl<'_>) -> Result<Self>;
    /// Checks ranges and references.
    fn validate(&self, ck: &InsertCheck<'_>) -> Result<()>;
    /// The valid range of an automatable parameter, `None` when `param` can't be automated.
    fn param_range(&self, param: &str) -> Option<(f64, f64)>;
    /// The insert's keys as written in a session file (everything after `kind`, as
    /// inline-table entries), so that parsing them gives `self` back exactly.
    fn toml_keys(&self) -> String;
    /// The processor for a strip.
    fn build(&self, ctx: &BuildCtx<'_>) -> Result<Box<dyn Processor>>;
    /// The audio file the insert reads (a reverb's IR).
    fn file(&self) -> Option<&StemRef> {
        None
    }
    /// [`InsertKind::file`], mutable.
    fn file_mut(&mut self) -> Option<&mut StemRef> {
        None
    }
    /// The strip this insert listens to (a compressor's sidechain).
    fn key(&self) -> Option<&str> {
        None
    }
}

/// Lists the insert kinds: generates [`Insert`] and its dispatch.
macro_rules! registry {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// One insert of a strip's chain, in the contract's units.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Insert {
            $(
                #[allow(missing_docs)]
                $variant($ty),
            )*
        }

        /// Every `kind` a session may name, in registry order.
        pub const KINDS: &[&str] = &[$(<$ty as InsertKind>::KIND),*];

        impl Insert {
            /// Parses an insert table of the given `kind` (None: no such kind).
            pub(crate) fn parse(kind: &str, t: &Tbl<'_>) -> Option<Result<Self>> {
                $(
                    if kind == <$ty as InsertKind>::KIND {
                        return Some(<$ty as InsertKind>::parse(t).map(Insert::$variant));
                    }
                )*
                None
            }
            /// The `kind` written in session files.
            pub fn kind(&self) -> &'static str {
                match self { $(Insert::$variant(_) => <$ty as InsertKind>::KIND),* }
            }
            /// See [`InsertKind::validate`].
            pub fn validate(&self, ck: &InsertCheck<'_>) -> Result<()> {
                match self { $(Insert::$variant(x) => x.validate(ck)),* }
            }
            /// See [`InsertKind::param_range`].
            pub fn param_range(&self, param: &str) -> Option<(f64, f64)> {
                match self { $(Insert::$variant(x) => x.param_range(param)),* }
            }
            /// See [`InsertKind::toml_keys`].
            pub fn toml_keys(&self) -> String {
                match self { $(Insert::$variant(x) => x.toml_keys()),* }
            }
            /// See [`InsertKind::build`].
            pub fn build(&self, ctx: &BuildCtx<'_>) -> Result<Box<dyn Processor>> {
                match self { $(Insert::$variant(x) => x.build(ctx)),* }
            }
            /// See [`InsertKind::file`].
            pub fn file(&self) -> Option<&StemRef> {
                match self { $(Insert::$variant(x) => x.file()),* }
            }
            /// See [`InsertKind::file_mut`].
            pub fn file_mut(&mut self) -> Option<&mut StemRef> {
                match self { $(Insert::$variant(x) => x.file_mut()),* }
            }
            /// See [`InsertKind::key`].
            pub fn key(&self) -> Option<&str> {
                match self { $(Insert::$variant(x) => x.key()),* }
            }
        }
    };
}

registry! {
    Eq(EqInsert),
    Compressor(crate::session::Compressor),
    Gate(Gate),
    Saturation(Saturation),
    Delay(DelayFx),
    Reverb(Reverb),
    Width(Width),
}
