//! The page's HTML from hand-made status documents (the browser test in the lab renders the
//! real thing).

use super::*;
use crate::events::{Entry, Kind};
use crate::status::{Announce, Health};
use crate::status::{
    BfdView, CheckHistory, CheckResult, NeighborStatus, RealServerStatus, ServiceStatus,
};

fn status() -> Status {
    let server = |a: &str, health: Health, reason: &str| RealServerStatus {
        address: a.into(),
        health,
        reason: reason.into(),
        weight: 1,
        ipvs_weight: Some(u32::from(health == Health::Up)),
        active_conns: 12,
        inact_conns: 3,
        checks: vec![CheckHistory {
            name: "http".into(),
            health,
            results: (0..10)
                .map(|i| CheckResult {
                    ok: health == Health::Up || i < 7,
                    ms: 0.4 * f64::from(i + 1),
                    reason: "HTTP 200".into(),
                })
                .collect(),
        }],
    };
    Status {
        version: "1.2.3".into(),
        router_id: Some("10.8.0.1".into()),
        uptime_secs: 3725,
        drain_file: "/etc/lb/disable".into(),
        last_reload: Some("applied: 1 service changed".into()),
        services: vec![ServiceStatus {
            name: "web".into(),
            key: "TCP 198.51.100.10:80".into(),
            scheduler: "mh mh-port".into(),
            announce: Announce::Announced,
            announce_reason: "quorum".into(),
            ipvs: Ipvs::Programmed,
            healthy_weight: 2,
            quorum: 2,
            digest: Some("00112233aabbccdd".into()),
            real_servers: vec![
                server("10.8.0.11:80", Health::Up, "HTTP 200"),
                server("10.8.0.12:80", Health::Up, "HTTP 200"),
                server("10.8.0.13:80", Health::Down, "<script>alert(1)</script>"),
            ],
            ..ServiceStatus::default()
        }],
        neighbors: vec![NeighborStatus {
            address: "10.8.0.251:179".into(),
            description: Some("r1".into()),
            state: "Established".into(),
            established_secs: Some(70),
            prefixes_sent: 1,
            updates_sent: 3,
            bfd: Some(BfdView {
                state: "Up".into(),
                diag: "none".into(),
                detection_ms: 300,
                ..BfdView::default()
            }),
            ..NeighborStatus::default()
        }],
        ..Status::default()
    }
}

fn events() -> Vec<Entry> {
    (1..=60)
        .map(|i| Entry {
            seq: i,
            at_ms: 1_796_083_200_000 + i * 1000,
            kind: if i % 2 == 0 {
                Kind::Server
            } else {
                Kind::Route
            },
            warning: i == 60,
            text: format!("event {i}"),
        })
        .collect()
}

#[test]
fn services_servers_and_neighbors_are_on_the_page() {
    let html = render(&status(), &events(), None, 1_796_083_290_000);
    for needle in [
        "<title>✓ vipd 10.8.0.1</title>",
        "data-service=\"web\" data-route=announced",
        "<code>TCP 198.51.100.10:80</code>",
        "healthy weight <b>2</b> / quorum 2",
        "<code class=digest>00112233aabbccdd</code>",
        "data-server=\"10.8.0.13:80\" data-health=down",
        "data-server=\"10.8.0.11:80\" data-health=up",
        "data-check=\"http\" data-health=up",
        "data-neighbor=\"10.8.0.251:179\" data-state=\"Established\"",
        "detect 300 ms",
        "last reload: applied: 1 service changed",
        "up 1h 2m",
        "<script>",
    ] {
        assert!(html.contains(needle), "{needle:?} missing");
    }
    assert!(!html.contains("<script>alert"), "reasons are escaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(
        !html.contains("id=fleet"),
        "no fleet section without [fleet]"
    );
}

#[test]
fn events_newest_first_and_bounded() {
    let html = render(&status(), &events(), None, 1_796_083_290_000);
    let first = html.find("data-seq=60").unwrap();
    let second = html.find("data-seq=59").unwrap();
    assert!(first < second, "newest first");
    assert!(html.contains("<tr class=warn data-seq=60>"));
    assert!(html.contains("2026-12-01 00:01:00"), "UTC time of event 60");
    assert!(html.contains("(30s ago)"));
    assert!(html.contains("data-seq=11>"));
    assert!(
        !html.contains("data-seq=10>"),
        "only the last {EVENTS_SHOWN}"
    );
}

#[test]
fn the_sparkline_draws_each_result() {
    let html = render(&status(), &[], None, 0);
    // The down server: 7 passes then 3 failures, one vertical bar each.
    let row = &html[html.find("data-server=\"10.8.0.13:80\"").unwrap()..];
    let ok = &row[row.find("<path class=ok d=\"").unwrap() + 18..];
    let ok = &ok[..ok.find('"').unwrap()];
    let ko = &row[row.find("<path class=ko d=\"").unwrap() + 18..];
    let ko = &ko[..ko.find('"').unwrap()];
    assert_eq!(ok.matches('M').count(), 7, "{ok}");
    assert_eq!(ko.matches('M').count(), 3, "{ko}");
    assert!(row.contains("FAIL 3.2 ms"), "the title lists results");
}

