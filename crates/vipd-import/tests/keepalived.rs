//! keepalived.conf parsing through the public API, as the translator uses it.

use std::fs;
use std::path::{Path, PathBuf};

use vipd_import::BraceProblem;
use vipd_import::keepalived::{MAX_INCLUDE_DEPTH, ParseError, Stmt, parse_file, parse_str};

/// A scratch directory under the system temp dir, removed when dropped (even when the
/// test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("vipd-import-test-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        TempDir(dir)
    }

    /// Writes `text` to `rel` (creating directories) and returns the full path.
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.0.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
        }
        fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn parse(src: &str) -> Vec<Stmt> {
    parse_str(src, Path::new("/nonexistent/keepalived.conf")).unwrap_or_else(|e| panic!("{e}"))
}

/// `(keyword, args)` of statements, for compact assertions.
fn flat(stmts: &[Stmt]) -> Vec<(String, Vec<String>)> {
    stmts
        .iter()
        .map(|s| (s.keyword.clone(), s.args.clone()))
        .collect()
}

fn kw(k: &str, args: &[&str]) -> (String, Vec<String>) {
    (k.to_owned(), args.iter().map(|a| (*a).to_owned()).collect())
}

const SAMPLE: &str = r#"! Configuration File for keepalived
global_defs {
   router_id LVS_DEVEL
}
virtual_server_group VS_GROUP_MH_IPv6 {
  2001:db8::198.51.100.1 80
}
virtual_server group VS_GROUP_MH_IPv6 {
  lvs_method TUN
  lvs_sched mh
  sh-port
  protocol TCP
  delay_loop 5
  alpha
  omega
  quorum_up   "/bin/touch /etc/lb/v6-ready"
  quorum_down "/bin/rm -f /etc/lb/v6-ready"
  real_server 2001:db8::192.0.2.132 80 {
    weight 1
    HTTP_GET {
      url {
        path /healthcheck
        status_code 200
      }
      connect_timeout 2
    }
  }
}
"#;

#[test]
fn sample_nested_blocks() {
    let stmts = parse(SAMPLE);
    assert_eq!(
        flat(&stmts),
        [
            kw("global_defs", &[]),
            kw("virtual_server_group", &["VS_GROUP_MH_IPv6"]),
            kw("virtual_server", &["group", "VS_GROUP_MH_IPv6"]),
        ]
    );
    assert_eq!(flat(stmts[0].children()), [kw("router_id", &["LVS_DEVEL"])]);
    assert_eq!(
        flat(stmts[1].children()),
        [kw("2001:db8::198.51.100.1", &["80"])]
    );
    let vs = &stmts[2];
    assert_eq!(vs.origin.line, 8);
    let quorum_up = &vs.children()[7];
    assert_eq!(quorum_up.keyword, "quorum_up");
    assert_eq!(quorum_up.args, ["/bin/touch /etc/lb/v6-ready"]);
    let rs = &vs.children()[9];
    assert_eq!(rs.keyword, "real_server");
    assert_eq!(rs.args, ["2001:db8::192.0.2.132", "80"]);
    let http = &rs.children()[1];
    assert_eq!(http.keyword, "HTTP_GET");
    let url = &http.children()[0];
    assert_eq!(
        flat(url.children()),
        [kw("path", &["/healthcheck"]), kw("status_code", &["200"])]
    );
    assert_eq!(url.children()[1].origin.line, 23);
    assert_eq!(http.children()[1].keyword, "connect_timeout");
    assert!(stmts[0].children()[0].block.is_none());
}

#[test]
fn comments_of_both_kinds_and_quotes() {
    let stmts = parse(concat!(
        "# hash comment\n",
        "! bang comment\n",
        "a 1 # trailing\n",
        "b 2 ! trailing\n",
        "notify_up \"/usr/bin/foo arg # not a comment ! nor this\" x\n",
        "c\\#d \\!e\n",
        "f \"\" g\n",
    ));
    assert_eq!(
        flat(&stmts),
        [
            kw("a", &["1"]),
            kw("b", &["2"]),
            kw(
                "notify_up",
                &["/usr/bin/foo arg # not a comment ! nor this", "x"]
            ),
            kw("c#d", &["!e"]),
            kw("f", &["", "g"]),
        ]
    );
    assert_eq!(stmts[2].origin.line, 5);
}

#[test]
fn brace_placement() {
    let stmts = parse(concat!(
        "real_server 10.0.0.1 80{\n",
        "  weight 1}\n",
        "vrrp_instance VI_1\n",
        "\n",
        "# comment between\n",
        "{\n",
        "  state MASTER\n",
        "}\n",
        "HTTP_GET { url { path /x status_code 200 } }\n",
        "url { path / } after\n",
    ));
    assert_eq!(
        flat(&stmts),
        [
            kw("real_server", &["10.0.0.1", "80"]),
            kw("vrrp_instance", &["VI_1"]),
            kw("HTTP_GET", &[]),
            kw("url", &[]),
            kw("after", &[]),
        ]
    );
    assert_eq!(flat(stmts[0].children()), [kw("weight", &["1"])]);
    assert_eq!(flat(stmts[1].children()), [kw("state", &["MASTER"])]);
    let url = &stmts[2].children()[0];
    assert_eq!(url.keyword, "url");
    assert_eq!(
        flat(url.children()),
        [kw("path", &["/x", "status_code", "200"])]
    );
    assert_eq!(flat(stmts[3].children()), [kw("path", &["/"])]);
    // An empty block is a block.
    assert_eq!(parse("a {\n}\n")[0].block, Some(vec![]));
}

