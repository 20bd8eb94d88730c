//! A small typed walker over toml's spanned document tree.
//!
//! Why not serde: we want every message to carry the file, the line, the field path
//! (`track[2] "Kick".eq[0].freq`) and the bad value, and unknown keys reported with a
//! did-you-mean. Walking `toml::de::DeTable` (which keeps spans) gives all of that.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::{Error, Result};

/// The text being read and the name used for it in messages.
pub struct Doc<'a> {
    pub text: &'a str,
    pub source: &'a str,
}

impl<'a> Doc<'a> {
    /// 1-based line of a byte offset.
    pub fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// `source: line N: field: msg`.
    pub fn err_at(&self, span: &Range<usize>, field: &str, msg: impl std::fmt::Display) -> Error {
        let line = self.line(span.start);
        if field.is_empty() {
            Error::InvalidSession(format!("{}: line {line}: {msg}", self.source))
        } else {
            Error::InvalidSession(format!("{}: line {line}: {field}: {msg}", self.source))
        }
    }

    /// Parses the text into a spanned table; a syntax error becomes one line.
    pub fn parse(&self) -> Result<Spanned<DeTable<'a>>> {
        DeTable::parse(self.text).map_err(|e| {
            // The Display of toml's error is a multi-line snippet; keep the message only.
            let msg = e
                .message()
                .lines()
                .next()
                .unwrap_or("invalid TOML")
                .trim()
                .to_string();
            match e.span() {
                Some(span) => self.err_at(&span, "", format_args!("invalid TOML: {msg}")),
                None => Error::InvalidSession(format!("{}: invalid TOML: {msg}", self.source)),
            }
        })
    }

    /// A table view of the document root.
    pub fn root<'b>(&'b self, t: &'b Spanned<DeTable<'a>>) -> Tbl<'b> {
        Tbl {
            doc: self,
            t: t.get_ref(),
            span: t.span(),
            path: String::new(),
            label: "the top level".into(),
        }
    }
}

/// A TOML value with its span.
pub type Val<'a> = Spanned<DeValue<'a>>;

/// A table being read, with its field path (for messages) and a label (for unknown keys).
pub struct Tbl<'a> {
    pub doc: &'a Doc<'a>,
    pub t: &'a DeTable<'a>,
    pub span: Range<usize>,
    /// Field path of this table, e.g. `track[0] "Kick".compressor` (empty at the root).
    pub path: String,
    /// How unknown-key messages name this table, e.g. `[[track]]`.
    pub label: String,
}

impl<'a> Tbl<'a> {
    /// Field path of `key` in this table.
    pub fn field(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Renames this table's path (e.g. once a track's name is known).
    pub fn set_path(&mut self, path: String) {
        self.path = path;
    }

    /// Any key not in `allowed` is an error naming it, its line and a close allowed key.
    pub fn check_keys(&self, allowed: &[&str]) -> Result<()> {
        for (k, _) in self.t.iter() {
            let key: &str = k.get_ref();
            if !allowed.contains(&key) {
                let hint = did_you_mean(key, allowed)
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                return Err(self.doc.err_at(
                    &k.span(),
                    "",
                    format_args!("unknown key {key:?} in {}{hint}", self.label),
                ));
            }
        }
        Ok(())
    }

    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&'a Val<'a>> {
        self.t.get(key)
    }

    /// "required field is missing", with the table's line.
    pub fn missing(&self, key: &str) -> Error {
        self.doc
            .err_at(&self.span, &self.field(key), "required field is missing")
    }

