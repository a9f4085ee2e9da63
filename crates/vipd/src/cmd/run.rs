//! `vipd run`: load the configuration, report what this node manages, and serve until told
//! to stop.
//!
//! The daemon's components (IPVS reconciler, health checks, BGP speaker) attach here as they
//! are built; what exists now is the life cycle they plug into: refuse a bad config at start,
//! re-validate on SIGHUP keeping the running config when the new one is bad, and stop on
//! SIGTERM/SIGINT.

use std::path::Path;
use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};
use vipd_config::{Config, Loaded};

/// Entry point of `vipd run`.
pub fn run(path: &Path) -> ExitCode {
    let loaded = match vipd_config::load_file(path) {
        Ok(l) => l,
        Err(e) => {
            // Logging is not set up yet (its format comes from the config): plain stderr.
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    crate::logging::init(loaded.config.global.log_format);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(path, loaded)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "vipd stopped on an error");
            ExitCode::FAILURE
        }
    }
}

async fn serve(path: &Path, loaded: Loaded) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    log_warnings(&loaded);
    let mut running = loaded.config;
    info!(config = %path.display(), version = env!("CARGO_PKG_VERSION"), "vipd started");
    describe(&running);
    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { info!("SIGINT: stopping"); break; }
            _ = hup.recv() => {
                match vipd_config::load_file(path) {
                    Ok(new) => {
                        log_warnings(&new);
                        if new.config == running {
                            info!(config = %path.display(), "reload: configuration unchanged");
                        } else {
                            info!(config = %path.display(), "reload: new configuration accepted");
                            running = new.config;
                            describe(&running);
                        }
                    }
                    Err(e) => {
                        error!(config = %path.display(), errors = e.error_count(),
                            "reload refused, the running configuration stays:\n{e}");
                    }
                }
            }
        }
    }
    info!("vipd stopped");
    Ok(())
}

fn log_warnings(l: &Loaded) {
    if !l.warnings.is_empty() {
        warn!("configuration warnings:\n{}", l.render_warnings());
    }
}

/// Logs what the configuration asks this node to manage, one line per object.
fn describe(c: &Config) {
    info!(role = ?c.global.role, drain_file = %c.global.drain_file.display(),
        control_socket = %c.global.control_socket.display(), "node");
    for (name, value, _) in c.global.sysctl.entries() {
        info!(
            sysctl = format!("net.ipv4.vs.{name}"),
            value, "would set sysctl"
        );
    }
    for s in &c.services {
        info!(service = %s.name, vip = %s.vip, port = s.port, protocol = ?s.protocol,
            scheduler = %s.scheduler, mh_port = s.mh_port, mh_fallback = s.mh_fallback,
            forwarding = ?s.forwarding, quorum = s.quorum, real_servers = s.real_servers.len(),
            "would manage IPVS service");
        for r in &s.real_servers {
            info!(service = %s.name, address = %r.address, port = r.port.unwrap_or(s.port),
                weight = r.weight, "would manage real server");
        }
    }
    if let Some(b) = &c.bgp {
        for n in &b.neighbors {
            info!(neighbor = %n.address, remote_as = n.remote_as, local_as = b.local_as,
                families = ?n.effective_families(), md5 = n.password.is_some(),
                "would peer with");
        }
    }
    if let Some(b) = &c.backend {
        for t in &b.tunnels {
            info!(device = %t.name, mode = ?t.mode, vips = ?t.vips, "would keep tunnel device");
        }
    }
}
