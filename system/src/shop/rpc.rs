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
//!
//! Time is the host's [`Clock`]: deadlines ([`Deadline`]), attempt timeouts,
//! backoff pauses and time budgets ([`within`]) are local durations, so a
//! host whose clock runs fast or jumps forward gives up early.

use crate::client::ClientError;
use crate::clock::Clock;
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

/// A deadline on a [`Clock`]: `budget` of local time after it was set.
///
/// The clock may jump backwards (a step of the host's clock): then the
/// deadline comes later by the size of the jump, but what is [`left`] is
/// never more than the budget, and nothing overflows or panics.
///
/// [`left`]: Deadline::left
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    at: Duration,
    budget: Duration,
}

impl Deadline {
    /// `budget` from now, on `clock`.
    pub fn after(clock: &Clock, budget: Duration) -> Deadline {
        Deadline {
            at: clock.now().saturating_add(budget),
            budget,
        }
    }

    /// Local time left before the deadline: zero once it passed, at most
    /// the budget.
    pub fn left(&self, clock: &Clock) -> Duration {
        self.at.saturating_sub(clock.now()).min(self.budget)
    }

    /// Has the deadline passed?
    pub fn passed(&self, clock: &Clock) -> bool {
        self.left(clock).is_zero()
    }
}

/// The replicas of one service.
#[derive(Clone)]
pub struct Replicas {
    addrs: Arc<Vec<String>>,
    chans: Arc<Mutex<Vec<Option<Channel>>>>,
    next: Arc<AtomicUsize>,
    pub attempt_timeout: Duration,
    /// The caller's clock: deadlines, attempt timeouts and backoff pauses are
    /// measured on it.
    clock: Clock,
}

impl Replicas {
    /// Replicas called from a host whose clock is the runtime's (a fresh
    /// [`Clock`] with no offset or drift).
    pub fn new(addrs: Vec<String>, attempt_timeout: Duration) -> Replicas {
        Replicas::with_clock(addrs, attempt_timeout, Clock::new())
    }

    /// Replicas called from a host with this clock.
    pub fn with_clock(addrs: Vec<String>, attempt_timeout: Duration, clock: Clock) -> Replicas {
        assert!(!addrs.is_empty(), "a service needs at least one replica");
        let n = addrs.len();
        Replicas {
            addrs: Arc::new(addrs),
            chans: Arc::new(Mutex::new(vec![None; n])),
            next: Arc::new(AtomicUsize::new(super::random_u64() as usize)),
            attempt_timeout,
            clock,
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
            .connect_timeout(self.clock.to_runtime(self.attempt_timeout));
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
        let clock = &self.clock;
        let deadline = Deadline::after(clock, total);
        let mut maybe_done = false;
        let mut attempt = 0u32;
        // Round robin over calls, so one caller spreads its load; on a
        // failure the retry moves on to the next replica.
        let mut i = self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len();
        loop {
            let chan = self.channel(i)?;
            let limit = self.attempt_timeout.min(deadline.left(clock));
            attempt += 1;
            // Boxed: the call's future is kilobytes, and every future that
            // awaits this one would otherwise hold (and copy) it inline.
            let call = Box::pin(f(chan));
            let status = match tokio::time::timeout(clock.to_runtime(limit), call).await {
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
                tracing::debug!(
                    "{}: outcome unknown ({}); sending it again on the next replica",
                    self.addrs[i],
                    status.message()
                );
            }
            backoff(clock, attempt).await;
            // Give up before an attempt with no time left (it could only
            // turn "not done" into "unknown").
            if deadline.passed(clock) {
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

/// Jittered exponential backoff, 10 ms doubling to 200 ms of `clock`'s time.
pub async fn backoff(clock: &Clock, attempt: u32) {
    let max = (10_000u64 << attempt.min(5)).min(200_000);
    let us = max / 2 + super::random_u64() % (max / 2 + 1);
    clock.sleep(Duration::from_micros(us)).await;
}

/// Runs a request's work for at most `budget` of `clock`'s time: a caller
/// that gave up (its attempt timed out) must not leave work queued behind
/// it, or retries pile up under load and the service never recovers. Past
/// the budget the answer is "unknown" (the work may have been half done;
/// every such operation is idempotent or reported as unknown to its client).
///
/// The work is boxed: a handler's future is kilobytes, and the gRPC
/// server's future that awaits this one would otherwise hold (and copy) it.
pub fn within<'a, T: 'a>(
    clock: &Clock,
    budget: Duration,
    work: impl Future<Output = Result<T, Status>> + 'a,
) -> impl Future<Output = Result<T, Status>> + 'a {
    let work = Box::pin(work);
    let limit = clock.to_runtime(budget);
    async move {
        match tokio::time::timeout(limit, work).await {
            Ok(r) => r,
            Err(_) => Err(Status::unavailable(format!(
                "outcome unknown: the service gave up after {budget:?} (busy)"
            ))),
        }
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::Deadline;
    use crate::clock::Clock;
    use std::time::Duration;

    const HOUR_NS: i64 = 3_600_000_000_000;

    #[test]
    fn a_deadline_follows_its_clock() {
        let clock = Clock::new();
        let budget = Duration::from_secs(2);
        let d = Deadline::after(&clock, budget);
        assert!(!d.passed(&clock));
        assert!(d.left(&clock) <= budget && d.left(&clock) > Duration::from_secs(1));
        // A jump forward passes it at once.
        clock.jump(3_000_000_000);
        assert!(d.passed(&clock));
        assert_eq!(d.left(&clock), Duration::ZERO);
    }

    #[test]
    fn a_backwards_jump_postpones_a_deadline_but_never_beyond_its_budget() {
        let clock = Clock::new();
        let budget = Duration::from_secs(2);
        let d = Deadline::after(&clock, budget);
        // Back by an hour, past the clock's start (its time stays at zero).
        clock.jump(-HOUR_NS);
        assert_eq!(clock.now(), Duration::ZERO);
        assert_eq!(d.left(&clock), budget);
        assert!(!d.passed(&clock));
        clock.jump(HOUR_NS + 3_000_000_000);
        assert!(d.passed(&clock));
        // A deadline set while the clock is far back, and huge budgets.
        clock.jump(-2 * HOUR_NS);
        let d = Deadline::after(&clock, budget);
        assert_eq!(d.left(&clock), budget);
        let never = Deadline::after(&clock, Duration::MAX);
        assert!(!never.passed(&clock));
    }

    #[test]
    fn a_fast_clock_shortens_timeouts_in_runtime_time() {
        let clock = Clock::new();
        assert_eq!(
            clock.to_runtime(Duration::from_secs(2)),
            Duration::from_secs(2)
        );
        clock.set_drift_ppm(1_000_000);
        assert_eq!(
            clock.to_runtime(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
    }
}
