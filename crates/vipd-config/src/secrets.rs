//! Secrets at load: `password_file` read into the neighbor's key, and warnings when a key
//! sits in a file every user can read (group-readable, as the Debian package installs the
//! configuration, root:root 0640, is fine).

use std::os::unix::fs::MetadataExt as _;
use std::path::Path as FsPath;

use crate::diag::{Diagnostic, Path};
use crate::model::Config;
use crate::types::Secret;

/// The longest TCP MD5 key the kernel takes.
const MD5_MAX_KEY: usize = 80;

/// Reads each neighbor's `password_file` into its `password` (the first line, without its
/// line ending). An unreadable or malformed file is an error at that key.
pub(crate) fn resolve(config: &mut Config) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let Some(b) = config.bgp.as_mut() else {
        return out;
    };
    for (i, n) in b.neighbors.iter_mut().enumerate() {
        let Some(file) = n.password_file.clone() else {
            continue;
        };
        let at = Path::root()
            .key("bgp")
            .key("neighbor")
            .idx(i)
            .key("password_file");
        match read_key(&file) {
            Ok((key, mode)) => {
                if mode & 0o004 != 0 {
                    out.push(
                        Diagnostic::warning(
                            at.clone(),
                            format!(
                                "{} holds a TCP MD5 key and is readable by every user (mode {:o})",
                                file.display(),
                                mode & 0o777
                            ),
                        )
                        .hint(format!("chmod 600 {}", file.display())),
                    );
                }
                if key.is_empty() || key.len() > MD5_MAX_KEY {
                    out.push(
                        Diagnostic::error(
                            at,
                            format!("the key in {} must be 1 to {MD5_MAX_KEY} bytes", file.display()),
                        )
                        .hint("its first line is the key; the kernel's TCP_MD5SIG key is at most 80 bytes"),
                    );
                } else {
                    n.password = Some(Secret::from(key));
                }
            }
            Err(e) => out.push(
                Diagnostic::error(at, format!("cannot read {}: {e}", file.display()))
                    .hint("the file must exist and be readable by vipd (root)"),
            ),
        }
    }
    out
}

/// The first line of `file` (at most 4 KiB are read) and the file's mode.
fn read_key(file: &FsPath) -> std::io::Result<(String, u32)> {
    use std::io::Read as _;
    let f = std::fs::File::open(file)?;
    let mode = f.metadata()?.mode();
    let mut buf = Vec::new();
    f.take(4096).read_to_end(&mut buf)?;
    let text = String::from_utf8(buf)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))?;
    let line = text.lines().next().unwrap_or("");
    Ok((line.to_string(), mode))
}

/// A warning for each neighbor whose `password` is written in a configuration file of mode
/// `mode` that every user can read.
pub(crate) fn exposed_inline(config: &Config, file: &FsPath, mode: u32) -> Vec<Diagnostic> {
    let Some(b) = &config.bgp else {
        return Vec::new();
    };
    if mode & 0o004 == 0 {
        return Vec::new();
    }
    b.neighbors
        .iter()
        .enumerate()
        .filter(|(_, n)| n.password.is_some() && n.password_file.is_none())
        .map(|(i, _)| {
            Diagnostic::warning(
                Path::root()
                    .key("bgp")
                    .key("neighbor")
                    .idx(i)
                    .key("password"),
                format!(
                    "{} holds a TCP MD5 key and is readable by every user (mode {:o})",
                    file.display(),
                    mode & 0o777
                ),
            )
            .hint(format!(
                "chmod 640 {} (root:root), or move the key to a password_file of mode 600",
                file.display()
            ))
        })
        .collect()
}
