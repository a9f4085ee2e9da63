//! keepalived.conf (keepalived 2.2) to a [`Stmt`] tree, with `include`s spliced in.
//!
//! The grammar, as keepalived's own `lib/parser.c` reads it:
//! - a statement is a keyword and its arguments, up to the end of the line, optionally
//!   followed by a `{ ... }` block (the `{` may also come on a following line);
//! - `#` and `!` start a comment anywhere outside double quotes; `\#` / `\!` are literal;
//! - `"a b"` is one word, quotes removed;
//! - an unquoted `{` or `}` is a token of its own even when stuck to a word, and what
//!   follows it on the line starts a new statement (so `url { path / }` is accepted);
//! - keepalived's conditional and macro lines (`@id ...`, `@^id ...`, `$NAME=value`,
//!   `$NAME` references, `~SEQ(...)`) are not interpreted: such a line is kept as a
//!   statement whose keyword is its raw first word, for the translator to report.
//!
//! `include PATTERN` (and 2.2's `includer`/`includem`/`includew`/`includeb`/`includea`)
//! may appear at any level; the statements of the matched files replace it. keepalived
//! `chdir()`s into the directory of each file it opens, so a relative pattern is resolved
//! against the directory of the file that contains the `include`; we do the same without
//! changing the process's directory. Files matched by a wildcard that are directories,
//! not regular files or executable are skipped, as keepalived skips them. Unlike
//! keepalived, which lets a block opened in one file be closed in another, each file must
//! have balanced braces on its own.

mod glob;
mod lex;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::ast::{BraceProblem, Origin, Stmt};
use lex::{Tok, Token};

/// How deep includes may nest. keepalived itself has no limit (an include loop runs it
/// out of file descriptors); real configurations nest one or two levels.
pub const MAX_INCLUDE_DEPTH: usize = 32;

/// Why a keepalived configuration could not be parsed. Every variant about a place in a
/// file displays as `file:line: ...`.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The top-level file could not be read.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// A file named by an include could not be read.
    #[error("{origin}: cannot read included file {}: {source}", path.display())]
    IncludeIo {
        origin: Origin,
        path: PathBuf,
        source: io::Error,
    },
    /// A double quote is not closed on its line (keepalived strings never span lines).
    #[error("{origin}: unterminated double quote")]
    UnterminatedQuote { origin: Origin },
    /// Braces do not pair up; `origin` is the offending brace (for a block that is never
    /// closed, its `{`).
    #[error("{origin}: {problem}")]
    Unbalanced {
        origin: Origin,
        problem: BraceProblem,
    },
    /// Includes nest deeper than [`MAX_INCLUDE_DEPTH`]; `origin` is the include that went
    /// one level too deep.
    #[error("{origin}: includes nested more than {limit} deep (is there an include loop?)")]
    IncludeDepth { origin: Origin, limit: usize },
    /// An include without wildcards names a file that does not exist. keepalived only logs
    /// this, but a configuration that silently lost part of itself is not one to import.
    #[error("{origin}: included file {} does not exist", path.display())]
    IncludeMissing { origin: Origin, path: PathBuf },
    /// `includew` / `includea` with a wildcard pattern that matches no file (keepalived
    /// refuses these too).
    #[error("{origin}: include pattern '{pattern}' matches no file")]
    IncludeNoMatch { origin: Origin, pattern: String },
    /// An include without wildcards names a directory, a special file or an executable
    /// file, which keepalived would skip.
    #[error(
        "{origin}: included {} is not a regular non-executable file (keepalived skips it)",
        path.display()
    )]
    IncludeNotFile { origin: Origin, path: PathBuf },
}

