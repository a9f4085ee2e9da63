//! The route's states at a real router (UML guest, BIRD over eBGP): the serving attributes
//! (MED, communities, an extended community, one AS-path prepend); the down metric (quorum
//! lost: still announced, MED 1000, the down community, three prepends; back: the serving
//! ones); a VIP's own drain file (that VIP drains and is withdrawn, the other stays); the
//! node's drain (the drained attributes, then withdrawn). Health comes from file checks, so
//! that the test flips it by writing a file.

use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::{Vipd, birdc, start_bird};
use vipd_testkit::{Feature, Lan, Netns, require};

const CONFIG: &str = r#"
[global]
router_id = "10.8.0.1"
state_dir = "DIR/state"
drain_file = "DIR/disable"
control_socket = "DIR/vipd.sock"
listen = "127.0.0.1:9180"

[bgp]
local_as = 65001
hold_time = 9
connect_retry = 1
[[bgp.neighbor]]
address = "10.8.0.254"
remote_as = 65010

[[check]]
name = "rs1"
kind = "file"
file = "DIR/rs1"
interval = "200ms"
timeout = "100ms"
rise = 1
fall = 1
jitter = "0%"
[[check]]
name = "rs2"
kind = "file"
file = "DIR/rs2"
interval = "200ms"
timeout = "100ms"
rise = 1
fall = 1
jitter = "0%"

[[service]]
name = "web"
vip = "198.51.100.1"
port = 80
quorum = 2
[service.announce]
med = 10
communities = ["65000:1"]
extended_communities = ["rt:65000:7"]
prepend = 1
drain_delay = "2s"
[service.announce.down]
med = 1000
communities = ["65000:666"]
prepend = 3
[service.announce.drained]
med = 500
prepend = 2
[[service.real_server]]
address = "10.9.0.10"
checks = ["rs1"]
[[service.real_server]]
address = "10.9.0.11"
checks = ["rs2"]

[[service]]
name = "api"
vip = "198.51.100.2"
port = 443
[service.announce]
med = 20
drain_delay = "1s"
drain_file = "DIR/disable-api"
[[service.real_server]]
address = "10.9.0.12"
checks = ["rs1"]
"#;

