//! ExaBGP 4.x configuration (`exabgp.conf`) to a [`Stmt`] tree, plus the two helpers the
//! translation of its `process` sections needs: [`shell_split`] and
//! [`parse_healthcheck_args`] (the options of ExaBGP's bundled `healthcheck` program).
//!
//! The grammar, as ExaBGP 4.2's tokenizer (`configuration/core/format.py`) reads it:
//! - statements end with `;` (`keyword args... ;`) or open a block (`keyword args... {`),
//!   and blocks end with `}`; a statement must end on the line it starts on (ExaBGP
//!   reports "invalid syntax" otherwise), except that a line ending in `\` continues on
//!   the next;
//! - `#` outside quotes starts a comment that runs to the end of the line;
//! - `"..."` and `'...'` quote (quotes removed, one word); as in ExaBGP, an opening quote
//!   inside a word continues it and a closing quote ends it (`a"b c"d` is `ab c`, `d`);
//! - `[`, `]` and `,` are words of their own even when stuck to others, so
//!   `processes [ service-v6 ];` and `processes [service-v6];` both give the arguments
//!   `["[", "service-v6", "]"]`;
//! - backslash escapes (`\n`, `\t`, `\uXXXX`, `\x` for any other `x`) are decoded on the
//!   whole line before it is split, as ExaBGP does.
//!
//! The words of a `run` statement are the program's argv as ExaBGP executes it (no
//! shell), so `run python -m exabgp healthcheck --cmd "test -f x";` can be handed to
//! [`parse_healthcheck_args`] as its arguments directly.

mod healthcheck;
mod shell;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::ast::{BraceProblem, Origin, Stmt};
pub use healthcheck::{
    Healthcheck, HealthcheckError, is_healthcheck_command, parse_healthcheck_args,
};
pub use shell::{SplitError, shell_split};

/// Why an ExaBGP configuration could not be parsed. Every variant about a place in the file
/// displays as `file:line: ...`.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// A quote is not closed on its line.
    #[error("{origin}: unterminated quote")]
    UnterminatedQuote { origin: Origin },
    /// A `\u` escape without four hexadecimal digits of a valid character after it.
    #[error("{origin}: invalid escape '{escape}'")]
    BadEscape { origin: Origin, escape: String },
    /// A statement reaches the end of its line without `;`, `{` or `}`.
    #[error("{origin}: statement does not end with ';' or '{{' on its line")]
    Unterminated { origin: Origin },
    /// Braces do not pair up; `origin` is the offending brace (for a block that is never
    /// closed, its `{`).
    #[error("{origin}: {problem}")]
    Unbalanced {
        origin: Origin,
        problem: BraceProblem,
    },
}

/// Parses the file at `path`; origins carry `path` as given.
pub fn parse_file(path: &Path) -> Result<Vec<Stmt>, ParseError> {
    let bytes = fs::read(path).map_err(|source| ParseError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(&String::from_utf8_lossy(&bytes), path)
}

/// Parses `src` as if it were the content of the file `name` (only used in origins;
/// ExaBGP has no includes).
pub fn parse_str(src: &str, name: &Path) -> Result<Vec<Stmt>, ParseError> {
    let file = Arc::new(name.to_path_buf());
    let tokens = lex(src, &file)?;
    let mut parser = Parser {
        tokens: tokens.into_iter().peekable(),
        file,
    };
    parser.block(None)
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Semi,
    Open,
    Close,
    /// End of a (logical) line: a statement may not run past it.
    Eol,
}

struct Token {
    tok: Tok,
    line: usize,
}

fn lex(src: &str, file: &Arc<PathBuf>) -> Result<Vec<Token>, ParseError> {
    // Logical lines: a line ending in `\` continues on the next. ExaBGP keeps the `\` and
    // lets it escape the next line's first character, which is never what was meant, so
    // the lines are joined without it. Each logical line keeps its first line's number.
    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut continuing = false;
    for (i, raw) in src.lines().enumerate() {
        let raw = raw.trim_end();
        let (text, continues) = match raw.strip_suffix('\\') {
            Some(text) => (text, true),
            None => (raw, false),
        };
        match logical.last_mut() {
            Some((_, joined)) if continuing => joined.push_str(text),
            _ => logical.push((i + 1, text.to_owned())),
        }
        continuing = continues;
    }
    let mut out = Vec::new();
    for (line, text) in logical {
        let origin = || Origin::new(file.clone(), line);
        let text = unescape(&text).map_err(|escape| ParseError::BadEscape {
            origin: origin(),
            escape,
        })?;
        if !lex_line(&text, line, &mut out) {
            return Err(ParseError::UnterminatedQuote { origin: origin() });
        }
        out.push(Token {
            tok: Tok::Eol,
            line,
        });
    }
    Ok(out)
}

/// ExaBGP's `unescape()`; the `Err` is the bad escape.
fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let c = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("\\u{hex}"))?;
                out.push(c);
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Ok(out)
}

