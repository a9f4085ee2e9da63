//! The fleet task (`[fleet]` configured): fetches every peer's status each `interval`, all at
//! once, each under `timeout`, and publishes the members for the status page. It owns no
//! state the page cannot do without: a dead peer is published as unreachable, never waited
//! for by a page request.

use std::sync::Arc;

use tokio::sync::watch;

use super::Member;

/// The peers as last fetched, and when (None before the first round ends).
pub type Fetched = Option<(std::time::Instant, Arc<Vec<Member>>)>;

/// The receiving side, for the page.
pub type Peers = watch::Receiver<Fetched>;

/// A channel for [`run`].
pub fn channel() -> (watch::Sender<Fetched>, Peers) {
    watch::channel(None)
}

/// Fetches `cfg.peers` every `cfg.interval` into `tx` until `stop`.
pub async fn run(
    cfg: vipd_config::Fleet,
    tx: watch::Sender<Fetched>,
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
                        status: Err(Arc::new(super::MemberError::Task("no result".into()))),
                    })
                })
                .collect::<Vec<_>>()
        };
        tokio::select! {
            members = round => {
                tx.send_replace(Some((std::time::Instant::now(), Arc::new(members))));
            }
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer on loopback answering every request with a status naming `rid`.
    async fn peer(rid: &'static str) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let body = serde_json::to_string(&crate::status::Status {
            router_id: Some(rid.into()),
            ..Default::default()
        })
        .unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body.as_bytes()).await;
            }
        });
        url
    }

    #[tokio::test]
    async fn rounds_keep_the_order_and_publish_the_unreachable() {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let cfg = vipd_config::Fleet {
            peers: vec![
                closed.clone(),
                peer("10.8.0.2").await,
                peer("10.8.0.3").await,
            ],
            interval: vipd_config::Duration::from_millis(50),
            timeout: vipd_config::Duration::from_millis(40),
        };
        let (tx, mut rx) = channel();
        let (stop_tx, stop) = watch::channel(false);
        let task = tokio::spawn(run(cfg, tx, stop));
        assert!(rx.borrow().is_none(), "nothing before the first round");
        rx.changed().await.unwrap();
        let (_, members) = rx.borrow().clone().unwrap();
        let names: Vec<String> = members.iter().map(Member::name).collect();
        assert_eq!(names, [closed.as_str(), "10.8.0.2", "10.8.0.3"]);
        assert!(members[0].status.is_err());
        stop_tx.send(true).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(2), task)
            .await
            .expect("the task stops when told")
            .unwrap();
    }
}
