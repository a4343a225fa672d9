//! A fault-injecting TCP proxy, one per directed link (as toxiproxy does):
//! node `a` reaches node `b` through the proxy of link `a -> b`, clients
//! reach node `b` through the client proxy of `b`. No root, no network
//! namespaces. A link's two directions (`up`: what the connecting side
//! sends; `down`: the answers) each have their own faults:
//!
//! - **stalled**: bytes are held, not delivered, as in a partition that TCP
//!   rides out: when it heals, what was held arrives late and in order (an
//!   old message after newer ones on other links). New connections are
//!   accepted and wait.
//! - **delay**: every chunk arrives `delay_ms` plus up to `jitter_ms` later,
//!   order kept.
//! - **loss**: a chunk is lost with probability `loss` and delivered after a
//!   TCP retransmission timeout (200-1000 ms; later chunks wait behind it);
//!   one in ten losses resets the connection instead.
//!
//! The faults are read at each chunk, so a change applies at once.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The faults of one direction of a link.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    pub stalled: bool,
    pub delay_ms: u64,
    pub jitter_ms: u64,
    pub loss: f64,
}

/// One directed link: its listener forwards to `target`.
#[derive(Clone)]
pub struct Link {
    pub name: String,
    state: Arc<Mutex<(Faults, Faults)>>,
}

impl Link {
    /// Listens on `listen` (e.g. `127.0.0.1:25112`) and forwards each
    /// connection to `target` until the runtime stops.
    pub async fn start(
        name: String,
        listen: &str,
        target: String,
        seed: u64,
    ) -> std::io::Result<Link> {
        let listener = TcpListener::bind(listen).await?;
        let link = Link {
            name,
            state: Arc::default(),
        };
        let l = link.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while let Ok((conn, _)) = listener.accept().await {
                n += 1;
                let (l, target) = (l.clone(), target.clone());
                tokio::spawn(async move { l.serve(conn, target, seed.wrapping_add(n)).await });
            }
        });
        Ok(link)
    }

    pub fn set(&self, up: Faults, down: Faults) {
        *self.state.lock().unwrap() = (up, down);
    }

    pub fn update(&self, f: impl FnOnce(&mut Faults, &mut Faults)) {
        let mut g = self.state.lock().unwrap();
        let (up, down) = &mut *g;
        f(up, down);
    }

    pub fn heal(&self) {
        self.set(Faults::default(), Faults::default());
    }

    fn faults(&self, up: bool) -> Faults {
        let g = self.state.lock().unwrap();
        if up {
            g.0.clone()
        } else {
            g.1.clone()
        }
    }

    async fn serve(self, client: TcpStream, target: String, seed: u64) {
        // A partition holds the connection attempt too.
        while self.faults(true).stalled {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let Ok(server) = TcpStream::connect(&target).await else {
            return; // the node is down: the client sees the connection close
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        // Whichever direction ends first (a close or a reset) ends both.
        tokio::select! {
            _ = self.pump(true, cr, sw, seed) => {}
            _ = self.pump(false, sr, cw, seed ^ 0x5eed) => {}
        }
    }

    /// Copies one direction: a reader stamps chunks as they arrive, a
    /// writer delivers each when its faults allow.
    async fn pump(
        &self,
        up: bool,
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        seed: u64,
    ) {
        let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(256);
        let reader = async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match from.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tx.send((Instant::now(), buf[..n].to_vec())).await.is_err() {
                            return;
                        }
                    }
                }
            }
        };
        let writer = async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut last = Instant::now();
            while let Some((at, chunk)) = rx.recv().await {
                let f = self.faults(up);
                let mut due = at + Duration::from_millis(f.delay_ms);
                if f.jitter_ms > 0 {
                    due += Duration::from_millis(rng.random_range(0..=f.jitter_ms));
                }
                if f.loss > 0.0 && rng.random_bool(f.loss.min(1.0)) {
                    if rng.random_bool(0.1) {
                        return; // reset
                    }
                    due += Duration::from_millis(rng.random_range(200..=1000));
                }
                last = last.max(due);
                tokio::time::sleep_until(last).await;
                while self.faults(up).stalled {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if to.write_all(&chunk).await.is_err() {
                    return;
                }
            }
        };
        // The writer drains what the reader got before its end (the reader
        // ending drops `tx`); a reset or a write error ends it early.
        tokio::select! {
            _ = writer => {}
            _ = async { reader.await; std::future::pending::<()>().await } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on an ephemeral port.
    async fn echo() -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = c.read(&mut buf).await {
                        if n == 0 || c.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn free_port() -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().to_string()
    }

    async fn round_trip(c: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
        c.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        c.read_exact(&mut got).await.unwrap();
        got
    }

    #[tokio::test]
    async fn a_stalled_link_holds_bytes_and_delivers_them_in_order_when_healed() {
        let target = echo().await;
        let listen = free_port().await;
        let link = Link::start("t".into(), &listen, target, 1).await.unwrap();
        let mut c = TcpStream::connect(&listen).await.unwrap();
        assert_eq!(round_trip(&mut c, b"hello").await, b"hello");

        link.update(|up, _| up.stalled = true);
        c.write_all(b"one").await.unwrap();
        c.write_all(b"two").await.unwrap();
        let mut buf = [0u8; 6];
        let held = tokio::time::timeout(Duration::from_millis(300), c.read_exact(&mut buf)).await;
        assert!(held.is_err(), "nothing gets through a stalled link");
        link.heal();
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"onetwo");
    }

    #[tokio::test]
    async fn latency_delays_every_chunk_and_certain_loss_resets_or_retransmits() {
        let target = echo().await;
        let listen = free_port().await;
        let link = Link::start("t".into(), &listen, target, 2).await.unwrap();
        let mut c = TcpStream::connect(&listen).await.unwrap();
        link.set(
            Faults {
                delay_ms: 150,
                ..Faults::default()
            },
            Faults::default(),
        );
        let t = Instant::now();
        assert_eq!(round_trip(&mut c, b"x").await, b"x");
        assert!(
            t.elapsed() >= Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );

        // Every chunk lost: it is retransmitted 200-1000 ms late, or the
        // connection is reset.
        link.set(
            Faults {
                loss: 1.0,
                ..Faults::default()
            },
            Faults::default(),
        );
        let t = Instant::now();
        let mut b = [0u8; 1];
        let r = match c.write_all(b"y").await {
            Err(_) => None,
            Ok(()) => match tokio::time::timeout(Duration::from_secs(3), c.read(&mut b)).await {
                Ok(Ok(1)) => Some(t.elapsed()),
                _ => None,
            },
        };
        if let Some(took) = r {
            assert!(
                took >= Duration::from_millis(200),
                "a lost chunk came in {took:?}"
            );
        }
    }
}
