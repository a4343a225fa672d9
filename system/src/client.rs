//! Client library of the replicated key-value store: finds the leader,
//! retries with per-attempt deadlines and jittered exponential backoff, and
//! tells a certain failure apart from an unknown outcome.
//!
//! Every write carries (client id, sequence number) and keeps them across
//! retries, so the store applies it at most once and a retry that lands
//! after the first attempt returns the first attempt's result. A write whose
//! every attempt was certainly rejected fails with [`ClientError::Failed`];
//! once any attempt may have reached a leader (timeout, connection lost) and
//! no attempt succeeded, the answer is [`ClientError::Unknown`]: it may or may
//! not have been applied.
//!
//! Deadlines, attempt timeouts and backoff pauses are measured on the
//! runtime's clock, or on the host's [`Clock`] given with
//! [`KvClient::with_clock`] (a service's store clients use its host's).

use crate::clock::Clock;
use crate::kv::cmd;
use crate::pb::{self, kv_client::KvClient as Grpc};
use raft::NodeId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub attempt_timeout: Duration,
    /// How long a write keeps retrying (with the same sequence number) to
    /// learn its outcome before reporting it unknown.
    pub total_timeout: Duration,
    /// How long a read keeps retrying (a read has no effect: it just fails).
    pub read_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Writes and reads go over one long-lived `Pipeline` stream per node,
    /// shared by [`KvClient::sibling`]s, instead of one unary gRPC call
    /// (an HTTP/2 stream with its headers and trailers) each: the same
    /// answers, the same retries and the same outcomes when a stream breaks
    /// (its unanswered writes' outcomes are unknown), at a fraction of the
    /// CPU under many concurrent clients. Off by default; `bookstore bench`
    /// turns it on.
    pub pipeline: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            attempt_timeout: Duration::from_millis(1000),
            total_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(10),
            backoff_max: Duration::from_millis(200),
            pipeline: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The write may or may not have been applied.
    #[error("outcome unknown: {0}")]
    Unknown(String),
    /// Certainly not applied (or, for a read, no answer).
    #[error("failed: {0}")]
    Failed(String),
}

impl ClientError {
    pub fn is_unknown(&self) -> bool {
        matches!(self, ClientError::Unknown(_))
    }
}

/// One node's connection: its gRPC client and, with
/// [`ClientOptions::pipeline`], its pipeline.
#[derive(Clone)]
struct Conn {
    grpc: Grpc<Channel>,
    pipe: Option<Pipe>,
}

impl Conn {
    /// One write: over the pipeline if there is one, else a unary call.
    async fn write(mut self, req: pb::WriteRequest) -> Result<pb::WriteResponse, Status> {
        match self.pipe {
            Some(pipe) => match pipe.call(pb::call::Req::Write(req)).await? {
                pb::reply::Resp::Write(w) => Ok(w),
                pb::reply::Resp::Read(_) => Err(Status::internal("a read's reply to a write")),
            },
            None => Ok(self.grpc.write(req).await?.into_inner()),
        }
    }

    /// One linearizable read, the same way.
    async fn read(mut self, req: pb::ReadRequest) -> Result<pb::ReadResponse, Status> {
        match self.pipe {
            Some(pipe) => match pipe.call(pb::call::Req::Read(req)).await? {
                pb::reply::Resp::Read(r) => Ok(r),
                pb::reply::Resp::Write(_) => Err(Status::internal("a write's reply to a read")),
            },
            None => Ok(self.grpc.read(req).await?.into_inner()),
        }
    }
}

type Job = (
    pb::call::Req,
    oneshot::Sender<Result<pb::reply::Resp, Status>>,
);

/// The calling end of one node's `Pipeline` stream: a task owns the stream
/// (opened at the first call), numbers the calls and hands each reply to
/// its caller. When the stream breaks, every unanswered call gets an
/// `Unknown` status (it may have been applied) and the task ends; the next
/// call through this handle fails with `Unavailable` ("connect error":
/// never sent), and the client opens a new pipeline.
#[derive(Clone)]
struct Pipe(mpsc::UnboundedSender<Job>);

