//! Range checks for one insert, with messages that name the strip, `inserts[i]` and
//! the key (CONTRACT.md, "Errors").

use crate::{Error, Result};

/// Checks bound to one insert of one strip.
pub struct InsertCheck<'a> {
    /// The session file, for messages.
    pub src: &'a str,
    /// The insert's field path, e.g. `track[0] "Vox".inserts[2]`.
    pub path: String,
    /// The session rate (Hz).
    pub rate: u32,
    /// `session.tempo_bpm`.
    pub tempo_bpm: Option<f64>,
}

impl InsertCheck<'_> {
    /// `src: path.key: msg`.
    pub fn err(&self, key: &str, msg: impl std::fmt::Display) -> Error {
        Error::field(self.src, format!("{}.{key}", self.path), msg)
    }

    /// v is finite and in [lo, hi].
    pub fn within(&self, key: &str, v: f64, lo: f64, hi: f64, unit: &str) -> Result<()> {
        if !v.is_finite() {
            return Err(self.err(key, format_args!("{v} is not a finite number")));
        }
        if v < lo || v > hi {
            return Err(self.err(key, format_args!("{v} is outside [{lo}, {hi}]{unit}")));
        }
        Ok(())
    }

    /// f is finite and in (0, Nyquist).
    pub fn freq(&self, key: &str, f: f64) -> Result<()> {
        let n = f64::from(self.rate) / 2.0;
        if !f.is_finite() || f <= 0.0 || f >= n {
            return Err(self.err(
                key,
                format_args!(
                    "{f} is outside (0, {n}) Hz (the Nyquist of session.sample_rate {})",
                    self.rate
                ),
            ));
        }
        Ok(())
    }
}
