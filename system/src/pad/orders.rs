//! Orders in the order service's Raft KV group, and the orchestrated saga
//! that `initOrder` starts ([`pad_core::order`]):
//!
//! | key | value |
//! |---|---|
//! | `order/next` | the last order id given |
//! | `order/id/<id>` | [`Order`] as JSON, with its saga's durable record |
//! | `order/open/<id>` | present while the order's saga has steps left (what the recovery loop scans) |
//! | `order/last/<user>` | the user's last order's id |
//!
//! `initOrder` is idempotent while an order runs: asked again while the
//! user's last order is unfinished and holds the same products and
//! quantities as the cart, it answers that order instead of making a
//! second (a resend after an unknown outcome, a double click, a second
//! tab).
//!
//! [`drive`] runs the saga's next step (hold the units at the catalogue,
//! charge the user, give the units back, clear the cart), then moves the
//! record on with a compare-and-set; every step is idempotent by order id,
//! so any replica may resume an order after a crash, and two replicas
//! driving one order at once end in the same place (the one whose
//! compare-and-set fails reads the record again and carries on from
//! there).

use super::{cart, catalog, payment, PadError};
use crate::client::{ClientError, KvClient};
use crate::kv::cmd;
use pad_core::order::{Outcome, Saga, Status, Step};
use pad_core::{codes, Refusal};
use serde::{Deserialize, Serialize};

/// One line of an order, priced when the order was made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub product: i64,
    pub name: String,
    pub quantity: i64,
    pub price_cents: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: i64,
    pub user: u64,
    pub lines: Vec<Line>,
    pub total_cents: i64,
    pub saga: Saga,
}

impl Order {
    /// The name its holds and charge go by at the other services.
    pub fn tx(&self) -> String {
        format!("order-{}", self.id)
    }

    /// (product, units) per line.
    pub fn lines(&self) -> Vec<(i64, i64)> {
        self.lines.iter().map(|l| (l.product, l.quantity)).collect()
    }
}

/// A client of each group the saga touches.
pub struct Groups {
    pub catalog: KvClient,
    pub cart: KvClient,
    pub payment: KvClient,
    pub orders: KvClient,
}

/// What the saga asks of the other services: the catalogue, the carts and
/// payments. [`Groups`] reaches their stores directly (tests); the order
/// service calls the services over gRPC, found through the registry.
#[allow(async_fn_in_trait)]
pub trait Steps {
    /// The user's cart.
    async fn cart(&mut self, user: u64) -> Result<pad_core::cart::Cart, PadError>;
    /// A product (name and price), if it exists.
    async fn product(&mut self, id: i64) -> Result<Option<pad_core::catalog::Product>, PadError>;
    /// Holds the lines' units for `tx`, all or none (idempotent).
    async fn reserve(
        &mut self,
        tx: &str,
        lines: &[(i64, i64)],
    ) -> Result<Result<(), Refusal>, PadError>;
    /// Charges the user once for `tx`: charged or refused for want of credit.
    async fn charge(&mut self, tx: &str, user: u64, cents: i64) -> Result<bool, PadError>;
    /// Gives back what `tx` holds (idempotent).
    async fn release(&mut self, tx: &str) -> Result<(), PadError>;
    /// Takes order `tx`'s units out of the user's cart, once (what a paid
    /// order does).
    async fn take_from_cart(
        &mut self,
        tx: &str,
        user: u64,
        lines: &[(i64, i64)],
    ) -> Result<(), PadError>;
}

/// The saga's calls straight to the other services' stores.
pub struct Direct<'a> {
    pub catalog: &'a mut KvClient,
    pub cart: &'a mut KvClient,
    pub payment: &'a mut KvClient,
}

impl Steps for Direct<'_> {
    async fn cart(&mut self, user: u64) -> Result<pad_core::cart::Cart, PadError> {
        cart::get(self.cart, user).await
    }
    async fn product(&mut self, id: i64) -> Result<Option<pad_core::catalog::Product>, PadError> {
        catalog::product(self.catalog, id).await
    }
    async fn reserve(
        &mut self,
        tx: &str,
        lines: &[(i64, i64)],
    ) -> Result<Result<(), Refusal>, PadError> {
        catalog::reserve(self.catalog, tx, lines).await
    }
    async fn charge(&mut self, tx: &str, user: u64, cents: i64) -> Result<bool, PadError> {
        Ok(payment::charge(self.payment, tx, user, cents)
            .await?
            .charged)
    }
    async fn release(&mut self, tx: &str) -> Result<(), PadError> {
        catalog::release(self.catalog, tx).await
    }
    async fn take_from_cart(
        &mut self,
        tx: &str,
        user: u64,
        lines: &[(i64, i64)],
    ) -> Result<(), PadError> {
        cart::update(self.cart, user, |c| {
            c.take(tx, lines);
            Ok(())
        })
        .await?;
        Ok(())
    }
}

