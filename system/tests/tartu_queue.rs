//! The Tartu bookstore's order queue on a real 3-node Raft KV group (in
//! `bookstore node` processes, files with fsync): priority order (Next-Day, Express,
//! Standard), FIFO within a priority, enqueue at most once per order,
//! dequeue with a lease that comes back when it expires, acknowledgement
//! only by the current lease holder, fencing tokens (a lower one refused).
#![cfg(not(madsim))]

use bookstore::client::{ClientOptions, KvClient};
use bookstore::tartu::queue::{self, OrderStatus, QueuedOrder};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use tartu_core::Shipping;

fn order(id: &str, shipping: Shipping) -> QueuedOrder {
    QueuedOrder {
        order_id: id.to_string(),
        shipping,
        order: serde_json::json!({ "id": id }),
        amount_cents: 4000,
        enqueued_ms: 0,
    }
}

fn done(id: &str) -> OrderStatus {
    OrderStatus {
        order_id: id.to_string(),
        status: "executed".into(),
        reason: None,
        shipping_method: "Standard".into(),
        priority: 2,
        amount_cents: 4000,
    }
}

/// The node processes, killed when the test ends (also on a panic).
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for n in &mut self.0 {
            let _ = n.kill();
            let _ = n.wait();
        }
    }
}