#[test]
fn conditional_and_definition_lines_are_kept_raw() {
    let stmts = parse(concat!(
        "$FOO=bar\n",
        "@high net_namespace high\n",
        "@^low vrrp_instance X {\n",
        "  priority $PRIO\n",
        "}\n",
        "~SEQ(i, 1, 3) real_server 10.0.0.$i 80\n",
    ));
    assert_eq!(
        flat(&stmts),
        [
            kw("$FOO=bar", &[]),
            kw("@high", &["net_namespace", "high"]),
            kw("@^low", &["vrrp_instance", "X"]),
            kw("~SEQ(i, 1, 3)", &["real_server", "10.0.0.$i", "80"]),
        ]
    );
    assert_eq!(flat(stmts[2].children()), [kw("priority", &["$PRIO"])]);
    assert_eq!(stmts[3].origin.line, 6);
}

fn unbalanced(src: &str) -> (usize, BraceProblem, String) {
    match parse_str(src, Path::new("k.conf")) {
        Err(e @ ParseError::Unbalanced { .. }) => {
            let ParseError::Unbalanced { origin, problem } = &e else {
                unreachable!()
            };
            (origin.line, *problem, e.to_string())
        }
        other => panic!("expected an unbalanced error, got {other:?}"),
    }
}

#[test]
fn unbalanced_braces_have_lines() {
    let (line, problem, msg) = unbalanced("a {\n  b\n}\n}\n");
    assert_eq!((line, problem), (4, BraceProblem::ExtraClose));
    assert!(msg.starts_with("k.conf:4: "), "{msg}");
    let (line, problem, msg) = unbalanced("a {\n  b {\n  c\n}\n");
    assert_eq!((line, problem), (1, BraceProblem::NeverClosed));
    assert!(msg.starts_with("k.conf:1: "), "{msg}");
    let (line, problem, _) = unbalanced("\n{\n}\n");
    assert_eq!((line, problem), (2, BraceProblem::StrayOpen));
    let (line, problem, _) = unbalanced("a {\n}\n{\n}\n");
    assert_eq!((line, problem), (3, BraceProblem::StrayOpen));
}

#[test]
fn unterminated_quote() {
    let err = parse_str("a\nb \"x y\n", Path::new("k.conf")).expect_err("must fail");
    assert!(matches!(err, ParseError::UnterminatedQuote { ref origin } if origin.line == 2));
    assert_eq!(err.to_string(), "k.conf:2: unterminated double quote");
}

#[test]
fn include_glob_over_two_files_in_order() {
    let dir = TempDir::new("glob");
    dir.write("conf.d/20-b.conf", "b_stmt 2\n\nb2 {\n  x\n}\n");
    dir.write("conf.d/10-a.conf", "a_stmt 1\n");
    dir.write("conf.d/ignored.txt", "nope\n");
    dir.write("conf.d/.hidden.conf", "nope\n");
    fs::create_dir_all(dir.0.join("conf.d/dir.conf")).expect("mkdir");
    // keepalived skips executable matches ("not a regular non-executable file").
    let exec = dir.write("conf.d/30-exec.conf", "nope\n");
    fs::set_permissions(&exec, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let main = dir.write(
        "keepalived.conf",
        "first\ninclude conf.d/*.conf\nlast\ninclude conf.d/nomatch-*.conf\n",
    );
    let stmts = parse_file(&main).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        flat(&stmts),
        [
            kw("first", &[]),
            kw("a_stmt", &["1"]),
            kw("b_stmt", &["2"]),
            kw("b2", &[]),
            kw("last", &[]),
        ]
    );
    assert_eq!(*stmts[0].origin.file, main);
    assert_eq!(stmts[4].origin.line, 3);
    assert_eq!(*stmts[1].origin.file, dir.0.join("conf.d/10-a.conf"));
    assert_eq!(stmts[1].origin.line, 1);
    assert_eq!(*stmts[3].origin.file, dir.0.join("conf.d/20-b.conf"));
    assert_eq!(stmts[3].origin.line, 3);
    assert_eq!(stmts[3].children()[0].origin.line, 4);
    assert_eq!(
        stmts[3].children()[0].origin.to_string(),
        format!("{}:4", dir.0.join("conf.d/20-b.conf").display())
    );
}

