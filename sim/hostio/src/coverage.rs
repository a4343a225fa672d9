//! Coverage: named counters that code bumps when something worth testing
//! happened (a snapshot installed, a retry deduplicated, a compensation
//! run), in the spirit of Antithesis' "sometimes" assertions. A simulation
//! run counts them ([`start`], then [`take`]); a sweep reports in how many
//! seeds each was reached and fails when a rare path was not reached often
//! enough. Outside a counting run, [`hit`] costs a thread-local check.
//!
//! Counters are per thread: a simulated run lives on the thread that runs
//! it (madsim has one), so runs on other threads (parallel tests) do not
//! mix.

use std::cell::RefCell;
use std::collections::BTreeMap;

thread_local! {
    static COUNTS: RefCell<Option<BTreeMap<&'static str, u64>>> = const { RefCell::new(None) };
}

/// Counts `name` once, if this thread is counting.
pub fn hit(name: &'static str) {
    COUNTS.with(|c| {
        if let Some(m) = c.borrow_mut().as_mut() {
            *m.entry(name).or_default() += 1;
        }
    });
}

/// Counts `name` when `cond` holds; returns `cond`.
pub fn sometimes(cond: bool, name: &'static str) -> bool {
    if cond {
        hit(name);
    }
    cond
}

/// Starts counting on this thread, from zero.
pub fn start() {
    COUNTS.with(|c| *c.borrow_mut() = Some(BTreeMap::new()));
}

/// Stops counting on this thread; returns what was counted since [`start`].
pub fn take() -> BTreeMap<String, u64> {
    COUNTS
        .with(|c| c.borrow_mut().take().unwrap_or_default())
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_count_only_between_start_and_take() {
        hit("before");
        start();
        hit("a");
        hit("a");
        assert!(sometimes(true, "b"));
        assert!(!sometimes(false, "c"));
        let got = take();
        assert_eq!(got.get("a"), Some(&2));
        assert_eq!(got.get("b"), Some(&1));
        assert!(!got.contains_key("c") && !got.contains_key("before"));
        hit("after");
        assert!(take().is_empty());
    }
}
