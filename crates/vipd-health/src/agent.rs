//! The HAProxy agent-check reply, as HAProxy parses it, and the `/etc/lb/agent-check`-style
//! status file that uses the same words.
//!
//! A reply is one line of words separated by spaces, tabs or commas, in any order, case
//! insensitive: a weight `N%`, `maxconn:N`, an administrative state (`ready`, `drain`,
//! `maint`), an operational state (`up`, `down`, `fail`, `stopped`), and after a `#` a free
//! text description. Only the first line counts. HAProxy ignores a reply in which it
//! recognises nothing; vipd counts it as a failed check with the reason `unparseable`, so a
//! broken agent or a file full of garbage can never keep a server up.

use std::fmt;

use crate::outcome::{Outcome, Verdict};
use std::time::Duration;

/// Administrative state words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admin {
    /// `ready`: back to normal (leaves drain and maint).
    Ready,
    /// `drain`: weight 0, still up: existing flows finish, no new ones.
    Drain,
    /// `maint`: down for maintenance.
    Maint,
}

/// Operational state words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oper {
    /// `up`.
    Up,
    /// `down`.
    Down,
    /// `fail`.
    Fail,
    /// `stopped`.
    Stopped,
}

impl fmt::Display for Oper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Oper::Up => "up",
            Oper::Down => "down",
            Oper::Fail => "fail",
            Oper::Stopped => "stopped",
        })
    }
}

/// One parsed reply. Later words of a kind override earlier ones, as in HAProxy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// Operational state, if given.
    pub oper: Option<Oper>,
    /// Administrative state, if given.
    pub admin: Option<Admin>,
    /// Weight in percent of the configured weight, if given.
    pub weight_pct: Option<u32>,
    /// `maxconn:N`, recorded (IPVS has per-destination thresholds, not used here).
    pub maxconn: Option<u32>,
    /// Text after `#`, trimmed.
    pub description: Option<String>,
}

/// Why a reply could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unparseable(pub String);

impl fmt::Display for Unparseable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unparseable: {}", self.0)
    }
}

/// The highest weight an agent can set, in percent of the configured weight: a larger one
/// is capped to it (HAProxy's limit). A backend saying `up 1000%` must not draw ten times
/// its share onto itself.
pub const MAX_WEIGHT_PCT: u32 = 256;

/// Parses the first line of `text`.
pub fn parse(text: &str) -> Result<Reply, Unparseable> {
    let line = text.split(['\n', '\r']).next().unwrap_or("");
    let (words, description) = match line.split_once('#') {
        Some((w, d)) => (w, Some(d.trim().to_string()).filter(|d| !d.is_empty())),
        None => (line, None),
    };
    let mut r = Reply {
        description,
        ..Reply::default()
    };
    let mut recognised = false;
    let mut unknown = Vec::new();
    for word in words.split([' ', '\t', ',']).filter(|w| !w.is_empty()) {
        let lower = word.to_ascii_lowercase();
        match lower.as_str() {
            "up" => r.oper = Some(Oper::Up),
            "down" => r.oper = Some(Oper::Down),
            "fail" => r.oper = Some(Oper::Fail),
            "stopped" => r.oper = Some(Oper::Stopped),
            "ready" => r.admin = Some(Admin::Ready),
            "drain" => r.admin = Some(Admin::Drain),
            "maint" => r.admin = Some(Admin::Maint),
            w if w.ends_with('%') => match w[..w.len() - 1].parse::<u32>() {
                Ok(p) => r.weight_pct = Some(p.min(MAX_WEIGHT_PCT)),
                Err(_) => {
                    unknown.push(word.to_string());
                    continue;
                }
            },
            w if w.starts_with("maxconn:") => match w["maxconn:".len()..].parse::<u32>() {
                Ok(n) => r.maxconn = Some(n),
                Err(_) => {
                    unknown.push(word.to_string());
                    continue;
                }
            },
            _ => {
                unknown.push(word.to_string());
                continue;
            }
        }
        recognised = true;
    }
    if !recognised {
        let shown: String = line.chars().take(60).collect();
        return Err(Unparseable(if line.trim().is_empty() {
            "empty reply".to_string()
        } else {
            format!("{shown:?}")
        }));
    }
    Ok(r)
}

