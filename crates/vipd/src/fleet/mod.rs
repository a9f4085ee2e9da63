//! The fleet view: several directors' status side by side, per service, with what they
//! disagree on.
//!
//! The tier rests on every director computing the same `mh` table: the routers' ECMP may
//! send a flow's next packet to any director, and a director with another table sends it to
//! another backend, which resets it. So the view compares each service's table digest
//! ([`vipd_reconcile::table_digest`], from each kernel) and route state across directors.
//! [`compare`] is pure; the `vipd fleet` command and the status page fetch the documents
//! ([`fetch`]) and show the result.

pub mod fetch;
pub mod task;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::status::{Announce, Status};

/// Why a director's status could not be had.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// Fetching it over HTTP failed.
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    /// This node's control socket could not be read.
    #[error("control socket {path}: {source}")]
    Control {
        /// The socket.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// This node's control socket answered something else than a status document.
    #[error("control socket: not a status document: {0}")]
    NotStatus(#[from] serde_json::Error),
    /// The fetch task ended without a result (it panicked).
    #[error("the fetch task failed: {0}")]
    Task(String),
}

/// One director as fetched.
#[derive(Clone, Debug)]
pub struct Member {
    /// Where it was fetched from (`http://10.8.0.2:9180`, or `local`).
    pub source: String,
    /// Its status, or why it could not be had (shared: the page clones the members).
    pub status: Result<Status, std::sync::Arc<MemberError>>,
}

impl Member {
    /// How the view names it: the router ID its status gives, else where it was fetched.
    pub fn name(&self) -> String {
        match &self.status {
            Ok(Status {
                router_id: Some(r), ..
            }) => r.clone(),
            _ => self.source.clone(),
        }
    }
}

/// One director's view of one service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// Route state.
    pub announce: Announce,
    /// Healthy weight.
    pub healthy_weight: u64,
    /// Quorum.
    pub quorum: u32,
    /// Table digest (None: not in its kernel).
    pub digest: Option<String>,
    /// The VIP is drained there (the node's or its own drain file).
    pub drained: bool,
}

/// One service across the fleet: a cell per member, in member order (None: the member does
/// not have the service, or could not be reached).
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Service name.
    pub service: String,
    /// `TCP 198.51.100.10:80`.
    pub key: String,
    /// Per member.
    pub cells: Vec<Option<Cell>>,
    /// No problem found for this service.
    pub agree: bool,
}

/// A disagreement (each one makes `vipd fleet` exit 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// A director could not be fetched.
    Unreachable {
        /// The director.
        director: String,
        /// Why.
        error: String,
    },
    /// A service's tables differ: directors grouped by digest (`none`: not in the kernel).
    TablesDiffer {
        /// Service.
        service: String,
        /// (digest, directors with it), the largest group first.
        groups: Vec<(String, Vec<String>)>,
    },
    /// A director has the VIP withdrawn (or announced as down) while others announce it,
    /// and is not drained.
    Withdrawn {
        /// Service.
        service: String,
        /// The directors not announcing it.
        directors: Vec<String>,
        /// The directors announcing it.
        announced_by: Vec<String>,
    },
    /// A director does not have a service the others have.
    Missing {
        /// Service.
        service: String,
        /// The directors without it.
        directors: Vec<String>,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unreachable { director, error } => {
                write!(f, "{director}: unreachable: {error}")
            }
            Problem::TablesDiffer { service, groups } => {
                write!(f, "{service}: forwarding tables differ:")?;
                for (i, (d, who)) in groups.iter().enumerate() {
                    let sep = if i == 0 { " " } else { "; " };
                    write!(f, "{sep}{} has {d}", who.join(", "))?;
                }
                Ok(())
            }
            Problem::Withdrawn {
                service,
                directors,
                announced_by,
            } => write!(
                f,
                "{service}: withdrawn on {} while {} announce{}",
                directors.join(", "),
                announced_by.join(", "),
                if announced_by.len() == 1 { "s" } else { "" }
            ),
            Problem::Missing { service, directors } => {
                write!(f, "{service}: not configured on {}", directors.join(", "))
            }
        }
    }
}

/// The whole comparison.
#[derive(Clone, Debug, Serialize)]
pub struct View {
    /// Members' names, in the order given.
    pub directors: Vec<String>,
    /// Per member: drained (None: unreachable).
    pub drained: Vec<Option<bool>>,
    /// Services, in the first reachable member's order, then the others'.
    pub rows: Vec<Row>,
    /// Everything that disagrees.
    pub problems: Vec<Problem>,
    /// The page's view: the peers were not fetched yet (nothing is known to agree).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// The page's view: how long ago the peers were fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetched_secs_ago: Option<u64>,
}

