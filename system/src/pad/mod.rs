//! The third course's e-commerce platform (issue #17), being built: so
//! far each service's data on its own Raft KV group, with the pure rules
//! of the `pad-core` crate: accounts and tokens ([`accounts`]), the
//! catalogue and the units orders hold ([`catalog`]), carts ([`cart`]) and
//! the service registry ([`registry`]), payments ([`payment`]) and orders
//! with the saga `initOrder` starts ([`orders`]).

pub mod accounts;
pub mod cart;
pub mod catalog;
#[cfg(not(madsim))]
pub mod gateway;
pub mod graphql;
pub mod orders;
pub mod payment;
pub mod registry;
pub mod rpc;
pub mod services;

/// The services' protocol (`proto/pad.proto`).
pub mod pb {
    #![allow(clippy::all)]
    tonic::include_proto!("pad");
}

use crate::client::ClientError;
use crate::NodeId;
use pad_core::Refusal;
use std::collections::BTreeMap;

/// The services behind the gateway, each over its own KV group of the
/// same name (the registry too).
pub const SERVICES: [&str; 5] = ["auth", "catalog", "cart", "payment", "orders"];
/// The KV groups: one per service and the registry's.
pub const GROUPS: [&str; 6] = ["auth", "catalog", "cart", "payment", "orders", "registry"];

/// Where every process of the platform listens (as JSON, what `bookstore
/// pad-proc --topology FILE` reads). Services and gateways find each other
/// through the registry; only the registry's own replicas are known to all.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Topology {
    /// Group name -> its store replicas.
    pub kv: BTreeMap<String, BTreeMap<NodeId, String>>,
    /// The registry service's replicas.
    pub registry: Vec<String>,
    /// Service name -> its replicas' addresses (where each listens; others
    /// learn them from the registry).
    pub services: BTreeMap<String, Vec<String>>,
    /// The GraphQL gateways (HTTP).
    pub gateways: Vec<String>,
}

impl Topology {
    /// Everything on 127.0.0.1: group g's node i on base + 10 g + i, service
    /// s's replica r on base + 100 + 10 s + r (the registry's after the
    /// services'), gateway r on `gateway_port + r - 1`.
    pub fn loopback(
        base: u16,
        nodes: u64,
        replicas: usize,
        gateway_port: u16,
        gateways: usize,
    ) -> Topology {
        let a = |p: u64| format!("127.0.0.1:{}", base as u64 + p);
        let kv = GROUPS
            .iter()
            .enumerate()
            .map(|(g, name)| {
                (
                    name.to_string(),
                    (1..=nodes).map(|i| (i, a(10 * g as u64 + i))).collect(),
                )
            })
            .collect();
        let reps = |s: u64| (1..=replicas as u64).map(|r| a(100 + 10 * s + r)).collect();
        Topology {
            kv,
            registry: reps(SERVICES.len() as u64),
            services: SERVICES
                .iter()
                .enumerate()
                .map(|(s, name)| (name.to_string(), reps(s as u64)))
                .collect(),
            gateways: (0..gateways)
                .map(|r| format!("127.0.0.1:{}", gateway_port as usize + r))
                .collect(),
        }
    }
}

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
