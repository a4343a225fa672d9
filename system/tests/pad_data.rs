//! The platform's data (`bookstore::pad`) on real 3-node Raft KV groups
//! (`bookstore node` processes, files with fsync).
//!
//! Accounts: registration (the first user is the admin, an e-mail once,
//! bad input named), login (a wrong e-mail and a wrong password fail
//! alike), access tokens until they expire, refresh rotation, a reused
//! refresh token revoking its family, logout, a deleted account's tokens
//! refused. Catalogue: categories and products (unknown categories
//! refused), units held all or none per order and given back once. Carts:
//! changes and refusals. Registry: leases, routability, pruning. Orders:
//! the saga to PAID (units and money taken once, the cart emptied),
//! ITEMS_REJECTED and PAYMENT_FAILED with nothing held, two replicas
//! driving one order at once.
#![cfg(not(madsim))]

use bookstore::client::{ClientOptions, KvClient};
use bookstore::pad::{
    accounts, cart, catalog, orders, payment, registry, PadError as AccountError,
};
use pad_core::auth::{KdfCost, ACCESS_TTL_MS};
use pad_core::codes;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};

const KEY: &[u8] = b"test signing key";

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

fn code<T: std::fmt::Debug>(r: Result<T, AccountError>) -> &'static str {
    match r {
        Err(AccountError::Refused(r)) => r.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Three `bookstore node` processes on ports from `base` (per test and
/// per process id), killed at the end; their addresses and data folder.
fn group(offset: u16) -> (Nodes, BTreeMap<u64, String>, std::path::PathBuf) {
    let base = 3_700 + offset + (std::process::id() % 100) as u16 * 6;
    let peers: BTreeMap<u64, String> = (1..=3)
        .map(|i| (i, format!("127.0.0.1:{}", base + i as u16 - 1)))
        .collect();
    let data = std::env::temp_dir().join(format!("pad-data-{}-{offset}", std::process::id()));
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
    (nodes, peers, data)
}

#[tokio::test]
async fn register_login_refresh_logout_and_delete() {
    let (_nodes, peers, data) = group(0);
    let mut kv = KvClient::new(peers.clone(), 7, ClientOptions::default());
    let cost = KdfCost::CHEAP;

    // Registration: the first user is the admin; an e-mail once (in any
    // case); bad input names its field.
    let ann = accounts::register(&mut kv, "Ann@Example.com", "correct horse", &[1; 16], cost)
        .await
        .unwrap();
    assert_eq!(
        (ann.id, ann.admin, ann.email.as_str()),
        (1, true, "ann@example.com")
    );
    let bob = accounts::register(&mut kv, "bob@example.com", "battery staple", &[2; 16], cost)
        .await
        .unwrap();
    assert_eq!((bob.id, bob.admin), (2, false));
    assert_eq!(
        code(accounts::register(&mut kv, " ANN@example.com", "another one", &[3; 16], cost).await),
        codes::EMAIL_TAKEN
    );
    for (email, password) in [("no-at-sign", "long enough"), ("c@example.com", "short")] {
        assert_eq!(
            code(accounts::register(&mut kv, email, password, &[4; 16], cost).await),
            codes::BAD_USER_INPUT
        );
    }

    // Login: wrong e-mail, wrong password and a malformed e-mail alike, each
    // at the cost of one password hash (its timing tells nothing).
    for (email, password) in [
        ("nobody@example.com", "correct horse"),
        ("ann@example.com", "wrong horse"),
        ("not an e-mail", "correct horse"),
    ] {
        let before = pad_core::auth::kdf_runs_on_this_thread();
        let r = accounts::login(&mut kv, email, password, "f0", "r0", 0, KEY).await;
        assert_eq!(code(r), codes::INVALID_CREDENTIALS, "{email}");
        assert_eq!(
            pad_core::auth::kdf_runs_on_this_thread() - before,
            1,
            "{email}"
        );
    }
    let t = accounts::login(
        &mut kv,
        "ann@example.com",
        "correct horse",
        "f1",
        "r1",
        1_000,
        KEY,
    )
    .await
    .unwrap();
    let c = accounts::authenticate(&mut kv, &t.access, 2_000, KEY)
        .await
        .unwrap();
    assert_eq!((c.sub, c.admin), (1, true));
    // Expired by the caller's clock; forged.
    assert_eq!(
        code(accounts::authenticate(&mut kv, &t.access, 1_000 + ACCESS_TTL_MS, KEY).await),
        codes::UNAUTHENTICATED
    );
    assert_eq!(
        code(accounts::authenticate(&mut kv, &t.access, 2_000, b"another key").await),
        codes::UNAUTHENTICATED
    );
    // A refresh token is not an access token.
    assert_eq!(
        code(accounts::authenticate(&mut kv, &t.refresh, 2_000, KEY).await),
        codes::UNAUTHENTICATED
    );

    // Refresh rotates; the old refresh token used again revokes the family,
    // and with it the new tokens.
    let t2 = accounts::refresh(&mut kv, &t.refresh, "r2", 3_000, KEY)
        .await
        .unwrap();
    accounts::authenticate(&mut kv, &t2.access, 3_000, KEY)
        .await
        .unwrap();
    assert_eq!(
        code(accounts::refresh(&mut kv, &t.refresh, "r3", 4_000, KEY).await),
        codes::UNAUTHENTICATED
    );
    assert_eq!(
        code(accounts::authenticate(&mut kv, &t2.access, 4_000, KEY).await),
        codes::UNAUTHENTICATED
    );
    assert_eq!(
        code(accounts::refresh(&mut kv, &t2.refresh, "r4", 4_000, KEY).await),
        codes::UNAUTHENTICATED
    );

    // Logout: the family's tokens are refused at once, by a client of
    // another node too; another login is a new family.
    let b = accounts::login(
        &mut kv,
        "bob@example.com",
        "battery staple",
        "f2",
        "r1",
        5_000,
        KEY,
    )
    .await
    .unwrap();
    let mut other = KvClient::new(peers.clone(), 8, ClientOptions::default());
    accounts::authenticate(&mut other, &b.access, 5_000, KEY)
        .await
        .unwrap();
    accounts::logout(&mut kv, &b.access, 5_000, KEY)
        .await
        .unwrap();
    assert_eq!(
        code(accounts::authenticate(&mut other, &b.access, 5_001, KEY).await),
        codes::UNAUTHENTICATED
    );
    assert_eq!(
        code(accounts::refresh(&mut other, &b.refresh, "r2", 5_001, KEY).await),
        codes::UNAUTHENTICATED
    );
    let b2 = accounts::login(
        &mut kv,
        "bob@example.com",
        "battery staple",
        "f3",
        "r1",
        6_000,
        KEY,
    )
    .await
    .unwrap();
    accounts::authenticate(&mut kv, &b2.access, 6_000, KEY)
        .await
        .unwrap();

    // A deleted account: its tokens refused, its e-mail free again (a new id).
    assert!(accounts::delete_user(&mut kv, 2).await.unwrap());
    assert_eq!(accounts::user(&mut kv, 2).await.unwrap(), None);
    assert_eq!(
        code(accounts::authenticate(&mut kv, &b2.access, 6_001, KEY).await),
        codes::UNAUTHENTICATED
    );
    let again = accounts::register(&mut kv, "bob@example.com", "battery staple", &[5; 16], cost)
        .await
        .unwrap();
    assert_eq!(again.id, 3);
    assert!(!accounts::delete_user(&mut kv, 2).await.unwrap());
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn catalogue_holds_carts_and_the_registry() {
    let (_nodes, peers, data) = group(3);
    let mut kv = KvClient::new(peers, 9, ClientOptions::default());

    // Categories and products; unknown categories and bad prices refused.
    let novels = catalog::create_category(&mut kv, " Novels ", "long ones")
        .await
        .unwrap();
    let poems = catalog::create_category(&mut kv, "Poems", "")
        .await
        .unwrap();
    assert_eq!(
        (novels.id, novels.name.as_str(), poems.id),
        (1, "Novels", 2)
    );
    assert_eq!(
        code(catalog::create_category(&mut kv, "  ", "x").await),
        codes::BAD_USER_INPUT
    );
    let book = catalog::create_product(&mut kv, "Book", 12.5, None, 5, &[1, 2])
        .await
        .unwrap();
    let pen = catalog::create_product(&mut kv, "Pen", 1.0, Some("http://x/pen.png"), 1, &[])
        .await
        .unwrap();
    assert_eq!((book.id, book.price_cents, pen.id), (1, 1250, 2));
    assert_eq!(
        code(catalog::create_product(&mut kv, "X", 1.0, None, 1, &[9]).await),
        codes::NOT_FOUND
    );
    assert_eq!(
        code(catalog::create_product(&mut kv, "X", -1.0, None, 1, &[]).await),
        codes::BAD_USER_INPUT
    );
    assert_eq!(catalog::categories(&mut kv).await.unwrap().len(), 2);

    // Units held all or none, once per order; given back once.
    let units = |p: Option<pad_core::catalog::Product>| p.unwrap().units_available;
    assert!(catalog::reserve(&mut kv, "o1", &[(1, 2), (2, 1)])
        .await
        .unwrap()
        .is_ok());
    assert!(catalog::reserve(&mut kv, "o1", &[(1, 2), (2, 1)])
        .await
        .unwrap()
        .is_ok());
    assert_eq!(units(catalog::product(&mut kv, 1).await.unwrap()), 3);
    assert_eq!(units(catalog::product(&mut kv, 2).await.unwrap()), 0);
    // Short on the pen: nothing held, the book untouched.
    let short = catalog::reserve(&mut kv, "o2", &[(1, 1), (2, 1)])
        .await
        .unwrap();
    assert!(short
        .unwrap_err()
        .message
        .contains("1 units wanted, 0 available"));
    assert_eq!(units(catalog::product(&mut kv, 1).await.unwrap()), 3);
    // Two lines of one product count together.
    let twice = catalog::reserve(&mut kv, "o3", &[(1, 2), (1, 2)])
        .await
        .unwrap();
    assert!(twice.is_err(), "4 units of 3");
    catalog::release(&mut kv, "o1").await.unwrap();
    catalog::release(&mut kv, "o1").await.unwrap();
    assert_eq!(units(catalog::product(&mut kv, 1).await.unwrap()), 5);
    assert_eq!(units(catalog::product(&mut kv, 2).await.unwrap()), 1);
    assert!(
        catalog::reserve(&mut kv, "o1", &[(1, 1)])
            .await
            .unwrap()
            .is_err(),
        "given back: never held again"
    );
    // Refused once (o2, short on the pen), refused for good: the pen is
    // back now, but a second saga driver's late reserve must not hold it.
    assert!(
        catalog::reserve(&mut kv, "o2", &[(1, 1), (2, 1)])
            .await
            .unwrap()
            .is_err(),
        "a refused order is never held later"
    );
    assert_eq!(units(catalog::product(&mut kv, 2).await.unwrap()), 1);
    // Released before it was ever held: a late reserve is refused.
    catalog::release(&mut kv, "o4").await.unwrap();
    assert!(catalog::reserve(&mut kv, "o4", &[(1, 1)])
        .await
        .unwrap()
        .is_err());

    // Carts.
    let c = cart::update(&mut kv, 7, |c| c.add(1, 2)).await.unwrap();
    assert_eq!(c.items[&1], 2);
    cart::update(&mut kv, 7, |c| c.add(1, 1)).await.unwrap();
    assert_eq!(
        code(cart::update(&mut kv, 7, |c| c.update(5, 1)).await),
        codes::NOT_FOUND
    );
    assert_eq!(cart::get(&mut kv, 7).await.unwrap().items[&1], 3);
    assert!(cart::get(&mut kv, 8).await.unwrap().items.is_empty());
    cart::update(&mut kv, 7, |c| {
        c.clear();
        Ok(())
    })
    .await
    .unwrap();
    assert!(cart::get(&mut kv, 7).await.unwrap().items.is_empty());

    // Registry: leases by the heartbeat's clock, routability, pruning.
    let lease = pad_core::registry::LEASE_MS;
    registry::heartbeat(&mut kv, "cart", "1", "127.0.0.1:1", true, 1_000, lease)
        .await
        .unwrap();
    registry::heartbeat(&mut kv, "cart", "2", "127.0.0.1:2", false, 1_000, lease)
        .await
        .unwrap();
    registry::heartbeat(&mut kv, "cart", "3", "127.0.0.1:3", true, 3_000, lease)
        .await
        .unwrap();
    let all = registry::instances(&mut kv).await.unwrap();
    let ids = |now| {
        pad_core::registry::routable(&all, "cart", now)
            .iter()
            .map(|i| i.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(2_000), ["1", "3"]);
    assert_eq!(ids(4_500), ["3"]);
    assert_eq!(registry::prune(&mut kv, 4_500).await.unwrap(), 2);
    assert_eq!(registry::instances(&mut kv).await.unwrap().len(), 1);
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn orders_end_paid_rejected_or_failed_with_nothing_held() {
    let (_nodes, peers, data) = group(6);
    // One group holds every service's keys here (their key spaces differ).
    let kv = KvClient::new(peers, 11, ClientOptions::default());
    let groups = |k: u64| orders::Groups {
        catalog: kv.sibling(100 + k),
        cart: kv.sibling(200 + k),
        payment: kv.sibling(300 + k),
        orders: kv.sibling(400 + k),
    };
    let mut g = groups(1);
    catalog::create_product(&mut g.catalog, "Book", 10.0, None, 5, &[])
        .await
        .unwrap();
    catalog::create_product(&mut g.catalog, "Pen", 600.0, None, 10, &[])
        .await
        .unwrap();
    let units = |p: Option<pad_core::catalog::Product>| p.unwrap().units_available;
    use pad_core::order::Status;

    // An empty cart is refused.
    assert_eq!(
        code(orders::init_order(&mut g, 1).await),
        codes::BAD_USER_INPUT
    );

    // PAID: the units and the money taken, the cart emptied.
    cart::update(&mut g.cart, 1, |c| c.add(1, 2)).await.unwrap();
    let o = orders::init_order(&mut g, 1).await.unwrap();
    assert_eq!((o.saga.status, o.total_cents), (Status::Created, 2_000));
    // Asked again while it runs, with the same cart: the same order.
    let again = orders::init_order(&mut g, 1).await.unwrap();
    assert_eq!(
        again.id, o.id,
        "initOrder is idempotent while its order runs"
    );
    assert_eq!(orders::unfinished(&mut g.orders).await.unwrap().len(), 1);
    let o = orders::drive(&mut g, o.id).await.unwrap();
    assert!(
        orders::unfinished(&mut g.orders).await.unwrap().is_empty(),
        "a finished order leaves the recovery index"
    );
    assert_eq!(o.saga.status, Status::Paid);
    assert_eq!(
        orders::status(&mut g.orders, o.id).await.unwrap(),
        Status::Paid
    );
    assert_eq!(units(catalog::product(&mut g.catalog, 1).await.unwrap()), 3);
    assert_eq!(payment::balance(&mut g.payment, 1).await.unwrap(), 98_000);
    assert!(cart::get(&mut g.cart, 1).await.unwrap().items.is_empty());

    // ITEMS_REJECTED: 4 books of 3; nothing held, nothing charged.
    cart::update(&mut g.cart, 2, |c| c.add(1, 4)).await.unwrap();
    let o = orders::init_order(&mut g, 2).await.unwrap();
    let o = orders::drive(&mut g, o.id).await.unwrap();
    assert_eq!(o.saga.status, Status::ItemsRejected);
    assert!(
        o.saga.reason.contains("4 units wanted, 3 available"),
        "{}",
        o.saga.reason
    );
    assert_eq!(units(catalog::product(&mut g.catalog, 1).await.unwrap()), 3);
    assert_eq!(
        payment::balance(&mut g.payment, 2).await.unwrap(),
        payment::DEFAULT_CREDIT_CENTS
    );
    assert_eq!(
        cart::get(&mut g.cart, 2).await.unwrap().items[&1],
        4,
        "the cart stays"
    );

    // PAYMENT_FAILED: 1,200.00 of 1,000.00 credit; the pens given back.
    cart::update(&mut g.cart, 3, |c| c.add(2, 2)).await.unwrap();
    let o = orders::init_order(&mut g, 3).await.unwrap();
    let o = orders::drive(&mut g, o.id).await.unwrap();
    assert_eq!(o.saga.status, Status::PaymentFailed);
    assert_eq!(
        units(catalog::product(&mut g.catalog, 2).await.unwrap()),
        10
    );
    assert_eq!(
        payment::balance(&mut g.payment, 3).await.unwrap(),
        payment::DEFAULT_CREDIT_CENTS
    );

    // Two replicas drive one order at once: one end, taken once.
    cart::update(&mut g.cart, 4, |c| c.add(1, 1)).await.unwrap();
    let o = orders::init_order(&mut g, 4).await.unwrap();
    let (mut a, mut b) = (groups(2), groups(3));
    let (ra, rb) = tokio::join!(orders::drive(&mut a, o.id), orders::drive(&mut b, o.id));
    assert_eq!(ra.unwrap(), rb.unwrap());
    assert_eq!(
        orders::status(&mut g.orders, o.id).await.unwrap(),
        Status::Paid
    );
    assert_eq!(units(catalog::product(&mut g.catalog, 1).await.unwrap()), 2);
    assert_eq!(payment::balance(&mut g.payment, 4).await.unwrap(), 99_000);
    assert_eq!(
        orders::status(&mut g.orders, 999).await.unwrap(),
        Status::Unknown
    );
    let _ = std::fs::remove_dir_all(&data);
}
