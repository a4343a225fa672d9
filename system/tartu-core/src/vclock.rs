//! Vector clocks: the partial order of events across the Tartu services.
//!
//! Each service (the orchestrator, transaction verification, fraud
//! detection, suggestions) keeps one entry, named by a process id string.
//! A clock ticks its own entry on a local event, and on receiving a message
//! merges the sender's clock (element-wise maximum) and then ticks. Two
//! clocks are ordered when one is entry-wise `<=` the other; otherwise the
//! events are concurrent. An absent entry counts as 0 everywhere, so
//! `{a:0}` and `{}` are equal in every comparison here, `==` included
//! (`PartialEq` is written by hand for that, so that it agrees with
//! `PartialOrd` as the standard library requires).

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// A vector clock: process id → counter. Serialises as a plain JSON object.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VClock(pub BTreeMap<String, u64>);

impl PartialEq for VClock {
    /// Clock equality: every entry equal, an absent entry counting as 0.
    fn eq(&self, o: &VClock) -> bool {
        self.same(o)
    }
}

impl Eq for VClock {}

impl VClock {
    /// The zero clock.
    pub fn new() -> Self {
        VClock(BTreeMap::new())
    }

    /// The entry of process `p`, 0 if absent.
    pub fn get(&self, p: &str) -> u64 {
        self.0.get(p).copied().unwrap_or(0)
    }

    /// A local event of `p`: its own entry += 1 (saturating).
    pub fn tick(&mut self, p: &str) {
        let e = self.0.entry(p.to_string()).or_insert(0);
        *e = e.saturating_add(1);
    }

    /// Element-wise maximum with `other`.
    pub fn merge(&mut self, other: &VClock) {
        for (k, &v) in &other.0 {
            if v > self.get(k) {
                self.0.insert(k.clone(), v);
            }
        }
    }

    /// `p` receives a message stamped `incoming`: merge, then tick `p`.
    pub fn receive(&mut self, p: &str, incoming: &VClock) {
        self.merge(incoming);
        self.tick(p);
    }

    /// Every entry of `self` is `<=` the same entry of `o` (absent = 0).
    pub fn le(&self, o: &VClock) -> bool {
        self.0.iter().all(|(k, &v)| v <= o.get(k))
    }

    /// Equal as clocks: every entry equal, absent counting as 0.
    pub fn same(&self, o: &VClock) -> bool {
        self.le(o) && o.le(self)
    }

    /// Happened before: `le` and not [`same`](VClock::same).
    pub fn lt(&self, o: &VClock) -> bool {
        self.le(o) && !o.le(self)
    }

    /// Neither `<=` the other.
    pub fn concurrent(&self, o: &VClock) -> bool {
        !self.le(o) && !o.le(self)
    }
}

