//! `vipd import` as an operator runs it: the exit status tells a complete translation (0)
//! from one with omissions (3) and a failure (1); what is written passes `vipd check-config`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vipd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vipd"))
}

fn golden(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../vipd-import/tests/import")
        .join(case)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vipd-cli-import-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp");
    d
}

#[test]
fn omissions_exit_3_and_the_output_is_private_and_valid() {
    let dir = tmp("omit");
    let out = dir.join("vipd.toml");
    let o = vipd()
        .args(["import", "keepalived"])
        .arg(golden("design/keepalived.conf"))
        .arg("--exabgp")
        .arg(golden("design/exabgp.conf"))
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("construct(s) not translated"), "{t}");
    assert!(t.contains("keepalived.conf:6: vrrp_instance VI_1"), "{t}");
    let mode = std::fs::metadata(&out)
        .expect("written")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "it may hold BGP passwords");
    let c = vipd().arg("check-config").arg(&out).output().expect("run");
    assert!(c.status.success(), "{}", text(&c));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_complete_translation_exits_0_on_stdout() {
    let o = vipd()
        .args(["import", "keepalived"])
        .arg(golden("checkers/keepalived.conf"))
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let toml = String::from_utf8_lossy(&o.stdout);
    assert!(toml.contains("[[service]]") && toml.contains("Everything was translated"));
}

#[test]
fn a_file_that_cannot_be_read_or_parsed_fails_and_writes_nothing() {
    let dir = tmp("fail");
    let bad = dir.join("keepalived.conf");
    std::fs::write(
        &bad,
        "virtual_server 192.0.2.1 80 {\n  real_server 10.0.0.1 80 {\n",
    )
    .expect("write");
    let out = dir.join("vipd.toml");
    let o = vipd()
        .args(["import", "keepalived"])
        .arg(&bad)
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("keepalived.conf:"), "{}", text(&o));
    assert!(!out.exists());
    let o = vipd()
        .args(["import", "keepalived"])
        .arg(dir.join("absent.conf"))
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
