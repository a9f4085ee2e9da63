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
//! assert_eq!(loaded.config.services[0].scheduler, "mh");
//! ```

mod diag;
mod load;
mod model;
mod types;
mod validate;

pub use diag::{Diagnostic, Location, Path, Report, Seg, Severity};
pub use load::{ConfigError, Loaded, load_file, load_str};
pub use model::*;
pub use types::{Community, Duration, LargeCommunity, Percent};
