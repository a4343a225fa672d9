//! Key layout and record formats of the three store groups. Values are JSON
//! (serde_json writes struct fields in declaration order, so a record always
//! serialises to the same string, which compare-and-set relies on).
//!
//! | group   | key             | value                                         |
//! |---------|-----------------|-----------------------------------------------|
//! | stock   | `item/<id>`     | [`ItemRec`] `{"stock","price"}`               |
//! | stock   | `res/<tx>`      | [`Hold`] a reservation: lines and state       |
//! | payment | `user/<id>`     | the credit, a decimal integer                 |
//! | payment | `chg/<tx>`      | [`Hold`] a charge: user, amount and state     |
//! | orders  | `order/<id>`    | [`OrderRec`] `{"user","items","total","paid"}`|
//! | orders  | `tx/<order id>` | [`super::checkout::TxRecord`] the checkout    |
//! | orders  | `open/<order id>` | the transaction id, while `tx/<order id>` is unfinished: written with the record that starts a checkout, deleted with the one that ends it (the recovery loop's looks read these; its first look, and one a minute, read every record) |
//! | each    | `req/<request id>` | what a write with that request id answered (the record it wrote), written with it in one transaction |

use serde::{Deserialize, Serialize};

pub const ITEM: &str = "item/";
pub const RESERVATION: &str = "res/";
pub const USER: &str = "user/";
pub const CHARGE: &str = "chg/";
pub const ORDER: &str = "order/";
pub const TX: &str = "tx/";
pub const OPEN: &str = "open/";
pub const REQUEST: &str = "req/";

/// The key recording a write's answer under its request id.
pub fn req_key(request: &str) -> String {
    format!("{REQUEST}{request}")
}

/// The id of what a create with this request id makes (never one that
/// `batch_init` or a create without a request id gives).
pub fn id_of_request(request: &str) -> String {
    format!("r-{request}")
}

/// Checks a request id (may be empty: no retry protection).
pub fn check_request(request: &str) -> Result<(), tonic::Status> {
    if request.is_empty() {
        Ok(())
    } else {
        check_id("request", request)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemRec {
    pub stock: i64,
    pub price: i64,
}

/// State of a reservation or a charge held for a checkout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldState {
    /// Taken (a SAGA step done, or a 2PC participant prepared).
    Held,
    /// Final (2PC commit).
    Committed,
    /// Given back, or refused in advance (a tombstone: the step never runs).
    Released,
}

/// A reservation of stock (`lines`) or a charge (`user`, `amount`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub state: HoldState,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<(String, i64)>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default)]
    pub amount: i64,
}

impl Hold {
    /// A reservation of these lines, taken.
    pub fn reserved(lines: Vec<(String, i64)>) -> Hold {
        Hold {
            state: HoldState::Held,
            lines,
            user: String::new(),
            amount: 0,
        }
    }

    /// A charge of `amount` to `user`, taken.
    pub fn charged(user: &str, amount: i64) -> Hold {
        Hold {
            state: HoldState::Held,
            lines: vec![],
            user: user.to_string(),
            amount,
        }
    }

    /// A release that came first: refuses the step it overtook.
    pub fn tombstone() -> Hold {
        Hold {
            state: HoldState::Released,
            lines: vec![],
            user: String::new(),
            amount: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRec {
    pub user: String,
    pub items: Vec<(String, i64)>,
    pub total: i64,
    pub paid: bool,
}

pub fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("records serialise")
}

pub fn from_json<'a, T: Deserialize<'a>>(key: &str, s: &'a str) -> Result<T, tonic::Status> {
    serde_json::from_str(s)
        .map_err(|e| tonic::Status::internal(format!("corrupt record {key}: {e}: {s}")))
}

pub fn parse_credit(key: &str, s: &str) -> Result<i64, tonic::Status> {
    s.parse()
        .map_err(|_| tonic::Status::internal(format!("corrupt credit {key}: {s}")))
}

/// Adds up the quantities of repeated items (an order may list an item twice).
pub fn merge_lines(lines: impl IntoIterator<Item = (String, i64)>) -> Vec<(String, i64)> {
    let mut m = std::collections::BTreeMap::new();
    for (item, qty) in lines {
        let q = m.entry(item).or_insert(0i64);
        *q = q.saturating_add(qty);
    }
    m.into_iter().collect()
}

/// An id from a URL or a request: non-empty, no '/', printable.
pub fn check_id(what: &str, id: &str) -> Result<(), tonic::Status> {
    if id.is_empty() || id.len() > 128 || id.contains('/') || id.chars().any(|c| c.is_control()) {
        return Err(tonic::Status::invalid_argument(format!(
            "bad {what} id '{id}': expected 1-128 printable characters without '/'"
        )));
    }
    Ok(())
}

pub fn check_amount(what: &str, n: i64) -> Result<(), tonic::Status> {
    if !(0..=1_000_000_000_000).contains(&n) {
        return Err(tonic::Status::invalid_argument(format!(
            "bad {what} {n}: expected an integer from 0 to 10^12"
        )));
    }
    Ok(())
}