/// Compares the members.
///
/// - A member that could not be fetched is a problem (monitoring must not read silence as
///   agreement).
/// - Digests are compared among the members that have the service; `none` (not in the
///   kernel) differs from any digest.
/// - A member announcing no route for a service that others announce is a problem unless it
///   is drained (the node's or the VIP's own drain file: an operator's choice) or its route
///   is `not announced` by configuration; one in the drain delay (`draining`) counts as
///   announcing.
pub fn compare(members: &[Member]) -> View {
    let directors: Vec<String> = members.iter().map(Member::name).collect();
    let mut problems = Vec::new();
    let mut order: Vec<(String, String)> = Vec::new();
    for (m, name) in members.iter().zip(&directors) {
        match &m.status {
            Err(e) => problems.push(Problem::Unreachable {
                director: name.clone(),
                error: e.to_string(),
            }),
            Ok(st) => {
                for s in &st.services {
                    if !order.iter().any(|(n, _)| *n == s.name) {
                        order.push((s.name.clone(), s.key.clone()));
                    }
                }
            }
        }
    }
    let mut rows = Vec::new();
    for (service, key) in order {
        let cells: Vec<Option<Cell>> = members
            .iter()
            .map(|m| {
                let st = m.status.as_ref().ok()?;
                let s = st.services.iter().find(|s| s.name == service)?;
                Some(Cell {
                    announce: s.announce,
                    healthy_weight: s.healthy_weight,
                    quorum: s.quorum,
                    digest: s.digest.clone(),
                    drained: s.drained || st.drained,
                })
            })
            .collect();
        let before = problems.len();
        let reachable = |i: usize| members[i].status.is_ok();
        let missing: Vec<String> = (0..members.len())
            .filter(|&i| reachable(i) && cells[i].is_none())
            .map(|i| directors[i].clone())
            .collect();
        if !missing.is_empty() {
            problems.push(Problem::Missing {
                service: service.clone(),
                directors: missing,
            });
        }
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (i, c) in cells.iter().enumerate() {
            if let Some(c) = c {
                let d = c.digest.clone().unwrap_or_else(|| "none".to_string());
                groups.entry(d).or_default().push(directors[i].clone());
            }
        }
        if groups.len() > 1 {
            let mut groups: Vec<(String, Vec<String>)> = groups.into_iter().collect();
            groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
            problems.push(Problem::TablesDiffer {
                service: service.clone(),
                groups,
            });
        }
        let announcing = |c: &Cell| matches!(c.announce, Announce::Announced | Announce::Draining);
        let announced_by: Vec<String> = cells
            .iter()
            .enumerate()
            .filter(|(_, c)| c.as_ref().is_some_and(announcing))
            .map(|(i, _)| directors[i].clone())
            .collect();
        let withdrawn: Vec<String> = cells
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.as_ref().is_some_and(|c| {
                    matches!(c.announce, Announce::Withdrawn | Announce::Down) && !c.drained
                })
            })
            .map(|(i, _)| directors[i].clone())
            .collect();
        if !announced_by.is_empty() && !withdrawn.is_empty() {
            problems.push(Problem::Withdrawn {
                service: service.clone(),
                directors: withdrawn,
                announced_by,
            });
        }
        rows.push(Row {
            service,
            key,
            cells,
            agree: problems.len() == before,
        });
    }
    View {
        drained: members
            .iter()
            .map(|m| m.status.as_ref().ok().map(|s| s.drained))
            .collect(),
        directors,
        rows,
        problems,
        pending: false,
        fetched_secs_ago: None,
    }
}

/// The view as a text table (what `vipd fleet` prints): a line per service, a column per
/// director (`route weight/quorum digest`), then the problems.
pub fn render_text(v: &View) -> String {
    let mut head = vec!["SERVICE".to_string()];
    for (d, dr) in v.directors.iter().zip(&v.drained) {
        head.push(match dr {
            Some(true) => format!("{d} (drained)"),
            Some(false) => d.clone(),
            None => format!("{d} (unreachable)"),
        });
    }
    head.push(String::new());
    let mut lines = vec![head];
    for r in &v.rows {
        let mut l = vec![r.service.clone()];
        for c in &r.cells {
            l.push(match c {
                None => "-".to_string(),
                Some(c) => format!(
                    "{} {}/{} {}",
                    route_word(c.announce),
                    c.healthy_weight,
                    c.quorum,
                    c.digest.as_deref().unwrap_or("none")
                ),
            });
        }
        l.push(if r.agree { "ok" } else { "DISAGREE" }.to_string());
        lines.push(l);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for l in &lines {
        let cols: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        out.push_str(cols.join("  ").trim_end());
        out.push('\n');
    }
    if v.problems.is_empty() {
        out.push_str(&format!(
            "\n{} directors agree on every service\n",
            v.directors.len()
        ));
    } else {
        out.push('\n');
        for p in &v.problems {
            out.push_str(&format!("DISAGREE {p}\n"));
        }
    }
    out
}

/// A route state in one word.
pub fn route_word(a: Announce) -> &'static str {
    match a {
        Announce::Announced => "announced",
        Announce::Draining => "draining",
        Announce::Down => "down",
        Announce::Withdrawn => "withdrawn",
        Announce::NotAnnounced => "not-announced",
    }
}
