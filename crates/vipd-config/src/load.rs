//! Loading: TOML text -> spanned tree -> typed [`Config`] -> validated, with every finding
//! located at file:line:col.
//!
//! serde stops at the first structural error (unknown key, wrong type). To still report all of
//! them, the loader removes the offending entry from the spanned tree and deserializes again,
//! up to a bound; spans stay those of the original text because the tree is never
//! re-serialized.

use std::fmt;
use std::ops::Range;
use std::path::Path as FsPath;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use crate::diag::{Diagnostic, Location, Path, Report, Seg, Severity, line_col};
use crate::model::Config;
use crate::validate::{did_you_mean, validate};

/// At most this many structural errors are collected from one file.
const MAX_STRUCTURAL: usize = 32;

/// A config that passed validation, with the warnings it raised.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Findings that do not prevent using it.
    pub warnings: Vec<Diagnostic>,
    /// The file name it came from.
    pub file: String,
    /// Its source text (kept to render the warnings).
    pub source: String,
}

impl Loaded {
    /// The warnings rendered like compiler output.
    pub fn render_warnings(&self) -> String {
        Report {
            file: &self.file,
            source: &self.source,
            diagnostics: &self.warnings,
        }
        .to_string()
    }
}

/// A config that was refused: every finding, errors and warnings, in file order.
#[derive(Clone, Debug)]
pub struct ConfigError {
    /// The file name.
    pub file: String,
    /// Its source text (empty when it could not be read).
    pub source: String,
    /// The findings; at least one is an error.
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    /// Number of errors (not warnings).
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}",
            Report {
                file: &self.file,
                source: &self.source,
                diagnostics: &self.diagnostics
            }
        )?;
        let n = self.error_count();
        write!(
            f,
            "{}: {n} error{} found, configuration refused",
            self.file,
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for ConfigError {}

/// Reads and validates a config file. A missing or unreadable file is an error: a load
/// balancer must refuse to start rather than fall back to defaults.
pub fn load_file(path: &FsPath) -> Result<Loaded, ConfigError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(src) => {
            let mut loaded = load_str(&src, &file)?;
            // A key written in a file others can read: said at every load.
            if let Ok(m) = std::fs::metadata(path) {
                use std::os::unix::fs::MetadataExt as _;
                let mut w = crate::secrets::exposed_inline(&loaded.config, path, m.mode());
                if !w.is_empty() {
                    let tree = DeTable::parse_recoverable(&src).0;
                    for d in &mut w {
                        d.location = locate(&src, tree.get_ref(), &d.path);
                    }
                    loaded.warnings.extend(w);
                }
            }
            Ok(loaded)
        }
        Err(e) => Err(ConfigError {
            file,
            source: String::new(),
            diagnostics: vec![
                Diagnostic::error(Path::root(), format!("cannot read the configuration: {e}"))
                    .hint("check the path given with --config"),
            ],
        }),
    }
}

/// Parses and validates config text; `file` names it in diagnostics.
pub fn load_str(src: &str, file: &str) -> Result<Loaded, ConfigError> {
    let refuse = |diagnostics: Vec<Diagnostic>| ConfigError {
        file: file.to_string(),
        source: src.to_string(),
        diagnostics,
    };
    let (mut tree, syntax) = DeTable::parse_recoverable(src);
    if !syntax.is_empty() {
        return Err(refuse(
            syntax.iter().map(|e| from_toml_error(src, e)).collect(),
        ));
    }
    // The common case, a valid file, deserializes the tree without copying it (large
    // configs: tens of thousands of real servers). Only when there is something to report is
    // the text parsed again to locate it.
    let first = Config::deserialize(toml::de::Deserializer::from(tree));
    let mut config = match first {
        Ok(c) => c,
        Err(e) => {
            tree = DeTable::parse_recoverable(src).0;
            let mut diags = structural_errors(src, tree, e);
            diags.sort_by_key(|d| d.location.as_ref().map_or((0, 0), |l| (l.line, l.col)));
            return Err(refuse(diags));
        }
    };
    let mut diags = validate(&config);
    if config.global.role == crate::model::Role::Backend {
        diags.extend(backend_sysctl(src));
    }
    if !diags.iter().any(Diagnostic::is_error) {
        diags.extend(crate::secrets::resolve(&mut config));
    }
    if diags.is_empty() {
        return Ok(Loaded {
            config,
            warnings: diags,
            file: file.to_string(),
            source: src.to_string(),
        });
    }
    let tree = DeTable::parse_recoverable(src).0;
    for d in &mut diags {
        d.location = locate(src, tree.get_ref(), &d.path);
    }
    diags.sort_by_key(|d| d.location.as_ref().map_or((0, 0), |l| (l.line, l.col)));
    if diags.iter().any(Diagnostic::is_error) {
        return Err(refuse(diags));
    }
    Ok(Loaded {
        config,
        warnings: diags,
        file: file.to_string(),
        source: src.to_string(),
    })
}

