//! The command line of ExaBGP's `healthcheck` program (`python -m exabgp healthcheck`),
//! as declared by the argparse parser of `exabgp/application/healthcheck.py` in ExaBGP
//! 4.2 (checked against 4.2.25), plus the options 5.0 added (`--ip-ifname`,
//! `--label-exact-match`, `--debounce`) so a newer command line is reported rather than
//! refused.
//!
//! Parsing follows argparse: `--opt value` and `--opt=value`, unique prefixes of long
//! options (`--inter 10`), short options with their value attached (`-i10`) and clustered
//! flags (`-sd`); a value that looks like an option (starts with `-`, is not a negative
//! number and has no space) is not taken as a value.

use std::path::PathBuf;

/// The options of an ExaBGP healthcheck command line. `None` means "not given": the
/// defaults ExaBGP then uses are in each field's docs. Only the options listed as fields
/// are parsed into them; every other one is in [`other`](Self::other), so that nothing
/// given is silently lost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Healthcheck {
    /// `--interval`/`-i N`: seconds between checks (default 5; 0 means announce once and
    /// exit). ExaBGP accepts fractions; only whole seconds are accepted here.
    pub interval: Option<u32>,
    /// `--fast-interval`/`-f N`: seconds between checks while the state is changing
    /// (default 1; whole seconds only, as `interval`).
    pub fast_interval: Option<u32>,
    /// `--timeout`/`-t N`: seconds the check command may run (default 5).
    pub timeout: Option<u32>,
    /// `--rise N`: successes before the service is up (default 3).
    pub rise: Option<u32>,
    /// `--fall N`: failures before the service is down (default 3).
    pub fall: Option<u32>,
    /// `--command`/`--cmd`/`-c CMD`: the check, run through the shell. Without it the
    /// service is always up.
    pub cmd: Option<String>,
    /// `--disable FILE`: the service is disabled while FILE exists.
    pub disable: Option<PathBuf>,
    /// `--ip IP` (repeatable): the addresses or CIDR networks to announce, in order.
    pub ips: Vec<String>,
    /// `--withdraw-on-down`: withdraw the routes when down instead of announcing them
    /// with the down metric.
    pub withdraw_on_down: bool,
    /// `--next-hop`/`-N IP`: the next hop of the announcements (default `self`). Kept as
    /// written: ExaBGP itself requires an IP address here.
    pub next_hop: Option<String>,
    /// Always `None`: the healthcheck has no `--med` option (the MED it announces is the
    /// up/down/disabled metric). Kept so that code written against this field keeps
    /// compiling; a `--med` on the command line is an unknown option.
    pub med: Option<u32>,
    /// `--up-metric M`: MED of the first IP when up (default 100).
    pub up_metric: Option<u32>,
    /// `--down-metric M`: MED of the first IP when down (default 1000).
    pub down_metric: Option<u32>,
    /// `--disabled-metric M`: MED of the first IP when disabled (default 500).
    pub disabled_metric: Option<u32>,
    /// `--increase M`: added to the MED for each further IP (default 1).
    pub increase: Option<u32>,
    /// `--community C`: communities of the announcements, as written (ExaBGP puts the
    /// value inside `community [ ... ]`).
    pub community: Option<String>,
    /// `--large-community C`, as written.
    pub large_community: Option<String>,
    /// `--extended-community C`, as written.
    pub extended_community: Option<String>,
    /// `--as-path P`, as written (used in every state unless `--up-as-path` & co override
    /// it).
    pub as_path: Option<String>,
    /// `--up-as-path P`, `--down-as-path P`, `--disabled-as-path P`, as written.
    pub state_as_paths: [Option<String>; 3],
    /// `--disabled-community C`: the communities of the down and disabled announcements.
    pub disabled_community: Option<String>,
    /// `--local-preference P` (default -1, meaning none: a negative value is `None`).
    pub local_preference: Option<u32>,
    /// `--name`/`-n NAME`: the name of the healthchecker (used in its logs).
    pub name: Option<String>,
    /// Every other option, with its value if it takes one, in order, for the "not
    /// translated" report: the canonical long name with its dashes (`--silent` for `-s`,
    /// `--command` is a field) and the value (`None` for flags, and for
    /// `--syslog-facility` given without one).
    pub other: Vec<(String, Option<String>)>,
}

