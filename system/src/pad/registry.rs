//! The service registry's data in its own Raft KV group, with the rules of
//! [`pad_core::registry`]: `instance/<service>/<id>` holds an
//! [`Instance`] as JSON. A heartbeat is taken by a registry replica, which
//! sets the lease's end by its own clock (`now_ms`); callers list the
//! instances and route by their own clock.

use super::PadError;
use crate::client::{ClientError, KvClient};
use pad_core::registry::{self, Instance};

fn parse(k: &str, v: &str) -> Result<Instance, PadError> {
    serde_json::from_str(v)
        .map_err(|e| PadError::Store(ClientError::Failed(format!("stored {k} is not valid: {e}"))))
}

/// Registers or renews an instance; what the registry now holds.
pub async fn heartbeat(
    kv: &mut KvClient,
    service: &str,
    id: &str,
    addr: &str,
    healthy: bool,
    now_ms: u64,
    lease_ms: u64,
) -> Result<Instance, PadError> {
    let k = registry::key(service, id);
    let prev = match kv.get(&k).await? {
        None => None,
        Some(v) => Some(parse(&k, &v)?),
    };
    let next = registry::heartbeat(prev.as_ref(), service, id, addr, healthy, now_ms, lease_ms);
    kv.put(&k, &serde_json::to_string(&next).expect("serialises"))
        .await?;
    Ok(next)
}

/// Every registered instance (linearizable).
pub async fn instances(kv: &mut KvClient) -> Result<Vec<Instance>, PadError> {
    kv.scan("instance/")
        .await?
        .iter()
        .map(|(k, v)| parse(k, v))
        .collect()
}

/// Drops the instances whose lease lapsed at `now_ms` (each only if no
/// heartbeat renewed it meanwhile); how many.
pub async fn prune(kv: &mut KvClient, now_ms: u64) -> Result<usize, PadError> {
    let mut dropped = 0;
    for (k, v) in kv.scan("instance/").await? {
        if !parse(&k, &v)?.live(now_ms) && kv.cas(&k, Some(&v), None).await?.succeeded {
            dropped += 1;
        }
    }
    Ok(dropped)
}
