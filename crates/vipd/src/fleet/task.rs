//! The fleet task (`[fleet]` configured): fetches every peer's status each `interval`, all at
//! once, each under `timeout`, and publishes the members for the status page. It owns no
//! state the page cannot do without: a dead peer is published as unreachable, never waited
//! for by a page request.

use std::sync::Arc;

use tokio::sync::watch;

use super::Member;

/// The peers as last fetched (empty before the first round).
pub type Peers = watch::Receiver<Arc<Vec<Member>>>;

/// A channel for [`run`].
pub fn channel() -> (watch::Sender<Arc<Vec<Member>>>, Peers) {
    watch::channel(Arc::new(Vec::new()))
}

/// Fetches `cfg.peers` every `cfg.interval` into `tx` until `stop`.
pub async fn run(
    cfg: vipd_config::Fleet,
    tx: watch::Sender<Arc<Vec<Member>>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(cfg.interval.get());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let round = async {
            let mut set = tokio::task::JoinSet::new();
            for (i, url) in cfg.peers.iter().enumerate() {
                let (url, deadline) = (url.clone(), cfg.timeout.get());
                set.spawn(async move { (i, super::fetch::member(&url, deadline).await) });
            }
            let mut members: Vec<Option<Member>> = vec![None; cfg.peers.len()];
            while let Some(r) = set.join_next().await {
                match r {
                    Ok((i, m)) => members[i] = Some(m),
                    Err(e) => tracing::warn!(error = %e, "a fleet fetch task failed"),
                }
            }
            members
                .into_iter()
                .zip(&cfg.peers)
                .map(|(m, url)| {
                    m.unwrap_or_else(|| Member {
                        source: url.clone(),
                        status: Err("the fetch failed".into()),
                    })
                })
                .collect::<Vec<_>>()
        };
        tokio::select! {
            members = round => { let _ = tx.send(Arc::new(members)); }
            _ = stop.changed() => return,
        }
    }
}
