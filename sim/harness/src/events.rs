//! An event bus: what the system under test reports as it runs (a node
//! became leader, committed, applied...), delivered at once, in order, to
//! every subscriber: the history recorder, checks that follow the events
//! as they happen, and fault triggers. The event type is the scenario's.

use std::sync::{Arc, Mutex};

type Subscriber<E> = Arc<dyn Fn(&E) + Send + Sync>;

/// Clones share the subscribers.
pub struct Bus<E>(Arc<Mutex<Vec<Subscriber<E>>>>);

impl<E> Clone for Bus<E> {
    fn clone(&self) -> Self {
        Bus(self.0.clone())
    }
}

impl<E> Default for Bus<E> {
    fn default() -> Self {
        Bus(Arc::new(Mutex::new(Vec::new())))
    }
}

impl<E> Bus<E> {
    pub fn new() -> Bus<E> {
        Bus::default()
    }

    /// `f` sees every event emitted from now on, after the subscribers
    /// before it.
    pub fn subscribe(&self, f: impl Fn(&E) + Send + Sync + 'static) {
        self.0.lock().unwrap().push(Arc::new(f));
    }

    /// Delivers `e` to every subscriber, in the order they subscribed.
    pub fn emit(&self, e: &E) {
        let subs: Vec<Subscriber<E>> = self.0.lock().unwrap().clone();
        for s in subs {
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
}
