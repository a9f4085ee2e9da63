//! TCP MD5 keys: `password_file`, warnings for keys other users can read, and no key in
//! any printed form of the configuration.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vipd-secrets-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp");
    d
}

fn config(neighbor_extra: &str) -> String {
    format!(
        "[global]\nrouter_id = \"192.0.2.1\"\n[bgp]\nlocal_as = 65001\n[[bgp.neighbor]]\naddress = \"192.0.2.254\"\nremote_as = 65010\n{neighbor_extra}\n[[service]]\nname = \"a\"\nvip = \"198.51.100.1\"\nport = 80\n[[service.real_server]]\naddress = \"10.0.0.1\"\n"
    )
}

fn write(path: &std::path::Path, text: &str, mode: u32) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn secret_warning(l: &vipd_config::Loaded) -> bool {
    l.render_warnings().contains("TCP MD5 key")
}

#[test]
fn password_file_is_read_and_never_shown() {
    let d = dir("file");
    let key = d.join("tor-a.key");
    write(&key, "s3cret-from-file\n", 0o600);
    let cfg = d.join("vipd.toml");
    write(
        &cfg,
        &config(&format!("password_file = \"{}\"", key.display())),
        0o644,
    );
    let loaded = vipd_config::load_file(&cfg).unwrap_or_else(|e| panic!("{e}"));
    assert!(!secret_warning(&loaded), "{}", loaded.render_warnings());
    let n = &loaded.config.bgp.as_ref().expect("bgp").neighbors[0];
    assert_eq!(
        n.password.as_ref().map(|k| k.expose()),
        Some("s3cret-from-file")
    );
    let shown = format!("{:?}\n{}", loaded.config, n.password.as_ref().expect("key"));
    assert!(!shown.contains("s3cret"), "the key leaked: {shown}");
    assert!(shown.contains("<redacted>"));

    // Readable by others: a warning at the key, with its line.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let loaded = vipd_config::load_file(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let w = loaded.render_warnings();
    assert!(
        w.contains("readable by every user") && w.contains(":8:"),
        "{w}"
    );

    // Missing, or both forms: refused, at the key.
    std::fs::remove_file(&key).expect("rm");
    let e = vipd_config::load_file(&cfg)
        .expect_err("missing key file")
        .to_string();
    assert!(e.contains("cannot read") && e.contains(":8:"), "{e}");
    write(
        &cfg,
        &config(&format!(
            "password = \"x\"\npassword_file = \"{}\"",
            key.display()
        )),
        0o600,
    );
    let e = vipd_config::load_file(&cfg).expect_err("both").to_string();
    assert!(e.contains("both set"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_inline_key_in_a_world_readable_file_is_warned_about() {
    let d = dir("inline");
    let cfg = d.join("vipd.toml");
    write(&cfg, &config("password = \"s3cret\""), 0o644);
    let loaded = vipd_config::load_file(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let w = loaded.render_warnings();
    assert!(
        w.contains("readable by every user") && w.contains("chmod 640"),
        "{w}"
    );
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let loaded = vipd_config::load_file(&cfg).unwrap_or_else(|e| panic!("{e}"));
    assert!(!secret_warning(&loaded), "{}", loaded.render_warnings());
    let _ = std::fs::remove_dir_all(&d);
}
