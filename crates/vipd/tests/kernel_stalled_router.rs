//! Kernel test (UML guest, `make test-kernel`): the whole binary next to a router that stops
//! reading. A raw peer completes OPEN, then never reads again (its receive window closes)
//! and sends ROUTE-REFRESH every 50 ms; vipd has 200 VIPs to announce, each with its own
//! attributes, so its writes to that peer block for good (both ends' socket buffers are
//! shrunk to 4 KB). BIRD is the other neighbor. Required: vipd's hold timer still ends the
//! stalled session (ROUTE-REFRESH is not a KEEPALIVE), `vipd reload` removing the stalled
//! neighbor returns in under 5 s, SIGTERM with a stalled session ends vipd in under 5 s with
//! success, and BIRD's session never resets and keeps every route, after the stop too
//! (graceful restart).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

mod common;

use common::{Vipd, birdc, start_bird};
use vipd_bgp::wire::{
    Afi, Capability, Message, Open, RouteRefresh, RouteRefreshSubtype, Safi, Session,
};
use vipd_testkit::{Feature, Lan, Netns, require};

const VIPS: usize = 200;
const RAW: &str = "10.8.0.253";

fn config(dir: &Path, with_raw: bool) -> String {
    let mut c = format!(
        "[global]\nrouter_id = \"10.8.0.1\"\nstate_dir = \"{d}/state\"\ndrain_file = \"{d}/disable\"\ncontrol_socket = \"{d}/vipd.sock\"\nlisten = \"127.0.0.1:9180\"\n\n[bgp]\nlocal_as = 65001\nhold_time = 9\nconnect_retry = 1\n[[bgp.neighbor]]\naddress = \"10.8.0.254\"\nremote_as = 65010\n",
        d = dir.display()
    );
    if with_raw {
        c.push_str(&format!(
            "[[bgp.neighbor]]\naddress = \"{RAW}\"\nremote_as = 65010\n"
        ));
    }
    for i in 0..VIPS {
        // Distinct large communities per VIP: one UPDATE each, ~500 bytes.
        let lc: Vec<String> = (0..40).map(|k| format!("\"65001:{i}:{k}\"")).collect();
        c.push_str(&format!(
            "\n[[service]]\nname = \"s{i}\"\nvip = \"198.51.{}.{}\"\nport = 80\n[service.announce]\nlarge_communities = [{}]\n[[service.real_server]]\naddress = \"10.9.0.10\"\n",
            100 + i / 250,
            1 + i % 250,
            lc.join(", ")
        ));
    }
    c
}

const BIRD: &str = "router id 10.8.0.254;\nprotocol device {}\nprotocol bgp vipd {\n  local 10.8.0.254 as 65010;\n  neighbor 10.8.0.1 as 65001;\n  hold time 9;\n  connect delay time 1;\n  error wait time 1, 2;\n  ipv4 { import all; export none; };\n}\n";

/// Reads one whole message (the handshake only: after it, the raw peer never reads).
fn read_msg(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut hdr = [0u8; 19];
    s.read_exact(&mut hdr)?;
    let len = usize::from(u16::from_be_bytes([hdr[16], hdr[17]]));
    let mut body = vec![0u8; len.saturating_sub(19)];
    s.read_exact(&mut body)?;
    Ok([&hdr[..], &body].concat())
}

