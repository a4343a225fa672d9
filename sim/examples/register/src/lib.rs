//! A user's own service, tested with the harness: a gRPC register (tonic)
//! that keeps its value in a log on its host's disk. Nothing here knows the
//! harness; the scenario (`scenario.rs`) runs it on simulated hosts.
//!
//! Each log line holds the value twice, so that a torn or corrupt last
//! line (a crash in the middle of a write) is recognised and skipped.
//!
//! Planted bug `ack-before-sync`: a write is answered once appended, and
//! the log is synced every 200 ms in the background, so a crash can lose a
//! write the client was told had happened.

pub mod pb {
    #![allow(clippy::all)]
    tonic::include_proto!("register");
}
#[cfg(madsim)]
pub mod scenario;

use hostio::{Clock, Dir};
use pb::register_server::{Register, RegisterServer};
use pb::{Empty, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tonic::{Request, Response, Status};

struct Server {
    disk: Arc<dyn Dir>,
    ack_before_sync: bool,
    /// The value, and the lock that orders writes.
    value: Mutex<i64>,
}

#[tonic::async_trait]
impl Register for Server {
    async fn write(&self, r: Request<Value>) -> Result<Response<Empty>, Status> {
        let mut v = self.value.lock().await;
        let io = |e: std::io::Error| Status::unavailable(e.to_string());
        let new = r.into_inner().value;
        self.disk
            .append("log", format!("{new} {new}\n").as_bytes())
            .map_err(io)?;
        if !self.ack_before_sync {
            self.disk.sync("log").map_err(io)?;
        }
        *v = new;
        Ok(Response::new(Empty {}))
    }

    async fn read(&self, _: Request<Empty>) -> Result<Response<Value>, Status> {
        let value = *self.value.lock().await;
        Ok(Response::new(Value { value }))
    }
}

/// Serves the register on `addr` from `disk` (its last logged value, or 0).
pub async fn serve(
    disk: Arc<dyn Dir>,
    clock: Clock,
    addr: std::net::SocketAddr,
    ack_before_sync: bool,
) {
    // Each line holds the value twice: a line that does not is a torn or
    // corrupt last write (never acknowledged), and is skipped.
    let log = disk.read("log").ok().flatten().unwrap_or_default();
    let last = String::from_utf8_lossy(&log)
        .lines()
        .filter_map(|l| l.split_once(' ').filter(|(a, b)| a == b)?.0.parse().ok())
        .next_back()
        .unwrap_or(0);
    if ack_before_sync {
        let d = disk.clone();
        tokio::spawn(async move {
            loop {
                clock.sleep(Duration::from_millis(200)).await;
                let _ = d.sync("log");
            }
        });
    }
    let server = Server {
        disk,
        ack_before_sync,
        value: Mutex::new(last),
    };
    tonic::transport::Server::builder()
        .add_service(RegisterServer::new(server))
        .serve(addr)
        .await
        .expect("the register serves");
}
