//! The `cart` check of scenario `pad`: each user's cart, as its shopper
//! saw it through the gateways, is linearizable against a sequential cart.
//!
//! The shopper records every attempt of a cart call as its own operation
//! on key `cart/<user id>` (`cart-add`, `cart-clear`, `cart-remove`,
//! `cart-read`, `init-order`): answered, refused for certain (dropped: it
//! did nothing), or without an answer (unknown: it may have happened, at
//! any time after it was sent). Two more kinds of operation come from the
//! final state of the orders:
//! - an answered `initOrder` read the cart: at some moment between its
//!   sending and its answer, the cart held exactly its order's lines;
//! - a PAID order takes its lines out of the cart (what was added since
//!   stays), once, at some moment before the end of the run and after the
//!   user's last `initOrder` answered with an earlier order was sent (order
//!   ids grow, so the order was made after that; the `initOrder` that
//!   answered it may not be the one that made it).
//!
//! The sequential cart is written here from the course's schema, not taken
//! from the implementation (`pad_core::cart`), so that a mistake there is
//! a failure here.

use checker::history::{Call, History, Op, OpType, Outcome, Process};
use checker::linear::{CheckResult, Options};
use checker::model::Model;
use checker::Verdict;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Product id -> units (>= 1).
pub type Items = BTreeMap<i64, i64>;

#[derive(Clone, Debug, PartialEq)]
pub enum CartOp {
    Add(i64, i64),
    Clear,
    /// `removeItem` answered: the product was there, and now is not.
    Remove(i64),
    /// `removeItem` refused with NOT_FOUND: the product was not there.
    RemoveMissing(i64),
    /// A `cart` query's answer, or an answered `initOrder`'s lines.
    Read(Items),
    /// A PAID order's units taken out.
    Take(Items),
}

/// The sequential specification of one user's cart.
#[derive(Clone, Debug, Default)]
pub struct CartModel;

fn items(v: &Value) -> Result<Items, String> {
    let mut out = Items::new();
    for l in v
        .as_array()
        .ok_or_else(|| format!("expected a list of lines, found {v}"))?
    {
        let p = l["product"]
            .as_i64()
            .ok_or_else(|| format!("line without product: {l}"))?;
        let q = l["quantity"]
            .as_i64()
            .ok_or_else(|| format!("line without quantity: {l}"))?;
        *out.entry(p).or_default() += q;
    }
    Ok(out)
}

