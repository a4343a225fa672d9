//! vendored change 5: the timer heap of `naive-timer` 0.2 (which upstream
//! madsim uses), with smaller entries: a deadline in nanoseconds (`u64`)
//! instead of a `Duration`, and the callback without the time argument.
//!
//! It is the same `BinaryHeap`, ordered by the deadline alone, so the same
//! pushes and pops compare the same deadlines and move entries the same
//! way: timers with equal deadlines fire in the same order as with
//! `naive-timer`, and every run is the same.

use std::{cmp::Ordering, collections::BinaryHeap, time::Duration};

type Callback = Box<dyn FnOnce() + Send + Sync + 'static>;

/// Timers, earliest deadline first.
#[derive(Default)]
pub(crate) struct Timer {
    events: BinaryHeap<Event>,
}

struct Event {
    /// Nanoseconds from the clock's base instant.
    deadline: u64,
    callback: Callback,
}

/// Nanoseconds from the clock's base instant, saturating: a deadline more
/// than 584 years away (which `naive-timer` kept as a `Duration`) is at
/// `u64::MAX`.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Timer {
    /// Calls `callback` once the time is at or past `deadline`.
    pub(crate) fn add(
        &mut self,
        deadline: Duration,
        callback: impl FnOnce() + Send + Sync + 'static,
    ) {
        self.events.push(Event {
            deadline: nanos(deadline),
            callback: Box::new(callback),
        });
    }

    /// Calls and removes every timer whose deadline is at or before `now`.
    pub(crate) fn expire(&mut self, now: Duration) {
        let now = nanos(now);
        while let Some(t) = self.events.peek() {
            if t.deadline > now {
                break;
            }
            let event = self.events.pop().unwrap();
            (event.callback)();
        }
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Duration> {
        self.events.peek().map(|e| Duration::from_nanos(e.deadline))
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline
    }
}

impl Eq for Event {}

// BinaryHeap is a max-heap, so the order is reversed.
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Event {
    fn cmp(&self, other: &Event) -> Ordering {
        other.deadline.cmp(&self.deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// `naive-timer` 0.2's heap as upstream madsim uses it: the oracle.
    #[derive(Default)]
    struct Naive {
        events: BinaryHeap<NaiveEvent>,
    }
    struct NaiveEvent {
        deadline: Duration,
        callback: Box<dyn FnOnce(Duration)>,
    }
    impl PartialEq for NaiveEvent {
        fn eq(&self, other: &Self) -> bool {
            self.deadline.eq(&other.deadline)
        }
    }
    impl Eq for NaiveEvent {}
    impl PartialOrd for NaiveEvent {
        fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
            other.deadline.partial_cmp(&self.deadline)
        }
    }
    impl Ord for NaiveEvent {
        fn cmp(&self, other: &NaiveEvent) -> Ordering {
            other.deadline.cmp(&self.deadline)
        }
    }
    impl Naive {
        fn add(&mut self, deadline: Duration, callback: impl FnOnce(Duration) + 'static) {
            let callback = Box::new(callback);
            self.events.push(NaiveEvent { deadline, callback });
        }
        fn expire(&mut self, now: Duration) {
            while let Some(t) = self.events.peek() {
                if t.deadline > now {
                    break;
                }
                let event = self.events.pop().unwrap();
                (event.callback)(now);
            }
        }
    }

    /// Timers with equal deadlines (most of them here) fire in the order
    /// `naive-timer` fires them, through adds and expiries interleaved.
    #[test]
    fn fires_in_naive_timers_order() {
        let (ours, theirs) = (
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(Mutex::new(Vec::new())),
        );
        let (mut a, mut b) = (Timer::default(), Naive::default());
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut now = Duration::ZERO;
        let mut deadlines = Vec::new();
        for id in 0..20_000u64 {
            // Deadlines 1-200 whole milliseconds ahead of a time that
            // moves in whole milliseconds (some a nanosecond later): most
            // tie, and the heap holds hundreds of timers.
            let deadline =
                now + Duration::from_millis(1 + next(200)) + Duration::from_nanos(next(8) / 7);
            deadlines.push(deadline);
            let o = ours.clone();
            a.add(deadline, move || o.lock().unwrap().push(id));
            let t = theirs.clone();
            b.add(deadline, move |_| t.lock().unwrap().push(id));
            if next(4) == 0 {
                now += Duration::from_millis(next(3));
                a.expire(now);
                b.expire(now);
                assert_eq!(a.next(), b.events.peek().map(|e| e.deadline));
            }
        }
        a.expire(now + Duration::from_secs(3600));
        b.expire(now + Duration::from_secs(3600));
        let (ours, theirs) = (ours.lock().unwrap(), theirs.lock().unwrap());
        assert_eq!((ours.len(), theirs.len()), (20_000, 20_000));
        deadlines.sort();
        let tied = (0..deadlines.len())
            .filter(|&i| {
                (i > 0 && deadlines[i - 1] == deadlines[i])
                    || (i + 1 < deadlines.len() && deadlines[i + 1] == deadlines[i])
            })
            .count();
        assert!(tied > 15_000, "only {tied} timers share a deadline");
        let first = ours.iter().zip(theirs.iter()).position(|(a, b)| a != b);
        assert_eq!(
            first, None,
            "the first timer fired out of naive-timer's order"
        );
    }
}
