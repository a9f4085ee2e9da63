//! `[fleet]`: each key works (the accepted case) or is refused where it is written.

use super::tests::{BASE, error_at};
use crate::load_str;

/// `BASE` with a `[fleet]` table of these lines appended.
fn fleet(lines: &str) -> String {
    format!("{BASE}\n[fleet]\n{lines}\n")
}

#[test]
fn accepted_with_defaults_and_explicit_values() {
    let l = load_str(
        &fleet("peers = [\"http://10.8.0.2:9180\", \"http://[2001:db8::2]:9180/\"]"),
        "t.toml",
    )
    .unwrap();
    let f = l.config.fleet.unwrap();
    assert_eq!(f.peers.len(), 2);
    assert_eq!(f.interval.get(), std::time::Duration::from_secs(5));
    assert_eq!(f.timeout.get(), std::time::Duration::from_secs(2));
    let l = load_str(
        &fleet("peers = [\"http://d2:9180\"]\ninterval = \"10s\"\ntimeout = \"500ms\""),
        "t.toml",
    )
    .unwrap();
    let f = l.config.fleet.unwrap();
    assert_eq!(f.interval.get(), std::time::Duration::from_secs(10));
    assert_eq!(f.timeout.get(), std::time::Duration::from_millis(500));
}

#[test]
fn peer_urls_are_checked() {
    let src = fleet("peers = [\n  \"http://10.8.0.2:9180\",\n  \"https://10.8.0.3:9180\",\n]");
    let d = error_at(
        &src,
        "invalid peer URL \"https://10.8.0.3:9180\"",
        "https://",
    );
    assert_eq!(d.path.to_string(), "fleet.peers[1]");
    let src = fleet("peers = [\n  \"http://10.8.0.2:9180\",\n  \"http://10.8.0.2:9180/\",\n]");
    let d = error_at(&src, "is listed twice", "9180/");
    assert_eq!(d.path.to_string(), "fleet.peers[1]");
    error_at(&fleet("peers = []"), "[fleet] lists no peers", "peers");
    let own = fleet("peers = [\"http://127.0.0.1:9180\"]");
    let d = error_at(&own, "is this director's own global.listen", "peers");
    assert_eq!(d.path.to_string(), "fleet.peers[0]");
}

#[test]
fn timeout_and_interval_are_checked() {
    error_at(
        &fleet("peers = [\"http://10.8.0.2:9180\"]\ninterval = \"500ms\""),
        "fleet.interval must be at least 1s",
        "interval",
    );
    error_at(
        &fleet("peers = [\"http://10.8.0.2:9180\"]\ntimeout = \"5s\""),
        "must be above 0 and shorter than fleet.interval",
        "timeout",
    );
}

#[test]
fn refused_without_a_listener_and_on_a_backend() {
    let src = fleet("peers = [\"http://10.8.0.2:9180\"]").replacen(
        "router_id = \"192.0.2.1\"",
        "router_id = \"192.0.2.1\"\nlisten = \"off\"",
        1,
    );
    error_at(&src, "global.listen is \"off\"", "[fleet]");
    let backend = "[global]\nrole = \"backend\"\n[backend]\nallowed_directors = [\"192.0.2.1\"]\n[[backend.tunnel]]\nname = \"tunlv6\"\nmode = \"ip6ip6\"\nlocal = \"2001:db8::2\"\nvips = [\"2001:db8::1\"]\n[fleet]\npeers = [\"http://10.8.0.2:9180\"]\n";
    error_at(backend, "a backend has none", "[fleet]");
}