fn describe(i: &Items) -> String {
    if i.is_empty() {
        return "empty".into();
    }
    i.iter()
        .map(|(p, q)| format!("{q} x product {p}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Model for CartModel {
    type State = Items;
    type Op = CartOp;

    fn init(&mut self) -> Items {
        Items::new()
    }

    fn prepare(&mut self, call: &Call) -> Result<Option<CartOp>, String> {
        let v = &call.invoke_value;
        let product = || {
            v["product"]
                .as_i64()
                .ok_or_else(|| format!("{}: no product", call.describe()))
        };
        let ok = match &call.outcome {
            Outcome::Ok(r) => Some(r),
            Outcome::Fail => return Ok(None),
            Outcome::Unknown => None,
        };
        Ok(Some(match call.f.as_str() {
            "cart-add" => CartOp::Add(
                product()?,
                v["quantity"]
                    .as_i64()
                    .ok_or_else(|| format!("{}: no quantity", call.describe()))?,
            ),
            "cart-clear" => CartOp::Clear,
            "cart-remove" => match ok {
                Some(r) if r["not_in_cart"] == true => CartOp::RemoveMissing(product()?),
                _ => CartOp::Remove(product()?),
            },
            "cart-read" | "init-order" => match ok {
                Some(r) if r.get("lines").is_some() => CartOp::Read(items(&r["lines"])?),
                // Unanswered, or an order whose lines are not known: it
                // observed nothing we can use (a read changes nothing).
                _ => return Ok(None),
            },
            "cart-take" => CartOp::Take(items(&v["lines"])?),
            other => return Err(format!("not a cart operation: {other}")),
        }))
    }

    fn step(&mut self, s: &Items, op: &CartOp) -> Option<Items> {
        let mut n = s.clone();
        match op {
            CartOp::Add(p, q) => *n.entry(*p).or_default() += q,
            CartOp::Clear => n.clear(),
            CartOp::Remove(p) => {
                n.remove(p)?;
            }
            CartOp::RemoveMissing(p) => {
                if n.contains_key(p) {
                    return None;
                }
            }
            CartOp::Read(want) => {
                if want != s {
                    return None;
                }
            }
            CartOp::Take(lines) => {
                for (p, q) in lines {
                    let left = n.get(p).copied().unwrap_or(0) - q;
                    if left > 0 {
                        n.insert(*p, left);
                    } else {
                        n.remove(p);
                    }
                }
            }
        }
        Some(n)
    }

    fn partition(&self, call: &Call) -> Option<String> {
        call.key.clone()
    }

    fn describe_state(&self, s: &Items) -> String {
        describe(s)
    }
}

/// The cart history: the shoppers' cart operations, each answered
/// `initOrder` completed with its order's lines, and a take per PAID order
/// (from `final`, the orders read after healing: `order/id/<id>` -> order
/// with `user`, `lines`, `saga.status`).
pub fn cart_history(h: &History, fin: &Value) -> History {
    let orders: BTreeMap<i64, &Value> = fin["orders"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, o)| Some((o["id"].as_i64()?, o)))
        .collect();
    let is_cart =
        |o: &Op| o.is_client() && o.key.as_deref().is_some_and(|k| k.starts_with("cart/"));
    let mut ops: Vec<Op> = Vec::new();
    // Per user: (invocation time, order id) of each initOrder answered
    // with an order.
    let mut answered: BTreeMap<String, Vec<(u64, i64)>> = BTreeMap::new();
    let mut sent: BTreeMap<Process, u64> = BTreeMap::new();
    let mut end = 0;
    for o in &h.ops {
        end = end.max(o.time.unwrap_or(0));
        if !is_cart(o) {
            continue;
        }
        let mut o = o.clone();
        let t = o.time.unwrap_or(0);
        if o.f == "init-order" {
            match o.kind {
                OpType::Invoke => {
                    sent.insert(o.process.clone(), t);
                }
                OpType::Ok => {
                    if let Some(id) = o.value["order"].as_i64() {
                        let at = sent.get(&o.process).copied().unwrap_or(0);
                        answered
                            .entry(o.key.clone().unwrap_or_default())
                            .or_default()
                            .push((at, id));
                        if let Some(ord) = orders.get(&id) {
                            o.value = json!({"order": id, "lines": ord["lines"]});
                        }
                    }
                }
                _ => {}
            }
        }
        o.index = ops.len();
        ops.push(o);
    }
    for (id, o) in &orders {
        if !matches!(o["saga"]["status"].as_str(), Some("Paid" | "PAID")) {
            continue;
        }
        let key = format!("cart/{}", o["user"].as_u64().unwrap_or(0));
        // The order was made after the user's last initOrder answered with
        // an earlier order had been sent (order ids grow, and an initOrder
        // answers the user's last order or a new one), so its take came
        // after that; with none, from the start. (Not the invocation of the
        // initOrder that answered this order: an earlier one without an
        // answer may have made it, and its take may be done already.)
        let at = answered
            .get(&key)
            .into_iter()
            .flatten()
            .filter(|(_, o)| o < id)
            .map(|(t, _)| *t)
            .max()
            .unwrap_or(0);
        let process = Process::Client(1_000_000 + *id as u64);
        for (kind, time) in [(OpType::Invoke, at), (OpType::Ok, end + 1)] {
            ops.push(Op {
                index: ops.len(),
                process: process.clone(),
                kind,
                f: "cart-take".into(),
                key: Some(key.clone()),
                value: json!({"order": id, "lines": o["lines"]}),
                time: Some(time),
                extra: Default::default(),
            });
        }
    }
    History::new(ops)
}

/// Each user's cart linearizable: the violations (none, or one naming the
/// user and the operations that cannot be ordered).
pub fn check(h: &History, fin: &Value) -> (Vec<String>, CheckResult) {
    let carts = cart_history(h, fin);
    let opts = Options {
        timeout: Some(std::time::Duration::from_secs(60)),
        threads: 1,
        ..Default::default()
    };
    let r = match checker::linear::check_model(&carts, CartModel, &opts) {
        Ok(r) => r,
        Err(e) => {
            return (
                vec![format!("the cart history is not usable: {e}")],
                empty(),
            )
        }
    };
    let fails = match r.verdict {
        Verdict::Linearizable => vec![],
        Verdict::NotLinearizable => vec![format!(
            "{} is not linearizable: {}",
            r.failing_key.as_deref().unwrap_or("a cart"),
            r.explanation.clone().unwrap_or_default()
        )],
        Verdict::Unknown => vec![format!(
            "the cart check gave no verdict: {}",
            r.unknown_reason.clone().unwrap_or_default()
        )],
    };
    (fails, r)
}

fn empty() -> CheckResult {
    let h = History::new(vec![]);
    checker::linear::check_model(&h, CartModel, &Options::default()).expect("empty history")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shopper's operations: (f, invoke value, completion kind, value).
    fn history(ops: &[(&str, Value, OpType, Value)]) -> History {
        let mut out = Vec::new();
        for (i, (f, v, kind, r)) in ops.iter().enumerate() {
            for (k, val, t) in [
                (OpType::Invoke, v, 10 * i as u64),
                (*kind, r, 10 * i as u64 + 5),
            ] {
                out.push(Op {
                    index: out.len(),
                    process: Process::Client(1),
                    kind: k,
                    f: f.to_string(),
                    key: Some("cart/7".into()),
                    value: val.clone(),
                    time: Some(t),
                    extra: Default::default(),
                });
            }
        }
        History::new(out)
    }

    fn fin(status: &str) -> Value {
        json!({"orders": {"order/id/1": {"id": 1, "user": 7, "lines": [{"product": 3, "quantity": 2}], "saga": {"status": status}}}})
    }

    fn read(lines: Value) -> (&'static str, Value, OpType, Value) {
        ("cart-read", json!({}), OpType::Ok, json!({"lines": lines}))
    }

    #[test]
    fn a_shoppers_cart_with_an_order_taken_later_is_linearizable() {
        let h = history(&[
            ("cart-clear", json!({}), OpType::Ok, json!({})),
            (
                "cart-add",
                json!({"product": 3, "quantity": 2}),
                OpType::Ok,
                json!({}),
            ),
            // An attempt without an answer, then one refused for certain.
            (
                "cart-add",
                json!({"product": 4, "quantity": 1}),
                OpType::Info,
                json!({}),
            ),
            (
                "cart-add",
                json!({"product": 4, "quantity": 1}),
                OpType::Fail,
                json!({}),
            ),
            (
                "cart-remove",
                json!({"product": 4}),
                OpType::Ok,
                json!({"not_in_cart": true}),
            ),
            read(json!([{"product": 3, "quantity": 2}])),
            ("init-order", json!({}), OpType::Ok, json!({"order": 1})),
            (
                "cart-add",
                json!({"product": 3, "quantity": 1}),
                OpType::Ok,
                json!({}),
            ),
            // The PAID order's take came after the add: 3 - 2 = 1 left.
            read(json!([{"product": 3, "quantity": 1}])),
        ]);
        let (fails, _) = check(&h, &fin("PAID"));
        assert!(fails.is_empty(), "{fails:?}");
    }

    #[test]
    fn a_lost_add_a_doubled_add_and_a_take_without_payment_fail() {
        let lost = history(&[
            (
                "cart-add",
                json!({"product": 3, "quantity": 2}),
                OpType::Ok,
                json!({}),
            ),
            read(json!([])),
        ]);
        let (f, _) = check(&lost, &json!({}));
        assert!(f[0].contains("cart/7 is not linearizable"), "{f:?}");
        let doubled = history(&[
            (
                "cart-add",
                json!({"product": 3, "quantity": 2}),
                OpType::Ok,
                json!({}),
            ),
            read(json!([{"product": 3, "quantity": 4}])),
        ]);
        assert_eq!(check(&doubled, &json!({})).0.len(), 1);
        // The cart emptied although the order was not PAID.
        let taken = history(&[
            (
                "cart-add",
                json!({"product": 3, "quantity": 2}),
                OpType::Ok,
                json!({}),
            ),
            ("init-order", json!({}), OpType::Ok, json!({"order": 1})),
            read(json!([])),
        ]);
        assert_eq!(check(&taken, &fin("PAYMENT_FAILED")).0.len(), 1);
        assert!(check(&taken, &fin("PAID")).0.is_empty());
        // An initOrder answered for lines the cart never held.
        let wrong = history(&[
            (
                "cart-add",
                json!({"product": 3, "quantity": 1}),
                OpType::Ok,
                json!({}),
            ),
            ("init-order", json!({}), OpType::Ok, json!({"order": 1})),
        ]);
        assert_eq!(check(&wrong, &fin("PAYMENT_FAILED")).0.len(), 1);
    }
}