impl Pipe {
    fn open(grpc: Grpc<Channel>) -> Pipe {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(Pipe::run(grpc, rx));
        Pipe(tx)
    }

    async fn call(&self, req: pb::call::Req) -> Result<pb::reply::Resp, Status> {
        let (reply, answer) = oneshot::channel();
        if self.0.send((req, reply)).is_err() {
            return Err(Status::unavailable("connect error: pipeline closed"));
        }
        answer
            .await
            .map_err(|_| Status::unknown("pipeline dropped the call"))?
    }

    async fn run(mut grpc: Grpc<Channel>, mut jobs: mpsc::UnboundedReceiver<Job>) {
        let Some(first) = jobs.recv().await else {
            return;
        };
        let (calls, calls_rx) = mpsc::unbounded_channel::<pb::Call>();
        let mut pending = BTreeMap::new();
        let mut next = 0u64;
        let mut submit = |(req, reply): Job, pending: &mut BTreeMap<u64, _>| {
            next += 1;
            pending.insert(next, reply);
            hostio::coverage::sometimes(
                pending.len() > 1,
                "client: a pipelined call sent while others wait on its stream",
            );
            let _ = calls.send(pb::Call {
                id: next,
                req: Some(req),
            });
        };
        submit(first, &mut pending);
        let outbound = futures_util::stream::unfold(calls_rx, |mut rx| async move {
            rx.recv().await.map(|c| (c, rx))
        });
        // Calls that come while the stream opens queue behind the first;
        // if every handle (so every caller) goes meanwhile, give up.
        let opening = grpc.pipeline(tonic::Request::new(outbound));
        tokio::pin!(opening);
        let opened = loop {
            tokio::select! {
                biased;
                r = &mut opening => break r,
                job = jobs.recv() => match job {
                    Some(job) => submit(job, &mut pending),
                    None => return,
                },
            }
        };
        let mut replies = match opened {
            Ok(r) => r.into_inner(),
            Err(s) => {
                // Every call queued so far meets the failure to open, as
                // a unary call would (a connect error: certainly not sent).
                let queued = std::iter::from_fn(|| jobs.try_recv().ok()).map(|(_, r)| r);
                for reply in pending.into_values().chain(queued) {
                    let _ = reply.send(Err(Status::new(s.code(), s.message().to_string())));
                }
                return;
            }
        };
        loop {
            tokio::select! {
                biased;
                r = replies.message() => match r {
                    Ok(Some(r)) => {
                        if let Some(reply) = pending.remove(&r.id) {
                            let answer = match r.resp {
                                Some(resp) if r.code == 0 => Ok(resp),
                                _ => Err(Status::new(Code::from(r.code), r.message)),
                            };
                            let _ = reply.send(answer);
                        }
                    }
                    end => {
                        let why = match end {
                            Err(s) => format!("pipeline broke: {:?} {}", s.code(), s.message()),
                            _ => "pipeline closed by the node".to_string(),
                        };
                        for (_, reply) in pending {
                            let _ = reply.send(Err(Status::unknown(why.clone())));
                        }
                        // Calls queued behind the break were never sent.
                        while let Ok((_, reply)) = jobs.try_recv() {
                            let closed = format!("connect error: {why}");
                            let _ = reply.send(Err(Status::unavailable(closed)));
                        }
                        return;
                    }
                },
                job = jobs.recv() => match job {
                    Some(job) => submit(job, &mut pending),
                    // Every handle is gone, so is every caller (a caller
                    // holds its handle while it waits): nobody is left to
                    // answer.
                    None => return,
                },
            }
        }
    }
}

