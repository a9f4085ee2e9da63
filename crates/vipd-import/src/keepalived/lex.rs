//! Line lexer for keepalived.conf, following keepalived 2.2's `lib/parser.c`
//! (`decomment()`, `read_line()`, `alloc_strvec_r()`), because the translator must see the
//! same words keepalived sees.
//!
//! keepalived is line-oriented: a statement ends at the end of its line, comments (`#` or
//! `!`, outside double quotes) run to the end of the line, and an unquoted `{` or `}` splits
//! the line, the text after it being read as if it were the next line. `include` is
//! recognised on the whole (decommented) line before any of that, and its pattern is the
//! rest of the line.

use std::path::PathBuf;
use std::sync::Arc;

use super::ParseError;
use crate::ast::Origin;

/// keepalived's `WHITE_SPACE_STR`, the separators between words.
const WHITE_SPACE: &[char] = &[' ', '\t', '\u{c}', '\n', '\r', '\u{b}'];

/// What the parser gets: words, braces, includes and line ends (a statement never runs
/// past a line end).
#[derive(Debug, PartialEq)]
pub(super) enum Tok {
    Word(String),
    Open,
    Close,
    /// `include` (or keepalived 2.2's `includer`, `includem`, `includew`, `includeb`,
    /// `includea`) with the rest of the line as its glob pattern.
    Include {
        pattern: String,
        /// `includew` / `includea`: a wildcard pattern that matches nothing is an error
        /// (for plain `include`, keepalived only logs it).
        strict: bool,
    },
    Eol,
}

#[derive(Debug)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) line: usize,
}

/// Splits `src` into tokens; `file` is only used for the origin of errors.
pub(super) fn lex(src: &str, file: &Arc<PathBuf>) -> Result<Vec<Token>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in src.lines().enumerate() {
        let line = i + 1;
        let Some(text) = decomment(raw) else {
            return Err(ParseError::UnterminatedQuote {
                origin: Origin::new(file.clone(), line),
            });
        };
        lex_line(&text, line, &mut out);
        out.push(Token {
            tok: Tok::Eol,
            line,
        });
    }
    Ok(out)
}

/// keepalived's `decomment()`: drops leading and trailing blanks and the comment, and turns
/// `\#` / `\!` outside quotes into a literal `#` / `!` (the documented way to write them).
/// Other backslashes are kept as they are. `None` if a double quote is left open.
fn decomment(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut quote = false;
    let mut chars = raw.trim_start_matches([' ', '\t']).chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quote = !quote;
                out.push(c);
            }
            '\\' => match chars.next() {
                Some(n @ ('#' | '!')) if !quote => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '#' | '!' if !quote => break,
            _ => out.push(c),
        }
    }
    if quote {
        return None;
    }
    let kept = out.trim_end_matches([' ', '\t', '\r']).len();
    out.truncate(kept);
    Some(out)
}

/// Tokens of one decommented line. keepalived re-reads the text after a brace as a new
/// line, so it also checks it for an `include`; we do the same.
fn lex_line(text: &str, line: usize, out: &mut Vec<Token>) {
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(WHITE_SPACE);
        if rest.is_empty() {
            return;
        }
        if let Some((pattern, strict)) = include_pattern(rest) {
            out.push(Token {
                tok: Tok::Include {
                    pattern: pattern.to_owned(),
                    strict,
                },
                line,
            });
            return;
        }
        if let Some(after) = rest.strip_prefix('{') {
            out.push(Token {
                tok: Tok::Open,
                line,
            });
            rest = after;
            continue;
        }
        if let Some(after) = rest.strip_prefix('}') {
            out.push(Token {
                tok: Tok::Close,
                line,
            });
            rest = after;
            continue;
        }
        let end = brace_position(rest).unwrap_or(rest.len());
        push_words(&rest[..end], line, out);
        rest = &rest[end..];
    }
}

/// The pattern of an include line and whether it is strict, as keepalived's
/// `is_include()`: `include` then a space, or `include` + one of `rmwba` then a space.
fn include_pattern(text: &str) -> Option<(&str, bool)> {
    let after = text.strip_prefix("include")?;
    let mut chars = after.chars();
    let (rest, strict) = match chars.next()? {
        c if c.is_ascii_whitespace() => (chars.as_str(), false),
        c @ ('r' | 'm' | 'w' | 'b' | 'a') => {
            if !chars.next()?.is_ascii_whitespace() {
                return None;
            }
            (chars.as_str(), matches!(c, 'w' | 'a'))
        }
        _ => return None,
    };
    Some((rest.trim_start_matches([' ', '\t']), strict))
}