/// `[global.sysctl]` on a backend: the IPVS sysctls are a director's, and a backend never
/// writes them. Its keys all have defaults, so only the text tells whether it was written.
fn backend_sysctl(src: &str) -> Option<Diagnostic> {
    let tree = DeTable::parse_recoverable(src).0;
    let written = match tree.get_ref().get("global").map(|g| g.get_ref()) {
        Some(DeValue::Table(g)) => g.contains_key("sysctl"),
        _ => false,
    };
    written.then(|| {
        Diagnostic::error(
            Path::root().key("global").key("sysctl"),
            "a backend does not program IPVS: [global.sysctl] would not be applied",
        )
        .hint("remove [global.sysctl] from the backend's configuration")
    })
}

/// Collects every structural error: records `first`, removes the offending entry from the
/// tree and deserializes again, until the tree deserializes or nothing more can be removed.
/// When a required key had to be removed, its whole `[[check]]` / `[[service]]` / ... goes,
/// so that the rest still deserializes; then the validation rules run on what is left, so one
/// run reports the errors of every section (an unknown check kind does not hide the services'
/// errors).
fn structural_errors(
    src: &str,
    mut tree: toml::Spanned<DeTable<'_>>,
    first: toml::de::Error,
) -> Vec<Diagnostic> {
    let original = tree.clone();
    let mut out = Vec::new();
    let mut removed_keys: Vec<String> = Vec::new();
    let mut dropped: Vec<(String, Range<usize>)> = Vec::new();
    let mut err = first;
    for _ in 0..MAX_STRUCTURAL * 2 {
        // A required key we removed ourselves after a type error is not a new finding: the
        // element holding it goes instead.
        if missing_field(err.message()).is_some_and(|k| removed_keys.iter().any(|r| r == k)) {
            match err.span().and_then(|sp| drop_element(tree.get_mut(), &sp)) {
                Some(d) => dropped.push(d),
                None => break,
            }
        } else {
            out.push(from_toml_error(src, &err));
            match err.span().and_then(|sp| remove_at(tree.get_mut(), &sp)) {
                Some(key) if out.len() < MAX_STRUCTURAL => removed_keys.push(key),
                _ => break,
            }
        }
        match Config::deserialize(toml::de::Deserializer::from(tree.clone())) {
            Ok(cfg) => {
                let taken: Vec<Range<usize>> = out
                    .iter()
                    .filter_map(|d| d.location.as_ref().map(|l| l.span.clone()))
                    .collect();
                out.extend(validate_pruned(src, &original, &cfg, &dropped, &taken));
                break;
            }
            Err(e) => err = e,
        }
    }
    out
}

/// Removes the element of a top-level array of tables (`[[check]]`, `[[service]]`, ...)
/// whose span holds `span`; returns the array's key and the element's span.
fn drop_element(t: &mut DeTable<'_>, span: &Range<usize>) -> Option<(String, Range<usize>)> {
    let inside = |s: &Range<usize>| s.start <= span.start && span.end <= s.end;
    for (k, v) in t.iter_mut() {
        if let DeValue::Array(a) = v.get_mut() {
            if let Some(i) = a
                .iter()
                .position(|e| e.get_ref().is_table() && inside(&e.span()))
            {
                let el = a.get(i).map(|e| e.span())?;
                *a = a
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, e)| e.clone())
                    .collect();
                return Some((k.get_ref().to_string(), el));
            }
        }
    }
    None
}

/// The validation rules on a configuration that lost elements to structural errors: paths are
/// mapped back to the original indices, and findings that only follow from the removal (a
/// reference to a removed check, a director left without services, a removed key's default
/// judged at the spot of its structural error) are left out, as are warnings (the file is
/// refused anyway).
fn validate_pruned(
    src: &str,
    original: &toml::Spanned<DeTable<'_>>,
    cfg: &Config,
    dropped: &[(String, Range<usize>)],
    taken: &[Range<usize>],
) -> Vec<Diagnostic> {
    // Original index of each element of each array that lost some.
    let mut kept: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    let mut gone_checks: Vec<String> = Vec::new();
    for (key, _) in dropped {
        if kept.contains_key(key.as_str()) {
            continue;
        }
        let Some(DeValue::Array(a)) = original.get_ref().get(key.as_str()).map(|v| v.get_ref())
        else {
            continue;
        };
        let mut idx = Vec::new();
        for (i, e) in a.iter().enumerate() {
            if dropped.iter().any(|(k, sp)| k == key && *sp == e.span()) {
                if key == "check" {
                    if let DeValue::Table(t) = e.get_ref() {
                        if let Some(DeValue::String(n)) = t.get("name").map(|v| v.get_ref()) {
                            gone_checks.push(n.to_string());
                        }
                    }
                }
            } else {
                idx.push(i);
            }
        }
        kept.insert(key.as_str(), idx);
    }
    let lost_service = kept.contains_key("service");
    let mut out = Vec::new();
    for mut d in validate(cfg) {
        if !d.is_error()
            || (lost_service && d.path.0.is_empty())
            || gone_checks
                .iter()
                .any(|n| d.message == format!("unknown check {n:?}"))
        {
            continue;
        }
        if let [Seg::Key(k), Seg::Index(i), ..] = d.path.0.as_mut_slice() {
            if let Some(orig) = kept.get(k.as_str()).and_then(|v| v.get(*i)) {
                *i = *orig;
            }
        }
        d.location = locate(src, original.get_ref(), &d.path);
        if d.location.as_ref().is_some_and(|l| taken.contains(&l.span)) {
            continue;
        }
        out.push(d);
    }
    out
}

