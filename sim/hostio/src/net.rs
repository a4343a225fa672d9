//! Message mangling on a host's outgoing links: duplication and
//! reordering, which a reliable stream (gRPC over HTTP/2, madsim's
//! transport) never shows but a real network, a proxy, a retrying sender or
//! a reconnect does (an old message still in flight on a dropped stream
//! arrives after newer ones sent on the next).
//!
//! A service opts in per message it sends: before sending, it asks its
//! host's [`Net`] for a [`Plan`] and follows it: send now, or hold the
//! message back for a while (later messages overtake it), and possibly send
//! a copy later. The real [`Net`] (the default) always says "send now,
//! once". In the simulator the nemesis turns mangling on and off (fault
//! `reorder`) with its rates; the draws come from the host's own seeded
//! random stream, so the same seed mangles the same messages.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do with one outgoing message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Send it only after this long: messages sent meanwhile overtake it.
    pub hold: Option<Duration>,
    /// Also send a copy of it after this long.
    pub copy: Option<Duration>,
}

impl Plan {
    /// Send now, once.
    pub fn now() -> Plan {
        Plan::default()
    }
}

/// The mangling rates in force.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Mangling {
    /// Probability that a message is also sent again later.
    pub duplicate: f64,
    /// Probability that a message is held back (and overtaken).
    pub reorder: f64,
    /// Holds and copies are delayed by 1..=this many ms (runtime time).
    pub max_delay_ms: u64,
}

/// A host's outgoing-message mangler (cheap to clone: clones share it).
#[derive(Clone, Default)]
pub struct Net(Option<Arc<Mutex<State>>>);

struct State {
    mangling: Mangling,
    rng: ChaCha8Rng,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => write!(f, "Net(real)"),
            Some(_) => write!(f, "Net({:?})", self.mangling()),
        }
    }
}

impl Net {
    /// Never mangles (a real host).
    pub fn real() -> Net {
        Net(None)
    }

    /// A simulated host's: off until [`Net::set`]; draws from `seed`.
    pub fn simulated(seed: u64) -> Net {
        Net(Some(Arc::new(Mutex::new(State {
            mangling: Mangling::default(),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }))))
    }

    /// Sets the rates (all zero: off). No effect on a real host.
    pub fn set(&self, m: Mangling) {
        if let Some(s) = &self.0 {
            s.lock().unwrap().mangling = m;
        }
    }

    /// The rates in force.
    pub fn mangling(&self) -> Mangling {
        self.0
            .as_ref()
            .map(|s| s.lock().unwrap().mangling)
            .unwrap_or_default()
    }

    /// What to do with the next outgoing message.
    pub fn plan(&self) -> Plan {
        let Some(s) = &self.0 else {
            return Plan::now();
        };
        let mut s = s.lock().unwrap();
        let m = s.mangling;
        if m.duplicate <= 0.0 && m.reorder <= 0.0 {
            return Plan::now();
        }
        let max = m.max_delay_ms.max(1);
        let delay = |rng: &mut ChaCha8Rng| Duration::from_millis(rng.random_range(1..=max));
        let rng = &mut s.rng;
        let hold = rng
            .random_bool(m.reorder.clamp(0.0, 1.0))
            .then(|| delay(rng));
        let copy = rng
            .random_bool(m.duplicate.clamp(0.0, 1.0))
            .then(|| delay(rng));
        if hold.is_some() {
            crate::coverage::hit("net: a message held back, later ones overtaking it");
        }
        if copy.is_some() {
            crate::coverage::hit("net: a message duplicated");
        }
        Plan { hold, copy }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_host_and_an_idle_simulated_one_send_everything_now_once() {
        assert_eq!(Net::real().plan(), Plan::now());
        let n = Net::simulated(1);
        assert!((0..100).all(|_| n.plan() == Plan::now()));
        let real = Net::real();
        real.set(Mangling {
            duplicate: 1.0,
            reorder: 1.0,
            max_delay_ms: 5,
        });
        assert_eq!(real.plan(), Plan::now(), "a real host ignores the rates");
    }

    #[test]
    fn rates_are_followed_and_the_same_seed_mangles_the_same_messages() {
        let plans = |seed| {
            let n = Net::simulated(seed);
            n.set(Mangling {
                duplicate: 0.2,
                reorder: 0.3,
                max_delay_ms: 50,
            });
            (0..2000).map(|_| n.plan()).collect::<Vec<_>>()
        };
        let a = plans(7);
        assert_eq!(a, plans(7));
        assert_ne!(a, plans(8));
        let held = a.iter().filter(|p| p.hold.is_some()).count();
        let copied = a.iter().filter(|p| p.copy.is_some()).count();
        assert!((450..750).contains(&held), "{held}");
        assert!((300..500).contains(&copied), "{copied}");
        assert!(a
            .iter()
            .flat_map(|p| p.hold.into_iter().chain(p.copy))
            .all(|d| (1..=50).contains(&d.as_millis())));
    }
}
