//! ExaBGP configuration, shell splitting and healthcheck options through the public API.

use std::path::Path;

use vipd_import::BraceProblem;
use vipd_import::exabgp::{
    Healthcheck, HealthcheckError, ParseError, SplitError, Stmt, is_healthcheck_command,
    parse_file, parse_healthcheck_args, parse_str, shell_split,
};

const SAMPLE: &str = r#"process service-v6 {
  run python -m exabgp healthcheck -s --interval 10 --increase 0 --cmd "test -f /etc/lb/v6-ready -a ! -f /etc/lb/disable";
  encoder text;
}
template {
  neighbor v6 {
    router-id 192.0.2.132;
    local-address 2001:db8::192.0.2.132;
    local-as 65000;
    peer-as 65000;
    hold-time 6;
    family { ipv6 unicast; }
    api services-v6 { processes [ service-v6 ]; }
  }
}
neighbor 2001:db8::192.0.2.254 { inherit v6; }
neighbor 2001:db8::192.0.2.253 { inherit v6; }
"#;

fn parse(src: &str) -> Vec<Stmt> {
    parse_str(src, Path::new("exabgp.conf")).unwrap_or_else(|e| panic!("{e}"))
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

#[test]
fn sample_parses() {
    let stmts = parse(SAMPLE);
    let keywords: Vec<(&str, &[String])> = stmts
        .iter()
        .map(|s| (s.keyword.as_str(), s.args.as_slice()))
        .collect();
    assert_eq!(
        keywords,
        [
            ("process", &strings(&["service-v6"])[..]),
            ("template", &[][..]),
            ("neighbor", &strings(&["2001:db8::192.0.2.254"])[..]),
            ("neighbor", &strings(&["2001:db8::192.0.2.253"])[..]),
        ]
    );
    let run = &stmts[0].children()[0];
    assert_eq!(run.keyword, "run");
    assert_eq!(run.origin.line, 2);
    assert_eq!(
        run.args,
        strings(&[
            "python",
            "-m",
            "exabgp",
            "healthcheck",
            "-s",
            "--interval",
            "10",
            "--increase",
            "0",
            "--cmd",
            "test -f /etc/lb/v6-ready -a ! -f /etc/lb/disable",
        ])
    );
    assert_eq!(stmts[0].children()[1].args, ["text"]);

    let neighbor = &stmts[1].children()[0];
    assert_eq!(
        (neighbor.keyword.as_str(), neighbor.origin.line),
        ("neighbor", 6)
    );
    let family = &neighbor.children()[5];
    assert_eq!(family.keyword, "family");
    assert_eq!(family.children()[0].keyword, "ipv6");
    assert_eq!(family.children()[0].args, ["unicast"]);
    assert_eq!(family.children()[0].origin.line, 12);
    let api = &neighbor.children()[6];
    assert_eq!(api.args, ["services-v6"]);
    assert_eq!(api.children()[0].keyword, "processes");
    assert_eq!(api.children()[0].args, ["[", "service-v6", "]"]);
    assert_eq!(stmts[3].children()[0].args, ["v6"]);
    assert_eq!(stmts[3].origin.to_string(), "exabgp.conf:17");

    // The run line is a healthcheck whose options parse.
    assert!(is_healthcheck_command(&run.args));
    let hc = parse_healthcheck_args(&run.args).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(hc.interval, Some(10));
    assert_eq!(hc.increase, Some(0));
}

#[test]
fn comments_quotes_and_lists() {
    let stmts = parse(concat!(
        "# comment\n",
        "a 'x # y' \"p q\"; # trailing\n",
        "b [a,b] [c];\n",
        "c { d }\n",
        ";\n",
    ));
    assert_eq!(stmts[0].args, ["x # y", "p q"]);
    assert_eq!(stmts[1].args, ["[", "a", ",", "b", "]", "[", "c", "]"]);
    assert_eq!(stmts[2].children()[0].keyword, "d");
    assert_eq!(stmts.len(), 3);
}

#[test]
fn errors_have_lines() {
    let err = parse_str("a {\n  b\n}\n", Path::new("e.conf")).expect_err("no ;");
    assert!(matches!(err, ParseError::Unterminated { ref origin } if origin.line == 2));
    assert!(err.to_string().starts_with("e.conf:2: "), "{err}");

    let err = parse_str("a {\n  b;\n", Path::new("e.conf")).expect_err("unclosed");
    assert!(matches!(
        err,
        ParseError::Unbalanced { ref origin, problem: BraceProblem::NeverClosed } if origin.line == 1
    ));
    let err = parse_str("a;\n}\n", Path::new("e.conf")).expect_err("extra");
    assert!(matches!(
        err,
        ParseError::Unbalanced { ref origin, problem: BraceProblem::ExtraClose } if origin.line == 2
    ));
    let err = parse_str("a 'b;\n", Path::new("e.conf")).expect_err("quote");
    assert!(matches!(err, ParseError::UnterminatedQuote { ref origin } if origin.line == 1));
    let err = parse_file(Path::new("/nonexistent/exabgp.conf")).expect_err("io");
    assert!(matches!(err, ParseError::Io { .. }));
}

#[test]
fn shell_split_cases() {
    let ok = |s: &str| shell_split(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    assert_eq!(ok("  a  b\tc\n"), ["a", "b", "c"]);
    assert_eq!(ok(""), Vec::<String>::new());
    assert_eq!(
        ok(r#"--cmd "test -f x" 'a b'"#),
        ["--cmd", "test -f x", "a b"]
    );
    assert_eq!(ok(r#"a'b'"c"d"#), ["abcd"]);
    assert_eq!(ok(r#"'' """#), ["", ""]);
    assert_eq!(ok(r"a\ b c\\d \'"), ["a b", r"c\d", "'"]);
    assert_eq!(ok(r#""a \" \\ \x \$""#), [r#"a " \ \x $"#]);
    assert_eq!(ok(r"'a \n $HOME'"), [r"a \n $HOME"]);
    assert_eq!(ok("a\\\nb"), ["ab"]);
    assert_eq!(ok("a # comment\nb"), ["a", "b"]);
    assert_eq!(ok("a#b"), ["a#b"]);
    assert_eq!(ok("cost$ 5$"), ["cost$", "5$"]);
    assert_eq!(
        ok(r#"python -m exabgp healthcheck --cmd "test -f /etc/lb/v6-ready -a ! -f /etc/lb/disable""#)
            .last()
            .map(String::as_str),
        Some("test -f /etc/lb/v6-ready -a ! -f /etc/lb/disable")
    );

    assert_eq!(
        shell_split("a 'b"),
        Err(SplitError::UnterminatedQuote {
            quote: '\'',
            offset: 2
        })
    );
    assert!(matches!(
        shell_split(r#"a "b\""#),
        Err(SplitError::UnterminatedQuote { quote: '"', .. })
    ));
    assert_eq!(shell_split("a\\"), Err(SplitError::TrailingBackslash));
    for bad in [
        "a | b", "a;b", "a && b", "x > y", "$HOME", "\"${X}\"", "`id`", "$(id)",
    ] {
        assert!(
            matches!(shell_split(bad), Err(SplitError::Unsupported { .. })),
            "{bad}"
        );
    }
}

fn hc(line: &str) -> Result<Healthcheck, HealthcheckError> {
    parse_healthcheck_args(&shell_split(line).unwrap_or_else(|e| panic!("{e}")))
}

#[test]
fn healthcheck_from_the_sample() {
    let h = hc(r#"python -m exabgp healthcheck -s --interval 10 --increase 0 --cmd "test -f /etc/lb/v6-ready -a ! -f /etc/lb/disable""#)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        h,
        Healthcheck {
            interval: Some(10),
            increase: Some(0),
            cmd: Some("test -f /etc/lb/v6-ready -a ! -f /etc/lb/disable".into()),
            other: vec![("--silent".into(), None)],
            ..Healthcheck::default()
        }
    );
}

#[test]
fn healthcheck_advertising_options() {
    let h = hc("--withdraw-on-down --disable /etc/lb/disable --ip 2001:db8::1/128 --ip 192.0.2.1/32 --next-hop self --up-metric 100 --down-metric=1000")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        h,
        Healthcheck {
            withdraw_on_down: true,
            disable: Some("/etc/lb/disable".into()),
            ips: vec!["2001:db8::1/128".into(), "192.0.2.1/32".into()],
            next_hop: Some("self".into()),
            up_metric: Some(100),
            down_metric: Some(1000),
            ..Healthcheck::default()
        }
    );
}

#[test]
fn healthcheck_argparse_details() {
    let h = hc(
        "/usr/local/bin/exabgp-healthcheck -i5 -f=2 -t 3 --rise 2 --fall 4 -n web \
                -c 'curl -sf http://127.0.0.1/' --inter 7 --local-preference -1 \
                --community 65000:1 --large-community 65000:1:2 --extended-community target:1:2 \
                --as-path '65000 65001' --up-as-path 65002 -sd --syslog-facility --label lo \
                --execute 'logger up' --disabled-metric 500 --name=api",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(h.interval, Some(7));
    assert_eq!(h.fast_interval, Some(2));
    assert_eq!(h.timeout, Some(3));
    assert_eq!((h.rise, h.fall), (Some(2), Some(4)));
    assert_eq!(h.name.as_deref(), Some("api"));
    assert_eq!(h.cmd.as_deref(), Some("curl -sf http://127.0.0.1/"));
    assert_eq!(h.local_preference, None);
    assert_eq!(h.community.as_deref(), Some("65000:1"));
    assert_eq!(h.large_community.as_deref(), Some("65000:1:2"));
    assert_eq!(h.extended_community.as_deref(), Some("target:1:2"));
    assert_eq!(h.as_path.as_deref(), Some("65000 65001"));
    assert_eq!(h.state_as_paths[0].as_deref(), Some("65002"));
    assert_eq!(h.disabled_metric, Some(500));
    assert_eq!(h.med, None);
    let other: Vec<(&str, Option<&str>)> = h
        .other
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref()))
        .collect();
    assert_eq!(
        other,
        [
            ("--silent", None),
            ("--debug", None),
            ("--syslog-facility", None),
            ("--label", Some("lo")),
            ("--execute", Some("logger up")),
        ]
    );
    assert_eq!(
        hc("--local-preference 200").map(|h| h.local_preference),
        Ok(Some(200))
    );
    assert_eq!(hc("--interval 2.0").map(|h| h.interval), Ok(Some(2)));
    // A healthcheck named "healthcheck" is not the program.
    assert_eq!(
        hc("-n healthcheck --rise 1").map(|h| h.name),
        Ok(Some("healthcheck".into()))
    );
}

#[test]
fn healthcheck_errors_name_the_option() {
    let err = |line: &str| hc(line).expect_err(line);
    assert_eq!(
        err("healthcheck --bogus 1"),
        HealthcheckError::UnknownOption {
            option: "--bogus".into()
        }
    );
    assert!(err("--med 100").to_string().contains("'--med'"));
    assert!(matches!(err("-x"), HealthcheckError::UnknownOption { option } if option == "-x"));
    assert!(matches!(
        err("--comm 1"),
        HealthcheckError::AmbiguousOption { option, .. } if option == "--comm"
    ));
    assert_eq!(
        err("--interval"),
        HealthcheckError::MissingValue {
            option: "--interval".into()
        }
    );
    assert!(matches!(
        err("--cmd --ip 1.2.3.4"),
        HealthcheckError::MissingValue { .. }
    ));
    assert!(matches!(
        err("--sudo=yes"),
        HealthcheckError::UnexpectedValue { .. }
    ));
    assert!(matches!(
        err("--interval 0.5"),
        HealthcheckError::InvalidValue { option, .. } if option == "--interval"
    ));
    assert!(matches!(
        err("--rise many"),
        HealthcheckError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("--increase -1"),
        HealthcheckError::InvalidValue { .. }
    ));
    assert!(matches!(
        err("/usr/bin/python3 check.py --ip 1.2.3.4"),
        HealthcheckError::UnexpectedArgument { arg } if arg == "/usr/bin/python3"
    ));
    assert!(!is_healthcheck_command(&strings(&[
        "/usr/bin/python3",
        "check.py"
    ])));
    assert!(is_healthcheck_command(&strings(&[
        "/usr/bin/healthcheck",
        "--rise",
        "2"
    ])));
}
