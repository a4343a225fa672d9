//! Carts in the cart service's Raft KV group: `cart/<user>` holds the
//! user's [`Cart`] as JSON. Every change reads the cart and writes it back
//! with a compare-and-set, so each user's cart is linearizable (the
//! harness checks it as a register per user).

use super::PadError;
use crate::client::{ClientError, KvClient};
use pad_core::cart::Cart;
use pad_core::Refusal;

fn key(user: u64) -> String {
    format!("cart/{user}")
}

/// The user's cart (empty when none was written).
pub async fn get(kv: &mut KvClient, user: u64) -> Result<Cart, PadError> {
    Ok(read(kv, user).await?.0)
}

async fn read(kv: &mut KvClient, user: u64) -> Result<(Cart, Option<String>), PadError> {
    let raw = kv.get(&key(user)).await?;
    let cart = match &raw {
        None => Cart::default(),
        Some(v) => serde_json::from_str(v).map_err(|e| {
            PadError::Store(ClientError::Failed(format!(
                "stored cart is not valid: {e}"
            )))
        })?,
    };
    Ok((cart, raw))
}

/// Applies `change` to the user's cart atomically; the cart after it, or
/// the change's refusal (nothing written).
pub async fn update(
    kv: &mut KvClient,
    user: u64,
    change: impl Fn(&mut Cart) -> Result<(), Refusal>,
) -> Result<Cart, PadError> {
    for _ in 0..100 {
        let (mut cart, raw) = read(kv, user).await?;
        change(&mut cart)?;
        let new = serde_json::to_string(&cart).expect("serialises");
        if raw.as_deref() == Some(new.as_str()) {
            return Ok(cart);
        }
        if kv
            .cas(&key(user), raw.as_deref(), Some(&new))
            .await?
            .succeeded
        {
            return Ok(cart);
        }
    }
    Err(ClientError::Failed("the cart kept changing; try again".into()).into())
}
