//! The third course's e-commerce platform (issue #17), being built: so
//! far each service's data on its own Raft KV group, with the pure rules
//! of the `pad-core` crate: accounts and tokens ([`accounts`]), the
//! catalogue and the units orders hold ([`catalog`]), carts ([`cart`]) and
//! the service registry ([`registry`]), payments ([`payment`]) and orders
//! with the saga `initOrder` starts ([`orders`]).

pub mod accounts;
pub mod cart;
pub mod catalog;
pub mod orders;
pub mod payment;
pub mod registry;

use crate::client::ClientError;
use pad_core::Refusal;

/// Why a call failed: refused by a rule (the client's to fix), or the
/// store did not answer (`ClientError::Unknown`: a write may have
/// happened).
#[derive(Debug, thiserror::Error)]
pub enum PadError {
    #[error("{0}")]
    Refused(Refusal),
    #[error("{0}")]
    Store(#[from] ClientError),
}

impl From<Refusal> for PadError {
    fn from(r: Refusal) -> Self {
        PadError::Refused(r)
    }
}