/// Why a healthcheck command line could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HealthcheckError {
    /// Not an option of ExaBGP's healthcheck.
    #[error("unknown healthcheck option '{option}'")]
    UnknownOption { option: String },
    /// An abbreviation that fits several long options.
    #[error("ambiguous healthcheck option '{option}' could be {}", candidates.join(", "))]
    AmbiguousOption {
        option: String,
        candidates: Vec<String>,
    },
    /// An option that needs a value is last, or followed by another option.
    #[error("healthcheck option '{option}' needs a value")]
    MissingValue { option: String },
    /// A flag given a value (`--sudo=yes`).
    #[error("healthcheck option '{option}' takes no value (got '{value}')")]
    UnexpectedValue { option: String, value: String },
    /// A value of the wrong kind.
    #[error("healthcheck option '{option}': '{value}' is not {expected}")]
    InvalidValue {
        option: String,
        value: String,
        expected: &'static str,
    },
    /// A word that is not an option nor an option's value (the healthcheck has no
    /// positional arguments).
    #[error("unexpected healthcheck argument '{arg}'")]
    UnexpectedArgument { arg: String },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Arity {
    Flag,
    Value,
    /// argparse `nargs='?'`: takes the next word if it is not an option.
    Optional,
}

/// Where a parsed option goes.
#[derive(Clone, Copy)]
enum Field {
    Interval,
    FastInterval,
    Timeout,
    Rise,
    Fall,
    Cmd,
    Disable,
    Ip,
    WithdrawOnDown,
    NextHop,
    UpMetric,
    DownMetric,
    DisabledMetric,
    Increase,
    Community,
    LargeCommunity,
    ExtendedCommunity,
    AsPath,
    StateAsPath(usize),
    DisabledCommunity,
    LocalPreference,
    Name,
    Other,
}

/// The words left to parse.
type Rest<'a> = std::iter::Peekable<std::slice::Iter<'a, String>>;

/// One option: its long spellings (the first is canonical), short ones, arity, field.
type Spec = (
    &'static [&'static str],
    &'static [&'static str],
    Arity,
    Field,
);

use Arity::{Flag, Optional, Value};
use Field::*;

/// The healthcheck's options, in the order of its argparse declarations.
const OPTIONS: &[Spec] = &[
    (&["--silent"], &["-s"], Flag, Other),
    (&["--syslog-facility"], &["-sF"], Optional, Other),
    (&["--no-syslog"], &[], Flag, Other),
    (&["--no-ack"], &["-a"], Flag, Other),
    (&["--sudo"], &[], Flag, Other),
    (&["--debug"], &["-d"], Flag, Other),
    (&["--name"], &["-n"], Value, Name),
    (&["--config"], &["-F"], Value, Other),
    (&["--pid"], &["-p"], Value, Other),
    (&["--user"], &[], Value, Other),
    (&["--group"], &[], Value, Other),
    (&["--interval"], &["-i"], Value, Interval),
    (&["--fast-interval"], &["-f"], Value, FastInterval),
    (&["--timeout"], &["-t"], Value, Timeout),
    (&["--rise"], &[], Value, Rise),
    (&["--fall"], &[], Value, Fall),
    (&["--disable"], &[], Value, Disable),
    (&["--command", "--cmd"], &["-c"], Value, Cmd),
    (&["--next-hop"], &["-N"], Value, NextHop),
    (&["--ip"], &[], Value, Ip),
    (&["--ip-ifname"], &[], Value, Other),
    (&["--local-preference"], &[], Value, LocalPreference),
    (&["--deaggregate-networks"], &[], Flag, Other),
    (&["--no-ip-setup"], &[], Flag, Other),
    (&["--dynamic-ip-setup"], &[], Flag, Other),
    (&["--label"], &[], Value, Other),
    (&["--label-exact-match"], &[], Flag, Other),
    (&["--start-ip"], &[], Value, Other),
    (&["--up-metric"], &[], Value, UpMetric),
    (&["--down-metric"], &[], Value, DownMetric),
    (&["--disabled-metric"], &[], Value, DisabledMetric),
    (&["--increase"], &[], Value, Increase),
    (&["--community"], &[], Value, Community),
    (&["--extended-community"], &[], Value, ExtendedCommunity),
    (&["--large-community"], &[], Value, LargeCommunity),
    (&["--disabled-community"], &[], Value, DisabledCommunity),
    (&["--as-path"], &[], Value, AsPath),
    (&["--up-as-path"], &[], Value, StateAsPath(0)),
    (&["--down-as-path"], &[], Value, StateAsPath(1)),
    (&["--disabled-as-path"], &[], Value, StateAsPath(2)),
    (&["--withdraw-on-down"], &[], Flag, WithdrawOnDown),
    (&["--path-id"], &[], Value, Other),
    (&["--neighbor"], &[], Value, Other),
    (&["--debounce"], &[], Flag, Other),
    (&["--execute"], &[], Value, Other),
    (&["--up-execute"], &[], Value, Other),
    (&["--down-execute"], &[], Value, Other),
    (&["--disabled-execute"], &[], Value, Other),
    (&["--help"], &["-h"], Flag, Other),
];