impl Groups {
    fn split(&mut self) -> (Direct<'_>, &mut KvClient) {
        (
            Direct {
                catalog: &mut self.catalog,
                cart: &mut self.cart,
                payment: &mut self.payment,
            },
            &mut self.orders,
        )
    }
}

fn key(id: i64) -> String {
    format!("order/id/{id}")
}

fn open_key(id: i64) -> String {
    format!("order/open/{id}")
}

fn last_key(user: u64) -> String {
    format!("order/last/{user}")
}

fn bad(what: &str, e: impl std::fmt::Display) -> PadError {
    PadError::Store(ClientError::Failed(format!(
        "stored {what} is not valid: {e}"
    )))
}

/// The order and its stored form.
pub async fn get(kv: &mut KvClient, id: i64) -> Result<Option<(Order, String)>, PadError> {
    match kv.get(&key(id)).await? {
        None => Ok(None),
        Some(v) => Ok(Some((
            serde_json::from_str(&v).map_err(|e| bad("order", e))?,
            v,
        ))),
    }
}

/// `initOrder`: the user's cart as a new order in status CREATED, priced
/// now (refused: an empty cart, a product gone). The saga is not run yet:
/// call [`drive`].
pub async fn init_order(g: &mut Groups, user: u64) -> Result<Order, PadError> {
    let (mut steps, orders) = g.split();
    init_order_with(&mut steps, orders, user).await
}

/// [`init_order`] with the other services reached through `steps`.
pub async fn init_order_with(
    steps: &mut impl Steps,
    orders: &mut KvClient,
    user: u64,
) -> Result<Order, PadError> {
    let c = steps.cart(user).await?;
    if c.items.is_empty() {
        return Err(Refusal::input("cart: is empty; add products first").into());
    }
    let mut lines = Vec::new();
    for (&product, &quantity) in &c.items {
        let Some(p) = steps.product(product).await? else {
            return Err(Refusal::new(
                codes::NOT_FOUND,
                format!("productId: product {product} is no longer in the catalogue"),
            )
            .into());
        };
        lines.push(Line {
            product,
            name: p.name,
            quantity,
            price_cents: p.price_cents,
        });
    }
    let total_cents = lines.iter().map(|l| l.price_cents * l.quantity).sum();
    let lk = last_key(user);
    let wanted: Vec<(i64, i64)> = lines.iter().map(|l| (l.product, l.quantity)).collect();
    // The user's last order is looked at before the loop (and again only
    // if it changed): every read between the loop's read of `order/next`
    // and its transaction widens the window in which concurrent creations
    // collide on that counter (64 clients: 41-49 orders PAID/s with the
    // look inside the loop, against 75-77 without any).
    let mut checked: Option<Option<String>> = None;
    for _ in 0..100 {
        let r = orders.read(&["order/next", &lk]).await?;
        let (last, users_last) = (r[0].clone(), r[1].clone());
        if checked.as_ref() != Some(&users_last) {
            if let Some(prev) = &users_last {
                let prev: i64 = prev.parse().map_err(|e| bad(&lk, e))?;
                if let Some((o, _)) = get(orders, prev).await? {
                    if o.saga.next != Step::Done && o.lines() == wanted {
                        return Ok(o);
                    }
                }
            }
            checked = Some(users_last.clone());
            continue;
        }
        let id = match &last {
            None => 1,
            Some(v) => v.parse::<i64>().map_err(|e| bad("order/next", e))? + 1,
        };
        let order = Order {
            id,
            user,
            lines: lines.clone(),
            total_cents,
            saga: Saga::new(),
        };
        let done = orders
            .txn(
                vec![
                    cmd::compare("order/next", last.as_deref()),
                    cmd::compare(&lk, users_last.as_deref()),
                ],
                vec![
                    cmd::op_put("order/next", &id.to_string()),
                    cmd::op_put(
                        &key(id),
                        &serde_json::to_string(&order).expect("serialises"),
                    ),
                    cmd::op_put(&open_key(id), ""),
                    cmd::op_put(&lk, &id.to_string()),
                ],
                vec![],
            )
            .await?;
        if done.succeeded {
            return Ok(order);
        }
    }
    Err(ClientError::Failed("order creation kept racing others; try again".into()).into())
}

