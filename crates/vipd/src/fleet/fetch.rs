//! Fetches a director's status document (`GET /status` on its `global.listen`) under one
//! deadline for the whole exchange, with a cap on its size: a peer that hangs, trickles or
//! floods is reported as unreachable and costs nothing more.
//!
//! Plain HTTP/1.1 over hyper's client (already linked for the server side): the peers are
//! other vipd listeners, which serve no TLS.

use std::time::Duration;

use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use super::Member;
use crate::status::Status;

/// A status document larger than this is refused (a 10,000-server director's is a few MB).
pub const MAX_BODY: usize = 64 << 20;

/// Why a peer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL is not `http://HOST:PORT`.
    #[error("not an http://HOST:PORT URL")]
    Url,
    /// The deadline passed.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connecting failed.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// The HTTP exchange failed.
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built (a host name HTTP cannot carry).
    #[error("request: {0}")]
    Request(#[from] hyper::http::Error),
    /// Not a 200.
    #[error("HTTP status {0}")]
    Status(hyper::StatusCode),
    /// The body could not be read (or was too large).
    #[error("reading the answer: {0}")]
    Body(String),
    /// Not a status document.
    #[error("not a vipd status document: {0}")]
    Json(#[from] serde_json::Error),
}

/// The member at `url`, fetched within `deadline`.
pub async fn member(url: &str, deadline: Duration) -> Member {
    Member {
        source: url.trim_end_matches('/').to_string(),
        status: status(url, deadline)
            .await
            .map_err(|e| std::sync::Arc::new(e.into())),
    }
}

/// `GET {url}/status`, within `deadline`.
pub async fn status(url: &str, deadline: Duration) -> Result<Status, FetchError> {
    let (host, port) = vipd_config::peer_authority(url).ok_or(FetchError::Url)?;
    tokio::time::timeout(deadline, get(host, port))
        .await
        .map_err(|_| FetchError::Timeout(deadline))?
}

async fn get(host: &str, port: u16) -> Result<Status, FetchError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let stream = tokio::net::TcpStream::connect((bare, port))
        .await
        .map_err(FetchError::Connect)?;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let req = hyper::Request::get("/status")
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .header(hyper::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())?;
    let exchange = async {
        let resp = tx.send_request(req).await?;
        if resp.status() != hyper::StatusCode::OK {
            return Err(FetchError::Status(resp.status()));
        }
        if let Some(n) = hyper::body::Body::size_hint(resp.body())
            .exact()
            .filter(|n| *n > MAX_BODY as u64)
        {
            return Err(FetchError::Body(format!(
                "an answer of {n} bytes is over the {MAX_BODY}-byte cap"
            )));
        }
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| FetchError::Body(e.to_string()))?
            .to_bytes();
        Ok(serde_json::from_slice::<Status>(&body)?)
    };
    // The connection is driven here, beside the exchange: no task of its own to outlive
    // the deadline. It may end before the exchange has taken the body it delivered.
    tokio::pin!(conn, exchange);
    let mut conn_done = false;
    loop {
        tokio::select! {
            biased;
            r = &mut exchange => return r,
            r = &mut conn, if !conn_done => match r {
                Err(e) => return Err(FetchError::Http(e)),
                Ok(()) => conn_done = true,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// What a one-shot peer does after reading the request.
    enum Answer {
        /// Writes these bytes and closes.
        Bytes(Vec<u8>),
        /// Never answers.
        Silent,
        /// Writes this head, then spaces until the client goes away.
        Flood(String),
    }

    /// A one-shot peer on loopback.
    async fn peer(answer: Answer) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            match answer {
                Answer::Bytes(a) => {
                    let _ = s.write_all(&a).await;
                }
                Answer::Silent => std::future::pending::<()>().await,
                Answer::Flood(head) => {
                    let _ = s.write_all(head.as_bytes()).await;
                    let chunk = vec![b' '; 1 << 20];
                    while s.write_all(&chunk).await.is_ok() {}
                }
            }
        });
        url
    }

    fn http(status: &str, body: &str) -> Answer {
        Answer::Bytes(
            format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        )
    }

    const DEADLINE: Duration = Duration::from_millis(500);

    #[tokio::test]
    async fn a_status_document_is_read() {
        let st = Status {
            router_id: Some("10.8.0.2".into()),
            ..Status::default()
        };
        let url = peer(http("200 OK", &serde_json::to_string(&st).unwrap())).await;
        let got = status(&url, DEADLINE).await.unwrap();
        assert_eq!(got.router_id.as_deref(), Some("10.8.0.2"));
    }

    #[tokio::test]
    async fn a_silent_peer_costs_the_deadline_only() {
        let e = status(&peer(Answer::Silent).await, DEADLINE)
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::Timeout(_)), "{e}");
    }

    #[tokio::test]
    async fn bad_answers_are_errors() {
        let e = status(&peer(http("503 Service Unavailable", "")).await, DEADLINE)
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "HTTP status 503 Service Unavailable");
        let e = status(&peer(http("200 OK", "<html>")).await, DEADLINE)
            .await
            .unwrap_err();
        assert!(
            e.to_string().starts_with("not a vipd status document"),
            "{e}"
        );
        let garbage = Answer::Bytes(b"garbage\r\n\r\n".to_vec());
        let e = status(&peer(garbage).await, DEADLINE).await.unwrap_err();
        assert!(matches!(e, FetchError::Http(_)), "{e}");
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        drop(l);
        let e = status(&url, DEADLINE).await.unwrap_err();
        assert!(matches!(e, FetchError::Connect(_)), "{e}");
        assert!(matches!(
            status("https://x:1", DEADLINE).await,
            Err(FetchError::Url)
        ));
    }

    #[tokio::test]
    async fn an_oversized_answer_is_refused() {
        let long = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let e = status(&peer(Answer::Flood(long)).await, Duration::from_secs(20))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("over the"), "{e}");
        // Without a length: read until the cap, then refused.
        let endless = "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_string();
        let e = status(&peer(Answer::Flood(endless)).await, Duration::from_secs(20))
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::Body(_)), "{e}");
    }
}
