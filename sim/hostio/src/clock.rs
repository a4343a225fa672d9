//! A host's clock. Every timeout and timestamp of a process goes through a
//! [`Clock`], so the simulation can give each host its own offset, drift and
//! jumps (madsim has one clock for all nodes). In real mode the clock is the
//! runtime's monotonic clock with no skew.
//!
//! Local time runs at `1 + drift_ppm / 1e6` times the runtime's time, plus an
//! offset that a jump changes at once. Sleeping for a local duration `d`
//! sleeps `d / (1 + drift)` of runtime time, so a fast clock fires its
//! timeouts early, exactly as a fast crystal would.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub struct Clock(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    start: Instant,
    offset_ns: AtomicI64,
    drift_ppm: AtomicI64,
}

impl Clock {
    /// A clock starting now, with no offset and no drift.
    pub fn new() -> Clock {
        Clock(Arc::new(Inner {
            start: Instant::now(),
            offset_ns: AtomicI64::new(0),
            drift_ppm: AtomicI64::new(0),
        }))
    }

    /// Local time since the clock was created (can go backwards after a jump).
    pub fn now(&self) -> Duration {
        let real = self.0.start.elapsed().as_nanos() as i128;
        let drift = self.0.drift_ppm.load(Ordering::Relaxed) as i128;
        let local =
            real + real * drift / 1_000_000 + self.0.offset_ns.load(Ordering::Relaxed) as i128;
        Duration::from_nanos(local.max(0) as u64)
    }

    /// Sleeps for `d` of this node's local time.
    pub async fn sleep(&self, d: Duration) {
        tokio::time::sleep(self.to_runtime(d)).await
    }

    /// Converts a local duration into runtime time under the current drift.
    pub fn to_runtime(&self, d: Duration) -> Duration {
        let drift = self
            .0
            .drift_ppm
            .load(Ordering::Relaxed)
            .clamp(-500_000, 1_000_000) as i128;
        let ns = d.as_nanos() as i128 * 1_000_000 / (1_000_000 + drift);
        Duration::from_nanos(ns.max(0) as u64)
    }

    /// Moves the clock by `delta_ns` at once (a step jump; negative goes back).
    pub fn jump(&self, delta_ns: i64) {
        self.0.offset_ns.fetch_add(delta_ns, Ordering::Relaxed);
    }

    pub fn set_offset(&self, offset_ns: i64) {
        self.0.offset_ns.store(offset_ns, Ordering::Relaxed);
    }

    /// Rate error in parts per million: +1000 runs 0.1 % fast.
    pub fn set_drift_ppm(&self, ppm: i64) {
        self.0.drift_ppm.store(ppm, Ordering::Relaxed);
    }

    pub fn offset_ns(&self) -> i64 {
        self.0.offset_ns.load(Ordering::Relaxed)
    }

    pub fn drift_ppm(&self) -> i64 {
        self.0.drift_ppm.load(Ordering::Relaxed)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
