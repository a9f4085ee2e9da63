//! The vipd configuration: model, defaults and validation.
//!
//! Pure (no I/O beyond reading the file, no async): the daemon, the CLI and the tests all go
//! through [`load_file`] / [`load_str`], so a config that `vipd check-config` accepts is
//! exactly one that `vipd run` and `vipd reload` accept.
//!
//! ```
//! let src = r#"
//! [[service]]
//! name = "web"
//! vip = "198.51.100.1"
//! port = 80
//! [[service.real_server]]
//! address = "192.0.2.10"
//! "#;
//! let loaded = vipd_config::load_str(src, "vipd.toml").unwrap();
//! assert_eq!(loaded.config.services[0].scheduler, vipd_config::Scheduler::Mh);
//! ```

mod diag;
mod fleet;
mod http_status;
mod load;
mod model;
mod probes;
mod secrets;
mod types;
mod validate;

pub use diag::{Diagnostic, Location, Path, Report, Seg, Severity};
pub use fleet::peer_authority;
pub use http_status::StatusRange;
pub use load::{ConfigError, Loaded, load_file, load_str};
pub use model::*;
pub use probes::{PROBE_MARK_BASE, PROBE_MARKS, TunnelProbe};
pub use types::{Community, Duration, ExtCommunity, LargeCommunity, Percent, Scheduler, Secret};

/// `global.control_socket` of the file at `path`, read leniently: the rest of the file may
/// be invalid (this is how `vipd reload` reaches a daemon to which it brings a broken file,
/// so the daemon can refuse it and say why). The default when the key cannot be read.
pub fn control_socket_of(path: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|t| {
            t.get("global")?
                .get("control_socket")?
                .as_str()
                .map(std::path::PathBuf::from)
        })
        .unwrap_or_else(|| Global::default().control_socket)
}

#[cfg(test)]
mod lenient_tests {
    #[test]
    fn control_socket_is_found_in_an_otherwise_invalid_file() {
        let dir = std::env::temp_dir().join(format!("vipd-cs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("a.toml");
        std::fs::write(
            &f,
            "[global]\ncontrol_socket = \"/x/y.sock\"\nbogus_key = 1\n",
        )
        .unwrap();
        assert!(crate::load_file(&f).is_err());
        assert_eq!(
            super::control_socket_of(&f),
            std::path::Path::new("/x/y.sock")
        );
        std::fs::write(&f, "[global\n").unwrap();
        assert_eq!(
            super::control_socket_of(&f),
            std::path::Path::new("/run/vipd/vipd.sock")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
