//! `GET /` (the page) and `GET /status` (the status document the fleet view fetches, the
//! same as `vipd status --json` plus each real server's recent check results).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::metrics::{CHECKS_DEADLINE, Sources};
use crate::status::Status;

/// The status with each real server's check history (asked of the health engine with a
/// deadline: a busy engine costs the page its sparklines, not its answer).
async fn status_now(src: &Sources) -> Status {
    let Some(s) = &src.status else {
        return src.backend.as_ref().map_or_else(
            || Status {
                version: env!("CARGO_PKG_VERSION").to_string(),
                ..Status::default()
            },
            |b| b.borrow().clone(),
        );
    };
    let mut st = s.status();
    if let Some(h) = &src.health {
        if let Ok(checks) = tokio::time::timeout(CHECKS_DEADLINE, h.snapshot()).await {
            crate::status::add_checks(&mut st, &checks);
        }
    }
    st
}

/// `GET /status`.
pub async fn status(State(src): State<Sources>) -> impl IntoResponse {
    let st = status_now(&src).await;
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        serde_json::to_string(&st).unwrap_or_default(),
    )
}

/// `GET /`.
pub async fn index(State(src): State<Sources>) -> impl IntoResponse {
    if let (None, Some(b)) = (&src.status, &src.backend) {
        let st = b.borrow().clone();
        return page(super::render_backend(&st));
    }
    let st = status_now(&src).await;
    let events = src
        .status
        .as_ref()
        .map(|s| s.events.latest(super::EVENTS_SHOWN))
        .unwrap_or_default();
    let peers = src.fleet.as_ref().map(|p| p.borrow().clone());
    // At a thousand services the page is a few megabytes of text: built on a blocking
    // thread, as `/metrics` is.
    let html = tokio::task::spawn_blocking(move || {
        let fleet = peers.map(|fetched| {
            let mut members = vec![crate::fleet::Member {
                source: "local".into(),
                status: Ok(st.clone()),
            }];
            if let Some((_, peers)) = &fetched {
                members.extend(peers.iter().cloned());
            }
            let mut v = crate::fleet::compare(&members);
            v.pending = fetched.is_none();
            v.fetched_secs_ago = fetched.map(|(at, _)| at.elapsed().as_secs());
            v
        });
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        super::render(&st, &events, fleet.as_ref(), now_ms)
    })
    .await
    .unwrap_or_else(|e| format!("<!doctype html><title>vipd</title><p>rendering failed: {e}"));
    page(html)
}

fn page(html: String) -> (StatusCode, [(header::HeaderName, &'static str); 2], String) {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use crate::status::Status;

    async fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.to_string(), body.to_string())
    }

    /// A backend's routes answer from its observed status: the page, /status, /healthcheck
    /// (503 with the problem) and /metrics.
    #[tokio::test]
    async fn a_backend_serves_its_own_state() {
        let b = crate::status::backend::missing_vip_example();
        let (tx, rx) = tokio::sync::watch::channel(Status {
            role: vipd_config::Role::Backend,
            backend: Some(b),
            ..Status::default()
        });
        let src = crate::metrics::Sources {
            status: None,
            health: None,
            latency: vipd_health::engine::latency_histograms(),
            ipvs: Default::default(),
            director: Default::default(),
            role: vipd_config::Role::Backend,
            cache: Default::default(),
            fleet: None,
            backend: Some(rx),
        };
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        let serve = crate::metrics::bind(addr, src, stop).await.unwrap();
        tokio::spawn(serve);
        let (head, body) = get(addr, "/").await;
        assert!(head.contains("text/html"), "{head}");
        assert!(
            body.contains("VIP 198.51.100.10 is missing on tunl0"),
            "{body}"
        );
        let (_, body) = get(addr, "/status").await;
        let st: Status = serde_json::from_str(&body).unwrap();
        assert_eq!(st.role, vipd_config::Role::Backend);
        let (head, body) = get(addr, "/healthcheck").await;
        assert!(head.starts_with("HTTP/1.1 503"), "{head}");
        assert_eq!(body, "DOWN VIP 198.51.100.10 is missing on tunl0\n");
        let (_, body) = get(addr, "/metrics").await;
        assert!(
            body.contains("vipd_backend_vip_present{device=\"tunl0\",vip=\"198.51.100.10\"} 0"),
            "{body}"
        );
        // Repaired: the next observation is served.
        tx.send_modify(|s| {
            if let Some(b) = s.backend.as_mut() {
                b.tunnels[0].vips[0].present = true;
                b.find_problems();
            }
        });
        let (head, body) = get(addr, "/healthcheck").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, "OK backend set up\n");
    }
}
