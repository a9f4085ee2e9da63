//! `vipd fleet`: fetches several directors' status and prints one table: per service, each
//! director's route state, healthy weight / quorum and table digest, then every
//! disagreement. Exit 0 when they agree, 1 when they do not (or one cannot be reached), 2
//! when they could not be compared (usage, an unreadable configuration): a monitoring check
//! or a script reads the exit status.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::fleet::{Member, MemberError, compare, fetch, render_text};

/// Where the directors come from.
pub enum Sources<'a> {
    /// The URLs given with `--peer`.
    Urls(Vec<String>),
    /// This node (its control socket) and its config's `[fleet]` peers.
    Config {
        /// The configuration file.
        config: &'a Path,
        /// The control socket, if given instead of the file's.
        socket: Option<&'a Path>,
    },
}

/// Runs the command.
pub fn run(sources: Sources<'_>, timeout: Duration, json: bool) -> ExitCode {
    if timeout.is_zero() {
        eprintln!("--timeout must be above 0, e.g. 2s");
        return ExitCode::from(2);
    }
    let (local, urls) = match sources {
        Sources::Urls(urls) => {
            if let Some(bad) = urls
                .iter()
                .find(|u| vipd_config::peer_authority(u).is_none())
            {
                eprintln!(
                    "--peer {bad:?}: write http://ADDRESS:PORT of the director's global.listen"
                );
                return ExitCode::from(2);
            }
            (None, urls)
        }
        Sources::Config { config, socket } => {
            let cfg = match vipd_config::load_file(config) {
                Ok(l) => l.config,
                Err(e) => {
                    eprintln!("{e}\n(or name the directors with --peer URL)");
                    return ExitCode::from(2);
                }
            };
            let Some(f) = cfg.fleet else {
                eprintln!(
                    "{} has no [fleet] peers: name the directors with --peer URL, or add [fleet] peers = [...]",
                    config.display()
                );
                return ExitCode::from(2);
            };
            let socket = socket.map_or(cfg.global.control_socket, Path::to_path_buf);
            (Some(socket), f.peers)
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut members: Vec<Member> = Vec::new();
    if let Some(s) = &local {
        members.push(Member {
            source: "local".into(),
            status: local_status(s, timeout),
        });
    }
    members.extend(rt.block_on(async {
        // Concurrently: the slowest peer bounds the command, not their sum.
        let mut set = tokio::task::JoinSet::new();
        for (i, url) in urls.iter().enumerate() {
            let url = url.clone();
            set.spawn(async move { (i, fetch::member(&url, timeout).await) });
        }
        let mut out: Vec<Option<Member>> = vec![None; urls.len()];
        while let Some(r) = set.join_next().await {
            if let Ok((i, m)) = r {
                out[i] = Some(m);
            }
        }
        out.into_iter()
            .zip(&urls)
            .map(|(m, url)| {
                m.unwrap_or_else(|| Member {
                    source: url.clone(),
                    status: Err(std::sync::Arc::new(crate::fleet::MemberError::Task(
                        "no result".into(),
                    ))),
                })
            })
            .collect::<Vec<_>>()
    }));
    let view = compare(&members);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&view).unwrap_or_default()
        );
    } else {
        print!("{}", render_text(&view));
    }
    if view.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// This node's status over its control socket, within `timeout`.
fn local_status(
    socket: &Path,
    timeout: Duration,
) -> Result<crate::status::Status, std::sync::Arc<MemberError>> {
    let io = |source| MemberError::Control {
        path: socket.to_path_buf(),
        source,
    };
    let mut text = String::new();
    std::os::unix::net::UnixStream::connect(socket)
        .and_then(|mut s| {
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            s.write_all(b"status\n")?;
            s.read_to_string(&mut text)
        })
        .map_err(|e| std::sync::Arc::new(io(e)))?;
    serde_json::from_str(&text).map_err(|e| std::sync::Arc::new(e.into()))
}
