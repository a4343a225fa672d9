//! Calls between the shop's processes: to a service that runs as several
//! stateless replicas (failover, deadlines, backoff), and the mapping of
//! store errors to gRPC statuses.
//!
//! A call that certainly did nothing (connection refused, `ABORTED`) is
//! retried on another replica. A call whose outcome is unknown (timeout,
//! connection lost, `UNAVAILABLE`) is retried only if it is idempotent
//! (reads, and the checkout steps, which carry a transaction id); otherwise
//! the caller learns "unknown". Business answers (`NOT_FOUND`,
//! `FAILED_PRECONDITION`, `INVALID_ARGUMENT`) are returned at once.

use crate::client::ClientError;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// A store error as the service's answer: unknown stays unknown
/// (`UNAVAILABLE`), certainly-not-done is `ABORTED` (safe to retry).
pub fn kv_error(e: ClientError) -> Status {
    match e {
        ClientError::Unknown(m) => Status::unavailable(format!("outcome unknown: {m}")),
        ClientError::Failed(m) => Status::aborted(format!("not done, store unavailable: {m}")),
    }
}

/// Did the call certainly take no effect?
pub fn certainly_not_done(s: &Status) -> bool {
    s.code() == Code::Aborted
        || (s.code() == Code::Unavailable && s.message().contains("connect error"))
}

/// A business answer: final, not worth retrying.
pub fn is_business(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::NotFound
            | Code::FailedPrecondition
            | Code::InvalidArgument
            | Code::AlreadyExists
            | Code::OutOfRange
            | Code::Internal
    )
}

/// The replicas of one service.
#[derive(Clone)]
pub struct Replicas {
    addrs: Arc<Vec<String>>,
    chans: Arc<Mutex<Vec<Option<Channel>>>>,
    next: Arc<AtomicUsize>,
    pub attempt_timeout: Duration,
}

impl Replicas {
    pub fn new(addrs: Vec<String>, attempt_timeout: Duration) -> Replicas {
        assert!(!addrs.is_empty(), "a service needs at least one replica");
        let n = addrs.len();
        Replicas {
            addrs: Arc::new(addrs),
            chans: Arc::new(Mutex::new(vec![None; n])),
            next: Arc::new(AtomicUsize::new(super::random_u64() as usize)),
            attempt_timeout,
        }
    }

    fn channel(&self, i: usize) -> Result<Channel, Status> {
        let mut chans = self.chans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = &chans[i] {
            return Ok(c.clone());
        }
        let addr = &self.addrs[i];
        let ep = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Status::invalid_argument(format!("bad address '{addr}': {e}")))?
            .connect_timeout(self.attempt_timeout);
        let c = ep.connect_lazy();
        chans[i] = Some(c.clone());
        Ok(c)
    }

    fn forget(&self, i: usize) {
        self.chans.lock().unwrap_or_else(|e| e.into_inner())[i] = None;
    }

    /// Calls `f` on one replica after another until one answers, for at
    /// most `total`. `idempotent`: may a call whose outcome is unknown be
    /// sent again?
    pub async fn call<T, F, Fut>(
        &self,
        total: Duration,
        idempotent: bool,
        mut f: F,
    ) -> Result<T, Status>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let deadline = tokio::time::Instant::now() + total;
        let mut maybe_done = false;
        let mut attempt = 0u32;
        // Round robin over calls, so one caller spreads its load; on a
        // failure the retry moves on to the next replica.
        let mut i = self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len();
        loop {
            let chan = self.channel(i)?;
            let now = tokio::time::Instant::now();
            let limit = self
                .attempt_timeout
                .min(deadline.saturating_duration_since(now));
            attempt += 1;
            let status = match tokio::time::timeout(limit, f(chan)).await {
                Ok(Ok(r)) => return Ok(r.into_inner()),
                Ok(Err(s)) if is_business(&s) => return Err(s),
                Ok(Err(s)) => s,
                Err(_) => Status::deadline_exceeded(format!(
                    "{}: no answer within {limit:?}",
                    self.addrs[i]
                )),
            };
            if !certainly_not_done(&status) {
                self.forget(i);
                if !idempotent {
                    return Err(Status::unavailable(format!(
                        "outcome unknown: {}: {}",
                        self.addrs[i],
                        status.message()
                    )));
                }
                maybe_done = true;
            }
            backoff(attempt).await;
            // Give up before an attempt with no time left (it could only
            // turn "not done" into "unknown").
            if tokio::time::Instant::now() >= deadline {
                let msg = format!(
                    "gave up after {attempt} attempts, last: {:?} {}",
                    status.code(),
                    status.message()
                );
                return Err(if maybe_done {
                    Status::unavailable(format!("outcome unknown: {msg}"))
                } else {
                    Status::aborted(format!("not done: {msg}"))
                });
            }
            i = (i + 1) % self.addrs.len();
        }
    }
}

/// Jittered exponential backoff, 10 ms doubling to 200 ms.
pub async fn backoff(attempt: u32) {
    let max = (10_000u64 << attempt.min(5)).min(200_000);
    let us = max / 2 + super::random_u64() % (max / 2 + 1);
    tokio::time::sleep(Duration::from_micros(us)).await;
}

/// Runs a request's work for at most `budget`: a caller that gave up (its
/// attempt timed out) must not leave work queued behind it, or retries
/// pile up under load and the service never recovers. Past the budget the
/// answer is "unknown" (the work may have been half done; every such
/// operation is idempotent or reported as unknown to its client).
pub async fn within<T>(
    budget: Duration,
    work: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    match tokio::time::timeout(budget, work).await {
        Ok(r) => r,
        Err(_) => Err(Status::unavailable(format!(
            "outcome unknown: the service gave up after {budget:?} (busy)"
        ))),
    }
}