pub struct KvClient {
    nodes: BTreeMap<NodeId, String>,
    conns: BTreeMap<NodeId, Conn>,
    leader: Option<NodeId>,
    client_id: u64,
    seq: u64,
    opts: ClientOptions,
    rng: ChaCha8Rng,
    next_try: usize,
    /// The host's clock, if not the runtime's.
    clock: Option<Clock>,
}

/// A read has no effect: an unanswered one simply failed.
fn no_effect(e: ClientError) -> ClientError {
    match e {
        ClientError::Unknown(m) | ClientError::Failed(m) => ClientError::Failed(m),
    }
}

/// Parses "not leader; leader=<id>" into the hint (0 = unknown).
fn leader_hint(msg: &str) -> Option<NodeId> {
    msg.rsplit("leader=")
        .next()?
        .trim()
        .parse()
        .ok()
        .filter(|&id| id != 0)
}

impl KvClient {
    /// `nodes`: every replica's address. `client_id` must be unique among all
    /// clients that ever talk to this cluster (it keys the dedup table).
    pub fn new(nodes: BTreeMap<NodeId, String>, client_id: u64, opts: ClientOptions) -> KvClient {
        assert!(
            !nodes.is_empty(),
            "a client needs at least one node address"
        );
        KvClient {
            nodes,
            conns: BTreeMap::new(),
            leader: None,
            rng: ChaCha8Rng::seed_from_u64(client_id),
            client_id,
            seq: 0,
            opts,
            next_try: client_id as usize,
            clock: None,
        }
    }

    /// A new client (its own id, sessions and sequence numbers) that shares
    /// this one's connections (one HTTP/2 connection per node, many calls
    /// multiplexed on it, as tonic's `Channel` does when cloned) and its
    /// idea of the leader.
    pub fn sibling(&self, client_id: u64) -> KvClient {
        let mut c = KvClient::new(self.nodes.clone(), client_id, self.opts.clone());
        c.conns = self.conns.clone();
        c.leader = self.leader;
        c.clock = self.clock.clone();
        c
    }

