//! A router that stops reading must not wedge anything. A raw peer completes OPEN, then
//! never reads again (its receive window closes) and sends ROUTE-REFRESH in a loop, while a
//! real BIRD is the other neighbor. The speaker has more to send than the socket buffers
//! hold, so every write to the raw peer blocks. Required: removing that neighbor finishes in
//! under 5 s, its session ends within the hold time (its ROUTE-REFRESHes are not
//! KEEPALIVEs), shutting down finishes in under 5 s, and BIRD's session never resets.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::bird::Bird;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use vipd_bgp::fsm::State;
use vipd_bgp::rib::RouteAttrs;
use vipd_bgp::speaker::{PeerConfig, Speaker};
use vipd_bgp::wire::{
    Afi, Capability, Message, Open, Prefix, RouteRefresh, RouteRefreshSubtype, Safi, Session,
};
use vipd_testkit::{Lan, Netns, require_program};

const ROUTES: u32 = 3000;

fn router(addr: &str) -> PeerConfig {
    common::neighbor(addr, "10.0.0.1", 65001, 65010, common::V4)
}

/// Reads one whole message (the handshake only: after it, the raw peer never reads).
fn read_msg(s: &mut TcpStream) -> Vec<u8> {
    let mut hdr = [0u8; 19];
    s.read_exact(&mut hdr).expect("header");
    let len = usize::from(u16::from_be_bytes([hdr[16], hdr[17]]));
    let mut body = vec![0u8; len - 19];
    s.read_exact(&mut body).expect("body");
    [&hdr[..], &body].concat()
}

/// The raw peer at 10.0.0.253: for every connection, a normal handshake (hold time 9), then
/// never a read again and a ROUTE-REFRESH every 50 ms until the connection breaks. Each
/// completed handshake is reported on `up`.
fn stalling_peer(l: TcpListener, up: UnboundedSender<Instant>) {
    let session = Session {
        four_octet_as: true,
        extended_message: false,
    };
    for conn in l.incoming() {
        let Ok(mut s) = conn else { continue };
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let _open = read_msg(&mut s);
        let open = Message::Open(Open {
            asn: 65010,
            hold_time: 9,
            router_id: Ipv4Addr::new(10, 0, 0, 253),
            capabilities: vec![
                Capability::Multiprotocol(Afi::Ipv4, Safi::Unicast),
                Capability::RouteRefresh,
                Capability::FourOctetAs(65010),
            ],
        });
        let rr = Message::RouteRefresh(RouteRefresh {
            afi: Afi::Ipv4,
            subtype: RouteRefreshSubtype::Request,
            safi: Safi::Unicast,
        })
        .encode(&session)
        .expect("rr");
        s.write_all(&open.encode(&Session::default()).expect("open"))
            .expect("send");
        s.write_all(&Message::Keepalive.encode(&session).expect("ka"))
            .expect("send");
        let _keepalive = read_msg(&mut s);
        let _ = up.send(Instant::now());
        std::thread::spawn(move || {
            while s.write_all(&rr).is_ok() {
                std::thread::sleep(Duration::from_millis(50));
            }
        });
    }
}

/// `ROUTES` host routes, each with its own MED so that each takes an UPDATE of its own:
/// far more bytes than the (shrunk) socket buffers hold.
fn announce_many(s: &Speaker) {
    for i in 0..ROUTES {
        let p = Prefix::host(Ipv4Addr::from(0xc633_0000 + i).into());
        s.announce(
            p,
            RouteAttrs {
                med: Some(i),
                ..RouteAttrs::default()
            },
        );
    }
    s.initial_complete();
}

/// When the raw peer completed its next handshake.
async fn next_session(up: &mut UnboundedReceiver<Instant>, limit: Duration) -> Instant {
    tokio::time::timeout(limit, up.recv())
        .await
        .expect("the raw peer's next session in time")
        .expect("the raw peer is running")
}

fn established(s: &Speaker, addr: &str) -> bool {
    s.status()
        .iter()
        .any(|(a, st)| a.to_string() == addr && st.state == State::Established)
}

