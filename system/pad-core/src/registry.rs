//! Service discovery: each service instance registers its address with a
//! lease and renews it by heartbeat, reporting its health; an instance
//! whose lease lapsed is dropped. The registry's replica that takes a
//! heartbeat sets the lease's end by its own clock; a caller that routes
//! judges "lapsed" by its own, so the two may disagree by their skew: a
//! caller never routes to an instance whose lease lapsed more than
//! `lease_ms` plus that skew ago (the bound the harness checks).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A lease lasts 3 s; instances renew it every second.
pub const LEASE_MS: u64 = 3_000;
pub const HEARTBEAT_MS: u64 = 1_000;

/// One instance, as the registry stores it under `instance/<service>/<id>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub service: String,
    pub id: String,
    pub addr: String,
    pub healthy: bool,
    /// When it first registered and when its lease ends (ms, the clock of
    /// the registry replica that took the heartbeat).
    pub since_ms: u64,
    pub lease_until_ms: u64,
}

impl Instance {
    pub fn key(&self) -> String {
        key(&self.service, &self.id)
    }

    /// Whether the lease still runs at `now_ms`.
    pub fn live(&self, now_ms: u64) -> bool {
        now_ms < self.lease_until_ms
    }
}

pub fn key(service: &str, id: &str) -> String {
    format!("instance/{service}/{id}")
}

/// A heartbeat (or first registration): the instance with its lease
/// renewed from `now_ms`. An instance that comes back at another address
/// keeps its `since_ms` only if the address is the same.
pub fn heartbeat(
    prev: Option<&Instance>,
    service: &str,
    id: &str,
    addr: &str,
    healthy: bool,
    now_ms: u64,
    lease_ms: u64,
) -> Instance {
    let since_ms = match prev {
        Some(p) if p.addr == addr && p.live(now_ms) => p.since_ms,
        _ => now_ms,
    };
    Instance {
        service: service.to_string(),
        id: id.to_string(),
        addr: addr.to_string(),
        healthy,
        since_ms,
        lease_until_ms: now_ms.saturating_add(lease_ms),
    }
}

/// The instances a caller may route to: of `service`, healthy, lease
/// running at the caller's `now_ms`, in id order.
pub fn routable<'a>(all: &'a [Instance], service: &str, now_ms: u64) -> Vec<&'a Instance> {
    let mut v: Vec<&Instance> = all
        .iter()
        .filter(|i| i.service == service && i.healthy && i.live(now_ms))
        .collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

/// The keys of instances whose lease lapsed at `now_ms` (to drop).
pub fn lapsed(all: &[Instance], now_ms: u64) -> Vec<String> {
    all.iter()
        .filter(|i| !i.live(now_ms))
        .map(Instance::key)
        .collect()
}

/// The registry's view for a status page: per service, its instances with
/// their state at `now_ms` (`up`, `unhealthy`, `lapsed`) and the ms left on
/// their lease.
pub fn view(all: &[Instance], now_ms: u64) -> BTreeMap<String, Vec<serde_json::Value>> {
    let mut out: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for i in all {
        let state = if !i.live(now_ms) {
            "lapsed"
        } else if !i.healthy {
            "unhealthy"
        } else {
            "up"
        };
        out.entry(i.service.clone())
            .or_default()
            .push(serde_json::json!({
                "id": i.id,
                "addr": i.addr,
                "state": state,
                "lease_left_ms": i.lease_until_ms.saturating_sub(now_ms),
                "up_for_ms": now_ms.saturating_sub(i.since_ms),
            }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_routable_while_its_lease_runs_and_healthy() {
        let a = heartbeat(None, "cart", "1", "10.0.0.1:1", true, 1_000, LEASE_MS);
        let b = heartbeat(None, "cart", "2", "10.0.0.2:1", false, 1_000, LEASE_MS);
        let c = heartbeat(None, "orders", "1", "10.0.0.3:1", true, 1_000, LEASE_MS);
        let all = vec![b.clone(), a.clone(), c];
        let ids = |v: Vec<&Instance>| v.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(routable(&all, "cart", 1_000)), ["1"]);
        assert_eq!(ids(routable(&all, "cart", 3_999)), ["1"]);
        assert!(routable(&all, "cart", 4_000).is_empty());
        assert_eq!(lapsed(&all, 4_000).len(), 3);
        let v = view(&all, 2_000);
        assert_eq!(v["cart"].len(), 2);
        assert_eq!(v["cart"][0]["state"], "unhealthy");
    }

    #[test]
    fn a_heartbeat_renews_the_lease_and_keeps_the_start_unless_the_address_changed() {
        let a = heartbeat(None, "cart", "1", "x:1", true, 1_000, LEASE_MS);
        let b = heartbeat(Some(&a), "cart", "1", "x:1", true, 2_000, LEASE_MS);
        assert_eq!((b.since_ms, b.lease_until_ms), (1_000, 5_000));
        let moved = heartbeat(Some(&b), "cart", "1", "y:1", true, 2_500, LEASE_MS);
        assert_eq!(moved.since_ms, 2_500);
        let late = heartbeat(Some(&a), "cart", "1", "x:1", true, 9_000, LEASE_MS);
        assert_eq!(late.since_ms, 9_000, "a lapsed lease starts again");
    }
}
