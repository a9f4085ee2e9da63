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
        return Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Status::default()
        };
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
    if src.status.is_none() {
        return page(super::render_backend(env!("CARGO_PKG_VERSION")));
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
        let fleet = peers.map(|peers| {
            let mut members = vec![crate::fleet::Member {
                source: "local".into(),
                status: Ok(st.clone()),
            }];
            members.extend(peers.iter().cloned());
            crate::fleet::compare(&members)
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