/// For every connection: a normal handshake (hold time 9), then never a read again and a
/// ROUTE-REFRESH every 50 ms until the connection breaks. Each handshake is reported on `up`.
fn stalling_peer(l: TcpListener, up: Sender<Instant>) {
    let session = Session {
        four_octet_as: true,
        extended_message: false,
    };
    for conn in l.incoming() {
        let Ok(mut s) = conn else { continue };
        let up = up.clone();
        std::thread::spawn(move || {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            if read_msg(&mut s).is_err() {
                return;
            }
            let open = Message::Open(Open {
                asn: 65010,
                hold_time: 9,
                router_id: Ipv4Addr::new(10, 8, 0, 253),
                capabilities: vec![
                    Capability::Multiprotocol(Afi::Ipv4, Safi::Unicast),
                    Capability::RouteRefresh,
                    Capability::FourOctetAs(65010),
                ],
            });
            let rr = Message::RouteRefresh(RouteRefresh {
                afi: Afi::Ipv4,
                safi: Safi::Unicast,
                subtype: RouteRefreshSubtype::Request,
            });
            let hello = [
                open.encode(&Session::default()).expect("open"),
                Message::Keepalive.encode(&session).expect("keepalive"),
            ]
            .concat();
            if s.write_all(&hello).is_err() || read_msg(&mut s).is_err() {
                return;
            }
            let _ = up.send(Instant::now());
            let rr = rr.encode(&session).expect("route refresh");
            while s.write_all(&rr).is_ok() {
                std::thread::sleep(Duration::from_millis(50));
            }
        });
    }
}

fn vipd(args: &[&str], cfg: &Path) -> (String, Duration) {
    let start = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_vipd"))
        .args(args)
        .arg("--config")
        .arg(cfg)
        .output()
        .expect("vipd");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (text, start.elapsed())
}

/// Bytes vipd has queued towards the raw peer and not yet sent (ss's Send-Q), summed.
fn send_q(director: &Netns) -> u64 {
    director
        .exec(&["ss", "-tnH", "dst", RAW])
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .sum()
}

/// The next handshake of the raw peer (within `limit`, else fails saying `what`), then
/// until vipd's writes to it are stuck.
fn next_stall(
    up: &Receiver<Instant>,
    director: &Netns,
    limit: Duration,
    what: &str,
    log: impl Fn() -> String,
) -> Instant {
    let at = up
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} within {limit:?}:\n{}", log()));
    let start = Instant::now();
    while send_q(director) < 1000 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "vipd's writes to the raw peer never backed up: {}",
            director.exec(&["ss", "-tni"])
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    at
}