/// Whether `args` (a `run` statement's words) run ExaBGP's healthcheck, i.e. name the
/// program before the options (see [`parse_healthcheck_args`]).
pub fn is_healthcheck_command(args: &[String]) -> bool {
    program_position(args).is_some()
}

/// Parses a healthcheck command line. `args` may start with the way the program is run
/// (`python -m exabgp healthcheck`, `/usr/bin/healthcheck`, `exabgp-healthcheck`, ...):
/// everything up to and including the word that is `healthcheck`, ends with
/// `/healthcheck`, is `exabgp-healthcheck` (or ends with `/exabgp-healthcheck`), or is
/// `exabgp.application.healthcheck` (3.4's `python -m` module), is skipped.
pub fn parse_healthcheck_args(args: &[String]) -> Result<Healthcheck, HealthcheckError> {
    let mut hc = Healthcheck::default();
    let mut rest = args[program_position(args).map_or(0, |i| i + 1)..]
        .iter()
        .peekable();
    while let Some(arg) = rest.next() {
        if let Some(body) = arg.strip_prefix("--").filter(|b| !b.is_empty()) {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (format!("--{n}"), Some(v.to_owned())),
                None => (arg.clone(), None),
            };
            let spec = long_option(&name)?;
            let value = value_of(spec, &name, inline, &mut rest)?;
            apply(&mut hc, spec, value)?;
        } else if arg.len() > 1 && arg.starts_with('-') && !is_negative_number(arg) {
            short_options(&mut hc, arg, &mut rest)?;
        } else {
            return Err(HealthcheckError::UnexpectedArgument { arg: arg.clone() });
        }
    }
    Ok(hc)
}

/// Index of the program word, looked for only before the first long option, and not
/// right after a short option that takes a value (`-n healthcheck` is a name).
fn program_position(args: &[String]) -> Option<usize> {
    let is_program = |w: &str| {
        ["healthcheck", "exabgp-healthcheck"]
            .iter()
            .any(|p| w == *p || w.strip_suffix(p).is_some_and(|d| d.ends_with('/')))
            || w == "exabgp.application.healthcheck"
    };
    let takes_value = |w: &str| OPTIONS.iter().any(|s| s.2 == Value && s.1.contains(&w));
    args.iter()
        .take_while(|a| !a.starts_with("--"))
        .enumerate()
        .position(|(i, a)| is_program(a) && (i == 0 || !takes_value(&args[i - 1])))
}

/// argparse's `_negative_number_matcher`: `-1`, `-1.5`, `-.5`.
fn is_negative_number(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('-') else {
        return false;
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    !digits.is_empty()
        && all_digits(int)
        && all_digits(frac)
        && (!digits.contains('.') || !frac.is_empty())
}

/// Whether argparse would see `s` as an option rather than as a value.
fn looks_like_option(s: &str) -> bool {
    s.len() > 1 && s.starts_with('-') && !is_negative_number(s) && !s.contains(' ')
}

/// The spec of a long option, exact or by unique prefix.
fn long_option(name: &str) -> Result<&'static Spec, HealthcheckError> {
    if let Some(spec) = OPTIONS.iter().find(|s| s.0.contains(&name)) {
        return Ok(spec);
    }
    let matches: Vec<(&'static str, &'static Spec)> = OPTIONS
        .iter()
        .flat_map(|s| s.0.iter().map(move |l| (*l, s)))
        .filter(|(l, _)| l.starts_with(name))
        .collect();
    match matches.as_slice() {
        [(_, spec)] => Ok(spec),
        [] => Err(HealthcheckError::UnknownOption {
            option: name.to_owned(),
        }),
        _ => Err(HealthcheckError::AmbiguousOption {
            option: name.to_owned(),
            candidates: matches.iter().map(|(l, _)| (*l).to_owned()).collect(),
        }),
    }
}

fn short_option(name: &str) -> Option<&'static Spec> {
    OPTIONS.iter().find(|s| s.1.contains(&name))
}

