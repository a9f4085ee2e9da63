//! The syntax tree both parsers produce. keepalived and ExaBGP have the same shape of
//! configuration (a keyword, words, an optional `{ }` block), so one type serves both and
//! the translator can share its walking and reporting code.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a token came from: the file (as given, or as resolved for an included file) and
/// the 1-based line. Every statement carries one, so any later diagnostic can say
/// `file:line`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Shared between all statements of a file (files can have thousands of them).
    pub file: Arc<PathBuf>,
    /// 1-based line number.
    pub line: usize,
}

impl Origin {
    /// An origin in `file` at the 1-based `line`.
    pub fn new(file: Arc<PathBuf>, line: usize) -> Self {
        Origin { file, line }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One statement: `keyword arg arg ... [{ children }]`.
///
/// Quoted strings arrive as one argument with the quotes removed; nothing is interpreted
/// (no numbers, no addresses), that is the translator's job.
#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    /// The first word of the statement, exactly as written (for keepalived's unsupported
    /// `@id`, `$NAME=value` and `~SEQ(...)` lines, that raw first word).
    pub keyword: String,
    /// The remaining words, in order.
    pub args: Vec<String>,
    /// The statements between `{` and `}`, if the statement has a block (an empty block
    /// `{ }` is `Some(vec![])`, which is not the same as no block).
    pub block: Option<Vec<Stmt>>,
    /// Where the keyword is.
    pub origin: Origin,
}

impl Stmt {
    /// The statements of the block, or none if there is no block: saves the translator an
    /// `Option` dance when it only wants to iterate.
    pub fn children(&self) -> &[Stmt] {
        self.block.as_deref().unwrap_or(&[])
    }

    /// The `i`-th argument (0-based), if there is one.
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(String::as_str)
    }
}

/// What is wrong with the braces, for the `Unbalanced` errors of both parsers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BraceProblem {
    /// A `}` with no open block.
    ExtraClose,
    /// A `{` whose block reaches the end of the file without its `}`.
    NeverClosed,
    /// A `{` with no statement before it to open a block for.
    StrayOpen,
}

impl fmt::Display for BraceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BraceProblem::ExtraClose => "'}' without a matching '{'",
            BraceProblem::NeverClosed => "'{' is never closed by a '}'",
            BraceProblem::StrayOpen => "'{' without a statement to open a block for",
        })
    }
}