fn missing_field(msg: &str) -> Option<&str> {
    msg.strip_prefix("missing field `")?.split('`').next()
}

fn from_toml_error(src: &str, e: &toml::de::Error) -> Diagnostic {
    let raw = e.message().trim();
    // Value types phrase their advice as a trailing "(write e.g. ...)": make it the hint.
    let (msg, hint) = match raw.rsplit_once(" (write ") {
        Some((m, h)) => (
            m.to_string(),
            Some(format!("write {}", h.trim_end_matches(')'))),
        ),
        None => (raw.to_string(), hint_for(raw)),
    };
    let mut d = Diagnostic {
        severity: Severity::Error,
        message: msg,
        hint,
        path: Path::root(),
        location: None,
    };
    if let Some(sp) = e.span() {
        d.location = Some(location(src, sp));
    }
    d
}

/// Turns serde's wording into advice an operator can act on.
fn hint_for(msg: &str) -> Option<String> {
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`')?;
        let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        return Some(match did_you_mean(field, known.iter().copied()) {
            Some(m) => format!("did you mean `{m}`?"),
            None if known.is_empty() => "this table takes no keys".to_string(),
            None => format!("valid keys here: {}", known.join(", ")),
        });
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let (_, expected) = rest.split_once('`')?;
        let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        return Some(format!("use one of: {}", known.join(", ")));
    }
    if msg.starts_with("missing field") {
        return Some("add this key to the table".to_string());
    }
    if msg.starts_with("invalid type") {
        return Some(
            "check the value's type: strings are quoted, numbers and booleans are not".to_string(),
        );
    }
    None
}

fn location(src: &str, span: Range<usize>) -> Location {
    let (line, col) = line_col(src, span.start);
    Location { line, col, span }
}

/// Removes the entry (key or array element) whose key or value is at `span` and returns the
/// key it was under. `None` when no entry matches, so the caller stops retrying.
fn remove_at(t: &mut DeTable<'_>, span: &Range<usize>) -> Option<String> {
    let hit = t
        .iter()
        .find(|(k, v)| k.span() == *span || v.span() == *span)
        .map(|(k, _)| k.get_ref().to_string());
    if let Some(key) = hit {
        t.remove(key.as_str());
        return Some(key);
    }
    t.iter_mut()
        .find_map(|(k, v)| remove_in_value(k.get_ref(), v.get_mut(), span))
}

fn remove_in_value(key: &str, v: &mut DeValue<'_>, span: &Range<usize>) -> Option<String> {
    match v {
        DeValue::Table(t) => remove_at(t, span),
        DeValue::Array(a) => {
            if let Some(i) = a
                .iter()
                .position(|e| e.span() == *span && !e.get_ref().is_table())
            {
                *a = a
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, e)| e.clone())
                    .collect();
                return Some(key.to_string());
            }
            a.iter_mut()
                .find_map(|e| remove_in_value(key, e.get_mut(), span))
        }
        _ => None,
    }
}

/// The location of `path`: its value when present, else its nearest present ancestor (a
/// defaulted key points at the table that lacks it).
fn locate(src: &str, root: &DeTable<'_>, path: &Path) -> Option<Location> {
    let mut span: Option<Range<usize>> = None;
    let mut cur: Option<&DeValue<'_>> = None;
    for seg in &path.0 {
        let next = match (seg, cur) {
            (Seg::Key(k), None) => root.get(k.as_str()),
            (Seg::Key(k), Some(DeValue::Table(t))) => t.get(k.as_str()),
            (Seg::Index(i), Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        };
        match next {
            Some(v) => {
                span = Some(v.span());
                cur = Some(v.get_ref());
            }
            None => break,
        }
    }
    span.map(|sp| location(src, sp))
        .or_else(|| Some(location(src, 0..0)))
}
