//! `[bgp.bfd]` and a neighbor's `bfd`: defaults, inheritance, and values refused with
//! file:line:col.

fn load(bgp: &str, neighbor: &str) -> Result<vipd_config::Loaded, vipd_config::ConfigError> {
    vipd_config::load_str(
        &format!(
            "[global]\nrouter_id = \"192.0.2.1\"\n[bgp]\nlocal_as = 65000\n{bgp}\n[[bgp.neighbor]]\naddress = \"192.0.2.254\"\nremote_as = 65001\n{neighbor}\n[[service]]\nname = \"a\"\nvip = \"198.51.100.1\"\nport = 80\n[[service.real_server]]\naddress = \"10.0.0.1\"\n"
        ),
        "t.toml",
    )
}

fn ms(n: u64) -> std::time::Duration {
    std::time::Duration::from_millis(n)
}

#[test]
fn off_by_default_100ms_x3_when_on_and_a_neighbor_inherits_what_it_does_not_set() {
    let c = load("", "").unwrap_or_else(|e| panic!("{e}")).config;
    let b = c.bgp.as_ref().expect("bgp");
    let e = b.neighbors[0].effective_bfd(&b.bfd);
    assert!(!e.enabled);
    assert_eq!(
        (e.min_tx.get(), e.min_rx.get(), e.multiplier),
        (ms(100), ms(100), 3)
    );

    let c = load(
        "bfd = { enabled = true, min_tx = \"300ms\", multiplier = 5 }",
        "bfd = { min_rx = \"50ms\" }",
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .config;
    let b = c.bgp.as_ref().expect("bgp");
    let e = b.neighbors[0].effective_bfd(&b.bfd);
    assert!(e.enabled);
    assert_eq!(
        (e.min_tx.get(), e.min_rx.get(), e.multiplier),
        (ms(300), ms(50), 5)
    );

    let c = load("bfd = { enabled = true }", "bfd = { enabled = false }")
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    let b = c.bgp.as_ref().expect("bgp");
    assert!(!b.neighbors[0].effective_bfd(&b.bfd).enabled);
}

#[test]
fn multihop_above_one_makes_a_multihop_session() {
    let c = load("", "multihop = 4")
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    assert_eq!(
        c.bgp.as_ref().expect("bgp").neighbors[0].bfd_multihop(),
        Some(4)
    );
    let c = load("", "multihop = 1")
        .unwrap_or_else(|e| panic!("{e}"))
        .config;
    assert_eq!(
        c.bgp.as_ref().expect("bgp").neighbors[0].bfd_multihop(),
        None
    );
}

#[test]
fn out_of_range_values_and_unknown_keys_are_refused_where_they_are() {
    let e = load("bfd = { enabled = true, min_tx = \"5ms\" }", "")
        .expect_err("5 ms")
        .to_string();
    assert!(
        e.contains("min_tx 5ms is outside 10ms..=60s") && e.contains("t.toml:5:"),
        "{e}"
    );
    let e = load("", "bfd = { min_rx = \"2m\" }")
        .expect_err("2 minutes")
        .to_string();
    assert!(
        e.contains("min_rx 2m is outside") && e.contains("t.toml:9:"),
        "{e}"
    );
    let e = load("", "bfd = { multiplier = 0 }")
        .expect_err("multiplier 0")
        .to_string();
    assert!(
        e.contains("multiplier must be at least 1") && e.contains("t.toml:9:"),
        "{e}"
    );
    let e = load("bfd = { enabled = true, echo = true }", "")
        .expect_err("unknown key")
        .to_string();
    assert!(e.contains("echo") && e.contains("t.toml:5:"), "{e}");
}
