//! From the configuration to BFD sessions, and a session kept across a planned restart.
//!
//! Planned restarts stay hitless with BFD on. A router whose BFD session to vipd times out
//! drops vipd's routes at once (BIRD with `bfd on`, FRR with `neighbor X bfd`): exactly what
//! graceful restart exists to avoid. So before exiting on SIGTERM vipd slows every Up
//! session down with a Poll sequence (10 s x the multiplier: the routers now wait 30 s
//! with the default multiplier before declaring it down), saves the sessions
//! (discriminators, source port, intervals) in `state_dir/bfd-sessions.json`, and the next
//! process resumes them from there (if started within 25 s, at its first apply of
//! `[bgp]`, and only sessions whose source address and multihop setting are unchanged) and
//! speeds them up again. A crash or a dead host still
//! times out in the fast detection time: nothing is slowed down then.
//!
//! Why not AdminDown on stop: RFC 5882 says a router must not treat it as a failure, and
//! BIRD 2 does not, but a router that does would drop the routes on every restart; the Poll
//! works with any conforming implementation. Removed sessions (a reload, `withdraw_on_stop`)
//! do send AdminDown.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use vipd_bfd::runtime::{Peer, Resume};
use vipd_bfd::session::{Config as Timing, Saved};
use vipd_config::Config;

/// One session per neighbor with BFD enabled.
pub fn peers(cfg: &Config) -> Vec<Peer> {
    let Some(b) = &cfg.bgp else { return vec![] };
    b.neighbors
        .iter()
        .filter_map(|n| {
            let e = n.effective_bfd(&b.bfd);
            e.enabled.then(|| Peer {
                addr: n.address,
                local: n.local_address,
                multihop: n.bfd_multihop(),
                timing: Timing {
                    min_tx: e.min_tx.get(),
                    min_rx: e.min_rx.get(),
                    multiplier: e.multiplier,
                },
            })
        })
        .collect()
}

/// Where the sessions of a stopping process wait for the next one.
fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("bfd-sessions.json")
}

/// How long saved sessions stay usable: past this the routers have declared them down
/// (10 s x a multiplier of at least 3), and resuming them would only confuse.
const RESUME_WITHIN: Duration = Duration::from_secs(25);

