//! Replica convergence with its evidence in the history: the check is
//! [`compare_replicas`] (its messages are the failures), and when it
//! finds replicas that differ, every replica's side is recorded as a
//! `divergence` event (process `checker`) for the report to set side by
//! side (`explain::divergence_section`). Runs that converge record
//! nothing more and send no more requests, so their histories are the same
//! as without it.

use bookstore::client::KvClient;
use bookstore::pb::KvSnapshot;
use harness::recorder::Recorder;
use prost::Message;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// At most this many differing keys and sessions per event.
const MAX_ROWS: usize = 40;

/// A replica's client sessions: client id -> (last sequence number, its
/// encoded result).
type Sessions = BTreeMap<u64, (u64, Vec<u8>)>;

/// [`compare_replicas`], then, if it found a divergence, one
/// `divergence` event per applied index at which replicas differ.
pub async fn compare_and_record(
    group: &str,
    client: &mut KvClient,
    n: u64,
    bound: Duration,
    rec: &Recorder,
) -> Vec<String> {
    let diverged = compare_replicas(group, client, n, bound).await;
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
    let sessions: Vec<Option<Sessions>> = replicas
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

/// Replica convergence: asks every replica of a group (group-local ids
/// `1..=n`) for its whole applied state; replicas at the same applied index
/// must hold the same data and client sessions. Returns what differs,
/// naming the first key (or client session) per pair, or why it could not
/// tell. Replicas that cannot be reached are left out.
pub async fn divergence(client: &mut bookstore::client::KvClient, n: u64) -> Vec<String> {
    use bookstore::pb::KvSnapshot;
    use prost::Message;
    let mut by_index: BTreeMap<u64, Vec<(u64, u64, Vec<u8>)>> = BTreeMap::new();
    for id in 1..=n {
        if let Ok(s) = client.status_of(id, true).await {
            by_index
                .entry(s.applied)
                .or_default()
                .push((id, s.state_digest, s.state));
        }
    }
    let mut out = Vec::new();
    for (index, replicas) in &by_index {
        let (first, digest0, state0) = &replicas[0];
        for (id, digest, state) in &replicas[1..] {
            if digest == digest0 {
                continue;
            }
            let (a, b) = match (
                KvSnapshot::decode(&state0[..]),
                KvSnapshot::decode(&state[..]),
            ) {
                (Ok(a), Ok(b)) => (a, b),
                _ => {
                    out.push(format!("replicas {first} and {id} at applied index {index}: states differ and do not decode"));
                    continue;
                }
            };
            out.push(format!(
                "replicas {first} and {id} differ at applied index {index}: {}",
                first_difference(&a, &b, *first, *id)
            ));
        }
    }
    out
}

/// The first key, then the first client session, whose value differs.
fn first_difference(
    a: &bookstore::pb::KvSnapshot,
    b: &bookstore::pb::KvSnapshot,
    na: u64,
    nb: u64,
) -> String {
    let data = |s: &bookstore::pb::KvSnapshot| -> BTreeMap<String, String> {
        s.data
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect()
    };
    let show = |v: Option<&String>| v.map_or("absent".to_string(), |v| format!("{v:?}"));
    let (da, db) = (data(a), data(b));
    let keys: std::collections::BTreeSet<&String> = da.keys().chain(db.keys()).collect();
    if let Some(k) = keys.into_iter().find(|k| da.get(*k) != db.get(*k)) {
        return format!(
            "key {k:?} is {} on replica {na} and {} on replica {nb}",
            show(da.get(k)),
            show(db.get(k))
        );
    }
    let sessions = |s: &bookstore::pb::KvSnapshot| -> BTreeMap<u64, (u64, Vec<u8>)> {
        use prost::Message;
        s.sessions
            .iter()
            .map(|x| {
                (
                    x.client_id,
                    (
                        x.seq,
                        x.result
                            .as_ref()
                            .map(|r| r.encode_to_vec())
                            .unwrap_or_default(),
                    ),
                )
            })
            .collect()
    };
    let (sa, sb) = (sessions(a), sessions(b));
    let clients: std::collections::BTreeSet<u64> = sa.keys().chain(sb.keys()).copied().collect();
    let seq =
        |v: Option<&(u64, Vec<u8>)>| v.map_or("none".to_string(), |s| format!("last seq {}", s.0));
    let differs = clients.into_iter().find(|c| sa.get(c) != sb.get(c));
    match differs {
        Some(c) if sa.get(&c).map(|s| s.0) == sb.get(&c).map(|s| s.0) => format!(
            "client {c}'s session has {} on replicas {na} and {nb}, with different results",
            seq(sa.get(&c))
        ),
        Some(c) => format!(
            "client {c}'s session: {} on replica {na}, {} on replica {nb}",
            seq(sa.get(&c)),
            seq(sb.get(&c))
        ),
        None => "the states differ in their encoding only".to_string(),
    }
}

/// [`compare_replicas`] for each named group (its replicas' addresses), each
/// through its own client (id `1 << 43`), within 5 s per group.
pub async fn compare_groups(
    groups: &[(&str, &BTreeMap<bookstore::NodeId, String>)],
    options: bookstore::client::ClientOptions,
) -> Vec<String> {
    let mut diverged = Vec::new();
    for (name, peers) in groups {
        let mut c = KvClient::new((*peers).clone(), 1 << 43, options.clone());
        diverged.extend(
            compare_replicas(name, &mut c, peers.len() as u64, Duration::from_secs(5)).await,
        );
    }
    diverged
}

/// [`divergence`] once every replica of the group has applied the same
/// index (or `bound` has passed: then only replicas at a common index are
/// compared). Prefixed with the group's name.
pub async fn compare_replicas(
    group: &str,
    client: &mut bookstore::client::KvClient,
    n: u64,
    bound: Duration,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let mut applied = std::collections::BTreeSet::new();
        for id in 1..=n {
            if let Ok(s) = client.status(id).await {
                applied.insert(s.applied);
            }
        }
        if applied.len() <= 1 || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    divergence(client, n)
        .await
        .into_iter()
        .map(|d| format!("{group}: {d}"))
        .collect()
}
