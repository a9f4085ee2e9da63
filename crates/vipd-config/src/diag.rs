//! Diagnostics: what is wrong, where (file:line:col), and how to fix it.
//!
//! Validation rules name the offending value by its *path* in the document
//! (`service[1].real_server[0].weight`); the loader resolves paths to byte spans in the parsed
//! TOML tree, so the model itself carries no span wrappers.

use std::fmt;
use std::ops::Range;

/// One step of a path into the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    /// A key of a table.
    Key(String),
    /// An element of an array (of tables).
    Index(usize),
}

/// A path into the document, e.g. `service[1].real_server[0].weight`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Path(pub Vec<Seg>);

impl Path {
    /// The document root.
    pub fn root() -> Self {
        Path(Vec::new())
    }
    /// This path extended by a key.
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }
    /// This path extended by an array index.
    pub fn idx(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.0 {
            match s {
                Seg::Key(k) if first => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The config is refused.
    Error,
    /// The config is accepted, but probably not what the operator wants.
    Warning,
}

/// A resolved location in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// Byte range in the source.
    pub span: Range<usize>,
}

/// One finding about a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when there is something useful to say.
    pub hint: Option<String>,
    /// Where, in document terms.
    pub path: Path,
    /// Where, in file terms (filled in by the loader).
    pub location: Option<Location>,
}

impl Diagnostic {
    /// A new error at `path`.
    pub fn error(path: Path, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            message: message.into(),
            hint: None,
            path,
            location: None,
        }
    }
    /// A new warning at `path`.
    pub fn warning(path: Path, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            message: message.into(),
            hint: None,
            path,
            location: None,
        }
    }
    /// Attach a hint.
    pub fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }
    /// True for an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Line and column (1-based, column in characters) of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = src[line_start..offset].chars().count() + 1;
    (line, col)
}

/// Renders diagnostics like rustc does: a header, `--> file:line:col`, the source line with a
/// caret under the span, and the hint.
#[derive(Debug)]
pub struct Report<'a> {
    /// File name shown in `-->` lines.
    pub file: &'a str,
    /// The source text.
    pub source: &'a str,
    /// The findings.
    pub diagnostics: &'a [Diagnostic],
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in self.diagnostics {
            let sev = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            writeln!(f, "{sev}: {}", d.message)?;
            match &d.location {
                Some(loc) => {
                    writeln!(f, "  --> {}:{}:{}", self.file, loc.line, loc.col)?;
                    let text = self.source.lines().nth(loc.line - 1).unwrap_or("");
                    let width = loc.line.to_string().len();
                    let span_chars = self.source[loc.span.clone()]
                        .lines()
                        .next()
                        .map_or(1, |s| s.chars().count().max(1));
                    let room = text.chars().count().saturating_sub(loc.col - 1).max(1);
                    writeln!(f, "{:w$} |", "", w = width)?;
                    writeln!(f, "{} | {}", loc.line, text)?;
                    writeln!(
                        f,
                        "{:w$} | {}{}",
                        "",
                        " ".repeat(loc.col - 1),
                        "^".repeat(span_chars.min(room)),
                        w = width
                    )?;
                }
                None => writeln!(f, "  --> {}", self.file)?,
            }
            if !d.path.0.is_empty() {
                writeln!(f, "   = at: {}", d.path)?;
            }
            if let Some(h) = &d.hint {
                writeln!(f, "   = hint: {h}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars() {
        let s = "a = 1\nné = \"x\"\n";
        assert_eq!(line_col(s, 0), (1, 1));
        assert_eq!(line_col(s, 6), (2, 1));
        let off = s.find('=').unwrap();
        assert_eq!(line_col(s, off), (1, 3));
        let off2 = s.rfind('=').unwrap();
        assert_eq!(line_col(s, off2), (2, 4));
    }

    #[test]
    fn path_display() {
        let p = Path::root()
            .key("service")
            .idx(1)
            .key("real_server")
            .idx(0)
            .key("weight");
        assert_eq!(p.to_string(), "service[1].real_server[0].weight");
    }

    #[test]
    fn report_renders_caret_and_hint() {
        let src = "[bgp]\nhold_time = 2\n";
        let mut d =
            Diagnostic::error(Path::root().key("bgp").key("hold_time"), "bad").hint("fix it");
        d.location = Some(Location {
            line: 2,
            col: 13,
            span: 18..19,
        });
        let out = Report {
            file: "x.toml",
            source: src,
            diagnostics: &[d],
        }
        .to_string();
        assert!(out.contains("error: bad"), "{out}");
        assert!(out.contains("--> x.toml:2:13"), "{out}");
        assert!(out.contains("2 | hold_time = 2"), "{out}");
        assert!(out.contains("  |             ^"), "{out}");
        assert!(out.contains("= hint: fix it"), "{out}");
    }
}