#[test]
fn a_drained_node_says_so() {
    let mut st = status();
    st.drained = true;
    st.services[0].announce = Announce::Withdrawn;
    st.services[0].announce_reason = "drained".into();
    let html = render(&st, &[], None, 0);
    assert!(html.contains("<title>✗ vipd 10.8.0.1</title>"));
    assert!(html.contains("data-node=\"drained\""));
    assert!(html.contains("data-route=withdrawn"));
    assert!(html.contains("drain file /etc/lb/disable"));
}

#[test]
fn the_fleet_view_flags_disagreement() {
    let mut other = status();
    other.router_id = Some("10.8.0.2".into());
    other.services[0].digest = Some("ffffffffffffffff".into());
    let v = crate::fleet::compare(&[
        crate::fleet::Member {
            source: "local".into(),
            status: Ok(status()),
        },
        crate::fleet::Member {
            source: "http://10.8.0.2:9180".into(),
            status: Ok(other),
        },
        crate::fleet::Member {
            source: "http://10.8.0.3:9180".into(),
            status: Err(std::sync::Arc::new(crate::fleet::MemberError::Task(
                "no answer".into(),
            ))),
        },
    ]);
    let html = render(&status(), &[], Some(&v), 0);
    assert!(html.contains("<section id=fleet data-verdict=disagree>"));
    assert!(html.contains("<tr class=down data-service=\"web\">"));
    assert!(html.contains("<th>http://10.8.0.3:9180 <span class=\"b unreachable\">"));
    assert!(html.contains(
        "<li>web: forwarding tables differ: 10.8.0.1 has 00112233aabbccdd; 10.8.0.2 has ffffffffffffffff</li>"
    ));
}

/// The budget: HTML, CSS and script of a director's page (a few services, their servers,
/// the last events) under 50 KB.
#[test]
fn a_typical_page_is_small() {
    let mut st = status();
    let svc = st.services[0].clone();
    for i in 1..4 {
        let mut s = svc.clone();
        s.name = format!("web{i}");
        st.services.push(s);
    }
    let html = render(&st, &events(), None, 1_796_083_290_000);
    assert!(html.len() < 50 * 1024, "{} bytes", html.len());
}

#[test]
fn clock_and_age() {
    assert_eq!(clock(0), "1970-01-01 00:00:00");
    assert_eq!(clock(951_782_400_000), "2000-02-29 00:00:00");
    assert_eq!(clock(1_796_083_200_000), "2026-12-01 00:00:00");
    assert_eq!(age(59), "59s");
    assert_eq!(age(61), "1m 1s");
    assert_eq!(age(3 * 3600 + 120), "3h 2m");
    assert_eq!(age(2 * 86400 + 3600), "2d 1h");
}

#[test]
fn a_backend_page_shows_its_set_up() {
    let b = crate::status::backend::missing_vip_example();
    let st = Status {
        version: "1.2.3".into(),
        role: vipd_config::Role::Backend,
        backend: Some(b),
        ..Status::default()
    };
    let html = render_backend(&st);
    assert!(html.contains("<h1>vipd backend</h1>") && html.contains("version 1.2.3"));
    assert!(html.contains("data-serving=false"));
    assert!(html.contains("<li class=warn>VIP 198.51.100.10 is missing on tunl0</li>"));
    assert!(!html.contains("id=services"));
}

/// Names come from configurations and peers: every one is escaped, in text and attributes.
#[test]
fn hostile_names_are_escaped_everywhere() {
    let evil = "\"><script>x()</script>";
    let mut st = status();
    st.router_id = Some(evil.into());
    st.services[0].name = evil.into();
    st.services[0].real_servers[0].checks[0].name = evil.into();
    st.services[0].real_servers[0].checks[0].results[0].reason = evil.into();
    st.neighbors[0].state = evil.into();
    let v = crate::fleet::compare(&[crate::fleet::Member {
        source: evil.into(),
        status: Ok(st.clone()),
    }]);
    let html = render(&st, &[], Some(&v), 0);
    assert!(!html.contains("<script>x()"), "unescaped");
    assert!(!html.contains("\"><script"), "an attribute was closed");
    assert!(html.contains("&quot;&gt;&lt;script&gt;x()&lt;/script&gt;"));
}

#[test]
fn a_fleet_not_fetched_yet_does_not_say_agree() {
    let mut v = crate::fleet::compare(&[crate::fleet::Member {
        source: "local".into(),
        status: Ok(status()),
    }]);
    v.pending = true;
    let html = render(&status(), &[], Some(&v), 0);
    assert!(html.contains("<section id=fleet data-verdict=pending>"));
    assert!(html.contains("not fetched yet"));
    v.pending = false;
    v.fetched_secs_ago = Some(3);
    let html = render(&status(), &[], Some(&v), 0);
    assert!(html.contains("data-verdict=agree") && html.contains("(fetched 3s ago)"));
}
