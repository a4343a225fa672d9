//! Payments in the payment service's Raft KV group:
//!
//! | key | value |
//! |---|---|
//! | `acct/<user>` | the balance in cents (absent: [`DEFAULT_CREDIT_CENTS`]) |
//! | `charge/<order>` | [`Charge`] as JSON: charged or refused, decided once |
//!
//! A charge is decided once per order, in the transaction that debits the
//! balance (or records the refusal): asked again, by a retry or by another
//! replica resuming the saga, it answers the same.

use super::PadError;
use crate::client::{ClientError, KvClient};
use crate::kv::cmd;
use serde::{Deserialize, Serialize};

/// A new user's credit: 1,000.00.
pub const DEFAULT_CREDIT_CENTS: i64 = 100_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    pub user: u64,
    pub amount_cents: i64,
    pub charged: bool,
}

fn acct_key(user: u64) -> String {
    format!("acct/{user}")
}

fn charge_key(order: &str) -> String {
    format!("charge/{order}")
}

fn bad(what: &str, e: impl std::fmt::Display) -> PadError {
    PadError::Store(ClientError::Failed(format!(
        "stored {what} is not valid: {e}"
    )))
}

pub async fn balance(kv: &mut KvClient, user: u64) -> Result<i64, PadError> {
    match kv.get(&acct_key(user)).await? {
        None => Ok(DEFAULT_CREDIT_CENTS),
        Some(v) => v.parse().map_err(|e| bad("balance", e)),
    }
}

/// Charges `user` `amount_cents` for `order`, once: the decision (charged,
/// or refused for want of credit), the same however often it is asked.
pub async fn charge(
    kv: &mut KvClient,
    order: &str,
    user: u64,
    amount_cents: i64,
) -> Result<Charge, PadError> {
    let ck = charge_key(order);
    let ak = acct_key(user);
    for _ in 0..100 {
        let r = kv.read(&[&ck, &ak]).await?;
        if let Some(c) = &r[0] {
            return serde_json::from_str(c).map_err(|e| bad("charge", e));
        }
        let balance: i64 = match &r[1] {
            None => DEFAULT_CREDIT_CENTS,
            Some(v) => v.parse().map_err(|e| bad("balance", e))?,
        };
        let charged = balance >= amount_cents;
        let decision = Charge {
            user,
            amount_cents,
            charged,
        };
        let mut ops = vec![cmd::op_put(
            &ck,
            &serde_json::to_string(&decision).expect("serialises"),
        )];
        if charged {
            ops.push(cmd::op_put(&ak, &(balance - amount_cents).to_string()));
        }
        let done = kv
            .txn(
                vec![cmd::compare(&ck, None), cmd::compare(&ak, r[1].as_deref())],
                ops,
                vec![],
            )
            .await?;
        if done.succeeded {
            return Ok(decision);
        }
    }
    Err(ClientError::Failed("the charge kept racing others; try again".into()).into())
}