    /// A number (integer or float) if present.
    pub fn f64_opt(&self, key: &str) -> Result<Option<f64>> {
        self.get(key)
            .map(|v| num(self.doc, v, &self.field(key)))
            .transpose()
    }
    /// A number, or `default` when absent.
    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        Ok(self.f64_opt(key)?.unwrap_or(default))
    }
    /// A required number.
    pub fn f64_req(&self, key: &str) -> Result<f64> {
        self.f64_opt(key)?.ok_or_else(|| self.missing(key))
    }
    /// A whole number in u32 range, if present.
    pub fn u32_opt(&self, key: &str) -> Result<Option<u32>> {
        self.get(key)
            .map(|v| uint(self.doc, v, &self.field(key)))
            .transpose()
    }
    /// A boolean, or `default` when absent.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.get_ref() {
                DeValue::Boolean(b) => Ok(*b),
                other => Err(self.doc.err_at(
                    &v.span(),
                    &self.field(key),
                    format_args!("expected true or false, found {}", describe(other)),
                )),
            },
        }
    }
    /// A string if present.
    pub fn str_opt(&self, key: &str) -> Result<Option<String>> {
        self.get(key)
            .map(|v| string(self.doc, v, &self.field(key)))
            .transpose()
    }
    /// A required string.
    pub fn str_req(&self, key: &str) -> Result<String> {
        self.str_opt(key)?.ok_or_else(|| self.missing(key))
    }
    /// A sub-table (`[a.b]` or an inline table) if present; its label is its field path.
    pub fn table_opt(&self, key: &str) -> Result<Option<Tbl<'a>>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                let path = self.field(key);
                Ok(Some(table(self.doc, v, path.clone(), path)?))
            }
        }
    }
    /// An array if present.
    pub fn array_opt(&self, key: &str) -> Result<Option<&'a [Val<'a>]>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::Array(a) => Ok(Some(&a[..])),
                other => Err(self.doc.err_at(
                    &v.span(),
                    &self.field(key),
                    format_args!("expected an array, found {}", describe(other)),
                )),
            },
        }
    }
    /// An array of tables (`[[key]]` or an array of inline tables), each labelled `label`
    /// and with path `key[i]`; empty when absent.
    pub fn tables(&self, key: &str, label: &str) -> Result<Vec<Tbl<'a>>> {
        let Some(v) = self.get(key) else {
            return Ok(Vec::new());
        };
        let DeValue::Array(a) = v.get_ref() else {
            return Err(self.doc.err_at(
                &v.span(),
                &self.field(key),
                format_args!(
                    "expected {label} (an array of tables), found {}",
                    describe(v.get_ref())
                ),
            ));
        };
        a.iter()
            .enumerate()
            .map(|(i, item)| {
                table(
                    self.doc,
                    item,
                    format!("{}[{i}]", self.field(key)),
                    label.to_string(),
                )
            })
            .collect()
    }
    /// A list of strings (absent: empty).
    pub fn strings(&self, key: &str) -> Result<Vec<String>> {
        let Some(items) = self.array_opt(key)? else {
            return Ok(Vec::new());
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| string(self.doc, v, &format!("{}[{i}]", self.field(key))))
            .collect()
    }
    /// A list of numbers (absent: None).
    pub fn numbers_opt(&self, key: &str) -> Result<Option<Vec<f64>>> {
        let Some(items) = self.array_opt(key)? else {
            return Ok(None);
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| num(self.doc, v, &format!("{}[{i}]", self.field(key))))
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}

/// `path.key`, or `key` at the root.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A table value.
pub(crate) fn table<'a>(
    doc: &'a Doc<'a>,
    v: &'a Val<'a>,
    path: String,
    label: String,
) -> Result<Tbl<'a>> {
    match v.get_ref() {
        DeValue::Table(t) => Ok(Tbl {
            doc,
            t,
            span: v.span(),
            path,
            label,
        }),
        other => Err(doc.err_at(
            &v.span(),
            &path,
            format_args!("expected a table, found {}", describe(other)),
        )),
    }
}

/// A number: integers are accepted where floats are shown.
pub(crate) fn num(doc: &Doc<'_>, v: &Val<'_>, field: &str) -> Result<f64> {
    match v.get_ref() {
        DeValue::Float(f) => {
            let text = f.as_str().replace('_', "");
            text.parse::<f64>().map_err(|_| {
                doc.err_at(
                    &v.span(),
                    field,
                    format_args!("{} is not a number", f.as_str()),
                )
            })
        }
        DeValue::Integer(i) => int(doc, v, field, i).map(|n| n as f64),
        other => Err(doc.err_at(
            &v.span(),
            field,
            format_args!("expected a number, found {}", describe(other)),
        )),
    }
}

fn int(doc: &Doc<'_>, v: &Val<'_>, field: &str, i: &toml::de::DeInteger<'_>) -> Result<i64> {
    let text = i.as_str().replace('_', "");
    i64::from_str_radix(&text, i.radix()).map_err(|_| {
        doc.err_at(
            &v.span(),
            field,
            format_args!("{i} is not a 64-bit integer"),
        )
    })
}

