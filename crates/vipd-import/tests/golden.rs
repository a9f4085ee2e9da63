//! `vipd import` golden files: each directory of `tests/import/` holds a keepalived.conf
//! (with whatever it includes), optionally an exabgp.conf or a `healthcheck-args` file, and
//! the expected translation (`expected.toml`) and report (`expected.report`: the omissions
//! and differences, one per line). Every expected translation must load in vipd without an
//! error. Regenerate with `VIPD_BLESS=1 cargo test -p vipd-import --test golden`.

use std::fs;
use std::path::Path;

use vipd_import::{Exabgp, import};

fn case(dir: &Path) -> Result<(), String> {
    let kconf = dir.join("keepalived.conf");
    let exa = dir.join("exabgp.conf");
    let args = fs::read_to_string(dir.join("healthcheck-args")).ok();
    let source = if exa.exists() {
        Exabgp::File(&exa)
    } else if let Some(a) = &args {
        Exabgp::Healthcheck(a.trim())
    } else {
        Exabgp::None
    };
    let imp = import(&kconf, source).map_err(|e| format!("import failed: {e}"))?;
    let mut report = String::new();
    for o in &imp.omissions {
        report.push_str(&format!("not translated: {o}\n"));
    }
    for d in &imp.differences {
        report.push_str(&format!("differs: {d}\n"));
    }
    let bless = std::env::var_os("VIPD_BLESS").is_some();
    for (file, got) in [("expected.toml", &imp.toml), ("expected.report", &report)] {
        let path = dir.join(file);
        if bless {
            fs::write(&path, got).map_err(|e| format!("{}: {e}", path.display()))?;
            continue;
        }
        let want = fs::read_to_string(&path).unwrap_or_default();
        if want != *got {
            return Err(format!(
                "{} differs (VIPD_BLESS=1 to accept):\n--- got ---\n{got}",
                path.display()
            ));
        }
    }
    if let Err(e) = vipd_config::load_str(&imp.toml, "expected.toml") {
        return Err(format!("the translation is refused by vipd:\n{e}"));
    }
    Ok(())
}

#[test]
fn every_golden_case_translates_as_expected_and_loads() {
    let root = Path::new("tests/import");
    let mut dirs: Vec<_> = fs::read_dir(root)
        .expect("tests/import")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("keepalived.conf").exists())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 6, "golden cases: {dirs:?}");
    let failures: Vec<String> = dirs
        .iter()
        .filter_map(|d| case(d).err().map(|e| format!("{}: {e}", d.display())))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every construct the unsupported case holds is reported with its own line.
#[test]
fn unsupported_constructs_are_each_reported_at_their_line() {
    let imp = import(
        Path::new("tests/import/unsupported/keepalived.conf"),
        Exabgp::None,
    )
    .expect("import");
    let src = fs::read_to_string("tests/import/unsupported/keepalived.conf").expect("read");
    for (i, line) in src.lines().enumerate() {
        if let Some(tag) = line.split("# UNSUPPORTED").nth(1) {
            let n = i + 1;
            assert!(
                imp.omissions.iter().any(|o| o.origin.line == n),
                "line {n} ({}) is not reported; omissions:\n{}",
                tag.trim(),
                imp.omissions
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}
