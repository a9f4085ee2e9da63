//! Benchmark helper (testbed/bench/health): N tiny HTTP servers on 127.1.x.y:PORT (target i
//! at 127.1.(i / 250).(i % 250 + 1)). Each answers `200 OK`; after SIGUSR1 target 0 answers
//! 503. SIGUSR2 writes the inter-request intervals seen per target since the previous SIGUSR2
//! to STATS (one microsecond value per line) and starts a new window.
//! Usage: `http_farm N PORT STATS`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

/// Target `i`'s address.
fn addr(i: usize, port: u16) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8)),
        port,
    )
}

struct Farm {
    start: Instant,
    flipped: AtomicBool,
    /// Per target: time of its last request, in µs since start (0: none yet).
    last: Vec<AtomicU64>,
    intervals: Mutex<Vec<u64>>,
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [n, port, stats] = &a[..] else {
        eprintln!("usage: http_farm N PORT STATS");
        std::process::exit(2);
    };
    let n: usize = n.parse().expect("N");
    let port: u16 = port.parse().expect("PORT");
    let stats = stats.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let farm = Arc::new(Farm {
            start: Instant::now(),
            flipped: AtomicBool::new(false),
            last: (0..n).map(|_| AtomicU64::new(0)).collect(),
            intervals: Mutex::new(Vec::new()),
        });
        for i in 0..n {
            let l = TcpListener::bind(addr(i, port)).await.expect("bind");
            let farm = farm.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((mut s, _)) = l.accept().await else {
                        continue;
                    };
                    let farm = farm.clone();
                    tokio::spawn(async move {
                        let mut buf = [0u8; 1024];
                        let mut got = 0;
                        while !buf[..got].windows(4).any(|w| w == b"\r\n\r\n") && got < buf.len() {
                            match s.read(&mut buf[got..]).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => got += k,
                            }
                        }
                        let now = farm.start.elapsed().as_micros() as u64;
                        let prev = farm.last[i].swap(now, Ordering::Relaxed);
                        if prev != 0 {
                            farm.intervals.lock().expect("lock").push(now - prev);
                        }
                        let reply: &[u8] = if i == 0 && farm.flipped.load(Ordering::Relaxed) {
                            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        } else {
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK"
                        };
                        let _ = s.write_all(reply).await;
                    });
                }
            });
        }
        eprintln!("http_farm: {n} targets listening");
        let mut usr1 = signal(SignalKind::user_defined1()).expect("signal");
        let mut usr2 = signal(SignalKind::user_defined2()).expect("signal");
        let mut term = signal(SignalKind::terminate()).expect("signal");
        loop {
            tokio::select! {
                _ = usr1.recv() => farm.flipped.store(true, Ordering::SeqCst),
                _ = usr2.recv() => {
                    let v = std::mem::take(&mut *farm.intervals.lock().expect("lock"));
                    let text: String = v.iter().map(|x| format!("{x}\n")).collect();
                    std::fs::write(&stats, text).expect("stats");
                }
                _ = term.recv() => break,
            }
        }
    });
}
