//! How fast the clients of scenario `kv` issue operations: drawn per seed
//! from its own random stream, so adding it left every other draw of a
//! seed as it was.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How fast the clients of scenario `kv` issue operations (Jepsen's
/// `stagger`, with load spikes). Outside the busy windows a client pauses
/// for a time drawn uniformly from 0 to twice `think_ms` before each
/// operation; inside them, and everywhere when `think_ms` is 0, clients work
/// back to back. Drawn per seed: sparse load explores more fault schedules
/// per wall-clock second, the bursts keep contention, queueing and retry
/// storms in every seed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pacing {
    /// Mean pause before an operation outside busy windows; 0: no pauses.
    pub think_ms: u64,
    /// Windows of back-to-back load, by start, as `[at_ms, duration_ms]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub busy: Vec<(u64, u64)>,
}

/// The largest `--think-ms`: pauses then reach 200 s, and a longer one
/// would outlast the run's time limit (the workload phase plus 300 s).
pub const MAX_THINK_MS: u64 = 100_000;

/// A `--think-ms` value (kv's and txn's).
pub fn parse_think_ms(value: &str) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(t) if t <= MAX_THINK_MS => Ok(t),
        Ok(t) => Err(format!(
            "{t} ms is too long: at most {MAX_THINK_MS} (clients pause up to twice this, and a run ends 300 s after its workload phase)"
        )),
        Err(_) => Err("expected a number of milliseconds".to_string()),
    }
}

impl Pacing {
    /// Clients that never pause (`Pacing::default()`).
    pub fn is_back_to_back(&self) -> bool {
        self.think_ms == 0
    }

    /// From the seed's own stream, so that adding it left every other draw
    /// of a seed as it was.
    pub fn draw(seed: u64, duration_ms: u64) -> Pacing {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0074_10c1_1ea7_u64);
        let log_uniform = |rng: &mut ChaCha8Rng, lo: f64, hi: f64| {
            (lo * (hi / lo).powf(rng.random_range(0.0..1.0))) as u64
        };
        let think_ms = log_uniform(&mut rng, 300.0, 5_000.0);
        let mean_gap = log_uniform(&mut rng, 5_000.0, 20_000.0) as f64;
        let mut busy = Vec::new();
        let mut t = 0u64;
        loop {
            let u: f64 = rng.random_range(0.0001..1.0);
            t += (-(u.ln()) * mean_gap) as u64;
            if t >= duration_ms {
                break;
            }
            let d = rng.random_range(200..=1_500);
            busy.push((t, d));
            t += d;
        }
        Pacing { think_ms, busy }
    }

    /// How long a client at `now_ms` (since the workload began) pauses
    /// before its next operation, given a drawn pause `drawn_ms`: not at all
    /// inside a busy window, and never past the start of the next one.
    pub fn pause_ms(&self, now_ms: u64, drawn_ms: u64) -> u64 {
        if self.think_ms == 0 {
            return 0;
        }
        let mut pause = drawn_ms;
        for &(at, d) in &self.busy {
            if now_ms >= at && now_ms < at + d {
                return 0;
            }
            if at > now_ms {
                pause = pause.min(at - now_ms);
                break;
            }
        }
        pause
    }
}

impl fmt::Display for Pacing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.think_ms == 0 {
            return write!(f, "clients back to back");
        }
        write!(
            f,
            "clients pause 0..{} ms (mean {}) before each operation, back to back in {} busy windows",
            self.think_ms.saturating_mul(2),
            self.think_ms,
            self.busy.len()
        )?;
        let w: Vec<String> = self
            .busy
            .iter()
            .map(|(at, d)| format!("{at}+{d}"))
            .collect();
        if !w.is_empty() {
            write!(f, " (ms: {})", w.join(" "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
/// Share of the workload phase inside busy windows.
pub(crate) fn busy_share(p: &Pacing, duration_ms: u64) -> f64 {
    let busy: u64 = p
        .busy
        .iter()
        .map(|&(at, d)| d.min(duration_ms.saturating_sub(at)))
        .sum();
    busy as f64 / duration_ms.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_pause_outside_busy_windows_only_and_never_past_the_next_one() {
        let p = Pacing {
            think_ms: 1_000,
            busy: vec![(5_000, 1_000), (9_000, 500)],
        };
        assert_eq!(p.pause_ms(0, 1_700), 1_700, "quiet: the drawn pause");
        assert_eq!(p.pause_ms(4_000, 1_700), 1_000, "cut at the window's start");
        assert_eq!(p.pause_ms(5_000, 1_700), 0, "inside a window: back to back");
        assert_eq!(p.pause_ms(5_999, 1_700), 0);
        assert_eq!(p.pause_ms(6_000, 1_700), 1_700, "the window is over");
        assert_eq!(p.pause_ms(8_500, 1_700), 500);
        assert_eq!(p.pause_ms(9_600, 1_700), 1_700, "after the last window");
        assert_eq!(Pacing::default().pause_ms(4_000, 1_700), 0);
        assert!((busy_share(&p, 20_000) - 0.075).abs() < 1e-9);
    }
}