#[derive(Serialize, Deserialize)]
struct File {
    /// Seconds since the epoch when saved.
    saved_at: u64,
    sessions: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    addr: std::net::IpAddr,
    /// The session's configured source address and multihop setting: a session is resumed
    /// only if they are unchanged.
    local: Option<std::net::IpAddr>,
    multihop: Option<u8>,
    src_port: u16,
    local_disc: u32,
    remote_disc: u32,
    desired_min_tx: u32,
    required_min_rx: u32,
    remote_min_tx: u32,
    remote_min_rx: u32,
    remote_mult: u8,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Saves the sessions for the next process (written to a temporary file, then renamed).
pub fn save(state_dir: &Path, sessions: &[Resume]) {
    let f = File {
        saved_at: now_secs(),
        sessions: sessions
            .iter()
            .map(|r| Entry {
                addr: r.addr,
                local: r.local,
                multihop: r.multihop,
                src_port: r.src_port,
                local_disc: r.saved.local_disc,
                remote_disc: r.saved.remote_disc,
                desired_min_tx: r.saved.desired_min_tx,
                required_min_rx: r.saved.required_min_rx,
                remote_min_tx: r.saved.remote_min_tx,
                remote_min_rx: r.saved.remote_min_rx,
                remote_mult: r.saved.remote_mult,
            })
            .collect(),
    };
    let p = path(state_dir);
    let tmp = p.with_extension("tmp");
    let r = serde_json::to_vec(&f)
        .map_err(std::io::Error::other)
        .and_then(|b| std::fs::write(&tmp, b))
        .and_then(|()| std::fs::rename(&tmp, &p));
    match r {
        Ok(()) => info!(
            sessions = sessions.len(),
            "BFD sessions slowed down and saved for the next process"
        ),
        Err(e) => {
            warn!(file = %p.display(), error = %e, "cannot save the BFD sessions: the next process starts them afresh")
        }
    }
}

/// The sessions a previous process saved, if recent enough; the file is removed either way
/// (it is good for one start).
pub fn load(state_dir: &Path) -> Vec<Resume> {
    let p = path(state_dir);
    let Ok(bytes) = std::fs::read(&p) else {
        return Vec::new();
    };
    let _ = std::fs::remove_file(&p);
    let f: File = match serde_json::from_slice(&bytes) {
        Ok(f) => f,
        Err(e) => {
            warn!(file = %p.display(), error = %e, "saved BFD sessions unreadable; starting them afresh");
            return Vec::new();
        }
    };
    let age = now_secs().saturating_sub(f.saved_at);
    if age > RESUME_WITHIN.as_secs() {
        info!(
            age_s = age,
            "saved BFD sessions too old to resume; starting them afresh"
        );
        return Vec::new();
    }
    f.sessions
        .into_iter()
        .map(|e| Resume {
            addr: e.addr,
            local: e.local,
            multihop: e.multihop,
            src_port: e.src_port,
            saved: Saved {
                local_disc: e.local_disc,
                remote_disc: e.remote_disc,
                state: vipd_bfd::packet::State::Up,
                desired_min_tx: e.desired_min_tx,
                required_min_rx: e.required_min_rx,
                remote_min_tx: e.remote_min_tx,
                remote_min_rx: e.remote_min_rx,
                remote_mult: e.remote_mult,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resume() -> Resume {
        Resume {
            addr: "192.0.2.254".parse().expect("ip"),
            local: None,
            multihop: None,
            src_port: 49200,
            saved: Saved {
                local_disc: 7,
                remote_disc: 9,
                state: vipd_bfd::packet::State::Up,
                desired_min_tx: 10_000_000,
                required_min_rx: 10_000_000,
                remote_min_tx: 100_000,
                remote_min_rx: 100_000,
                remote_mult: 3,
            },
        }
    }

    #[test]
    fn saved_sessions_are_loaded_once() {
        let dir = std::env::temp_dir().join(format!("vipd-bfd-save-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        save(&dir, &[resume()]);
        assert_eq!(load(&dir), vec![resume()]);
        assert!(load(&dir).is_empty(), "good for one start");
        std::fs::write(path(&dir), "{not json").expect("write");
        assert!(load(&dir).is_empty());
        let old = format!("{{\"saved_at\": {}, \"sessions\": []}}", now_secs() - 60);
        std::fs::write(path(&dir), old).expect("write");
        assert!(load(&dir).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_neighbors_with_bfd_enabled_get_a_session() {
        let cfg = vipd_config::load_str(
            "[global]\nrouter_id = \"192.0.2.1\"\n[bgp]\nlocal_as = 65001\nbfd = { enabled = true }\n[[bgp.neighbor]]\naddress = \"192.0.2.254\"\nremote_as = 65010\n[[bgp.neighbor]]\naddress = \"192.0.2.253\"\nremote_as = 65010\nbfd = { enabled = false }\n[[bgp.neighbor]]\naddress = \"198.51.100.9\"\nremote_as = 65010\nmultihop = 3\nbfd = { min_tx = \"300ms\" }\n[[service]]\nname = \"a\"\nvip = \"198.51.100.1\"\nport = 80\n[[service.real_server]]\naddress = \"10.0.0.1\"\n",
            "t.toml",
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
        let p = peers(&cfg);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].multihop, None);
        assert_eq!(p[1].multihop, Some(3));
        assert_eq!(p[1].timing.min_tx, Duration::from_millis(300));
        assert_eq!(p[1].timing.min_rx, Duration::from_millis(100));
    }
}
