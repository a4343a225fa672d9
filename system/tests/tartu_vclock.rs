//! The check services' vector clocks, in process (no store is reached:
//! events (b) and (d) need none): the course's rule, merge then tick, keeps
//! (d) after (b) as the scheme declares, and the planted bug
//! `vclock-no-merge` (the fraud service ticks without merging) is caught by
//! the checker's `vclock` check.
#![cfg(not(madsim))]

use bookstore::client::ClientOptions;
use bookstore::clock::Clock;
use bookstore::shop::Store;
use bookstore::tartu::books::BooksDb;
use bookstore::tartu::checks::{CheckConfig, CheckService};
use bookstore::tartu::{from_pb, to_pb, Kind, VcLog, WallClock};
use bookstore::tartu_pb as pb;
use std::collections::BTreeMap;
use std::time::Duration;
use tartu_core::VClock;

fn service(kind: Kind, bugs: bookstore::bugs::Bugs, log: VcLog) -> CheckService {
    // Nothing listens here: events (b) and (d) read no store.
    let nowhere: BTreeMap<u64, String> = [(1, "127.0.0.1:1".to_string())].into();
    let store = Store::new(nowhere, ClientOptions::default());
    CheckService::new(CheckConfig {
        kind,
        books: BooksDb::new(store.clone()),
        state: store,
        wall: WallClock {
            clock: Clock::new(),
            epoch_ms: 1_800_000_000_000,
        },
        log,
        bugs,
        budget: Duration::from_secs(1),
        suggestions: 3,
    })
}

/// init, then (b) on verification and (d) on fraud, as the orchestrator
/// runs them; returns the checker's verdict on the log.
async fn run(bugs: bookstore::bugs::Bugs) -> checker::vclock::VcResult {
    let (vlog, vev) = VcLog::memory("verification-1");
    let (flog, fev) = VcLog::memory("fraud-1");
    let (olog, oev) = VcLog::memory("orchestrator");
    let ver = service(Kind::Verification, bugs, vlog);
    let fraud = service(Kind::Fraud, bugs, flog);
    let order =
        tartu_core::request::parse_checkout(tartu_core::request::demo_body().as_bytes()).unwrap();
    let json = serde_json::to_string(&order).unwrap();
    let mut orch = VClock::new();
    orch.tick("orchestrator");
    olog.record("o-1", 1, "orchestrator", "init", &orch);
    let init = |clock: &VClock| pb::InitRequest {
        order_id: "o-1".into(),
        attempt: 1,
        order_json: json.clone(),
        clock: Some(to_pb(clock)),
    };
    let cv = from_pb(ver.init(init(&orch)).await.unwrap().clock.as_ref());
    let cf = from_pb(fraud.init(init(&orch)).await.unwrap().clock.as_ref());
    let ev = |event: &str, clock: &VClock| pb::EventRequest {
        order_id: "o-1".into(),
        attempt: 1,
        event: event.into(),
        clock: Some(to_pb(clock)),
    };
    let b = ver.event(ev("b", &cv)).await.unwrap();
    assert!(b.ok, "{b:?}");
    let b = from_pb(b.clock.as_ref());
    let d = fraud.event(ev("d", &b)).await.unwrap();
    assert!(d.ok, "{d:?}");
    let d = from_pb(d.clock.as_ref());
    let mut seen = cv.clone();
    for c in [&cf, &b, &d] {
        seen.merge(c);
    }
    orch.receive("orchestrator", &seen);
    olog.record("o-1", 1, "orchestrator", "final", &orch);
    let events: Vec<String> = [oev, vev, fev]
        .iter()
        .flat_map(|e| e.lock().unwrap().clone())
        .map(|e| serde_json::to_string(&e).unwrap())
        .collect();
    let scheme = checker::vclock::Scheme::from_json(bookstore::tartu::SCHEME).unwrap();
    let parsed = checker::vclock::parse_log(&events.join("\n"), "memory").unwrap();
    checker::vclock::check(&scheme, &parsed)
}

#[tokio::test]
async fn merge_then_tick_keeps_d_after_b() {
    let r = run(Default::default()).await;
    assert!(r.violations.is_empty(), "{}", r.explain());
    assert_eq!(r.stats.groups, 1);
}

#[tokio::test]
async fn a_fraud_service_that_does_not_merge_is_caught() {
    let bug = bookstore::bugs::Bugs::from_name("vclock-no-merge").unwrap();
    let r = run(bug).await;
    assert!(r.has(checker::vclock::Kind::Order), "{}", r.explain());
    let text = r.explain();
    assert!(text.contains("d must happen after b"), "{text}");
}