#[test]
fn include_inside_block_relative_to_including_file() {
    let dir = TempDir::new("nested");
    // The second-level include is relative to sub/, where servers.conf lives.
    dir.write(
        "sub/servers.conf",
        "real_server 10.0.0.1 80 {\n  include checks/http.conf\n}\n",
    );
    dir.write(
        "sub/checks/http.conf",
        "HTTP_GET {\n  url {\n    path /\n  }\n}\n",
    );
    let main = dir.write(
        "keepalived.conf",
        "virtual_server 192.0.2.1 80 {\n  lb_algo rr\n  include sub/servers.conf\n  protocol TCP\n}\n",
    );
    let stmts = parse_file(&main).unwrap_or_else(|e| panic!("{e}"));
    let vs = &stmts[0];
    assert_eq!(
        flat(vs.children()),
        [
            kw("lb_algo", &["rr"]),
            kw("real_server", &["10.0.0.1", "80"]),
            kw("protocol", &["TCP"]),
        ]
    );
    let rs = &vs.children()[1];
    assert_eq!(*rs.origin.file, dir.0.join("sub/servers.conf"));
    let http = &rs.children()[0];
    assert_eq!(http.keyword, "HTTP_GET");
    assert_eq!(*http.origin.file, dir.0.join("sub/checks/http.conf"));
    assert_eq!(http.children()[0].children()[0].origin.line, 3);
    assert_eq!(vs.children()[2].origin.line, 4);
}

#[test]
fn include_brace_alternatives_and_absolute_paths() {
    let dir = TempDir::new("brace");
    dir.write("x.conf", "x\n");
    dir.write("y.conf", "y\n");
    let main = dir.write(
        "keepalived.conf",
        &format!("include {}/{{y,x}}.conf\n", dir.0.display()),
    );
    let stmts = parse_file(&main).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(flat(&stmts), [kw("y", &[]), kw("x", &[])]);
}

#[test]
fn include_loop_hits_the_depth_limit() {
    let dir = TempDir::new("loop");
    dir.write("a.conf", "a\ninclude b.conf\n");
    dir.write("b.conf", "b\n\ninclude a.conf\n");
    let main = dir.write("keepalived.conf", "include a.conf\n");
    let err = parse_file(&main).expect_err("must fail");
    let ParseError::IncludeDepth { origin, limit } = &err else {
        panic!("expected IncludeDepth, got {err:?}");
    };
    assert_eq!(*limit, MAX_INCLUDE_DEPTH);
    assert!(origin.line == 2 || origin.line == 3, "{origin}");
    assert!(err.to_string().contains("include loop"), "{err}");
}

#[test]
fn missing_plain_include_is_an_error_with_its_line() {
    let dir = TempDir::new("missing");
    let main = dir.write(
        "keepalived.conf",
        "global_defs {\n}\n\ninclude nothere.conf\n",
    );
    let err = parse_file(&main).expect_err("must fail");
    let ParseError::IncludeMissing { origin, path } = &err else {
        panic!("expected IncludeMissing, got {err:?}");
    };
    assert_eq!(origin.line, 4);
    assert_eq!(*path, dir.0.join("nothere.conf"));
    let msg = err.to_string();
    assert!(msg.starts_with(&format!("{}:4: ", main.display())), "{msg}");
    // includew makes an empty wildcard an error too.
    let main = dir.write("w.conf", "includew none-*.conf\n");
    let err = parse_file(&main).expect_err("must fail");
    assert!(matches!(err, ParseError::IncludeNoMatch { ref origin, .. } if origin.line == 1));
}

#[test]
fn included_directory_is_refused() {
    let dir = TempDir::new("dir");
    fs::create_dir_all(dir.0.join("conf.d")).expect("mkdir");
    let main = dir.write("keepalived.conf", "include conf.d\n");
    let err = parse_file(&main).expect_err("must fail");
    assert!(matches!(err, ParseError::IncludeNotFile { .. }), "{err:?}");
}

#[test]
fn errors_in_included_files_name_that_file() {
    let dir = TempDir::new("err");
    let inc = dir.write("inc.conf", "ok\n}\n");
    let main = dir.write("keepalived.conf", "include inc.conf\n");
    let err = parse_file(&main).expect_err("must fail");
    assert_eq!(
        err.to_string(),
        format!("{}:2: '}}' without a matching '{{'", inc.display())
    );
}

#[test]
fn missing_top_level_file() {
    let err = parse_file(Path::new("/nonexistent/keepalived.conf")).expect_err("must fail");
    assert!(matches!(err, ParseError::Io { .. }));
    assert!(
        err.to_string()
            .starts_with("/nonexistent/keepalived.conf: ")
    );
}

/// Every sample shipped with the Debian keepalived package parses (skipped where the
/// package is not installed; gzipped ones are skipped, flate2 is not a dependency).
#[test]
fn debian_samples_parse() {
    let Ok(entries) = fs::read_dir("/usr/share/doc/keepalived/samples") else {
        return;
    };
    let mut seen = 0;
    for entry in entries {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.starts_with("keepalived.conf") || name.ends_with(".gz") {
            continue;
        }
        let stmts = parse_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!stmts.is_empty(), "{}", path.display());
        seen += 1;
    }
    assert!(seen > 0);
}
