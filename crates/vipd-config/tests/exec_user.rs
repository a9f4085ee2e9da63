//! `user` of an exec check: it must name a user of this host, and only exec checks take it.

fn load(check: &str) -> Result<vipd_config::Loaded, vipd_config::ConfigError> {
    vipd_config::load_str(
        &format!(
            "[global]\nrouter_id = \"192.0.2.1\"\n[[check]]\nname = \"c\"\n{check}\n[[service]]\nname = \"a\"\nvip = \"198.51.100.1\"\nport = 80\nchecks = [\"c\"]\n[[service.real_server]]\naddress = \"10.0.0.1\"\n"
        ),
        "t.toml",
    )
}

#[test]
fn user_names_an_existing_user_of_an_exec_check() {
    let ok = load("kind = \"exec\"\ncommand = \"/bin/true\"\nuser = \"nobody\"")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.config.checks[0].user.as_deref(), Some("nobody"));
    let e = load("kind = \"exec\"\ncommand = \"/bin/true\"\nuser = \"no-such-user-vipd\"")
        .expect_err("unknown user")
        .to_string();
    assert!(
        e.contains("no user \"no-such-user-vipd\"") && e.contains("t.toml:7:8"),
        "{e}"
    );
    let e = load("kind = \"tcp\"\nport = 80\nuser = \"nobody\"")
        .expect_err("user on a tcp check")
        .to_string();
    assert!(e.contains("`user` does not apply to a tcp check"), "{e}");
}
