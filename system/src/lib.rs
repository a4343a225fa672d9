//! The bookstore's services: the Raft-replicated key-value store that every
//! other service keeps its data in, and the shop (stock, payment, orders,
//! checkout over SAGA or 2PC).
//!
//! - [`raft`] (its own crate): the consensus core, a pure state machine.
//! - [`storage`] (its own crate): crash-consistent files, real and simulated.
//! - [`store`]: Raft's durable state on a storage directory.
//! - [`kv`]: the replicated state machine (get, put, delete, cas, txn, sessions).
//! - [`node`]: one replica: the async shell, gRPC server and Raft transport.
//! - [`client`]: finds the leader, retries, reports unknown outcomes.
//! - [`clock`]: every node's time, with offset and drift for the simulator.
//! - [`shop`]: stock, payment and order services and the checkout coordinators.
//! - [`tartu`]: the Tartu course's bookstore: REST checkout, three checks
//!   ordered by vector clocks, the order queue, the web page.
//! - [`pad`]: the third course's e-commerce platform (in progress: the
//!   accounts' data so far; its pure rules in the `pad-core` crate).
//! - [`bugs`]: planted bugs, off by default.
//! - `gateway` (real mode only): the HTTP API of the shop, over gRPC.
//!
//! The crate compiles for real (tokio, tonic) and, with `--cfg madsim`,
//! against the deterministic simulator; nothing here reads the OS clock or
//! randomness directly.

pub mod bugs;
pub mod client;
pub mod clock;
pub mod convert;
#[cfg(not(madsim))]
pub mod gateway;
pub mod kv;
pub mod node;
pub mod pad;
pub mod shop;
pub mod store;
pub mod tartu;

pub mod pb {
    #![allow(clippy::all)]
    tonic::include_proto!("bookstore");
}

/// The shop's services (`proto/shop.proto`).
pub mod shop_pb {
    #![allow(clippy::all)]
    tonic::include_proto!("shop");
}

pub use raft::NodeId;

/// The part of etcd's v3 API the benchmark's etcd client uses
/// (`proto/etcd.proto`).
pub mod etcd_pb {
    #![allow(clippy::all)]
    tonic::include_proto!("etcdserverpb");
}

/// The Tartu bookstore's services (`proto/tartu.proto`).
pub mod tartu_pb {
    #![allow(clippy::all)]
    tonic::include_proto!("tartu");
}
