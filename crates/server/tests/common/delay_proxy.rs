//! A TCP proxy that delays every chunk by a random 50-100 ms in each direction, keeping the
//! order of each direction: the slow network under which a cancelled command's reply
//! arrives after its request has already given up (the set-up that reproduced the 2023
//! Redis leak).

use std::ops::RangeInclusive;
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

pub struct DelayProxy {
    pub port: u16,
}

impl DelayProxy {
    /// Listens on 127.0.0.1:0 and forwards every connection to `target` (host:port).
    pub async fn start(target: String, delay_ms: RangeInclusive<u64>) -> DelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let target = target.clone();
                let delay = delay_ms.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pump(cr, sw, delay.clone()));
                    tokio::spawn(pump(sr, cw, delay));
                });
            }
        });
        DelayProxy { port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

/// Reads chunks as they come and writes each one no earlier than its own random delay after
/// it arrived, in arrival order. EOF on either side closes both.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: RangeInclusive<u64>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((at, bytes)) = rx.recv().await {
            // Injected network latency, not synchronisation.
            tokio::time::sleep_until(at).await;
            if to.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let ms = rand::thread_rng().gen_range(delay.clone());
                let at = Instant::now() + Duration::from_millis(ms);
                if tx.send((at, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}