#[test]
fn a_peer_that_stops_reading_blocks_neither_its_hold_timer_nor_reload_nor_shutdown() {
    if !require_program(
        "a_peer_that_stops_reading_blocks_neither_its_hold_timer_nor_reload_nor_shutdown",
        "bird",
    ) {
        return;
    }
    let lan = Lan::new("st");
    let spk = Netns::new("st-spk");
    lan.attach(&spk, "eth0", &["10.0.0.1/24"]);
    // Small socket buffers: a few KB of unread data block every further write.
    spk.sysctl("net.ipv4.tcp_wmem", "4096 4096 4096");
    let rtr = Netns::new("st-r1");
    lan.attach(&rtr, "eth0", &["10.0.0.254/24"]);
    let raw = Netns::new("st-raw");
    lan.attach(&raw, "eth0", &["10.0.0.253/24"]);
    raw.sysctl("net.ipv4.tcp_rmem", "4096 4096 4096");
    let dir = std::env::temp_dir().join(format!("vipd-bird-st-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let bird = Bird::start(
        &rtr,
        &dir,
        "router id 10.0.0.254;\nprotocol device {}\nprotocol bgp r1 {\n  local 10.0.0.254 as 65010;\n  neighbor 10.0.0.1 as 65001;\n  hold time 9;\n  ipv4 { import all; export none; };\n}\n",
    );
    let (up_tx, mut up) = unbounded_channel();
    raw.spawn(move || {
        let l = TcpListener::bind("10.0.0.253:179").expect("bind 179");
        stalling_peer(l, up_tx);
    });
    let t = Duration::from_secs(20);
    let count = format!("{ROUTES} of {ROUTES} routes");
    spk.run(move || async move {
        let both = || vec![router("10.0.0.254:179"), router("10.0.0.253:179")];
        let mut s = Speaker::start(both());
        announce_many(&s);
        let (ok, out) = bird
            .until("show route count protocol r1", t, |o| o.contains(&count))
            .await;
        assert!(ok, "BIRD has every route:\n{out}");
        let r1_since = bird.birdc_async("show protocols r1").await;

        // 1. The raw peer is stalled: remove it (what `vipd reload` does).
        next_session(&mut up, t).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        let removed = tokio::time::timeout(
            Duration::from_secs(10),
            s.set_peers(vec![router("10.0.0.254:179")], "removed"),
        )
        .await;
        assert!(
            removed.is_ok(),
            "removing a neighbor that stopped reading did not finish in 10 s"
        );
        println!("removal of the stalled neighbor: {:?}", started.elapsed());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "removal took {:?}",
            started.elapsed()
        );

        // 2. Back again, stalled again: the session must end within the hold time (9 s).
        s.set_peers(both(), "added").await;
        let since = next_session(&mut up, t).await;
        // vipd's side turns Established a moment after the raw peer's handshake is done.
        while !established(&s, "10.0.0.253:179") && since.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            established(&s, "10.0.0.253:179"),
            "the raw peer's session did not come up on vipd's side"
        );
        let deadline = since + Duration::from_secs(13);
        while established(&s, "10.0.0.253:179") && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let st = s.status();
        let raw_st = &st
            .iter()
            .find(|(a, _)| a.to_string() == "10.0.0.253:179")
            .expect("raw")
            .1;
        assert_ne!(
            raw_st.state,
            State::Established,
            "the stalled session is still up {:?} after its handshake",
            since.elapsed()
        );
        let why = raw_st.last_error.clone().unwrap_or_default();
        println!(
            "stalled session ended {:?} after its handshake: {why}",
            since.elapsed()
        );
        assert!(
            why.contains("hold timer") || why.contains("not reading"),
            "why it ended: {why}"
        );

        // 3. Stalled a third time: shutting down must not wait for it.
        next_session(&mut up, Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let out = bird.birdc_async("show protocols r1").await;
        assert!(out.contains("Established"), "{out}");
        assert_eq!(out, r1_since, "BIRD's session never reset");
        let (ok, out) = bird
            .until("show route count protocol r1", t, |o| o.contains(&count))
            .await;
        assert!(ok, "BIRD still has every route:\n{out}");
        let started = Instant::now();
        let done = tokio::time::timeout(Duration::from_secs(10), s.shutdown("test done")).await;
        assert!(
            done.is_ok(),
            "shutdown with a neighbor that stopped reading did not finish in 10 s"
        );
        println!("shutdown with a stalled neighbor: {:?}", started.elapsed());
        println!("shutdown with a stalled neighbor: {:?}", started.elapsed());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "shutdown took {:?}",
            started.elapsed()
        );
    });
}

