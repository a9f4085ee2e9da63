//! `vipd status` and `vipd reload` on the command line: one request on the control socket,
//! the answer printed (the human form reads like `ipvsadm -Ln` plus `birdc show protocols`).

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use super::{Announce, Status};

/// Sends one command line to the daemon; its answer, or the error already explained.
fn ask(socket: &Path, command: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach vipd at {}: {e}\n(is `vipd run` running? the socket is global.control_socket; root only)",
            socket.display()
        )
    })?;
    let mut text = String::new();
    s.write_all(format!("{command}\n").as_bytes())
        .and_then(|()| s.read_to_string(&mut text))
        .map_err(|e| format!("control socket: {e}"))?;
    Ok(text)
}

/// `vipd reload`: asks the daemon to re-read its file and prints the outcome; exit 1 when
/// the file was refused (the running configuration stays).
pub fn reload_client(socket: &Path) -> std::process::ExitCode {
    let text = match ask(socket, "reload") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    #[derive(Deserialize)]
    struct Answer {
        reload: Result<String, String>,
    }
    match serde_json::from_str::<Answer>(&text) {
        Ok(Answer { reload: Ok(r) }) => {
            println!("reload: {r}");
            std::process::ExitCode::SUCCESS
        }
        Ok(Answer { reload: Err(e) }) => {
            eprintln!("reload {e}");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unexpected answer ({e}):\n{text}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `vipd status`: asks the daemon and prints the answer.
pub fn client(socket: &Path, json: bool) -> std::process::ExitCode {
    let text = match ask(socket, "status") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if json {
        print!("{text}");
        return std::process::ExitCode::SUCCESS;
    }
    match serde_json::from_str::<Status>(&text) {
        Ok(st) => {
            print!("{}", render(&st));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unexpected answer ({e}):\n{text}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `vipd status --events`: the event history, oldest first (one line each), or its JSON.
pub fn events_client(socket: &Path, json: bool) -> std::process::ExitCode {
    let text = match ask(socket, "events 0") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if json {
        print!("{text}");
        return std::process::ExitCode::SUCCESS;
    }
    match serde_json::from_str::<crate::events::Page>(&text) {
        Ok(page) => {
            if page.truncated {
                println!(
                    "(older events were dropped: the history keeps the last {})",
                    crate::events::CAPACITY
                );
            }
            for e in &page.events {
                println!(
                    "{:>6} {} {}{:<8} {}",
                    e.seq,
                    clock(e.at_ms),
                    if e.warning { "!" } else { " " },
                    format!("{:?}", e.kind).to_lowercase(),
                    e.text
                );
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unexpected answer ({e}):\n{text}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `HH:MM:SS.mmm` (UTC) of a time in milliseconds since the epoch.
fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    )
}

fn announce_word(a: Announce) -> &'static str {
    match a {
        Announce::Announced => "announced",
        Announce::Draining => "draining",
        Announce::Down => "down (announced, worse)",
        Announce::Withdrawn => "withdrawn",
        Announce::NotAnnounced => "not announced",
    }
}

/// The human form: services like `ipvsadm -Ln`, neighbors like `birdc show protocols`.
pub fn render(st: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "vipd {}, up {}s, {}{}",
        st.version,
        st.uptime_secs,
        if st.drained {
            format!("DRAINED ({} present)", st.drain_file)
        } else if st.backend.is_some() && !super::serving(st).0 {
            "NOT SERVING (see PROBLEM)".to_string()
        } else {
            "serving".to_string()
        },
        st.last_reload
            .as_ref()
            .map(|r| format!(", last reload: {r}"))
            .unwrap_or_default()
    );
    if let Some(b) = &st.backend {
        o.push_str(&super::backend::render_text(b));
        return o;
    }
    if let Some(e) = &st.ipvs_error {
        let _ = writeln!(o, "IPVS not readable at the last resync: {e}");
    }
    if let Some(age) = st.ipvs_dump_age_secs {
        let _ = writeln!(
            o,
            "(connection counters as of the last IPVS resync, {age}s ago)"
        );
    }
    let _ = writeln!(o, "Prot LocalAddress:Port Scheduler Flags   [route]");
    let _ = writeln!(
        o,
        "  -> RemoteAddress:Port      Health Weight(cfg) ActiveConn InActConn Reason"
    );
    for s in &st.services {
        let _ = writeln!(
            o,
            "{} {}   [{}: {}; healthy weight {}/{}{}; table {}]  ({})",
            s.key,
            s.scheduler,
            announce_word(s.announce),
            s.announce_reason,
            s.healthy_weight,
            s.quorum,
            if s.panic { ", PANIC" } else { "" },
            s.digest.as_deref().unwrap_or("none"),
            s.name
        );
        if let Some(e) = &s.ipvs_error {
            let _ = writeln!(o, "  IPVS FAILED: {e}");
        }
        for r in &s.real_servers {
            let w = r.ipvs_weight.map_or("-".to_string(), |w| w.to_string());
            let _ = writeln!(
                o,
                "  -> {:<24} {:<6} {:>6}({:<3}) {:>10} {:>9} {}",
                r.address,
                r.health.word(),
                w,
                r.weight,
                r.active_conns,
                r.inact_conns,
                r.reason
            );
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<28} {:<12} {:>8} {:>9} {:>8}  Info",
        "Neighbor", "State", "Since(s)", "Prefixes", "Updates"
    );
    for n in &st.neighbors {
        let _ = writeln!(
            o,
            "{:<28} {:<12} {:>8} {:>9} {:>8}  {}",
            n.address,
            n.state,
            n.established_secs
                .map_or("-".to_string(), |s| s.to_string()),
            n.prefixes_sent,
            n.updates_sent,
            match (&n.description, &n.last_error) {
                (Some(d), Some(e)) => format!("{d}: {e}"),
                (Some(d), None) => d.clone(),
                (None, Some(e)) => e.clone(),
                (None, None) => String::new(),
            }
        );
    }
    if st.neighbors.iter().any(|n| n.bfd.is_some()) {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{:<28} {:<10} {:<10} {:>7} {:>7} {:>7} {:>5} {:>5}  Diagnostic",
            "BFD", "State", "Remote", "TX(ms)", "RX(ms)", "Det(ms)", "Ups", "Downs"
        );
        for n in &st.neighbors {
            let Some(b) = &n.bfd else { continue };
            let _ = writeln!(
                o,
                "{:<28} {:<10} {:<10} {:>7} {:>7} {:>7} {:>5} {:>5}  {}",
                n.address,
                b.state,
                b.remote_state,
                b.tx_interval_ms,
                b.rx_interval_ms,
                b.detection_ms,
                b.ups,
                b.downs,
                b.diag
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{Health, NeighborStatus, RealServerStatus, ServiceStatus};

    #[test]
    fn human_form_reads_like_ipvsadm_and_birdc() {
        let st = Status {
            version: "0.1.0".into(),
            role: vipd_config::Role::Director,
            backend: None,
            router_id: None,
            uptime_secs: 42,
            drained: true,
            drain_file: "/etc/lb/disable".into(),
            last_reload: Some("REFUSED (1 errors; the previous configuration runs)".into()),
            services: vec![ServiceStatus {
                name: "web".into(),
                key: "TCP 198.51.100.1:80".into(),
                scheduler: "mh mh-port".into(),
                announce: Announce::Draining,
                announce_reason: "drain file".into(),
                drained: true,
                healthy_weight: 3,
                quorum: 2,
                panic: false,
                ipvs: crate::status::Ipvs::Programmed,
                ipvs_error: None,
                digest: Some("0123456789abcdef".into()),
                real_servers: vec![
                    RealServerStatus {
                        address: "10.1.0.1:80".into(),
                        health: Health::Up,
                        reason: "HTTP 200".into(),
                        weight: 3,
                        ipvs_weight: Some(3),
                        active_conns: 12,
                        inact_conns: 4,
                        checks: Vec::new(),
                    },
                    RealServerStatus {
                        address: "10.1.0.2:80".into(),
                        health: Health::Down,
                        reason: "connect: Connection refused".into(),
                        weight: 1,
                        ipvs_weight: None,
                        active_conns: 0,
                        inact_conns: 0,
                        checks: Vec::new(),
                    },
                ],
            }],
            neighbors: vec![NeighborStatus {
                address: "10.0.0.254:179".into(),
                description: Some("core-1, rack 4".into()),
                state: "Established".into(),
                established_secs: Some(40),
                prefixes_sent: 1,
                updates_sent: 3,
                last_error: None,
                bfd: Some(crate::status::BfdView {
                    state: "Up".into(),
                    remote_state: "Up".into(),
                    tx_interval_ms: 100,
                    rx_interval_ms: 100,
                    detection_ms: 300,
                    diag: "none".into(),
                    remote_diag: "none".into(),
                    ups: 1,
                    downs: 0,
                }),
            }],
            ipvs_error: None,
            ipvs_dump_age_secs: None,
        };
        let text = render(&st);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "vipd 0.1.0, up 42s, DRAINED (/etc/lb/disable present), last reload: REFUSED (1 errors; the previous configuration runs)"
        );
        assert_eq!(
            lines[3],
            "TCP 198.51.100.1:80 mh mh-port   [draining: drain file; healthy weight 3/2; table 0123456789abcdef]  (web)"
        );
        assert_eq!(
            lines[4],
            "  -> 10.1.0.1:80              up          3(3  )         12         4 HTTP 200"
        );
        assert_eq!(
            lines[5],
            "  -> 10.1.0.2:80              down        -(1  )          0         0 connect: Connection refused"
        );
        assert!(
            text.contains(
                "10.0.0.254:179               Established        40         1        3  core-1, rack 4"
            ),
            "{text}"
        );
        assert!(
            text.contains("10.0.0.254:179               Up         Up             100     100     300     1     0  none"),
            "{text}"
        );
        // JSON round trip (what --json prints is what the daemon sends).
        let back: Status =
            serde_json::from_str(&serde_json::to_string(&st).expect("json")).expect("parse");
        assert_eq!(render(&back), text);
    }
}
