//! docs/CONFIG.md is generated from the configuration model (`src/model.rs`: its doc
//! comments, its serde names) and the defaults a minimal configuration deserializes to. This
//! test fails when the file differs from what the model says; regenerate with
//! `VIPD_BLESS=1 cargo test -p vipd-config --test config_md`.

use std::fmt::Write as _;

const MODEL: &str = include_str!("../src/model.rs");

/// Minimal configurations whose serialized form gives every section's defaults.
const DIRECTOR: &str = r#"
[global]
router_id = "192.0.2.1"
[global.ipvs_timeouts]
tcp = "15m"
tcp_fin = "2m"
udp = "5m"
[bgp]
local_as = 65000
[[bgp.neighbor]]
address = "192.0.2.254"
remote_as = 65001
[[check]]
name = "c"
kind = "tcp"
[[service]]
name = "s"
vip = "198.51.100.1"
port = 80
checks = ["c"]
[service.persistence]
timeout = "5m"
[[service.real_server]]
address = "10.0.0.1"
[fleet]
peers = ["http://192.0.2.2:9180"]
"#;
const BACKEND: &str = r#"
[global]
role = "backend"
[[check]]
name = "c"
kind = "tcp"
port = 80
[[backend.tunnel]]
name = "tunl0"
mode = "ipip"
vips = ["198.51.100.1"]
[backend.agent]
checks = ["c"]
"#;

struct Field {
    key: String,
    ty: String,
    doc: String,
    required: bool,
}

struct Section {
    name: String,
    doc: String,
    fields: Vec<Field>,
}

/// Sections as the model declares them: structs whose doc starts with the TOML path in
/// backticks (plus `[[check]]`, whose doc does not).
fn sections() -> Vec<Section> {
    let mut out = Vec::new();
    let mut doc: Vec<String> = Vec::new();
    let mut attrs: Vec<String> = Vec::new();
    let mut current: Option<(Section, bool)> = None; // (section, struct-level default)
    for line in MODEL.lines() {
        let t = line.trim();
        if let Some(d) = t.strip_prefix("///") {
            doc.push(d.trim().to_string());
            continue;
        }
        if t.starts_with("#[") {
            attrs.push(t.to_string());
            continue;
        }
        if let Some(rest) = t.strip_prefix("pub struct ") {
            let name = rest.split_whitespace().next().unwrap_or("");
            let first = doc.first().cloned().unwrap_or_default();
            let path = if name == "CheckDef" {
                Some("[[check]]".to_string())
            } else if first.starts_with("`[") {
                first.split('`').nth(1).map(str::to_string)
            } else if name == "Damping" {
                Some("damping (in a check)".to_string())
            } else if name == "SorryServer" {
                Some("sorry_server (in a service)".to_string())
            } else {
                None
            };
            let struct_default = attrs.iter().any(|a| a.contains("default)"));
            current = path.map(|p| {
                let text = doc.join(" ");
                let text = text
                    .strip_prefix(&format!("`{p}`"))
                    .map(|s| s.trim_start_matches([':', ' ', '.']).to_string())
                    .unwrap_or(text);
                (
                    Section {
                        name: p,
                        doc: text,
                        fields: Vec::new(),
                    },
                    struct_default,
                )
            });
            doc.clear();
            attrs.clear();
            continue;
        }
        if t == "}" {
            if let Some((s, _)) = current.take() {
                out.push(s);
            }
        } else if let (Some((s, struct_default)), Some(rest)) =
            (current.as_mut(), t.strip_prefix("pub "))
        {
            if let Some((name, ty)) = rest.split_once(": ") {
                let serde = attrs.join(" ");
                let key = serde
                    .split("rename = \"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .unwrap_or(name)
                    .to_string();
                let ty = ty.trim_end_matches(',').to_string();
                let required =
                    !*struct_default && !serde.contains("default") && !ty.starts_with("Option<");
                s.fields.push(Field {
                    key,
                    ty,
                    doc: doc.join(" "),
                    required,
                });
            }
        }
        doc.clear();
        attrs.clear();
    }
    out
}

/// The value of `key` in section `section` of the minimal configurations, serialized.
fn default_of(values: &[toml::Table], section: &str, key: &str) -> Option<String> {
    let path: Vec<&str> = section
        .trim_matches(|c| c == '[' || c == ']')
        .split('.')
        .collect();
    for v in values {
        let mut cur = Some(toml::Value::Table(v.clone()));
        for p in &path {
            cur = match cur.take() {
                Some(toml::Value::Table(t)) => t.get(*p).cloned(),
                Some(toml::Value::Array(a)) => a.first().and_then(|x| x.get(*p)).cloned(),
                _ => None,
            };
        }
        let Some(cur) = cur else { continue };
        let table = match cur {
            toml::Value::Array(a) => a.first().and_then(|x| x.as_table()).cloned(),
            toml::Value::Table(t) => Some(t),
            _ => None,
        };
        if let Some(x) = table.and_then(|t| t.get(key).cloned()) {
            if x.is_table() || x.as_array().is_some_and(|a| a.iter().any(|e| e.is_table())) {
                return None;
            }
            return Some(scalar(&x));
        }
    }
    None
}

/// A TOML value as it would be written.
fn scalar(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(a) => {
            format!("[{}]", a.iter().map(scalar).collect::<Vec<_>>().join(", "))
        }
        other => format!("{other:?}"),
    }
}