#[tokio::test]
async fn priority_fifo_once_and_leases_that_expire() {
    // Three `bookstore node` processes (files with fsync), killed at the end.
    let base = 3_100 + (std::process::id() % 200) as u16 * 3;
    let peers: BTreeMap<u64, String> = (1..=3)
        .map(|i| (i, format!("127.0.0.1:{}", base + i as u16 - 1)))
        .collect();
    let data = std::env::temp_dir().join(format!("tartu-queue-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let nodes = Nodes(
        (1..=3)
            .map(|id: u64| {
                Command::new(env!("CARGO_BIN_EXE_bookstore"))
                    .args([
                        "node",
                        "--id",
                        &id.to_string(),
                        "--base-port",
                        &base.to_string(),
                        "--data-dir",
                    ])
                    .arg(&data)
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("spawn bookstore node")
            })
            .collect(),
    );
    let mut kv = KvClient::new(peers.clone(), 42, ClientOptions::default());

    // Mixed priorities; one order enqueued twice; a batch.
    for (id, s) in [
        ("s1", Shipping::Standard),
        ("e1", Shipping::Express),
        ("n1", Shipping::NextDay),
        ("s2", Shipping::Standard),
    ] {
        let (_, fresh) = queue::enqueue(&mut kv, &order(id, s)).await.unwrap();
        assert!(fresh, "{id}");
    }
    let (_, fresh) = queue::enqueue(&mut kv, &order("s1", Shipping::Standard))
        .await
        .unwrap();
    assert!(!fresh, "an order is queued once");
    let r = queue::enqueue_batch(
        &mut kv,
        &[
            order("e2", Shipping::Express),
            order("s1", Shipping::Standard),
            order("e2", Shipping::Express),
            order("s3", Shipping::Standard),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        r.iter().map(|(_, f)| *f).collect::<Vec<_>>(),
        [true, false, false, true]
    );
    let ids: Vec<String> = queue::list(&mut kv)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, q)| q.order_id)
        .collect();
    assert_eq!(
        ids,
        ["n1", "e1", "e2", "s1", "s2", "s3"],
        "priority, then first in first out"
    );
    assert_eq!(
        queue::status(&mut kv, "e2").await.unwrap().unwrap().status,
        "queued"
    );

    // Leases: x takes n1 until 1500; y, at 1100, gets the next one (both
    // under fencing token 1).
    let x = queue::dequeue(&mut kv, "x", 1, 1_000, 500)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(x.order.order_id, "n1");
    let y = queue::dequeue(&mut kv, "y", 1, 1_100, 500)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(y.order.order_id, "e1");
    assert!(queue::ack(&mut kv, &y, &done("e1")).await.unwrap());
    // x's lease expires unacknowledged: z (token 2) gets n1 again.
    let z = queue::dequeue(&mut kv, "z", 2, 1_600, 500)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(z.order.order_id, "n1");
    // x's acknowledgement is fenced off (token 1 < 2); z's counts.
    let late = queue::ack(&mut kv, &x, &done("n1")).await;
    assert!(
        format!("{late:?}").contains("stale fencing token"),
        "{late:?}"
    );
    assert!(queue::ack(&mut kv, &z, &done("n1")).await.unwrap());
    // A dequeue under an old token is refused too.
    let old = queue::dequeue(&mut kv, "x", 1, 1_700, 500).await;
    assert!(
        format!("{old:?}").contains("stale fencing token"),
        "{old:?}"
    );
    let ids: Vec<String> = queue::list(&mut kv)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, q)| q.order_id)
        .collect();
    assert_eq!(ids, ["e2", "s1", "s2", "s3"]);
    assert_eq!(
        queue::status(&mut kv, "n1").await.unwrap().unwrap().status,
        "executed"
    );
    // An executed order is not queued again.
    let (_, fresh) = queue::enqueue(&mut kv, &order("n1", Shipping::NextDay))
        .await
        .unwrap();
    assert!(!fresh);
    // Everything leased: nothing to take until a lease expires.
    for _ in 0..4 {
        assert!(queue::dequeue(&mut kv, "w", 2, 2_000, 10_000)
            .await
            .unwrap()
            .is_some());
    }
    assert!(queue::dequeue(&mut kv, "v", 2, 2_001, 10_000)
        .await
        .unwrap()
        .is_none());

    // A participant: fenced prepares, and an order in doubt resolved from
    // the decision log (the same group plays both here).
    {
        use bookstore::shop::Store;
        use bookstore::tartu::participants::{
            account_key, Participant, ParticipantError, Resource, DEFAULT_CREDIT_CENTS,
        };
        let store = Store::new(peers.clone(), ClientOptions::default());
        let p = Participant::new(Resource::Money, store.clone());
        let debit = [(account_key("acct"), 700)];
        assert_eq!(p.prepare("o9", 5, &debit).await.unwrap(), Ok(()));
        assert_eq!(
            p.prepare("o9", 5, &debit).await.unwrap(),
            Ok(()),
            "a retry gets the first vote"
        );
        let stale = p.prepare("o10", 4, &debit).await;
        assert!(
            matches!(stale, Err(ParticipantError::Stale { token: 4, fence: 5 })),
            "{stale:?}"
        );
        let big = [(account_key("acct"), DEFAULT_CREDIT_CENTS)];
        assert!(
            p.prepare("o11", 5, &big).await.unwrap().is_err(),
            "not enough money: no"
        );
        let mut seen = Default::default();
        assert_eq!(
            p.resolve_in_doubt(&store, &mut seen).await.unwrap(),
            0,
            "first sight"
        );
        assert_eq!(
            p.resolve_in_doubt(&store, &mut seen).await.unwrap(),
            0,
            "nothing logged yet"
        );
        kv.put(
            "exec/tx/o9",
            r#"{"state":"committed","decision":"committed","reason":"","token":5}"#,
        )
        .await
        .unwrap();
        assert_eq!(p.resolve_in_doubt(&store, &mut seen).await.unwrap(), 1);
        let holds: BTreeMap<String, _> = p.holds().await.unwrap().into_iter().collect();
        assert_eq!(holds["o9"].state, "committed");
        assert_eq!(holds["o11"].state, "refused");
        let bal = kv.get(&account_key("acct")).await.unwrap().unwrap();
        assert_eq!(bal.parse::<i64>().unwrap(), DEFAULT_CREDIT_CENTS - 700);
        // Abort before prepare leaves a record that refuses the prepare.
        p.abort("o12", 6).await.unwrap();
        assert!(p.prepare("o12", 6, &debit).await.unwrap().is_err());
        // An attempt the log has gone past (its coordinator was replaced
        // before it decided) is aborted by the resolver.
        assert_eq!(p.prepare("o13#1", 6, &debit).await.unwrap(), Ok(()));
        kv.put(
            "exec/tx/o13",
            r#"{"state":"preparing","reason":"","token":7,"attempt":2}"#,
        )
        .await
        .unwrap();
        let mut seen = Default::default();
        assert_eq!(p.resolve_in_doubt(&store, &mut seen).await.unwrap(), 0);
        assert_eq!(p.resolve_in_doubt(&store, &mut seen).await.unwrap(), 1);
        let holds: BTreeMap<String, _> = p.holds().await.unwrap().into_iter().collect();
        assert_eq!(holds["o13#1"].state, "aborted");
        let bal = kv.get(&account_key("acct")).await.unwrap().unwrap();
        assert_eq!(
            bal.parse::<i64>().unwrap(),
            DEFAULT_CREDIT_CENTS - 700,
            "the aborted attempt's debit is given back"
        );
    }

    drop(nodes);
    let _ = std::fs::remove_dir_all(&data);
}