/// The raw peer stalled, BIRD up with every route; then, unless `withdraw_on_stop`, the
/// hold timer and the reload; then SIGTERM.
fn scenario(tag: &str, withdraw_on_stop: bool) {
    let dir = std::env::temp_dir().join(format!("vipd-kt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let lan = Lan::new(&format!("{tag}l"));
    let rtr = Netns::new(&format!("{tag}-rtr"));
    let raw = Netns::new(&format!("{tag}-raw"));
    let director = Netns::new(&format!("{tag}-dir"));
    lan.attach(&rtr, "eth0", &["10.8.0.254/24"]);
    lan.attach(&raw, "eth0", &["10.8.0.253/24"]);
    lan.attach(&director, "eth0", &["10.8.0.1/24"]);
    // Small socket buffers at both ends of the stalled session: vipd's writes block at once.
    for ns in [&raw, &director] {
        ns.exec(&["sysctl", "-qw", "net.ipv4.tcp_rmem=4096 4096 4096"]);
        ns.exec(&["sysctl", "-qw", "net.ipv4.tcp_wmem=4096 4096 4096"]);
    }
    let (up_tx, up) = channel();
    raw.spawn(move || {
        let l = TcpListener::bind(format!("{RAW}:179")).expect("raw peer listens");
        stalling_peer(l, up_tx);
    });
    let (_bird, ctl) = start_bird(&rtr, &dir, BIRD);
    let cfg = dir.join("vipd.toml");
    let config = |with_raw| {
        let c = config(&dir, with_raw);
        if withdraw_on_stop {
            c.replacen("[bgp]\n", "[bgp]\nwithdraw_on_stop = true\n", 1)
        } else {
            c
        }
    };
    std::fs::write(&cfg, config(true)).expect("cfg");
    let mut v = Vipd::spawn_env(&director, &cfg, &dir, 1, false, &[("RUST_BACKTRACE", "0")]);

    let routes = || {
        birdc(&rtr, &ctl, &["show", "route", "count"])
            .lines()
            .find_map(|l| l.split_whitespace().next()?.parse::<usize>().ok())
            .unwrap_or(0)
    };
    let state = || common::bird_session_since(&rtr, &ctl);

    // 1. Up: the raw session stalls, BIRD gets every VIP.
    let log = || std::fs::read_to_string(&v.log).unwrap_or_default();
    let first = next_stall(
        &up,
        &director,
        Duration::from_secs(30),
        "the raw peer's session did not come up",
        log,
    );
    let start = Instant::now();
    while routes() < VIPS {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "BIRD has {} routes:\n{}",
            routes(),
            v.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let since = state();
    assert!(since.ends_with("Established"), "{since}");

    if !withdraw_on_stop {
        // 2. vipd's hold timer ends the stalled session (its ROUTE-REFRESHes are not
        // KEEPALIVEs); vipd reconnects and stalls again.
        let second = next_stall(
            &up,
            &director,
            Duration::from_secs(14),
            "the stalled session did not end by the hold timer (9 s) and come back",
            log,
        );
        println!("the stalled session lasted {:?}", second - first);
        assert!(v.log().contains("hold timer expired"), "{}", v.log());

        // 3. A reload that removes the stalled neighbor returns promptly.
        std::fs::write(&cfg, config(false)).expect("cfg");
        let (out, took) = vipd(&["reload"], &cfg);
        println!("reload removing the stalled neighbor: {took:?}");
        assert!(took < Duration::from_secs(5), "reload took {took:?}: {out}");
        assert!(out.contains("ok (applied)"), "{out}");
        let start = Instant::now();
        while send_q(&director) > 0 || director.exec(&["ss", "-tnH", "dst", RAW]).contains(RAW) {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the stalled connection outlived its neighbor: {}",
                director.exec(&["ss", "-tn"])
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(state(), since, "BIRD's session reset");
        assert_eq!(routes(), VIPS);
    }

    if !withdraw_on_stop {
        // 4. Back, stalled again.
        std::fs::write(&cfg, config(true)).expect("cfg");
        let (out, _) = vipd(&["reload"], &cfg);
        assert!(out.contains("ok (applied)"), "{out}");
        next_stall(
            &up,
            &director,
            Duration::from_secs(30),
            "the raw peer's session did not come back",
            log,
        );
    }
    // 5. SIGTERM while a session is stalled.
    assert_eq!(state(), since, "BIRD's session reset");
    let start = Instant::now();
    v.signal(&cfg, "TERM");
    let st = v.wait_exit(Duration::from_secs(10));
    let took = start.elapsed();
    println!(
        "SIGTERM with a stalled session (withdraw_on_stop {withdraw_on_stop}): exited after {took:?}"
    );
    let st = st.unwrap_or_else(|| panic!("vipd still runs 10 s after SIGTERM:\n{}", v.log()));
    assert!(st.success(), "exit {st:?}:\n{}", v.log());
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    std::thread::sleep(Duration::from_secs(1));
    // Graceful restart: BIRD keeps every route after the stop; `withdraw_on_stop`: none.
    let want = if withdraw_on_stop { 0 } else { VIPS };
    assert_eq!(
        routes(),
        want,
        "{}",
        birdc(&rtr, &ctl, &["show", "protocols", "all"])
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_router_that_stops_reading_blocks_neither_reload_nor_stop_and_bird_keeps_its_routes() {
    if require(
        "a_router_that_stops_reading_blocks_neither_reload_nor_stop_and_bird_keeps_its_routes",
        &[Feature::Ipvs],
    ) {
        scenario("stg", false);
    }
}

/// With `withdraw_on_stop`, the stop closes every session with a Cease after the
/// withdrawals: the stalled neighbor's Cease can never be written, and the stop still ends
/// within 5 s, with BIRD's routes withdrawn.
#[test]
fn a_stop_that_withdraws_is_not_blocked_by_a_router_that_stops_reading() {
    if require(
        "a_stop_that_withdraws_is_not_blocked_by_a_router_that_stops_reading",
        &[Feature::Ipvs],
    ) {
        scenario("stw", true);
    }
}