fn render() -> String {
    let values: Vec<toml::Table> = [DIRECTOR, BACKEND]
        .iter()
        .map(|src| {
            let cfg = vipd_config::load_str(src, "minimal.toml")
                .expect("minimal config")
                .config;
            toml::Table::try_from(&cfg).expect("serialize")
        })
        .collect();
    let written: Vec<toml::Table> = [DIRECTOR, BACKEND]
        .iter()
        .map(|src| src.parse::<toml::Table>().expect("toml"))
        .collect();
    let mut o = String::from(
        "# Configuration reference\n\n\
         Generated from the configuration model (`crates/vipd-config/src/model.rs`): every key \
         vipd accepts, with its type, its default and what it does. Unknown keys are refused \
         (with a \"did you mean\" hint), and `vipd check-config FILE` reports every error at \
         once with file:line:col. The commented examples in `deploy/examples/` show the keys \
         in context. A test fails when this file differs from the model; regenerate it with \
         `VIPD_BLESS=1 cargo test -p vipd-config --test config_md`.\n\n\
         A key that would have no effect is refused too, never accepted and ignored: IPVS \
         settings or `[bgp]` on a backend, `mh_port`/`mh_fallback` with another scheduler, \
         `drained_med`/`drain_delay` without `graceful_shutdown`, services of one VIP whose \
         `[service.announce]` differ; a `[[check]]` nothing uses is a warning. Keys read only \
         at start (`global.control_socket`, `listen`, `state_dir`, `resync_interval`, \
         `log_format`, `bgp.listen`, `backend.agent.listen`, `[fleet]`) are named by `vipd reload` as \
         taking effect at the next restart.\n\n\
         Durations are strings like `\"500ms\"`, `\"2s\"`, `\"5m\"`; percentages like `\"10%\"`.\n",
    );
    for s in sections() {
        let _ = write!(o, "\n## `{}`\n\n{}\n\n", s.name, s.doc);
        o.push_str("| key | type | default | meaning |\n|---|---|---|---|\n");
        for f in &s.fields {
            let nested = sections_names().iter().any(|n| {
                n.trim_matches(|c| c == '[' || c == ']')
                    .ends_with(&format!(".{}", f.key))
                    || n.trim_matches(|c| c == '[' || c == ']') == f.key
            });
            let default = if f.required {
                "required".to_string()
            } else if nested {
                "see its section".to_string()
            } else if default_of(&written, &s.name, &f.key).is_some() {
                // Set in the minimal configurations: its serialized value is not a default.
                "unset".to_string()
            } else {
                default_of(&values, &s.name, &f.key)
                    .map(|d| format!("`{d}`"))
                    .unwrap_or_else(|| "unset".to_string())
            };
            let _ = writeln!(
                o,
                "| `{}` | `{}` | {} | {} |",
                f.key,
                f.ty.replace('|', "\\|"),
                default,
                f.doc.replace('|', "\\|")
            );
        }
    }
    o
}

fn sections_names() -> Vec<String> {
    sections().into_iter().map(|s| s.name).collect()
}

#[test]
fn config_md_matches_the_model() {
    let want = render();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/CONFIG.md");
    if std::env::var("VIPD_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &want).expect("write docs/CONFIG.md");
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/CONFIG.md is out of date with the model; run VIPD_BLESS=1 cargo test -p vipd-config --test config_md"
    );
    // The reference covers the sections an operator writes.
    for s in [
        "[global]",
        "[global.sysctl]",
        "[bgp]",
        "[[bgp.neighbor]]",
        "[[check]]",
        "[[service]]",
        "[service.announce]",
        "[[service.real_server]]",
        "[backend]",
        "[[backend.tunnel]]",
        "[backend.agent]",
    ] {
        assert!(want.contains(&format!("## `{s}`")), "{s} missing");
    }
    assert!(
        want.contains("| `withdraw_on_stop` | `bool` | `false` |"),
        "{want}"
    );
    assert!(want.contains("| `hold_time` | `u16` | `90` |"), "{want}");
}