/// Polls BIRD's view of `prefix` until `pred` holds (30 s at most).
fn route_until(
    rtr: &Netns,
    ctl: &Path,
    prefix: &str,
    what: &str,
    vipd: &Vipd,
    pred: impl Fn(&str) -> bool,
) -> String {
    let start = Instant::now();
    loop {
        let out = birdc(rtr, ctl, &["show", "route", "all", prefix]);
        if pred(&out) {
            return out;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what}: BIRD shows\n{out}\nvipd log:\n{}",
            vipd.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn down_metric_per_state_attributes_and_a_vip_drain_file_at_bird() {
    if !require(
        "down_metric_per_state_attributes_and_a_vip_drain_file_at_bird",
        &[Feature::Ipvs],
    ) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("vipd-kt-states-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let lan = Lan::new("kst");
    let rtr = Netns::new("kst-rtr");
    let director = Netns::new("kst-dir");
    lan.attach(&rtr, "eth0", &["10.8.0.254/24"]);
    lan.attach(&director, "eth0", &["10.8.0.1/24"]);
    common::route_to_real_servers(&director);
    let (_bird, ctl) = start_bird(&rtr, &dir, common::BIRD_EBGP);
    let up = |f: &str, state: &str| std::fs::write(dir.join(f), state).expect("write");
    up("rs1", "UP\n");
    up("rs2", "UP\n");
    let cfg = dir.join("vipd.toml");
    std::fs::write(&cfg, CONFIG.replace("DIR", &dir.display().to_string())).expect("cfg");
    let vipd = Vipd::spawn(&director, &cfg, &dir, 1, false);
    let web = |what: &str, pred: &dyn Fn(&str) -> bool| {
        route_until(&rtr, &ctl, "198.51.100.1/32", what, &vipd, pred)
    };
    let api = |what: &str, pred: &dyn Fn(&str) -> bool| {
        route_until(&rtr, &ctl, "198.51.100.2/32", what, &vipd, pred)
    };

    // Serving: MED 10, the community, the extended community, our AS twice.
    let r = web("serving", &|o| o.contains("198.51.100.1/32"));
    println!("serving:\n{r}");
    assert!(r.contains("BGP.med: 10"), "{r}");
    assert!(r.contains("BGP.as_path: 65001 65001\n"), "{r}");
    assert!(r.contains("(65000,1)"), "{r}");
    assert!(r.contains("(rt, 65000, 7)"), "{r}");
    api("api serving", &|o| o.contains("BGP.med: 20"));

    // Quorum lost (one of two): still announced, with the down attributes.
    up("rs2", "DOWN\n");
    let d = web("down metric", &|o| o.contains("BGP.med: 1000"));
    println!("down:\n{d}");
    assert!(d.contains("BGP.as_path: 65001 65001 65001 65001\n"), "{d}");
    assert!(d.contains("(65000,666)") && !d.contains("(65000,1)"), "{d}");
    assert!(
        d.contains("(rt, 65000, 7)"),
        "unset in the down table: kept\n{d}"
    );
    // Back to the quorum: the serving attributes again.
    up("rs2", "UP\n");
    web("serving again", &|o| {
        o.contains("BGP.med: 10") && o.contains("BGP.as_path: 65001 65001\n")
    });

    // The VIP's own drain file: api drains and goes; web stays as it is.
    std::fs::write(dir.join("disable-api"), "").expect("touch");
    let g = api("api draining", &|o| o.contains("(65535,0)"));
    assert!(g.contains("BGP.med: 20"), "{g}");
    api("api withdrawn", &|o| !o.contains("198.51.100.2/32"));
    let w = web("web untouched", &|_| true);
    assert!(
        w.contains("BGP.med: 10") && !w.contains("(65535,0)"),
        "web must not drain with api's file:\n{w}"
    );
    std::fs::remove_file(dir.join("disable-api")).expect("rm");
    api("api back", &|o| {
        o.contains("BGP.med: 20") && !o.contains("(65535,0)")
    });

    // The node's drain: the drained attributes (MED 500, two prepends), then withdrawn.
    std::fs::write(dir.join("disable"), "").expect("touch");
    let n = web("node draining", &|o| o.contains("(65535,0)"));
    println!("drained:\n{n}");
    assert!(n.contains("BGP.med: 500"), "{n}");
    assert!(n.contains("BGP.as_path: 65001 65001 65001\n"), "{n}");
    web("node drained", &|o| !o.contains("198.51.100.1/32"));
    api("node drained (api)", &|o| !o.contains("198.51.100.2/32"));
    std::fs::remove_file(dir.join("disable")).expect("rm");
    web("undrained", &|o| o.contains("BGP.med: 10"));

    // The event history lists those transitions in order, over HTTP and in `vipd status`.
    let wanted = [
        "BGP neighbor 10.8.0.254:179: ",
        "route 198.51.100.1/32: announced",
        "route 198.51.100.1/32: announced with the down attributes: service web: no quorum",
        "route 198.51.100.1/32: announced",
        "drain file of api present",
        "route 198.51.100.2/32: draining",
        "route 198.51.100.2/32: withdrawn: VIP drained (announce.drain_file)",
        "drain file of api removed",
        "drain file present: draining this node",
        "route 198.51.100.1/32: withdrawn: node drained",
        "drain file removed",
    ];
    let in_order = |texts: &[String], what: &str| {
        let mut at = 0;
        for w in wanted {
            match texts[at..].iter().position(|t| t.contains(w)) {
                Some(i) => at += i + 1,
                None => panic!(
                    "{what}: {w:?} missing after entry {at}:\n{}",
                    texts.join("\n")
                ),
            }
        }
    };
    let (code, body) = common::http_get(&director, "/events");
    assert_eq!(code, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let texts: Vec<String> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["text"].as_str().unwrap_or_default().to_string())
        .collect();
    in_order(&texts, "/events");
    let last = page["last"].as_u64().expect("last");
    let (_, newer) = common::http_get(&director, &format!("/events?since={last}"));
    assert!(
        newer.contains("\"events\":[]"),
        "nothing newer than {last}: {newer}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vipd"))
        .args(["status", "--events", "--socket"])
        .arg(dir.join("vipd.sock"))
        .output()
        .expect("vipd status --events");
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    println!("vipd status --events:\n{}", lines.join("\n"));
    in_order(&lines, "vipd status --events");
    vipd.stop(&cfg);
    let _ = std::fs::remove_dir_all(&dir);
}
