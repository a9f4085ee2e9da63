//! IPVS sysctls under `/proc/sys/net/ipv4/vs/`.
//!
//! They are per network namespace: the kernel resolves `/proc/sys/net` against the namespace
//! of the thread that opens the file, so call this from the namespace to configure.

use std::path::{Path, PathBuf};

/// One sysctl written, with its previous value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysctlChange {
    /// Full name, e.g. `net.ipv4.vs.sloppy_tcp`.
    pub name: String,
    /// Value before.
    pub old: String,
    /// Value written.
    pub new: String,
}

/// A sysctl that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("sysctl {name}: {source}{}", if source.kind() == std::io::ErrorKind::NotFound { " (is ip_vs loaded?)" } else { "" })]
pub struct SysctlError {
    /// Full name.
    pub name: String,
    /// The I/O error.
    pub source: std::io::Error,
}

/// Sets `net.ipv4.vs.<name>` for each `(name, value)`, writing only those that differ, and
/// returns what changed. Stops at the first error (the config was validated, so an error
/// means the kernel lacks the setting or vipd lacks the right to change it).
pub fn apply_ipvs(entries: &[(&str, u32)]) -> Result<Vec<SysctlChange>, SysctlError> {
    apply_under(Path::new("/proc/sys/net/ipv4/vs"), "net.ipv4.vs", entries)
}

fn apply_under(
    dir: &Path,
    prefix: &str,
    entries: &[(&str, u32)],
) -> Result<Vec<SysctlChange>, SysctlError> {
    let mut changes = Vec::new();
    for (name, value) in entries {
        let full = format!("{prefix}.{name}");
        let path: PathBuf = dir.join(name);
        let err = |source| SysctlError {
            name: full.clone(),
            source,
        };
        let old = std::fs::read_to_string(&path)
            .map_err(err)?
            .trim()
            .to_string();
        let new = value.to_string();
        if old != new {
            std::fs::write(&path, &new).map_err(err)?;
            changes.push(SysctlChange {
                name: full,
                old,
                new,
            });
        }
    }
    Ok(changes)
}

/// Reads a sysctl given by its dotted name (`net.ipv4.conf.all.rp_filter`), trimmed.
pub fn get(name: &str) -> Result<String, SysctlError> {
    let path = Path::new("/proc/sys").join(name.replace('.', "/"));
    std::fs::read_to_string(&path)
        .map(|v| v.trim().to_string())
        .map_err(|source| SysctlError {
            name: name.to_string(),
            source,
        })
}

/// Sets a sysctl given by its dotted name (`net.ipv4.conf.all.rp_filter`).
pub fn set(name: &str, value: &str) -> Result<Option<SysctlChange>, SysctlError> {
    let path = Path::new("/proc/sys").join(name.replace('.', "/"));
    let err = |source| SysctlError {
        name: name.to_string(),
        source,
    };
    let old = std::fs::read_to_string(&path)
        .map_err(err)?
        .trim()
        .to_string();
    if old == value {
        return Ok(None);
    }
    std::fs::write(&path, value).map_err(err)?;
    Ok(Some(SysctlChange {
        name: name.to_string(),
        old,
        new: value.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_what_differs_and_reports_old_values() {
        let dir = std::env::temp_dir().join(format!("vipd-sysctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("sloppy_tcp"), "0\n").unwrap();
        std::fs::write(dir.join("expire_nodest_conn"), "0\n").unwrap();
        let c = apply_under(
            &dir,
            "net.ipv4.vs",
            &[("sloppy_tcp", 1), ("expire_nodest_conn", 0)],
        )
        .unwrap();
        assert_eq!(
            c,
            vec![SysctlChange {
                name: "net.ipv4.vs.sloppy_tcp".into(),
                old: "0".into(),
                new: "1".into()
            }]
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("sloppy_tcp")).unwrap(),
            "1"
        );
        assert!(
            apply_under(&dir, "net.ipv4.vs", &[("sloppy_tcp", 1)])
                .unwrap()
                .is_empty()
        );
        let e = apply_under(&dir, "net.ipv4.vs", &[("nope", 1)]).unwrap_err();
        assert!(
            e.to_string().contains("net.ipv4.vs.nope")
                && e.to_string().contains("is ip_vs loaded?"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
