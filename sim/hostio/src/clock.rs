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

    /// Rate error in parts per million from now on: +1000 runs 0.1 %
    /// fast. The clock does not jump when its rate changes: what it reads
    /// now stays, only the rate of what follows changes (a crystal that
    /// starts running fast, not one that always did).
    pub fn set_drift_ppm(&self, ppm: i64) {
        let real = self.0.start.elapsed().as_nanos() as i128;
        let old = self.0.drift_ppm.swap(ppm, Ordering::Relaxed) as i128;
        let keep = real * old / 1_000_000 - real * ppm as i128 / 1_000_000;
        self.0.offset_ns.fetch_add(keep as i64, Ordering::Relaxed);
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

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;

    /// Reads `c` with the runtime's time frozen: `now()` twice around `f`.
    fn around(c: &Clock, f: impl FnOnce()) -> (Duration, Duration) {
        let a = c.now();
        f();
        (a, c.now())
    }

    #[test]
    fn a_change_of_rate_does_not_move_the_clock() {
        let c = Clock::new();
        std::thread::sleep(Duration::from_millis(200));
        // 200 ms at +50 % would be a 100 ms step if the new rate applied
        // to the time already elapsed.
        let (a, b) = around(&c, || c.set_drift_ppm(500_000));
        assert!(b - a < Duration::from_millis(20), "{a:?} -> {b:?}");
        std::thread::sleep(Duration::from_millis(200));
        let (a, b) = around(&c, || c.set_drift_ppm(0));
        assert!(b.abs_diff(a) < Duration::from_millis(20), "{a:?} -> {b:?}");
        // It ran fast in between: about 400 ms of real time read as 500.
        assert!(b >= Duration::from_millis(480), "{b:?}");
    }

    #[test]
    fn a_jump_moves_the_clock_at_once_and_back() {
        let c = Clock::new();
        let (a, b) = around(&c, || c.jump(5_000_000_000));
        assert!(b - a >= Duration::from_secs(5));
        c.jump(-5_000_000_000);
        assert!(c.now() < Duration::from_secs(1));
    }
}