/// Tokens of one line; `false` if a quote is left open.
fn lex_line(text: &str, line: usize, out: &mut Vec<Token>) -> bool {
    let mut word = String::new();
    // Whether `word` is a word even if empty (`""` is an empty argument).
    let mut have_word = false;
    let mut quote: Option<char> = None;
    let push = |tok, out: &mut Vec<Token>| out.push(Token { tok, line });
    let flush = |word: &mut String, have: &mut bool, out: &mut Vec<Token>| {
        if *have || !word.is_empty() {
            out.push(Token {
                tok: Tok::Word(std::mem::take(word)),
                line,
            });
        }
        *have = false;
    };
    for c in text.chars() {
        if let Some(q) = quote {
            if c == q {
                // ExaBGP ends the word with its closing quote.
                quote = None;
                have_word = true;
                flush(&mut word, &mut have_word, out);
            } else {
                word.push(c);
            }
            continue;
        }
        match c {
            '#' => break,
            '"' | '\'' => quote = Some(c),
            ';' | '{' | '}' => {
                flush(&mut word, &mut have_word, out);
                let tok = match c {
                    ';' => Tok::Semi,
                    '{' => Tok::Open,
                    _ => Tok::Close,
                };
                push(tok, out);
            }
            '[' | ']' | ',' => {
                flush(&mut word, &mut have_word, out);
                push(Tok::Word(c.to_string()), out);
            }
            c if c.is_whitespace() => flush(&mut word, &mut have_word, out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut have_word, out);
    quote.is_none()
}

struct Parser {
    tokens: std::iter::Peekable<std::vec::IntoIter<Token>>,
    file: Arc<PathBuf>,
}

impl Parser {
    fn origin(&self, line: usize) -> Origin {
        Origin::new(self.file.clone(), line)
    }

    fn unbalanced(&self, line: usize, problem: BraceProblem) -> ParseError {
        ParseError::Unbalanced {
            origin: self.origin(line),
            problem,
        }
    }

    /// Statements up to the `}` closing the block opened at `open` (or to the end of the
    /// file at top level).
    fn block(&mut self, open: Option<Origin>) -> Result<Vec<Stmt>, ParseError> {
        let mut out = Vec::new();
        while let Some(Token { tok, line }) = self.tokens.next() {
            let keyword = match tok {
                // `;` alone is an empty statement; ExaBGP ignores it too.
                Tok::Eol | Tok::Semi => continue,
                Tok::Open => return Err(self.unbalanced(line, BraceProblem::StrayOpen)),
                Tok::Close if open.is_some() => return Ok(out),
                Tok::Close => return Err(self.unbalanced(line, BraceProblem::ExtraClose)),
                Tok::Word(w) => w,
            };
            let mut stmt = Stmt {
                keyword,
                args: Vec::new(),
                block: None,
                origin: self.origin(line),
            };
            loop {
                match self.tokens.next() {
                    Some(Token {
                        tok: Tok::Word(w), ..
                    }) => stmt.args.push(w),
                    Some(Token { tok: Tok::Semi, .. }) => break,
                    Some(Token {
                        tok: Tok::Open,
                        line,
                    }) => {
                        stmt.block = Some(self.block(Some(self.origin(line)))?);
                        break;
                    }
                    // `ipv6 unicast }`: the statement ends with the block.
                    Some(Token {
                        tok: Tok::Close,
                        line,
                    }) => {
                        out.push(stmt);
                        return match open {
                            Some(_) => Ok(out),
                            None => Err(self.unbalanced(line, BraceProblem::ExtraClose)),
                        };
                    }
                    Some(Token { tok: Tok::Eol, .. }) | None => {
                        return Err(ParseError::Unterminated {
                            origin: stmt.origin,
                        });
                    }
                }
            }
            out.push(stmt);
        }
        match open {
            Some(origin) => Err(ParseError::Unbalanced {
                origin,
                problem: BraceProblem::NeverClosed,
            }),
            None => Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(src: &str) -> Vec<Tok> {
        let file = Arc::new(PathBuf::from("t"));
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
    fn tokens() {
        assert_eq!(
            words("a [b,c]; # x ; {"),
            [
                w("a"),
                w("["),
                w("b"),
                w(","),
                w("c"),
                w("]"),
                Tok::Semi,
                Tok::Eol
            ]
        );
        assert_eq!(
            words(r#"a"b c"'d # e' "";"#),
            [w("ab c"), w("d # e"), w(""), Tok::Semi, Tok::Eol]
        );
        assert_eq!(
            words("run a \\\n  b;\nx;"),
            [
                w("run"),
                w("a"),
                w("b"),
                Tok::Semi,
                Tok::Eol,
                w("x"),
                Tok::Semi,
                Tok::Eol
            ]
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape(r"a\tb\u0041\;").as_deref(), Ok("a\tbA;"));
        assert_eq!(unescape(r"\u00G1"), Err(r"\u00G1".to_owned()));
    }
}