/// Times of the KEEPALIVEs BIRD received (its packet trace, millisecond timestamps).
fn keepalive_times(log: &std::path::Path) -> Vec<f64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Got KEEPALIVE"))
        .filter_map(|l| {
            let t = l.split_whitespace().nth(1)?;
            let mut hms = t.split(':').map(|x| x.parse::<f64>().ok());
            Some(hms.next()?? * 3600.0 + hms.next()?? * 60.0 + hms.next()??)
        })
        .collect()
}

#[test]
fn keepalives_leave_on_time_while_the_daemon_is_busy() {
    if !require_program("keepalives_leave_on_time_while_the_daemon_is_busy", "bird") {
        return;
    }
    let lan = Lan::new("ka");
    let spk = Netns::new("ka-spk");
    lan.attach(&spk, "eth0", &["10.0.0.1/24"]);
    let rtr = Netns::new("ka-r1");
    lan.attach(&rtr, "eth0", &["10.0.0.254/24"]);
    let dir = std::env::temp_dir().join(format!("vipd-bird-ka-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let trace = dir.join("packets.log");
    let bird = Bird::start(
        &rtr,
        &dir,
        &format!(
            "log \"{}\" all;\ntimeformat log \"%F %T.%3f\";\nrouter id 10.0.0.254;\nprotocol device {{}}\nprotocol bgp r1 {{\n  local 10.0.0.254 as 65010;\n  neighbor 10.0.0.1 as 65001;\n  hold time 9;\n  debug {{ packets }};\n  ipv4 {{ import all; export none; }};\n}}\n",
            trace.display()
        ),
    );
    // The speaker's runtime on a thread of its own, as `vipd run` has it.
    let (rt_tx, rt_rx) = std::sync::mpsc::channel();
    spk.spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt_tx.send(rt.handle().clone()).expect("handle");
        rt.block_on(std::future::pending::<()>());
    });
    let bgp_rt = rt_rx.recv().expect("the speaker's runtime");
    let t = Duration::from_secs(20);
    spk.run(move || async move {
        let s = Speaker::start_on(bgp_rt, vec![router("10.0.0.254:179")], None);
        announce_many(&s);
        let (ok, out) = bird
            .until("show protocols r1", t, |o| o.contains("Established"))
            .await;
        assert!(ok, "{out}");
        // The daemon is busy: its runtime thread computes for 2.5 s at a time (a reload of
        // thousands of services), changing routes in between.
        let from = Instant::now();
        for round in 0..6u32 {
            std::thread::sleep(Duration::from_millis(2500));
            s.announce(
                Prefix::host(Ipv4Addr::new(203, 0, 113, round as u8).into()),
                RouteAttrs::default(),
            );
            tokio::task::yield_now().await;
        }
        let busy = from.elapsed();
        let times = keepalive_times(&trace);
        let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            times.len() >= 4,
            "BIRD saw {} KEEPALIVEs in {busy:?}",
            times.len()
        );
        let worst = gaps.iter().copied().fold(0.0, f64::max);
        println!("KEEPALIVE gaps seen by BIRD while busy: {gaps:.3?}");
        println!("KEEPALIVE gaps seen by BIRD while busy: {gaps:.3?}");
        assert!(
            worst < 3.5,
            "keepalive interval 3 s, but BIRD saw a gap of {worst:.3} s: {gaps:?}"
        );
        s.shutdown("test done").await;
    });
}
