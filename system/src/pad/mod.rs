//! The third course's e-commerce platform (issue #17), being built: so
//! far the access-management service's data ([`accounts`]) on a Raft KV
//! group, with the pure rules of the `pad-core` crate.

pub mod accounts;