/// A whole number that fits u32 (an integral float is accepted too).
pub(crate) fn uint(doc: &Doc<'_>, v: &Val<'_>, field: &str) -> Result<u32> {
    let n: f64 = match v.get_ref() {
        DeValue::Integer(i) => {
            let n = int(doc, v, field, i)?;
            return u32::try_from(n).map_err(|_| {
                doc.err_at(
                    &v.span(),
                    field,
                    format_args!(
                        "{n} is out of range (expected a whole number 0..={})",
                        u32::MAX
                    ),
                )
            });
        }
        DeValue::Float(_) => num(doc, v, field)?,
        other => {
            return Err(doc.err_at(
                &v.span(),
                field,
                format_args!("expected a whole number, found {}", describe(other)),
            ));
        }
    };
    if n.is_finite() && n.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&n) {
        Ok(n as u32)
    } else {
        Err(doc.err_at(
            &v.span(),
            field,
            format_args!("{n} is not a whole number 0..={}", u32::MAX),
        ))
    }
}

/// A string value.
pub(crate) fn string(doc: &Doc<'_>, v: &Val<'_>, field: &str) -> Result<String> {
    match v.get_ref() {
        DeValue::String(s) => Ok(s.to_string()),
        other => Err(doc.err_at(
            &v.span(),
            field,
            format_args!("expected a string, found {}", describe(other)),
        )),
    }
}

/// How a value is named in a type error.
pub(crate) fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("the string {:?}", s.as_ref()),
        DeValue::Integer(i) => format!("the integer {i}"),
        DeValue::Float(f) => format!("the number {f}"),
        DeValue::Boolean(b) => format!("the boolean {b}"),
        DeValue::Datetime(d) => format!("the date-time {d}"),
        DeValue::Array(a) => format!("an array of {}", a.len()),
        DeValue::Table(_) => "a table".to_string(),
    }
}

/// The closest allowed key, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'k>(key: &str, allowed: &[&'k str]) -> Option<&'k str> {
    // A key written without its unit suffix: "hold" for "hold_ms", "at" for "at_s".
    if let Some(k) = allowed
        .iter()
        .find(|a| a.len() > key.len() && a.starts_with(key) && a[key.len()..].starts_with('_'))
    {
        return Some(k);
    }
    let (best, d) = allowed
        .iter()
        .map(|a| (*a, levenshtein(key, a)))
        .min_by_key(|(_, d)| *d)?;
    let limit = (key.chars().count().max(best.chars().count()) / 3).max(1);
    (d <= limit).then_some(best)
}

/// Edit distance counting an adjacent swap as one edit (optimal string alignment):
/// the usual typo, "gian_db" for "gain_db", is then 1 away.
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * w + j] = if i == 0 {
                j
            } else if j == 0 {
                i
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut v = (d[(i - 1) * w + j] + 1)
                    .min(d[i * w + j - 1] + 1)
                    .min(d[(i - 1) * w + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    v = v.min(d[(i - 2) * w + j - 2] + 1);
                }
                v
            };
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levenshtein_known_values() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("gian_db", "gain_db"), 1);
        assert_eq!(levenshtein("ab", "ba"), 1);
    }

    #[test]
    fn did_you_mean_picks_close_keys_only() {
        let keys = ["gain_db", "pan", "name", "file"];
        assert_eq!(did_you_mean("gian_db", &keys), Some("gain_db"));
        assert_eq!(did_you_mean("fiel", &keys), Some("file"));
        assert_eq!(did_you_mean("reverb_send", &keys), None);
        let units = ["at_s", "hold_ms", "drive_db"];
        assert_eq!(did_you_mean("hold", &units), Some("hold_ms"));
        assert_eq!(did_you_mean("at", &units), Some("at_s"));
        assert_eq!(did_you_mean("drive", &units), Some("drive_db"));
    }

    #[test]
    fn line_numbers_are_one_based() {
        let doc = Doc {
            text: "a = 1\nb = 2\n",
            source: "x.toml",
        };
        assert_eq!(doc.line(0), 1);
        assert_eq!(doc.line(6), 2);
        assert_eq!(doc.line(1000), 3);
    }
}