/// Runs order `id`'s saga to its end (PAID with the cart cleared,
/// ITEMS_REJECTED or PAYMENT_FAILED with nothing held); the final order.
pub async fn drive(g: &mut Groups, id: i64) -> Result<Order, PadError> {
    let (mut steps, orders) = g.split();
    drive_with(&mut steps, orders, id, false).await
}

/// [`drive`] with the other services reached through `steps`.
/// `paid_before_charge` is the planted bug of that name.
pub async fn drive_with(
    steps: &mut impl Steps,
    orders: &mut KvClient,
    id: i64,
    paid_before_charge: bool,
) -> Result<Order, PadError> {
    loop {
        let Some((order, raw)) = get(orders, id).await? else {
            return Err(Refusal::new(codes::NOT_FOUND, format!("orderId: no order {id}")).into());
        };
        let outcome = match order.saga.next {
            Step::Done => return Ok(order),
            Step::Reserve => match steps.reserve(&order.tx(), &order.lines()).await? {
                Ok(()) => Outcome::Done,
                Err(r) => Outcome::Refused(r.message),
            },
            Step::Charge if paid_before_charge => {
                // Planted bug: PAID is recorded before the charge is
                // confirmed, and a refused charge never gives anything back.
                let _ = steps
                    .charge(&order.tx(), order.user, order.total_cents)
                    .await;
                Outcome::Done
            }
            Step::Charge => {
                if steps
                    .charge(&order.tx(), order.user, order.total_cents)
                    .await?
                {
                    Outcome::Done
                } else {
                    Outcome::Refused(format!(
                        "out of credit: the order costs {} cents",
                        order.total_cents
                    ))
                }
            }
            Step::Release => {
                steps.release(&order.tx()).await?;
                Outcome::Done
            }
            Step::ClearCart => {
                steps
                    .take_from_cart(&order.tx(), order.user, &order.lines())
                    .await?;
                Outcome::Done
            }
        };
        let next = Order {
            saga: order.saga.after(outcome),
            ..order.clone()
        };
        debug_assert!(order.saga.status.may_move_to(next.saga.status));
        let new = serde_json::to_string(&next).expect("serialises");
        // A failed compare: another replica moved it on; read it again.
        // The last step also takes the order out of the recovery index.
        let mut ops = vec![cmd::op_put(&key(id), &new)];
        if next.saga.next == Step::Done {
            ops.push(cmd::op_delete(&open_key(id)));
        }
        orders
            .txn(vec![cmd::compare(&key(id), Some(&raw))], ops, vec![])
            .await?;
    }
}

/// The orders not yet at their saga's end (for the recovery loop).
/// The ids in the recovery index (orders whose saga has steps left, or
/// had a moment ago).
pub async fn running_ids(kv: &mut KvClient) -> Result<Vec<i64>, PadError> {
    Ok(kv
        .scan("order/open/")
        .await?
        .into_iter()
        .filter_map(|(k, _)| k.trim_start_matches("order/open/").parse().ok())
        .collect())
}

/// (From the recovery index: what is read grows with the orders running,
/// not with every order ever placed. An entry that does not parse is
/// skipped with a warning, so it cannot stop the others' recovery.)
pub async fn unfinished(kv: &mut KvClient) -> Result<Vec<Order>, PadError> {
    let mut out = Vec::new();
    for (k, _) in kv.scan("order/open/").await? {
        let Ok(id) = k.trim_start_matches("order/open/").parse::<i64>() else {
            tracing::warn!("recovery index: {k} is not an order id");
            continue;
        };
        match get(kv, id).await {
            Ok(Some((o, _))) if o.saga.next != Step::Done => out.push(o),
            Ok(_) => {}
            Err(PadError::Store(e)) => return Err(e.into()),
            Err(e) => tracing::warn!("order {id}: {e}"),
        }
    }
    Ok(out)
}

/// `orderStatus`: the status clients see (UNKNOWN for no such order).
pub async fn status(kv: &mut KvClient, id: i64) -> Result<Status, PadError> {
    Ok(get(kv, id)
        .await?
        .map_or(Status::Unknown, |(o, _)| o.saga.status))
}