    /// Makes this client's connection to every node now (lazily connecting
    /// channels, and their pipelines with [`ClientOptions::pipeline`]), so
    /// that [`KvClient::sibling`]s made afterwards share all of them.
    pub fn connect_all(&mut self) -> Result<(), ClientError> {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.conn(id)?;
        }
        Ok(())
    }

    /// Times this client's deadlines, attempt timeouts and backoff pauses on
    /// `clock` (the host's) instead of the runtime's clock.
    pub fn with_clock(mut self, clock: Clock) -> KvClient {
        self.clock = Some(clock);
        self
    }

    /// A local duration of the client's clock, in runtime time.
    fn runtime(&self, d: Duration) -> Duration {
        match &self.clock {
            Some(c) => c.to_runtime(d),
            None => d,
        }
    }

    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    pub fn nodes(&self) -> &BTreeMap<NodeId, String> {
        &self.nodes
    }

    fn conn(&mut self, id: NodeId) -> Result<Conn, ClientError> {
        if let Some(c) = self.conns.get(&id) {
            return Ok(c.clone());
        }
        let addr = &self.nodes[&id];
        let ep = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| ClientError::Failed(format!("bad address '{addr}': {e}")))?
            .connect_timeout(self.runtime(self.opts.attempt_timeout));
        let grpc = Grpc::new(ep.connect_lazy());
        let pipe = self.opts.pipeline.then(|| Pipe::open(grpc.clone()));
        let c = Conn { grpc, pipe };
        self.conns.insert(id, c.clone());
        Ok(c)
    }

    fn target(&mut self) -> NodeId {
        if let Some(l) = self.leader {
            return l;
        }
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        self.next_try = self.next_try.wrapping_add(1);
        ids[self.next_try % ids.len()]
    }

    async fn backoff(&mut self, clock: &Clock, attempt: u32) {
        let base = self.opts.backoff_min.as_micros() as u64;
        let cap = self.opts.backoff_max.as_micros() as u64;
        let max = base.saturating_mul(1 << attempt.min(16)).min(cap).max(1);
        let us = self.rng.random_range(max / 2..=max);
        clock.sleep(Duration::from_micros(us)).await;
    }

    /// Runs `call` against the leader until it answers, retrying as the
    /// module doc says, for at most `total`.
    async fn retry<T, F, Fut>(&mut self, total: Duration, mut call: F) -> Result<T, ClientError>
    where
        F: FnMut(Conn) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        // Without a host clock, a fresh one: the runtime's time, no skew.
        let clock = self.clock.clone().unwrap_or_default();
        // Local times; saturating, as the host's clock may jump backwards.
        let deadline = clock.now().saturating_add(total);
        let mut maybe_applied = false;
        let mut last = String::from("no attempt made");
        let mut attempt = 0u32;
        loop {
            let now = clock.now();
            if now >= deadline {
                let msg = format!("gave up after {attempt} attempts: {last}");
                return Err(if maybe_applied {
                    ClientError::Unknown(msg)
                } else {
                    ClientError::Failed(msg)
                });
            }
            let id = self.target();
            let conn = self.conn(id)?;
            let limit = self.opts.attempt_timeout.min(deadline.saturating_sub(now));
            attempt += 1;
            // Boxed: the call's future is kilobytes, and every future that
            // awaits this one would otherwise hold (and copy) it inline.
            let attempt_call = Box::pin(call(conn));
            match tokio::time::timeout(clock.to_runtime(limit), attempt_call).await {
                Ok(Ok(v)) => {
                    self.leader = Some(id);
                    hostio::coverage::sometimes(
                        maybe_applied,
                        "client: a write of unknown outcome settled by its retry",
                    );
                    return Ok(v);
                }
                Ok(Err(status)) => {
                    last = format!("node {id}: {:?} {}", status.code(), status.message());
                    match status.code() {
                        Code::FailedPrecondition => {
                            // Certainly not applied there; follow the hint.
                            let hint = leader_hint(status.message())
                                .filter(|h| self.nodes.contains_key(h));
                            let fresh = hint.is_some() && hint != Some(id);
                            self.leader = if fresh { hint } else { None };
                            if !fresh {
                                self.backoff(&clock, attempt).await;
                            }
                        }
                        Code::Aborted => {
                            // Our proposal lost its slot in the log: not applied.
                            self.leader = None;
                            self.backoff(&clock, attempt).await;
                        }
                        Code::InvalidArgument => return Err(ClientError::Failed(last)),
                        // Refused before anything was sent: certainly not applied.
                        Code::Unavailable if status.message().contains("connect error") => {
                            self.leader = None;
                            self.conns.remove(&id);
                            self.backoff(&clock, attempt).await;
                        }
                        _ => {
                            maybe_applied = true;
                            self.leader = None;
                            self.conns.remove(&id);
                            self.backoff(&clock, attempt).await;
                        }
                    }
                }
                Err(_) => {
                    last = format!("node {id}: no answer within {limit:?}");
                    maybe_applied = true;
                    self.leader = None;
                    self.conns.remove(&id);
                    self.backoff(&clock, attempt).await;
                }
            }
        }
    }

    /// Runs one write command; retries keep its sequence number.
    pub async fn write(&mut self, command: pb::Command) -> Result<pb::WriteResult, ClientError> {
        self.seq += 1;
        let req = pb::WriteRequest {
            client_id: self.client_id,
            seq: self.seq,
            command: Some(command),
        };
        self.retry(self.opts.total_timeout, move |c| {
            let req = req.clone();
            async move { Ok(c.write(req).await?.result.unwrap_or_default()) }
        })
        .await
    }

    pub async fn put(&mut self, key: &str, value: &str) -> Result<pb::WriteResult, ClientError> {
        self.write(cmd::put(key, value)).await
    }

    pub async fn delete(&mut self, key: &str) -> Result<pb::WriteResult, ClientError> {
        self.write(cmd::delete(key)).await
    }

    /// Compare-and-set; `Ok(r)` with `r.succeeded == false` means the compare
    /// failed (and `r.previous` holds the current value).
    pub async fn cas(
        &mut self,
        key: &str,
        expected: Option<&str>,
        new: Option<&str>,
    ) -> Result<pb::WriteResult, ClientError> {
        self.write(cmd::cas(key, expected, new)).await
    }

    pub async fn txn(
        &mut self,
        compares: Vec<pb::Compare>,
        success: Vec<pb::Op>,
        failure: Vec<pb::Op>,
    ) -> Result<pb::WriteResult, ClientError> {
        self.write(cmd::txn(compares, success, failure)).await
    }

    /// Linearizable read of several keys.
    pub async fn read(&mut self, keys: &[&str]) -> Result<Vec<Option<String>>, ClientError> {
        let req = pb::ReadRequest {
            keys: keys.iter().map(|k| k.to_string()).collect(),
        };
        let r = self
            .retry(self.opts.read_timeout, move |c| {
                let req = req.clone();
                async move { c.read(req).await }
            })
            .await;
        let r = r.map_err(no_effect)?;
        Ok(r.values.into_iter().map(|v| v.value).collect())
    }

    pub async fn get(&mut self, key: &str) -> Result<Option<String>, ClientError> {
        Ok(self.read(&[key]).await?.pop().flatten())
    }

    /// Linearizable scan of every key with this prefix.
    pub async fn scan(&mut self, prefix: &str) -> Result<Vec<(String, String)>, ClientError> {
        let req = pb::ScanRequest {
            prefix: prefix.to_string(),
        };
        let r = self
            .retry(self.opts.read_timeout, move |mut c| {
                let req = req.clone();
                async move { Ok(c.grpc.scan(req).await?.into_inner()) }
            })
            .await
            .map_err(no_effect)?;
        Ok(r.pairs.into_iter().map(|kv| (kv.key, kv.value)).collect())
    }

    /// One node's applied state for these keys, and its applied index (may be stale).
    pub async fn local_read(
        &mut self,
        node: NodeId,
        keys: &[&str],
    ) -> Result<(Vec<Option<String>>, u64), ClientError> {
        let mut c = self.conn(node)?.grpc;
        let req = pb::ReadRequest {
            keys: keys.iter().map(|k| k.to_string()).collect(),
        };
        let call = c.local_read(req);
        let r = tokio::time::timeout(self.runtime(self.opts.attempt_timeout), call)
            .await
            .map_err(|_| ClientError::Failed(format!("node {node}: no answer")))?
            .map_err(|s| ClientError::Failed(format!("node {node}: {}", s.message())))?
            .into_inner();
        Ok((r.values.into_iter().map(|v| v.value).collect(), r.applied))
    }

    pub async fn status(&mut self, node: NodeId) -> Result<pb::StatusResponse, ClientError> {
        self.status_of(node, false).await
    }

    /// A replica's status with its whole applied state (`state`).
    pub async fn status_of(
        &mut self,
        node: NodeId,
        with_state: bool,
    ) -> Result<pb::StatusResponse, ClientError> {
        let mut c = self.conn(node)?.grpc;
        let call = c.status(pb::StatusRequest { with_state });
        Ok(
            tokio::time::timeout(self.runtime(self.opts.attempt_timeout), call)
                .await
                .map_err(|_| ClientError::Failed(format!("node {node}: no answer")))?
                .map_err(|s| ClientError::Failed(format!("node {node}: {}", s.message())))?
                .into_inner(),
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_leader_hints() {
        assert_eq!(super::leader_hint("not leader; leader=3"), Some(3));
        assert_eq!(super::leader_hint("not leader; leader=0"), None);
        assert_eq!(super::leader_hint("garbage"), None);
    }
}