/// Parses the file at `path` and everything it includes. Origins of its statements carry
/// `path` as given; those of included files carry the include's directory joined with the
/// matched path.
pub fn parse_file(path: &Path) -> Result<Vec<Stmt>, ParseError> {
    let src = read(path).map_err(|source| ParseError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_at_depth(&src, path, 0)
}

/// Parses `src` as if it were the content of the file `name`: origins carry `name`, and
/// relative include patterns are resolved against `name`'s directory (the current
/// directory if `name` has none). Text without includes touches no file.
pub fn parse_str(src: &str, name: &Path) -> Result<Vec<Stmt>, ParseError> {
    parse_at_depth(src, name, 0)
}

/// Reads a configuration file. keepalived reads bytes, and old configurations have
/// Latin-1 comments, so invalid UTF-8 is replaced rather than refused.
fn read(path: &Path) -> io::Result<String> {
    Ok(String::from_utf8_lossy(&fs::read(path)?).into_owned())
}

fn parse_at_depth(src: &str, name: &Path, depth: usize) -> Result<Vec<Stmt>, ParseError> {
    let file = Arc::new(name.to_path_buf());
    let tokens = lex::lex(src, &file)?;
    let mut parser = Parser {
        tokens: tokens.into_iter().peekable(),
        base: name.parent().map(Path::to_path_buf).unwrap_or_default(),
        file,
        depth,
    };
    parser.block(None)
}

struct Parser {
    tokens: std::iter::Peekable<std::vec::IntoIter<Token>>,
    file: Arc<PathBuf>,
    /// Directory relative include patterns are resolved against.
    base: PathBuf,
    /// Include depth of this file (0 for the top-level file).
    depth: usize,
}

impl Parser {
    fn origin(&self, line: usize) -> Origin {
        Origin::new(self.file.clone(), line)
    }

    /// Statements up to the `}` closing the block opened at `open` (or to the end of the
    /// file at top level).
    fn block(&mut self, open: Option<Origin>) -> Result<Vec<Stmt>, ParseError> {
        let mut out: Vec<Stmt> = Vec::new();
        // Whether a `{` now opens the block of the last statement: true right after a
        // statement without a block, so that `{` may sit on the line after its keyword.
        let mut can_open = false;
        while let Some(Token { tok, line }) = self.tokens.next() {
            match tok {
                Tok::Eol => {}
                Tok::Close => {
                    return match open {
                        Some(_) => Ok(out),
                        None => Err(self.unbalanced(line, BraceProblem::ExtraClose)),
                    };
                }
                Tok::Open => {
                    let block = self.block(Some(self.origin(line)))?;
                    match out.last_mut() {
                        Some(last) if can_open => last.block = Some(block),
                        _ => return Err(self.unbalanced(line, BraceProblem::StrayOpen)),
                    }
                    can_open = false;
                }
                Tok::Include { pattern, strict } => {
                    out.extend(self.include(self.origin(line), &pattern, strict)?);
                    can_open = false;
                }
                Tok::Word(keyword) => {
                    let mut stmt = Stmt {
                        keyword,
                        args: Vec::new(),
                        block: None,
                        origin: self.origin(line),
                    };
                    while let Some(Token {
                        tok: Tok::Word(w), ..
                    }) = self.tokens.next_if(|t| matches!(t.tok, Tok::Word(_)))
                    {
                        stmt.args.push(w);
                    }
                    can_open = true;
                    if let Some(open) = self.tokens.next_if(|t| t.tok == Tok::Open) {
                        stmt.block = Some(self.block(Some(self.origin(open.line)))?);
                        can_open = false;
                    }
                    out.push(stmt);
                }
            }
        }
        match open {
            Some(origin) => Err(ParseError::Unbalanced {
                origin,
                problem: BraceProblem::NeverClosed,
            }),
            None => Ok(out),
        }
    }

    fn unbalanced(&self, line: usize, problem: BraceProblem) -> ParseError {
        ParseError::Unbalanced {
            origin: self.origin(line),
            problem,
        }
    }

    /// The statements of the files `pattern` names, in keepalived's order.
    fn include(
        &self,
        origin: Origin,
        pattern: &str,
        strict: bool,
    ) -> Result<Vec<Stmt>, ParseError> {
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(ParseError::IncludeDepth {
                origin,
                limit: MAX_INCLUDE_DEPTH,
            });
        }
        let mut files = Vec::new();
        let mut any_wildcard = false;
        for alternative in glob::expand_braces(pattern) {
            if glob::has_wildcards(&alternative) {
                any_wildcard = true;
                files.extend(
                    glob::glob(&self.base, &alternative)
                        .into_iter()
                        .filter(|p| is_loadable(p)),
                );
                continue;
            }
            let path = self.base.join(glob::unescape(&alternative));
            match fs::metadata(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(ParseError::IncludeMissing { origin, path });
                }
                Err(source) => {
                    return Err(ParseError::IncludeIo {
                        origin,
                        path,
                        source,
                    });
                }
                Ok(_) if !is_loadable(&path) => {
                    return Err(ParseError::IncludeNotFile { origin, path });
                }
                Ok(_) => files.push(path),
            }
        }
        if files.is_empty() && any_wildcard && strict {
            return Err(ParseError::IncludeNoMatch {
                origin,
                pattern: pattern.to_owned(),
            });
        }
        let mut out = Vec::new();
        for path in files {
            let src = read(&path).map_err(|source| ParseError::IncludeIo {
                origin: origin.clone(),
                path: path.clone(),
                source,
            })?;
            out.extend(parse_at_depth(&src, &path, self.depth + 1)?);
        }
        Ok(out)
    }
}

/// keepalived's `check_glob_file()`: only regular files without any execute bit are read.
fn is_loadable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 == 0)
}
