//! The node's clock: [`hostio::Clock`], the host's time with the offset,
//! drift and jumps the simulator gives each host. Every timeout and
//! timestamp in a node and in the shop's services goes through it.

pub use hostio::clock::Clock;
