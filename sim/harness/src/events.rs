//! An event bus: what the system under test reports as it runs (a node
//! became leader, committed, applied...), delivered at once, in order, to
//! every subscriber: the history recorder, checks that follow the events
//! as they happen, and fault triggers. The event type is the scenario's.

use std::sync::{Arc, Mutex};

type Subscriber<E> = Arc<dyn Fn(&E) + Send + Sync>;

/// Clones share the subscribers. The list is replaced, not changed, when
/// one subscribes, so that an emit takes it with one reference count (and
/// a subscriber may subscribe or emit while it runs).
pub struct Bus<E>(Arc<Mutex<Arc<Vec<Subscriber<E>>>>>);

impl<E> Clone for Bus<E> {
    fn clone(&self) -> Self {
        Bus(self.0.clone())
    }
}

impl<E> Default for Bus<E> {
    fn default() -> Self {
        Bus(Arc::new(Mutex::new(Arc::new(Vec::new()))))
    }
}

impl<E> Bus<E> {
    pub fn new() -> Bus<E> {
        Bus::default()
    }

    /// `f` sees every event emitted from now on, after the subscribers
    /// before it.
    pub fn subscribe(&self, f: impl Fn(&E) + Send + Sync + 'static) {
        let mut subs = self.0.lock().unwrap();
        let mut more = Vec::clone(&subs);
        more.push(Arc::new(f));
        *subs = Arc::new(more);
    }

    /// Delivers `e` to every subscriber, in the order they subscribed.
    pub fn emit(&self, e: &E) {
        let subs = Arc::clone(&self.0.lock().unwrap());
        for s in subs.iter() {
            s(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_see_every_event_in_order() {
        let bus: Bus<u32> = Bus::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        for tag in ["a", "b"] {
            let s = seen.clone();
            bus.subscribe(move |e| s.lock().unwrap().push(format!("{tag}{e}")));
        }
        bus.emit(&1);
        bus.clone().emit(&2);
        assert_eq!(*seen.lock().unwrap(), ["a1", "b1", "a2", "b2"]);
    }

    /// A subscriber may subscribe another, and emit, while it runs: the
    /// new one sees the events emitted after it subscribed.
    #[test]
    fn a_subscriber_may_subscribe_and_emit_while_it_runs() {
        let bus: Bus<u32> = Bus::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (b, s) = (bus.clone(), seen.clone());
        bus.subscribe(move |e| {
            s.lock().unwrap().push(format!("a{e}"));
            if *e == 1 {
                let s2 = s.clone();
                b.subscribe(move |e| s2.lock().unwrap().push(format!("c{e}")));
                b.emit(&2);
            }
        });
        bus.emit(&1);
        bus.emit(&3);
        assert_eq!(*seen.lock().unwrap(), ["a1", "a2", "c2", "a3", "c3"]);
    }
}