impl Reply {
    /// What the reply means for the server.
    ///
    /// `maint` and `down`/`fail`/`stopped` are explicit statements and take effect at once
    /// (no `fall` count); `drain` keeps the server up with weight 0; a weight alone, `up` or
    /// `ready` pass.
    pub fn outcome(&self, source: &str, latency: Duration) -> Outcome {
        let desc = self
            .description
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        let weight = self
            .weight_pct
            .map(|p| format!(", weight {p}%"))
            .unwrap_or_default();
        let (verdict, reason) = match (self.admin, self.oper) {
            (Some(Admin::Maint), _) => (Verdict::ForcedDown, format!("{source}: maint{desc}")),
            (_, Some(o @ (Oper::Down | Oper::Fail | Oper::Stopped))) => {
                (Verdict::ForcedDown, format!("{source}: {o}{desc}"))
            }
            (Some(Admin::Drain), _) => (Verdict::Drain, format!("{source}: drain{desc}")),
            (Some(Admin::Ready), _) => (Verdict::Pass, format!("{source}: ready{weight}{desc}")),
            (None, Some(Oper::Up)) => (Verdict::Pass, format!("{source}: up{weight}{desc}")),
            (None, None) => (
                Verdict::Pass,
                format!("{source}: weight {}%{desc}", self.weight_pct.unwrap_or(100)),
            ),
        };
        Outcome {
            verdict,
            weight_pct: self.weight_pct,
            weight_abs: None,
            reason,
            latency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Reply {
        parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn each_keyword() {
        assert_eq!(ok("up\n").oper, Some(Oper::Up));
        assert_eq!(ok("DOWN").oper, Some(Oper::Down));
        assert_eq!(ok("fail").oper, Some(Oper::Fail));
        assert_eq!(ok("stopped").oper, Some(Oper::Stopped));
        assert_eq!(ok("Ready").admin, Some(Admin::Ready));
        assert_eq!(ok("drain").admin, Some(Admin::Drain));
        assert_eq!(ok("maint").admin, Some(Admin::Maint));
        assert_eq!(ok("75%").weight_pct, Some(75));
        assert_eq!(ok("maxconn:30").maxconn, Some(30));
    }

    #[test]
    fn haproxy_regtest_reply() {
        // HAProxy's own regression test sends this: every word is taken.
        let r = ok("75%,maxconn:30,maint,down\n");
        assert_eq!(r.weight_pct, Some(75));
        assert_eq!(r.maxconn, Some(30));
        assert_eq!(r.admin, Some(Admin::Maint));
        assert_eq!(r.oper, Some(Oper::Down));
        let o = r.outcome("agent", Duration::ZERO);
        assert_eq!(o.verdict, Verdict::ForcedDown);
        assert_eq!(o.reason, "agent: maint");
    }

    #[test]
    fn separators_description_and_first_line_only() {
        let r = ok("up \t 50%, # rolling upgrade 3/7\ndown\n");
        assert_eq!(r.oper, Some(Oper::Up));
        assert_eq!(r.weight_pct, Some(50));
        assert_eq!(r.description.as_deref(), Some("rolling upgrade 3/7"));
        let o = r.outcome("agent", Duration::ZERO);
        assert_eq!(o.verdict, Verdict::Pass);
        assert_eq!(o.reason, "agent: up, weight 50% (rolling upgrade 3/7)");
        let d = ok("stopped # deploying").outcome("file", Duration::ZERO);
        assert_eq!(d.verdict, Verdict::ForcedDown);
        assert_eq!(d.reason, "file: stopped (deploying)");
    }

    #[test]
    fn meaning_of_each_state() {
        let v = |s: &str| ok(s).outcome("agent", Duration::ZERO);
        assert_eq!(v("drain").verdict, Verdict::Drain);
        assert_eq!(v("drain").reason, "agent: drain");
        assert_eq!(v("ready").verdict, Verdict::Pass);
        assert_eq!(v("ready").reason, "agent: ready");
        assert_eq!(v("0%").verdict, Verdict::Pass);
        assert_eq!(v("0%").weight_pct, Some(0));
        assert_eq!(v("0%").reason, "agent: weight 0%");
        assert_eq!(v("fail").reason, "agent: fail");
        assert_eq!(v("up").weight_pct, None);
    }

    #[test]
    fn garbage_is_unparseable() {
        assert_eq!(
            parse("").unwrap_err().to_string(),
            "unparseable: empty reply"
        );
        assert_eq!(
            parse("hello world\n").unwrap_err().to_string(),
            "unparseable: \"hello world\""
        );
        assert_eq!(
            ok("up 1000%").weight_pct,
            Some(256),
            "capped as HAProxy does"
        );
        assert_eq!(ok("120000%").weight_pct, Some(256));
        assert!(parse("99999999999%").is_err(), "not a number");
        assert!(parse("maxconn:x").is_err());
        assert!(parse("\u{0}\u{1}binary").is_err());
        // A known word among unknown ones is still taken, as HAProxy does.
        assert_eq!(ok("foo up bar").oper, Some(Oper::Up));
    }
}
