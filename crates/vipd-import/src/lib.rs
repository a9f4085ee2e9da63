//! Parsers for the configuration files of the tools vipd replaces: keepalived
//! (`keepalived.conf`, with its `include`s) and ExaBGP (`exabgp.conf`, plus the command line
//! of its `healthcheck` helper).
//!
//! This crate only turns text into a syntax tree ([`Stmt`]s that keep their file and line);
//! it knows nothing of what the keywords mean. The translation to vipd's TOML is built on
//! top of it, so that the translator can point at the exact `file:line` of every statement
//! it cannot carry over.
//!
//! Pure: no async, no I/O besides reading the configuration files themselves (and listing
//! directories to expand keepalived's include globs).
//!
//! ```
//! use std::path::Path;
//! let src = "virtual_server 192.0.2.1 80 {\n  real_server 10.0.0.1 80 {\n    weight 2\n  }\n}\n";
//! let stmts = vipd_import::keepalived::parse_str(src, Path::new("keepalived.conf")).unwrap();
//! assert_eq!(stmts[0].keyword, "virtual_server");
//! assert_eq!(stmts[0].children()[0].args, ["10.0.0.1", "80"]);
//! assert_eq!(stmts[0].children()[0].children()[0].origin.line, 3);
//! ```

mod ast;
pub mod exabgp;
pub mod keepalived;
mod translate;

pub use ast::{BraceProblem, Origin, Stmt};
pub use translate::{Exabgp, Import, ImportError, Omission, import};
