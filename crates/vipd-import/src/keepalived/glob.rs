//! The subset of glob(3) keepalived's `include` relies on, written here rather than pulled
//! in as a dependency (the workspace has no glob crate).
//!
//! keepalived calls `glob(pattern, GLOB_MARK | GLOB_BRACE | GLOB_ALTDIRFUNC)`, so:
//! - `*`, `?` and `[...]` (`[!...]`/`[^...]` negated, `a-z` ranges, `]` first is literal)
//!   match within one path component; `/` is never matched by a wildcard;
//! - a leading `.` of a name must be matched by a literal `.` (no `GLOB_PERIOD`);
//! - `\` escapes the next character (no `GLOB_NOESCAPE`);
//! - `{a,b}` alternatives (`GLOB_BRACE`) are expanded first, and each alternative's matches
//!   are sorted on their own and then concatenated, as glibc does;
//! - matches are sorted by bytes: glibc sorts with `strcoll()`, which is byte order in the
//!   C locale keepalived normally runs in (from systemd). POSIX character classes
//!   (`[[:alpha:]]`) are not supported.

use std::fs;
use std::path::{Path, PathBuf};

/// Whether `pattern` has an unescaped `*`, `?` or `[`, i.e. whether matching nothing is
/// normal for it (a plain path that is missing is an error, a wildcard that matches
/// nothing is not).
pub(super) fn has_wildcards(pattern: &str) -> bool {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Removes the escaping backslashes of a pattern without wildcards.
pub(super) fn unescape(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    out
}

/// `GLOB_BRACE`: `a{b,c{d,e}}f` is `abf`, `acdf`, `acef`, in that order. A `{` without a
/// matching `}` or without a `,` is literal, as in glibc.
pub(super) fn expand_braces(pattern: &str) -> Vec<String> {
    let Some((open, close, commas)) = first_brace(pattern) else {
        return vec![pattern.to_owned()];
    };
    let (prefix, suffix) = (&pattern[..open], &pattern[close + 1..]);
    let mut bounds = vec![open];
    bounds.extend(commas);
    bounds.push(close);
    let mut out = Vec::new();
    for pair in bounds.windows(2) {
        let alternative = &pattern[pair[0] + 1..pair[1]];
        out.extend(expand_braces(&format!("{prefix}{alternative}{suffix}")));
    }
    out
}

/// The first `{` that has a matching `}` and a top-level `,` in between: its position,
/// the `}`'s and the commas'.
fn first_brace(pattern: &str) -> Option<(usize, usize, Vec<usize>)> {
    let bytes = pattern.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'{' => {
                let (mut depth, mut commas, mut j) = (0usize, Vec::new(), i + 1);
                while j < bytes.len() {
                    match bytes[j] {
                        b'\\' => j += 1,
                        b'{' => depth += 1,
                        b',' if depth == 0 => commas.push(j),
                        b'}' if depth == 0 => {
                            if !commas.is_empty() {
                                return Some((i, j, commas));
                            }
                            break;
                        }
                        b'}' => depth -= 1,
                        _ => {}
                    }
                    j += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The existing paths matching `pattern` (brace-free), sorted; a relative pattern is
/// matched under `base` and the results are `base` joined with the matched names (so an
/// empty `base` gives paths relative to the current directory, as keepalived sees them).
pub(super) fn glob(base: &Path, pattern: &str) -> Vec<PathBuf> {
    let (mut found, rel) = match pattern.strip_prefix('/') {
        Some(rel) => (vec![PathBuf::from("/")], rel),
        None => (vec![base.to_path_buf()], pattern),
    };
    for component in rel.split('/') {
        if component.is_empty() {
            continue;
        }
        if !has_wildcards(component) {
            let name = unescape(component);
            found.iter_mut().for_each(|p| p.push(&name));
            continue;
        }
        let pat: Vec<char> = component.chars().collect();
        let mut next = Vec::new();
        for dir in &found {
            let listing = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            let Ok(entries) = fs::read_dir(listing) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| matches(&pat, &n.chars().collect::<Vec<_>>()))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        found = next;
    }
    found.retain(|p| fs::symlink_metadata(p).is_ok());
    found
}

/// fnmatch(3) of one component, without `FNM_PERIOD` exceptions: a leading `.` in `name`
/// only matches a literal `.`.
fn matches(pat: &[char], name: &[char]) -> bool {
    if name.first() == Some(&'.') && !matches!(pat.first(), Some('.')) {
        // `\.` also matches a leading dot literally.
        if !(pat.first() == Some(&'\\') && pat.get(1) == Some(&'.')) {
            return false;
        }
    }
    match_from(pat, name)
}

fn match_from(pat: &[char], name: &[char]) -> bool {
    let Some((&p, pat_rest)) = pat.split_first() else {
        return name.is_empty();
    };
    match p {
        '*' => (0..=name.len()).any(|skip| match_from(pat_rest, &name[skip..])),
        '?' => !name.is_empty() && match_from(pat_rest, &name[1..]),
        '[' => match (name.first(), bracket(pat_rest)) {
            (Some(&c), Some((set, after))) => set.contains(c) && match_from(after, &name[1..]),
            // An unclosed `[` is an ordinary character.
            (Some(&c), None) => c == '[' && match_from(pat_rest, &name[1..]),
            (None, _) => false,
        },
        '\\' if !pat_rest.is_empty() => {
            name.first() == Some(&pat_rest[0]) && match_from(&pat_rest[1..], &name[1..])
        }
        _ => name.first() == Some(&p) && match_from(pat_rest, &name[1..]),
    }
}

/// A parsed `[...]` expression.
struct Bracket {
    negated: bool,
    ranges: Vec<(char, char)>,
}

impl Bracket {
    fn contains(&self, c: char) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != self.negated
    }
}

/// Parses the inside of a bracket expression (`pat` starts just after the `[`); returns it
/// and the pattern after its `]`, or `None` if it is not closed.
fn bracket(pat: &[char]) -> Option<(Bracket, &[char])> {
    let (negated, mut i) = match pat.first() {
        Some('!' | '^') => (true, 1),
        _ => (false, 0),
    };
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let mut c = *pat.get(i)?;
        if c == ']' && !first {
            return Some((Bracket { negated, ranges }, &pat[i + 1..]));
        }
        first = false;
        if c == '\\' {
            i += 1;
            c = *pat.get(i)?;
        }
        if pat.get(i + 1) == Some(&'-') && pat.get(i + 2).is_some_and(|&h| h != ']') {
            let mut hi_at = i + 2;
            if pat[hi_at] == '\\' {
                hi_at += 1;
            }
            ranges.push((c, *pat.get(hi_at)?));
            i = hi_at + 1;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pat: &str, name: &str) -> bool {
        matches(
            &pat.chars().collect::<Vec<_>>(),
            &name.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn wildcards() {
        assert!(m("*.conf", "a.conf"));
        assert!(!m("*.conf", "a.conf.bak"));
        assert!(!m("*.conf", ".hidden.conf"));
        assert!(m(".*.conf", ".hidden.conf"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("[^a-c]x", "dx"));
        assert!(m("[]]", "]"));
        assert!(m("[a-]", "-"));
        assert!(m("[x", "[x"));
        assert!(m(r"\*", "*"));
        assert!(!m(r"\*", "a"));
        assert!(m("*", ""));
    }

    #[test]
    fn wildcard_detection() {
        assert!(has_wildcards("/etc/*.conf"));
        assert!(has_wildcards("a[0-9]"));
        assert!(!has_wildcards(r"a\*b"));
        assert!(!has_wildcards("/etc/keepalived/a.conf"));
        assert_eq!(unescape(r"a\*b\\c"), r"a*b\c");
    }

    #[test]
    fn braces() {
        assert_eq!(expand_braces("a{b,c{d,e}}f"), ["abf", "acdf", "acef"]);
        assert_eq!(expand_braces("a{b}c"), ["a{b}c"]);
        assert_eq!(expand_braces("a{b,c"), ["a{b,c"]);
        assert_eq!(expand_braces(r"a\{b,c}"), [r"a\{b,c}"]);
        assert_eq!(expand_braces("{x,y}/{1,2}"), ["x/1", "x/2", "y/1", "y/2"]);
    }
}
