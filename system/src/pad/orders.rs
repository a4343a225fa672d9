//! Orders in the order service's Raft KV group, and the orchestrated saga
//! that `initOrder` starts ([`pad_core::order`]):
//!
//! | key | value |
//! |---|---|
//! | `order/next` | the last order id given |
//! | `order/id/<id>` | [`Order`] as JSON, with its saga's durable record |
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
}

/// A client of each group the saga touches.
pub struct Groups {
    pub catalog: KvClient,
    pub cart: KvClient,
    pub payment: KvClient,
    pub orders: KvClient,
}

fn key(id: i64) -> String {
    format!("order/id/{id}")
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
    let c = cart::get(&mut g.cart, user).await?;
    if c.items.is_empty() {
        return Err(Refusal::input("cart: is empty; add products first").into());
    }
    let mut lines = Vec::new();
    for (&product, &quantity) in &c.items {
        let Some(p) = catalog::product(&mut g.catalog, product).await? else {
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
    for _ in 0..100 {
        let last = g.orders.get("order/next").await?;
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
        let done = g
            .orders
            .txn(
                vec![cmd::compare("order/next", last.as_deref())],
                vec![
                    cmd::op_put("order/next", &id.to_string()),
                    cmd::op_put(
                        &key(id),
                        &serde_json::to_string(&order).expect("serialises"),
                    ),
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
    loop {
        let Some((order, raw)) = get(&mut g.orders, id).await? else {
            return Err(Refusal::new(codes::NOT_FOUND, format!("orderId: no order {id}")).into());
        };
        let outcome = match order.saga.next {
            Step::Done => return Ok(order),
            Step::Reserve => {
                let lines: Vec<(i64, i64)> = order
                    .lines
                    .iter()
                    .map(|l| (l.product, l.quantity))
                    .collect();
                match catalog::reserve(&mut g.catalog, &order.tx(), &lines).await? {
                    Ok(()) => Outcome::Done,
                    Err(r) => Outcome::Refused(r.message),
                }
            }
            Step::Charge => {
                let c = payment::charge(&mut g.payment, &order.tx(), order.user, order.total_cents)
                    .await?;
                if c.charged {
                    Outcome::Done
                } else {
                    Outcome::Refused(format!(
                        "out of credit: the order costs {} cents",
                        order.total_cents
                    ))
                }
            }
            Step::Release => {
                catalog::release(&mut g.catalog, &order.tx()).await?;
                Outcome::Done
            }
            Step::ClearCart => {
                // Take the ordered units out of the cart (what was added
                // since stays).
                cart::update(&mut g.cart, order.user, |c| {
                    for l in &order.lines {
                        let left = c.items.get(&l.product).copied().unwrap_or(0) - l.quantity;
                        if left > 0 {
                            c.items.insert(l.product, left);
                        } else {
                            c.items.remove(&l.product);
                        }
                    }
                    Ok(())
                })
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
        g.orders.cas(&key(id), Some(&raw), Some(&new)).await?;
    }
}

/// `orderStatus`: the status clients see (UNKNOWN for no such order).
pub async fn status(kv: &mut KvClient, id: i64) -> Result<Status, PadError> {
    Ok(get(kv, id)
        .await?
        .map_or(Status::Unknown, |(o, _)| o.saga.status))
}