/// Byte offset of the first `{` or `}` that is not inside a double-quoted string, like the
/// search in keepalived's `read_line()` (an unclosed quote hides everything after it).
fn brace_position(text: &str) -> Option<usize> {
    let mut in_quote = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            '{' | '}' if !in_quote => return Some(i),
            _ => {}
        }
    }
    None
}

/// keepalived's `alloc_strvec_r()`: words split on white space; a `"` at the start of a
/// word starts a quoted word that runs to the next `"` (quotes removed, spaces kept), and
/// a `"` inside a word ends that word.
fn push_words(segment: &str, line: usize, out: &mut Vec<Token>) {
    let mut words = Vec::new();
    let mut rest = segment;
    loop {
        rest = rest.trim_start_matches(WHITE_SPACE);
        if rest.is_empty() {
            break;
        }
        if let Some(quoted) = rest.strip_prefix('"') {
            // decomment() already refused an unclosed quote, but be total anyway.
            let end = quoted.find('"').unwrap_or(quoted.len());
            words.push(quoted[..end].to_owned());
            rest = quoted.get(end + 1..).unwrap_or("");
        } else {
            let end = rest
                .find(|c: char| c == '"' || WHITE_SPACE.contains(&c))
                .unwrap_or(rest.len());
            words.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    merge_seq(&mut words);
    out.extend(words.into_iter().map(|w| Token {
        tok: Tok::Word(w),
        line,
    }));
}

/// `~SEQ(var, start, end)` / `~LST(...)` may have spaces inside the parentheses; keep the
/// whole construct as the one raw keyword so the translator can name it as unsupported.
fn merge_seq(words: &mut Vec<String>) {
    let Some(first) = words.first() else { return };
    if !(first.starts_with("~SEQ(") || first.starts_with("~LST(")) || first.contains(')') {
        return;
    }
    let Some(close) = words.iter().position(|w| w.contains(')')) else {
        return;
    };
    let merged = words.drain(..=close).collect::<Vec<_>>().join(" ");
    words.insert(0, merged);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        let file = Arc::new(PathBuf::from("t.conf"));
        lex(src, &file)
            .expect("lexes")
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    fn w(s: &str) -> Tok {
        Tok::Word(s.to_owned())
    }

    #[test]
    fn comments_and_escapes() {
        assert_eq!(decomment("  a b # c").as_deref(), Some("a b"));
        assert_eq!(decomment("a!b").as_deref(), Some("a"));
        assert_eq!(decomment(r"a\#b \!c").as_deref(), Some("a#b !c"));
        assert_eq!(
            decomment(r#"x "a # \! b" ! c"#).as_deref(),
            Some(r#"x "a # \! b""#)
        );
        assert_eq!(decomment(r#"x "open"#), None);
    }

    #[test]
    fn braces_split_words_and_lines() {
        assert_eq!(
            toks("a b{c}d\n"),
            [
                w("a"),
                w("b"),
                Tok::Open,
                w("c"),
                Tok::Close,
                w("d"),
                Tok::Eol
            ]
        );
        assert_eq!(toks(r#"s "x{y}" z"#), [w("s"), w("x{y}"), w("z"), Tok::Eol]);
    }

    #[test]
    fn quotes_inside_words() {
        assert_eq!(toks(r#"a"b c" """#), [w("a"), w("b c"), w(""), Tok::Eol]);
    }

    #[test]
    fn includes() {
        assert_eq!(
            include_pattern("include  /a/*.conf"),
            Some(("/a/*.conf", false))
        );
        assert_eq!(include_pattern("includew x"), Some(("x", true)));
        assert_eq!(include_pattern("includer x"), Some(("x", false)));
        assert_eq!(include_pattern("includex x"), None);
        assert_eq!(include_pattern("include_check"), None);
        assert_eq!(
            toks("x { include a b }"),
            [
                w("x"),
                Tok::Open,
                Tok::Include {
                    pattern: "a b }".into(),
                    strict: false
                },
                Tok::Eol
            ]
        );
    }

    #[test]
    fn seq_is_one_keyword() {
        assert_eq!(
            toks("~SEQ(i, 1, 3) real_server 10.0.0.$i 80"),
            [
                w("~SEQ(i, 1, 3)"),
                w("real_server"),
                w("10.0.0.$i"),
                w("80"),
                Tok::Eol
            ]
        );
    }
}