/// A word starting with a single `-`: `-s`, `-sF`, `-i=10`, `-i10`, `-sd`.
fn short_options(
    hc: &mut Healthcheck,
    arg: &str,
    rest: &mut Rest<'_>,
) -> Result<(), HealthcheckError> {
    if let Some(spec) = short_option(arg) {
        let value = value_of(spec, arg, None, rest)?;
        return apply(hc, spec, value);
    }
    if let Some((name, v)) = arg.split_once('=')
        && let Some(spec) = short_option(name)
    {
        let value = value_of(spec, name, Some(v.to_owned()), rest)?;
        return apply(hc, spec, value);
    }
    // `-Xrest`: the value of -X, or more flags.
    let mut cluster = arg.to_owned();
    loop {
        let split = cluster
            .char_indices()
            .nth(2)
            .map_or(cluster.len(), |(i, _)| i);
        let (name, attached) = cluster.split_at(split);
        let spec = short_option(name).ok_or_else(|| HealthcheckError::UnknownOption {
            option: arg.to_owned(),
        })?;
        if spec.2 != Flag || attached.is_empty() {
            let inline = (!attached.is_empty()).then(|| attached.to_owned());
            let value = value_of(spec, name, inline, rest)?;
            return apply(hc, spec, value);
        }
        apply(hc, spec, None)?;
        cluster = format!("-{attached}");
    }
}

/// The value of an option: `inline` (after `=` or attached), else the next word if the
/// option takes one.
fn value_of(
    spec: &Spec,
    given: &str,
    inline: Option<String>,
    rest: &mut Rest<'_>,
) -> Result<Option<String>, HealthcheckError> {
    match (spec.2, inline) {
        (Flag, Some(value)) => Err(HealthcheckError::UnexpectedValue {
            option: given.to_owned(),
            value,
        }),
        (Flag, None) => Ok(None),
        (_, Some(value)) => Ok(Some(value)),
        (arity, None) => match rest.next_if(|next| !looks_like_option(next)) {
            Some(next) => Ok(Some(next.clone())),
            None if arity == Optional => Ok(None),
            None => Err(HealthcheckError::MissingValue {
                option: given.to_owned(),
            }),
        },
    }
}

/// Stores a parsed option in its field.
fn apply(hc: &mut Healthcheck, spec: &Spec, value: Option<String>) -> Result<(), HealthcheckError> {
    let option = spec.0[0];
    let Some(v) = value else {
        match spec.3 {
            WithdrawOnDown => hc.withdraw_on_down = true,
            _ => hc.other.push((option.to_owned(), None)),
        }
        return Ok(());
    };
    let int = |v: &str| parse_u32(option, v);
    match spec.3 {
        Interval => hc.interval = Some(parse_seconds(option, &v)?),
        FastInterval => hc.fast_interval = Some(parse_seconds(option, &v)?),
        Timeout => hc.timeout = Some(int(&v)?),
        Rise => hc.rise = Some(int(&v)?),
        Fall => hc.fall = Some(int(&v)?),
        UpMetric => hc.up_metric = Some(int(&v)?),
        DownMetric => hc.down_metric = Some(int(&v)?),
        DisabledMetric => hc.disabled_metric = Some(int(&v)?),
        Increase => hc.increase = Some(int(&v)?),
        LocalPreference => {
            hc.local_preference = match v.trim().strip_prefix('-') {
                Some(neg) if neg.bytes().all(|b| b.is_ascii_digit()) && !neg.is_empty() => None,
                _ => Some(int(&v)?),
            }
        }
        Cmd => hc.cmd = Some(v),
        Disable => hc.disable = Some(PathBuf::from(v)),
        Ip => hc.ips.push(v),
        NextHop => hc.next_hop = Some(v),
        Community => hc.community = Some(v),
        LargeCommunity => hc.large_community = Some(v),
        ExtendedCommunity => hc.extended_community = Some(v),
        AsPath => hc.as_path = Some(v),
        StateAsPath(i) => hc.state_as_paths[i] = Some(v),
        DisabledCommunity => hc.disabled_community = Some(v),
        Name => hc.name = Some(v),
        WithdrawOnDown | Other => hc.other.push((option.to_owned(), Some(v))),
    }
    Ok(())
}

/// An argparse `type=int` that must fit a `u32` (Python's `int()` also accepts blanks
/// around and a `+`).
fn parse_u32(option: &str, v: &str) -> Result<u32, HealthcheckError> {
    let t = v.trim();
    t.strip_prefix('+')
        .unwrap_or(t)
        .parse()
        .map_err(|_| invalid(option, v, "a non-negative integer"))
}

/// An argparse `type=float` number of seconds, accepted only when whole.
fn parse_seconds(option: &str, v: &str) -> Result<u32, HealthcheckError> {
    let expected = "a whole, non-negative number of seconds";
    if let Ok(n) = parse_u32(option, v) {
        return Ok(n);
    }
    match v.trim().parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f <= f64::from(u32::MAX) => {
            // Exact: `f` is whole and within range.
            Ok(f as u32)
        }
        _ => Err(invalid(option, v, expected)),
    }
}

fn invalid(option: &str, value: &str, expected: &'static str) -> HealthcheckError {
    HealthcheckError::InvalidValue {
        option: option.to_owned(),
        value: value.to_owned(),
        expected,
    }
}