impl PartialOrd for VClock {
    /// `Some(Equal)` for clock-equal (absent = 0), `Less`/`Greater` for
    /// happened-before, `None` when concurrent.
    fn partial_cmp(&self, o: &VClock) -> Option<Ordering> {
        match (self.le(o), o.le(self)) {
            (true, true) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Less),
            (false, true) => Some(Ordering::Greater),
            (false, false) => None,
        }
    }

    fn lt(&self, o: &VClock) -> bool {
        VClock::lt(self, o)
    }
    fn le(&self, o: &VClock) -> bool {
        VClock::le(self, o)
    }
    fn gt(&self, o: &VClock) -> bool {
        VClock::lt(o, self)
    }
    fn ge(&self, o: &VClock) -> bool {
        VClock::le(o, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vc(pairs: &[(&str, u64)]) -> VClock {
        VClock(pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect())
    }

    #[test]
    fn get_tick_merge() {
        let mut a = VClock::new();
        assert_eq!(a.get("o"), 0);
        a.tick("o");
        a.tick("o");
        assert_eq!(a.get("o"), 2);
        a.merge(&vc(&[("o", 1), ("v", 3)]));
        assert_eq!(a, vc(&[("o", 2), ("v", 3)]));
    }

    #[test]
    fn receive_orders_after_both() {
        let mut sender = vc(&[("o", 1)]);
        sender.tick("o");
        let mut r = vc(&[("v", 1)]);
        let before = r.clone();
        r.receive("v", &sender);
        assert_eq!(r, vc(&[("o", 2), ("v", 2)]));
        assert!(sender.lt(&r));
        assert!(before.lt(&r));
        assert!(sender < r);
    }

    #[test]
    fn absent_is_zero() {
        let a = vc(&[("x", 0)]);
        let b = VClock::new();
        assert!(a.le(&b) && b.le(&a));
        assert!(!a.lt(&b) && !b.lt(&a));
        assert!(a.same(&b));
        assert_eq!(a, b);
        assert!(!a.concurrent(&b));
        assert_eq!(a.partial_cmp(&b), Some(Ordering::Equal));
    }

    #[test]
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // the negated operators are what is tested
    fn concurrent_clocks() {
        let a = vc(&[("x", 1)]);
        let b = vc(&[("y", 1)]);
        assert!(a.concurrent(&b));
        assert_eq!(a.partial_cmp(&b), None);
        assert!(!(a < b) && !(a > b) && !(a <= b) && !(a >= b));
        let c = vc(&[("x", 1), ("y", 1)]);
        assert!(a < c && c > b && c >= a && b <= c);
    }

    #[test]
    fn serde_transparent() {
        let a = vc(&[("orchestrator", 2), ("fraud", 1)]);
        let s = serde_json::to_string(&a).unwrap();
        assert_eq!(s, r#"{"fraud":1,"orchestrator":2}"#);
        assert_eq!(serde_json::from_str::<VClock>(&s).unwrap(), a);
    }

    fn arb_clock() -> impl Strategy<Value = VClock> {
        prop::collection::btree_map(
            prop::sample::select(vec!["a", "b", "c", "d"]).prop_map(String::from),
            0u64..5,
            0..4,
        )
        .prop_map(VClock)
    }

    fn merged(a: &VClock, b: &VClock) -> VClock {
        let mut m = a.clone();
        m.merge(b);
        m
    }

    proptest! {
        #[test]
        fn merge_commutative(a in arb_clock(), b in arb_clock()) {
            prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        }

        #[test]
        fn merge_associative(a in arb_clock(), b in arb_clock(), c in arb_clock()) {
            prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        }

        #[test]
        fn merge_idempotent(a in arb_clock(), b in arb_clock()) {
            prop_assert_eq!(merged(&a, &a), a.clone());
            let m = merged(&a, &b);
            prop_assert_eq!(merged(&m, &b), m.clone());
        }

        #[test]
        fn merge_is_least_upper_bound(a in arb_clock(), b in arb_clock(), c in arb_clock()) {
            let m = merged(&a, &b);
            prop_assert!(a.le(&m) && b.le(&m));
            if a.le(&c) && b.le(&c) {
                prop_assert!(m.le(&c));
            }
        }

        #[test]
        fn receive_is_after_both(a in arb_clock(), b in arb_clock(), p in "[a-e]") {
            let mut r = a.clone();
            r.receive(&p, &b);
            prop_assert!(a.lt(&r));
            prop_assert!(b.lt(&r));
            prop_assert!(r > a && r > b);
        }

        #[test]
        fn tick_is_after(a in arb_clock(), p in "[a-e]") {
            let mut t = a.clone();
            t.tick(&p);
            prop_assert!(a.lt(&t) && !t.le(&a));
            prop_assert_eq!(t.get(&p), a.get(&p) + 1);
        }

        #[test]
        fn exactly_one_relation(a in arb_clock(), b in arb_clock()) {
            let rels = [a.lt(&b), b.lt(&a), a.same(&b), a.concurrent(&b)];
            prop_assert_eq!(rels.iter().filter(|x| **x).count(), 1);
            let po = a.partial_cmp(&b);
            prop_assert_eq!(po == Some(Ordering::Less), a.lt(&b));
            prop_assert_eq!(po == Some(Ordering::Greater), b.lt(&a));
            prop_assert_eq!(po.is_none(), a.concurrent(&b));
            prop_assert_eq!(a <= b, a.le(&b));
            prop_assert_eq!(a == b, po == Some(Ordering::Equal));
        }

        #[test]
        fn le_transitive(a in arb_clock(), b in arb_clock(), c in arb_clock()) {
            if a.le(&b) && b.le(&c) {
                prop_assert!(a.le(&c));
            }
        }
    }
}
