//! Replica convergence with its evidence in the history: the check is
//! [`raft::compare_replicas`] (its messages are the failures), and when it
//! finds replicas that differ, every replica's side is recorded as a
//! `divergence` event (process `checker`) for the report to set side by
//! side (`explain::divergence_section`). Runs that converge record
//! nothing more and send no more requests, so their histories are the same
//! as without it.

use crate::raft;
use bookstore::client::KvClient;
use bookstore::pb::KvSnapshot;
use harness::recorder::Recorder;
use prost::Message;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// At most this many differing keys and sessions per event.
const MAX_ROWS: usize = 40;

/// [`raft::compare_replicas`], then, if it found a divergence, one
/// `divergence` event per applied index at which replicas differ.
pub async fn compare_and_record(
    group: &str,
    client: &mut KvClient,
    n: u64,
    bound: Duration,
    rec: &Recorder,
) -> Vec<String> {
    let diverged = raft::compare_replicas(group, client, n, bound).await;
    if diverged.is_empty() {
        return diverged;
    }
    let mut by_index: BTreeMap<u64, Vec<(u64, u64, Option<KvSnapshot>)>> = BTreeMap::new();
    for id in 1..=n {
        if let Ok(s) = client.status_of(id, true).await {
            by_index.entry(s.applied).or_default().push((
                id,
                s.state_digest,
                KvSnapshot::decode(&s.state[..]).ok(),
            ));
        }
    }
    for (index, replicas) in &by_index {
        let digests: BTreeSet<u64> = replicas.iter().map(|r| r.1).collect();
        if digests.len() > 1 {
            rec.event("checker", "divergence", detail(group, *index, replicas));
        }
    }
    diverged
}

/// The replicas at one applied index side by side: every key and client
/// session on which they do not all agree, with each replica's value.
fn detail(group: &str, index: u64, replicas: &[(u64, u64, Option<KvSnapshot>)]) -> Value {
    let data: Vec<Option<BTreeMap<String, String>>> = replicas
        .iter()
        .map(|(_, _, s)| {
            s.as_ref().map(|s| {
                s.data
                    .iter()
                    .map(|kv| (kv.key.clone(), format!("{:?}", kv.value)))
                    .collect()
            })
        })
        .collect();
    let sessions: Vec<Option<BTreeMap<u64, (u64, Vec<u8>)>>> = replicas
        .iter()
        .map(|(_, _, s)| {
            s.as_ref().map(|s| {
                s.sessions
                    .iter()
                    .map(|x| {
                        let result = x.result.as_ref().map(|r| r.encode_to_vec());
                        (x.client_id, (x.seq, result.unwrap_or_default()))
                    })
                    .collect()
            })
        })
        .collect();
    let mut rows = Vec::new();
    let keys: BTreeSet<&String> = data.iter().flatten().flat_map(|d| d.keys()).collect();
    for k in keys {
        let values: Vec<Option<&String>> = data
            .iter()
            .map(|d| d.as_ref().and_then(|d| d.get(k)))
            .collect();
        if values.iter().collect::<BTreeSet<_>>().len() > 1 {
            let shown: Vec<String> = values
                .iter()
                .map(|v| v.cloned().unwrap_or_else(|| "absent".into()))
                .collect();
            rows.push(json!({"name": format!("key {k:?}"), "values": shown}));
        }
    }
    let clients: BTreeSet<u64> = sessions
        .iter()
        .flatten()
        .flat_map(|s| s.keys().copied())
        .collect();
    for c in clients {
        let values: Vec<Option<&(u64, Vec<u8>)>> = sessions
            .iter()
            .map(|s| s.as_ref().and_then(|s| s.get(&c)))
            .collect();
        if values.iter().collect::<BTreeSet<_>>().len() > 1 {
            let seqs: BTreeSet<Option<u64>> = values.iter().map(|v| v.map(|s| s.0)).collect();
            let shown: Vec<String> = values
                .iter()
                .map(|v| match v {
                    None => "no session".to_string(),
                    // Same sequence numbers: the results differ.
                    Some((seq, result)) if seqs.len() == 1 => format!(
                        "last seq {seq}, result {:08x}",
                        bookstore::node::digest(result) as u32
                    ),
                    Some((seq, _)) => format!("last seq {seq}"),
                })
                .collect();
            rows.push(json!({"name": format!("session of client {c}"), "values": shown}));
        }
    }
    let cut = rows.len().saturating_sub(MAX_ROWS);
    rows.truncate(MAX_ROWS);
    let mut v = json!({
        "group": group,
        "index": index,
        "replicas": replicas
            .iter()
            .map(|(id, digest, _)| json!({"id": id, "digest": format!("{digest:016x}")}))
            .collect::<Vec<_>>(),
        "rows": rows,
    });
    let undecoded: Vec<u64> = replicas
        .iter()
        .filter(|r| r.2.is_none())
        .map(|r| r.0)
        .collect();
    let mut notes = Vec::new();
    if cut > 0 {
        notes.push(format!("{cut} more differing rows not recorded"));
    }
    if !undecoded.is_empty() {
        notes.push(format!(
            "the state of replicas {undecoded:?} does not decode"
        ));
    }
    if !notes.is_empty() {
        v["note"] = json!(notes.join("; "));
    }
    v
}
