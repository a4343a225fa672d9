//! One replica of the key-value store: the async shell around the pure Raft
//! core. A single task owns the core, the durable store and the state
//! machine, and processes one input at a time (a tick, peer messages, a
//! client request); after each it runs the Ready cycle: persist, send, apply,
//! answer, advance. gRPC handlers and per-peer sender tasks talk to it
//! through channels. The same code runs under tokio and under madsim.

use crate::bugs::Bugs;
use crate::clock::Clock;
use crate::convert::{message_from_pb, message_to_pb};
use crate::kv::{Applied, KvState};
use crate::pb::{
    self, kv_server::KvServer, raft_transport_client::RaftTransportClient,
    raft_transport_server::RaftTransportServer,
};
use crate::store::{RaftStore, StoreOpts};
use raft::{Config, HardState, Message, NodeId, Raft, Role};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: NodeId,
    /// Every replica's gRPC address ("ip:port"), this one included.
    pub peers: BTreeMap<NodeId, String>,
    /// Length of one Raft tick in local (clock) time.
    pub tick: Duration,
    pub election_tick: u32,
    pub heartbeat_tick: u32,
    /// Take a snapshot and compact the log after this many applied entries.
    pub snapshot_every: u64,
    /// Deadline of one Raft transport call.
    pub rpc_timeout: Duration,
    /// Most entries in one Append message (Raft `Config::max_batch`).
    pub max_batch: usize,
    pub seed: u64,
    pub bugs: Bugs,
    /// Duplication and reordering of outgoing Raft messages: never for
    /// real; the simulator's fault `reorder` turns it on.
    pub net: hostio::Net,
    /// Several nodes share this process's tokio runtime (`bookstore
    /// cluster`, `bookstore bench`): each fsync then runs in
    /// `block_in_place`, so the other nodes' tasks move to another worker
    /// meanwhile. Off for a node alone in its process, where the hand-over
    /// costs more than it gains (the shop's 2PC checkouts under kills were
    /// answered in 128.5 s with it, past the gateway's 120-s deadline, and
    /// in 80-82 s without).
    pub shared_runtime: bool,
}

impl NodeConfig {
    pub fn new(id: NodeId, peers: BTreeMap<NodeId, String>, seed: u64) -> NodeConfig {
        NodeConfig {
            id,
            peers,
            tick: Duration::from_millis(50),
            election_tick: 10,
            heartbeat_tick: 2,
            snapshot_every: 1000,
            rpc_timeout: Duration::from_millis(500),
            max_batch: 64,
            seed,
            bugs: Bugs::default(),
            net: hostio::Net::real(),
            shared_runtime: false,
        }
    }

    pub fn addr(&self) -> &str {
        &self.peers[&self.id]
    }
}

/// What a node reports to an observer (the simulation's history recorder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeEvent {
    /// Started from disk: what it recovered.
    Recovered {
        term: u64,
        vote: Option<NodeId>,
        last_index: u64,
        snapshot_index: u64,
        cut_bytes: u64,
        /// Synced WAL records were damaged (rot, lost or misdirected write).
        damaged: bool,
        /// The (term, index) the node votes as if its log ended at, after
        /// damage lost entries (see `store.rs`).
        floor: Option<(u64, u64)>,
    },
    Role {
        term: u64,
        role: Role,
        leader: Option<NodeId>,
    },
    /// Messages are leaving that depend on this term and vote (emitted when
    /// either changed since the last messages sent): the node has promised
    /// never to go back to a lower term nor to vote for another node in
    /// this one, so both must be durable by now and survive a crash.
    Promised { term: u64, vote: Option<NodeId> },
    /// The commit index advanced to `index`, seen by a node in `term`: so
    /// every entry up to `index` was committed in `term` or earlier.
    Commit { index: u64, term: u64 },
    /// The node has just become leader of `term`; its log, as the first
    /// index of each run of entries of one term after its snapshot (so that
    /// an observer can check it holds every entry committed before).
    Elected {
        term: u64,
        snapshot_index: u64,
        last_index: u64,
        runs: Vec<(u64, u64)>,
    },
    /// An entry applied to the state machine; `digest` identifies its data.
    Applied { index: u64, term: u64, digest: u64 },
    /// A linearizable read (number `id` on this node) reached the node as
    /// leader; it must reflect every entry committed before this moment.
    ReadArrived { id: u64 },
    /// Read `id` was answered from the state machine at `applied`.
    ReadServed { id: u64, applied: u64 },
    /// A snapshot installed from the leader.
    SnapshotInstalled { index: u64, term: u64 },
}

impl NodeEvent {
    /// The event as a history entry: its name and fields (the simulator's
    /// history and `bookstore node --events` write it so).
    pub fn to_json(&self) -> (&'static str, serde_json::Value) {
        use serde_json::json;
        match self {
            NodeEvent::Recovered {
                term,
                vote,
                last_index,
                snapshot_index,
                cut_bytes,
                damaged,
                floor,
            } => (
                "recovered",
                json!({"term": term, "vote": vote, "last_index": last_index, "snapshot_index": snapshot_index, "cut_bytes": cut_bytes, "damaged": damaged, "floor": floor}),
            ),
            NodeEvent::Role { term, role, leader } => (
                "role",
                json!({"term": term, "role": format!("{role:?}"), "leader": leader}),
            ),
            NodeEvent::Promised { term, vote } => ("promised", json!({"term": term, "vote": vote})),
            NodeEvent::Elected {
                term,
                snapshot_index,
                last_index,
                runs,
            } => (
                "elected",
                json!({"term": term, "snapshot_index": snapshot_index, "last_index": last_index, "runs": runs}),
            ),
            NodeEvent::Commit { index, term } => ("commit", json!({"index": index, "term": term})),
            NodeEvent::Applied {
                index,
                term,
                digest,
            } => (
                "applied",
                json!({"index": index, "term": term, "digest": format!("{digest:016x}")}),
            ),
            NodeEvent::ReadArrived { id } => ("read-arrived", json!({"id": id})),
            NodeEvent::ReadServed { id, applied } => {
                ("read-served", json!({"id": id, "applied": applied}))
            }
            NodeEvent::SnapshotInstalled { index, term } => {
                ("snapshot-installed", json!({"index": index, "term": term}))
            }
        }
    }

    /// The inverse of [`NodeEvent::to_json`]: `None` for an unknown name or
    /// a missing or mistyped field (an event log cut short by a kill).
    pub fn from_json(name: &str, v: &serde_json::Value) -> Option<NodeEvent> {
        let u = |k: &str| v.get(k)?.as_u64();
        let opt = |k: &str| -> Option<Option<u64>> {
            match v.get(k)? {
                serde_json::Value::Null => Some(None),
                x => Some(Some(x.as_u64()?)),
            }
        };
        let pairs = |k: &str| -> Option<Vec<(u64, u64)>> {
            v.get(k)?
                .as_array()?
                .iter()
                .map(|p| Some((p.get(0)?.as_u64()?, p.get(1)?.as_u64()?)))
                .collect()
        };
        Some(match name {
            "recovered" => NodeEvent::Recovered {
                term: u("term")?,
                vote: opt("vote")?,
                last_index: u("last_index")?,
                snapshot_index: u("snapshot_index")?,
                cut_bytes: u("cut_bytes")?,
                damaged: v.get("damaged")?.as_bool()?,
                floor: match v.get("floor")? {
                    serde_json::Value::Null => None,
                    f => Some((f.get(0)?.as_u64()?, f.get(1)?.as_u64()?)),
                },
            },
            "role" => NodeEvent::Role {
                term: u("term")?,
                role: match v.get("role")?.as_str()? {
                    "Follower" => Role::Follower,
                    "PreCandidate" => Role::PreCandidate,
                    "Candidate" => Role::Candidate,
                    "Leader" => Role::Leader,
                    _ => return None,
                },
                leader: opt("leader")?,
            },
            "promised" => NodeEvent::Promised {
                term: u("term")?,
                vote: opt("vote")?,
            },
            "elected" => NodeEvent::Elected {
                term: u("term")?,
                snapshot_index: u("snapshot_index")?,
                last_index: u("last_index")?,
                runs: pairs("runs")?,
            },
            "commit" => NodeEvent::Commit {
                index: u("index")?,
                term: u("term")?,
            },
            "applied" => NodeEvent::Applied {
                index: u("index")?,
                term: u("term")?,
                digest: u64::from_str_radix(v.get("digest")?.as_str()?, 16).ok()?,
            },
            "read-arrived" => NodeEvent::ReadArrived { id: u("id")? },
            "read-served" => NodeEvent::ReadServed {
                id: u("id")?,
                applied: u("applied")?,
            },
            "snapshot-installed" => NodeEvent::SnapshotInstalled {
                index: u("index")?,
                term: u("term")?,
            },
            _ => return None,
        })
    }
}

pub type EventSink = Arc<dyn Fn(NodeId, NodeEvent) + Send + Sync>;

/// FNV-1a: a stable digest of entry data (std's hasher is not stable across versions).
pub fn digest(data: &[u8]) -> u64 {
    digest_extend(0xcbf2_9ce4_8422_2325, data)
}

/// Continues a [`digest`] over more bytes: `digest_extend(digest(a), b)`
/// equals the digest of `a` followed by `b`.
pub fn digest_extend(h: u64, data: &[u8]) -> u64 {
    data.iter()
        .fold(h, |h, b| (h ^ *b as u64).wrapping_mul(0x100_0000_01b3))
}

enum Input {
    Tick,
    Raft(Vec<Message>),
    Write(
        pb::WriteRequest,
        oneshot::Sender<Result<pb::WriteResult, Status>>,
    ),
    Read(ReadKind, oneshot::Sender<Result<ReadAnswer, Status>>),
    LocalRead(ReadKind, oneshot::Sender<Result<ReadAnswer, Status>>),
    /// With the whole applied state, or only its digest.
    Status(bool, oneshot::Sender<pb::StatusResponse>),
}

enum ReadKind {
    Keys(Vec<String>),
    Prefix(String),
}

enum ReadAnswer {
    Values(Vec<pb::OpResult>, u64),
    Pairs(Vec<pb::KeyValue>, u64),
}

pub fn not_leader(leader: Option<NodeId>) -> Status {
    Status::failed_precondition(format!("not leader; leader={}", leader.unwrap_or(0)))
}

/// Runs a replica until `shutdown` completes: recovers from `dir`, serves
/// gRPC on its address, talks to its peers.
pub async fn serve(
    cfg: NodeConfig,
    dir: Arc<dyn storage::Dir>,
    clock: Clock,
    events: Option<EventSink>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (store, persisted, recovery) = RaftStore::open_with(
        dir,
        StoreOpts {
            no_checksum: cfg.bugs.wal_no_checksum,
            zero_frame_ends_log: cfg.bugs.zeros_end_log,
            no_order_check: cfg.bugs.wal_no_order_check,
        },
    )?;
    let mut kv = KvState::new(cfg.bugs.duplicate_apply)
        .without_sessions_in_snapshots(cfg.bugs.snapshot_without_sessions);
    if let Some(s) = &persisted.snapshot {
        kv.restore(&s.data)?;
    }
    let mut rcfg = Config::new(cfg.id, cfg.peers.keys().copied().collect(), cfg.seed);
    rcfg.election_tick = cfg.election_tick;
    rcfg.heartbeat_tick = cfg.heartbeat_tick;
    rcfg.max_batch = cfg.max_batch;
    rcfg.bugs = cfg.bugs.raft;
    let hs = persisted.hard_state.clone();
    let raft = Raft::new(rcfg, persisted);
    if let Some(ev) = &events {
        let log = raft.log();
        ev(
            cfg.id,
            NodeEvent::Recovered {
                term: hs.term,
                vote: hs.vote,
                last_index: log.last_index(),
                snapshot_index: log.snapshot_index(),
                cut_bytes: recovery.wal.truncated_bytes,
                damaged: recovery.damaged.is_some(),
                floor: raft.floor(),
            },
        );
    }

    let (tx, rx) = mpsc::channel::<Input>(4096);
    let mut peers = BTreeMap::new();
    for (&id, addr) in &cfg.peers {
        if id != cfg.id {
            let (ptx, prx) = mpsc::channel(1024);
            tokio::spawn(peer_sender(
                addr.clone(),
                prx,
                cfg.rpc_timeout,
                cfg.net.clone(),
            ));
            peers.insert(id, ptx);
        }
    }
    let ticker_tx = tx.clone();
    let (tick, ticker_clock) = (cfg.tick, clock.clone());
    tokio::spawn(async move {
        loop {
            ticker_clock.sleep(tick).await;
            if ticker_tx.send(Input::Tick).await.is_err() {
                return;
            }
        }
    });

    let addr = cfg.addr().parse()?;
    let server = tonic::transport::Server::builder()
        .add_service(KvServer::new(KvService {
            tx: tx.clone(),
            split_multi_read: cfg.bugs.split_multi_read,
        }))
        .add_service(RaftTransportServer::new(TransportService {
            tx: tx.clone(),
        }))
        // Not `shutdown`: a graceful drain waits for every connection to
        // close, and the peers keep their Raft streams open, so it never
        // ended while the node, still running, went on leading: a leader
        // told to stop held the others in its term with its heartbeats.
        .serve_with_shutdown(addr, std::future::pending::<()>());
    let mut node = Node::new(raft, store, kv, peers, hs);
    node.events = events;
    node.snapshot_every = cfg.snapshot_every;
    node.shared_runtime = cfg.shared_runtime;
    node.bugs = cfg.bugs;
    // On `shutdown` (SIGTERM, Ctrl-C) the node stops at once, as a crash
    // does, but cleanly: every acknowledged write is already synced, and
    // clients retry elsewhere with their sessions.
    tokio::select! {
        biased; // no random branch order: the same seed, the same run
        r = server => r?,
        r = node.run(rx) => r?,
        () = shutdown => {}
    }
    Ok(())
}

/// Where a read's answer goes.
type ReadReply = oneshot::Sender<Result<ReadAnswer, Status>>;

/// A proposal awaiting its entry's application (see `Node::waiters`).
struct Waiter {
    term: u64,
    reply: oneshot::Sender<Result<pb::WriteResult, Status>>,
    req: pb::WriteRequest,
    data: Vec<u8>,
}

struct Node {
    raft: Raft,
    store: RaftStore,
    kv: KvState,
    peers: BTreeMap<NodeId, mpsc::Sender<Message>>,
    events: Option<EventSink>,
    snapshot_every: u64,
    /// See [`NodeConfig::shared_runtime`].
    shared_runtime: bool,
    bugs: Bugs,
    /// Term and vote as last made durable.
    synced_hs: HardState,
    /// Term and vote as last handed out by the Raft core.
    current_hs: HardState,
    /// Term and vote of the last messages sent (see [`NodeEvent::Promised`]).
    promised: (u64, Option<NodeId>),
    /// Proposals awaiting their entry's application, by index: the term
    /// they were proposed in, where to answer, and the request with its
    /// encoding (the entry's data when the entry is this proposal).
    waiters: BTreeMap<u64, Waiter>,
    next_ctx: u64,
    pending_reads: BTreeMap<u64, (ReadKind, ReadReply)>,
    /// Confirmed reads waiting for the state machine to reach their index:
    /// (context, read index, kind, reply).
    ready_reads: Vec<(u64, u64, ReadKind, ReadReply)>,
    last_role: Option<(u64, Role, Option<NodeId>)>,
    last_commit: u64,
}

impl Node {
    async fn run(mut self, mut rx: mpsc::Receiver<Input>) -> anyhow::Result<()> {
        while let Some(input) = rx.recv().await {
            self.handle(input);
            // Batch whatever else is already queued into the same Ready.
            for _ in 0..256 {
                match rx.try_recv() {
                    Ok(input) => self.handle(input),
                    Err(_) => break,
                }
            }
            self.process_ready()?;
        }
        Ok(())
    }

    fn emit(&self, ev: NodeEvent) {
        if let Some(sink) = &self.events {
            sink(self.raft.id(), ev);
        }
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Tick => self.raft.tick(),
            Input::Raft(msgs) => {
                let stale = self.raft.stale_appends();
                for m in msgs {
                    self.raft.step(m);
                }
                if self.raft.stale_appends() > stale {
                    hostio::coverage::hit(
                        "raft: a stale Append (duplicated or overtaken) on a longer log",
                    );
                }
            }
            Input::Write(req, reply) => {
                use prost::Message as _;
                let data = req.encode_to_vec();
                match self.raft.propose(data.clone()) {
                    Ok((index, term)) => {
                        let waiter = Waiter {
                            term,
                            reply,
                            req,
                            data,
                        };
                        if let Some(Waiter { reply: old, .. }) = self.waiters.insert(index, waiter)
                        {
                            // The old proposal was cut from this node's log, but
                            // another node may still hold it and a later leader
                            // may commit it: its outcome is unknown, not "failed".
                            let _ = old.send(Err(Status::unavailable(
                                "proposal superseded on this node; outcome unknown",
                            )));
                        }
                    }
                    Err(raft::Error::NotLeader { leader }) => {
                        let _ = reply.send(Err(not_leader(leader)));
                    }
                }
            }
            Input::Read(kind, reply) => {
                let ctx = self.next_ctx;
                self.next_ctx += 1;
                match self.raft.read_index(ctx) {
                    Ok(()) => {
                        self.emit(NodeEvent::ReadArrived { id: ctx });
                        self.pending_reads.insert(ctx, (kind, reply));
                    }
                    Err(raft::Error::NotLeader { leader }) => {
                        let _ = reply.send(Err(not_leader(leader)));
                    }
                }
            }
            Input::LocalRead(kind, reply) => {
                let _ = reply.send(Ok(self.answer(&kind)));
            }
            Input::Status(with_state, reply) => {
                let s = self.raft.status();
                let state = self.kv.state();
                let _ = reply.send(pb::StatusResponse {
                    state_digest: digest(&state),
                    state: if with_state { state } else { Vec::new() },
                    id: s.id,
                    term: s.term,
                    role: format!("{:?}", s.role),
                    leader: s.leader.unwrap_or(0),
                    commit: s.commit,
                    applied: s.applied,
                    last_index: s.last_index,
                });
            }
        }
    }

    fn answer(&self, kind: &ReadKind) -> ReadAnswer {
        let applied = self.raft.status().applied;
        match kind {
            ReadKind::Keys(keys) => ReadAnswer::Values(
                keys.iter()
                    .map(|k| pb::OpResult {
                        value: self.kv.get(k).cloned(),
                    })
                    .collect(),
                applied,
            ),
            ReadKind::Prefix(p) => ReadAnswer::Pairs(
                self.kv
                    .scan(p)
                    .map(|(k, v)| pb::KeyValue {
                        key: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                applied,
            ),
        }
    }

    fn send(&self, messages: Vec<Message>) {
        for m in messages {
            if let Some(p) = self.peers.get(&m.to) {
                let _ = p.try_send(m); // a full queue drops, like a lossy network
            }
        }
    }

    fn process_ready(&mut self) -> anyhow::Result<()> {
        if !self.raft.has_ready() {
            return Ok(());
        }
        let mut rd = self.raft.ready();
        // 1. Persist. Term and vote must be durable before any message that
        //    depends on them leaves; entries before they are acknowledged.
        //    The one exception: a leader's Appends leave before its own
        //    fsync (Raft thesis 10.2.1), so that its disk write and the
        //    followers' overlap. That is safe because the leader counts
        //    itself in the commit quorum only up to its stable index (set
        //    by `advance`, after the fsync), and this loop handles no
        //    acknowledgement before the fsync below has returned.
        let mut sync = false;
        if let Some(snap) = &rd.snapshot {
            let hs = rd
                .hard_state
                .clone()
                .unwrap_or_else(|| self.synced_hs.clone());
            self.store.save_snapshot(snap, &hs, &[])?;
            self.kv.restore(&snap.data)?;
            self.emit(NodeEvent::SnapshotInstalled {
                index: snap.index,
                term: snap.term,
            });
            // This node's proposals at the indexes the snapshot covers (it
            // led, and a later leader's snapshot overtook them) are never
            // applied here one by one: whether the entry at such an index
            // is the proposal is unknown. Their callers learn that now
            // (and retry with their sessions, which the snapshot holds)
            // instead of at their timeouts, and the waiters do not stay
            // until a restart.
            let later = self.waiters.split_off(&(snap.index + 1));
            let covered = std::mem::replace(&mut self.waiters, later);
            hostio::coverage::sometimes(
                !covered.is_empty(),
                "raft: a proposal overtaken by an installed snapshot",
            );
            for w in covered.into_values() {
                let _ = w.reply.send(Err(Status::unavailable(
                    "outcome unknown: a snapshot from the leader covers the proposal's index",
                )));
            }
        }
        // Entries go before the hard state: a commit index on disk never
        // refers to entries that a torn or damaged write kept off it.
        if !rd.entries.is_empty() {
            self.store.append_entries(&rd.entries)?;
            sync |= !self.bugs.unsynced_log;
        }
        let mut vote_changed = false;
        if let Some(hs) = &rd.hard_state {
            self.store.append_hard_state(hs)?;
            vote_changed = (hs.term, hs.vote) != (self.synced_hs.term, self.synced_hs.vote);
            sync |= vote_changed && !self.bugs.unsynced_vote;
        }
        if sync && !vote_changed && rd.snapshot.is_none() && self.raft.status().role == Role::Leader
        {
            let (appends, rest): (Vec<Message>, Vec<Message>) = std::mem::take(&mut rd.messages)
                .into_iter()
                .partition(|m| matches!(m.kind, raft::MsgKind::Append { .. }));
            rd.messages = rest;
            self.send(appends);
        }
        if sync {
            let store = &mut self.store;
            let synced = if self.shared_runtime {
                blocking(|| store.sync())
            } else {
                store.sync()
            };
            match synced {
                // Planted bug: carry on as if the entries were durable.
                Err(_) if self.bugs.ignore_sync_error => {}
                r => r?,
            }
        }
        if let Some(hs) = &rd.hard_state {
            if sync || !self.bugs.unsynced_vote {
                self.synced_hs = hs.clone();
            }
        }
        // 2. Send.
        if let Some(hs) = &rd.hard_state {
            self.current_hs = hs.clone();
        }
        let hs = (self.current_hs.term, self.current_hs.vote);
        if !rd.messages.is_empty() && hs != self.promised {
            self.promised = hs;
            self.emit(NodeEvent::Promised {
                term: hs.0,
                vote: hs.1,
            });
        }
        self.send(rd.messages);
        // 3. Apply.
        let status = self.raft.status();
        if status.commit != self.last_commit {
            self.last_commit = status.commit;
            self.emit(NodeEvent::Commit {
                index: status.commit,
                term: status.term,
            });
        }
        for e in rd.committed {
            self.emit(NodeEvent::Applied {
                index: e.index,
                term: e.term,
                digest: digest(&e.data),
            });
            let Some(w) = self.waiters.remove(&e.index) else {
                self.kv.apply(&e.data);
                continue;
            };
            let (term, reply) = (w.term, w.reply);
            // The entry is this proposal when its data is the proposal's
            // encoding: then the decoded request is applied as it is (the
            // same as decoding the data again).
            let applied = if !e.data.is_empty() && w.data == e.data {
                self.kv.apply_request(w.req)
            } else {
                self.kv.apply(&e.data)
            };
            let answer = match applied {
                _ if term != e.term => Err(Status::aborted("proposal overwritten; not applied")),
                Applied::Write { result: Ok(r), .. } => Ok(r),
                Applied::Write {
                    result: Err(msg), ..
                } => Err(Status::invalid_argument(msg)),
                Applied::Nothing => Err(Status::internal("undecodable entry")),
            };
            let _ = reply.send(answer);
        }
        // 4. Reads.
        for rs in rd.read_states {
            if let Some((kind, reply)) = self.pending_reads.remove(&rs.ctx) {
                self.ready_reads.push((rs.ctx, rs.index, kind, reply));
            }
        }
        for ctx in rd.dropped_reads {
            if let Some((_, reply)) = self.pending_reads.remove(&ctx) {
                let _ = reply.send(Err(not_leader(self.raft.status().leader)));
            }
        }
        let applied = self.raft.status().applied;
        for (ctx, index, kind, reply) in std::mem::take(&mut self.ready_reads) {
            if index <= applied {
                self.emit(NodeEvent::ReadServed { id: ctx, applied });
                let _ = reply.send(Ok(self.answer(&kind)));
            } else {
                self.ready_reads.push((ctx, index, kind, reply));
            }
        }
        self.raft.advance();
        // 5. Compact.
        let snap_index = self.raft.log().snapshot_index();
        if applied >= snap_index + self.snapshot_every {
            hostio::coverage::hit("raft: a snapshot taken");
            self.raft.compact(applied, self.kv.snapshot());
            let log = self.raft.log();
            let rest = log.entries_between(applied + 1, log.last_index());
            let hs = HardState {
                term: status.term,
                vote: self.synced_hs.vote,
                commit: status.commit,
            };
            self.store.save_snapshot(log.snapshot(), &hs, &rest)?;
        }
        let s = self.raft.status();
        let role = (s.term, s.role, s.leader);
        if self.last_role != Some(role) {
            if s.role == Role::Leader && self.events.is_some() {
                self.emit(self.elected(s.term));
            }
            self.last_role = Some(role);
            self.emit(NodeEvent::Role {
                term: s.term,
                role: s.role,
                leader: s.leader,
            });
        }
        Ok(())
    }
}

impl Node {
    /// A node with its recovered Raft core, store and state machine, whose
    /// term and vote `hs` are on disk; no events, no planted bug, and a
    /// snapshot every million entries until its driver says otherwise.
    fn new(
        raft: Raft,
        store: RaftStore,
        kv: KvState,
        peers: BTreeMap<NodeId, mpsc::Sender<Message>>,
        hs: HardState,
    ) -> Node {
        Node {
            raft,
            store,
            kv,
            peers,
            events: None,
            snapshot_every: 1_000_000,
            shared_runtime: false,
            bugs: Bugs::default(),
            promised: (hs.term, hs.vote),
            current_hs: hs.clone(),
            synced_hs: hs,
            waiters: BTreeMap::new(),
            next_ctx: 1,
            pending_reads: BTreeMap::new(),
            ready_reads: Vec::new(),
            last_role: None,
            last_commit: 0,
        }
    }

    /// [`NodeEvent::Elected`] for this node's log now.
    fn elected(&self, term: u64) -> NodeEvent {
        let log = self.raft.log();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for i in log.snapshot_index() + 1..=log.last_index() {
            let t = log.term(i).unwrap_or(0);
            if runs.last().is_none_or(|&(_, rt)| rt != t) {
                runs.push((i, t));
            }
        }
        NodeEvent::Elected {
            term,
            snapshot_index: log.snapshot_index(),
            last_index: log.last_index(),
            runs,
        }
    }
}

/// Sends one peer's messages over a long-lived `Link` stream, a batch at a
/// time: everything queued is sent as one batch, then the sender waits for
/// its acknowledgement. A batch not acknowledged within `timeout` (peer down,
/// link cut, reply lost) drops the stream; the next batch opens a new one.
/// A dropped batch is lost like a lost packet: Raft retransmits. `net` may
/// hold a batch back (later ones overtake it) or send it twice; a late
/// batch goes over whatever stream is open when it is due, maybe one opened
/// after the stream it was meant for broke.
async fn peer_sender(
    addr: String,
    mut rx: mpsc::Receiver<Message>,
    timeout: Duration,
    net: hostio::Net,
) {
    let mut link: Option<Link> = None;
    let (late_tx, mut late_rx) = mpsc::unbounded_channel::<pb::RaftBatch>();
    let later = |batch: pb::RaftBatch, after: Duration| {
        let late_tx = late_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = late_tx.send(batch);
        });
    };
    loop {
        let batch = tokio::select! {
            biased; // no random branch order: the same seed, the same run
            Some(late) = late_rx.recv() => late,
            first = rx.recv() => {
                let Some(first) = first else { return };
                let mut messages = vec![message_to_pb(first)];
                while messages.len() < 256 {
                    match rx.try_recv() {
                        Ok(m) => messages.push(message_to_pb(m)),
                        Err(_) => break,
                    }
                }
                let batch = pb::RaftBatch { messages };
                let plan = net.plan();
                if let Some(after) = plan.copy {
                    later(batch.clone(), after);
                }
                if let Some(after) = plan.hold {
                    later(batch, after);
                    continue;
                }
                batch
            }
        };
        if link.is_none() {
            link = Link::open(&addr, timeout).await;
        }
        let Some(l) = link.as_mut() else { continue };
        let sent = tokio::time::timeout(timeout, l.send(batch)).await;
        if !matches!(sent, Ok(true)) {
            link = None;
        }
    }
}

/// The sending end of one `Link` stream.
struct Link {
    batches: mpsc::Sender<pb::RaftBatch>,
    acks: tonic::Streaming<pb::Empty>,
}

impl Link {
    async fn open(addr: &str, timeout: Duration) -> Option<Link> {
        let ep = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).ok()?;
        let mut client = RaftTransportClient::new(ep.connect_timeout(timeout).connect_lazy());
        let (batches, rx) = mpsc::channel(1);
        let outbound =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|b| (b, rx)) },
            );
        let call = client.link(Request::new(outbound));
        let acks = tokio::time::timeout(timeout, call)
            .await
            .ok()?
            .ok()?
            .into_inner();
        Some(Link { batches, acks })
    }

    /// Sends one batch and waits for its acknowledgement; false if the
    /// stream is broken.
    async fn send(&mut self, batch: pb::RaftBatch) -> bool {
        self.batches.send(batch).await.is_ok() && matches!(self.acks.message().await, Ok(Some(_)))
    }
}

struct TransportService {
    tx: mpsc::Sender<Input>,
}

type AckStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<pb::Empty, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl pb::raft_transport_server::RaftTransport for TransportService {
    type LinkStream = AckStream;

    /// Hands each batch to the node, then acknowledges it. The stream ends
    /// when the peer closes it or this node stops.
    async fn link(
        &self,
        req: Request<tonic::Streaming<pb::RaftBatch>>,
    ) -> Result<Response<AckStream>, Status> {
        let inbound = req.into_inner();
        let acks = futures_util::stream::unfold(
            (inbound, self.tx.clone()),
            |(mut inbound, tx)| async move {
                let batch = inbound.message().await.ok()??;
                let msgs: Vec<Message> = batch
                    .messages
                    .into_iter()
                    .filter_map(message_from_pb)
                    .collect();
                tx.send(Input::Raft(msgs)).await.ok()?;
                Some((Ok(pb::Empty {}), (inbound, tx)))
            },
        );
        Ok(Response::new(Box::pin(acks)))
    }
}

#[derive(Clone)]
struct KvService {
    tx: mpsc::Sender<Input>,
    /// Planted bug `split-multi-read`.
    split_multi_read: bool,
}

type ReplyStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<pb::Reply, Status>> + Send + 'static>>;

impl KvService {
    /// One pipelined call, answered as `write` or `read` would answer it.
    async fn answer(&self, call: pb::Call) -> pb::Reply {
        use pb::kv_server::Kv;
        use pb::{call::Req, reply::Resp};
        let result = match call.req {
            Some(Req::Write(w)) => self
                .write(Request::new(w))
                .await
                .map(|r| Resp::Write(r.into_inner())),
            Some(Req::Read(r)) => self
                .read(Request::new(r))
                .await
                .map(|r| Resp::Read(r.into_inner())),
            None => Err(Status::invalid_argument("empty call")),
        };
        match result {
            Ok(resp) => pb::Reply {
                id: call.id,
                code: 0,
                message: String::new(),
                resp: Some(resp),
            },
            Err(s) => pb::Reply {
                id: call.id,
                code: s.code() as i32,
                message: s.message().to_string(),
                resp: None,
            },
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Input) -> Result<T, Status> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| Status::unavailable("node stopping"))?;
        rx.await
            .map_err(|_| Status::unavailable("node stopping; outcome unknown"))
    }
}

fn values(a: ReadAnswer) -> pb::ReadResponse {
    match a {
        ReadAnswer::Values(values, applied) => pb::ReadResponse { values, applied },
        ReadAnswer::Pairs(..) => unreachable!(),
    }
}

fn pairs(a: ReadAnswer) -> pb::ScanResponse {
    match a {
        ReadAnswer::Pairs(pairs, applied) => pb::ScanResponse { pairs, applied },
        ReadAnswer::Values(..) => unreachable!(),
    }
}

#[tonic::async_trait]
impl pb::kv_server::Kv for KvService {
    async fn write(
        &self,
        req: Request<pb::WriteRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let req = req.into_inner();
        if req.command.as_ref().and_then(|c| c.cmd.as_ref()).is_none() {
            return Err(Status::invalid_argument("empty command"));
        }
        let result = self.ask(|r| Input::Write(req, r)).await??;
        Ok(Response::new(pb::WriteResponse {
            result: Some(result),
        }))
    }

    async fn read(
        &self,
        req: Request<pb::ReadRequest>,
    ) -> Result<Response<pb::ReadResponse>, Status> {
        let keys = req.into_inner().keys;
        if self.split_multi_read && keys.len() > 1 {
            // Planted bug: one read index per key; another write can
            // commit between two of them.
            let mut all = pb::ReadResponse::default();
            for key in keys {
                let one = values(
                    self.ask(|r| Input::Read(ReadKind::Keys(vec![key]), r))
                        .await??,
                );
                all.values.extend(one.values);
                all.applied = one.applied;
            }
            return Ok(Response::new(all));
        }
        Ok(Response::new(values(
            self.ask(|r| Input::Read(ReadKind::Keys(keys), r)).await??,
        )))
    }

    async fn scan(
        &self,
        req: Request<pb::ScanRequest>,
    ) -> Result<Response<pb::ScanResponse>, Status> {
        let prefix = req.into_inner().prefix;
        Ok(Response::new(pairs(
            self.ask(|r| Input::Read(ReadKind::Prefix(prefix), r))
                .await??,
        )))
    }

    async fn local_read(
        &self,
        req: Request<pb::ReadRequest>,
    ) -> Result<Response<pb::ReadResponse>, Status> {
        let keys = req.into_inner().keys;
        Ok(Response::new(values(
            self.ask(|r| Input::LocalRead(ReadKind::Keys(keys), r))
                .await??,
        )))
    }

    type PipelineStream = ReplyStream;

    /// Runs each call as it arrives, concurrently, and sends each reply as
    /// its call finishes. The replies end once the client has closed its
    /// side and every call is answered.
    async fn pipeline(
        &self,
        req: Request<tonic::Streaming<pb::Call>>,
    ) -> Result<Response<ReplyStream>, Status> {
        let mut inbound = req.into_inner();
        let svc = self.clone();
        let (out, rx) = mpsc::channel::<pb::Reply>(1024);
        tokio::spawn(async move {
            while let Ok(Some(call)) = inbound.message().await {
                let (svc, out) = (svc.clone(), out.clone());
                tokio::spawn(async move {
                    let reply = svc.answer(call).await;
                    let _ = out.send(reply).await;
                });
            }
        });
        let replies = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|r| (Ok(r), rx))
        });
        Ok(Response::new(Box::pin(replies)))
    }

    async fn status(
        &self,
        r: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let with_state = r.into_inner().with_state;
        Ok(Response::new(
            self.ask(|reply| Input::Status(with_state, reply)).await?,
        ))
    }
}

/// Runs a blocking disk call (an fsync). On a multi-threaded tokio runtime
/// the worker hands its other tasks to another thread meanwhile (see
/// [`NodeConfig::shared_runtime`]). In the simulation (and on a
/// current-thread runtime) it just calls `f`.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(not(madsim))]
    {
        use tokio::runtime::{Handle, RuntimeFlavor};
        if Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread) {
            return tokio::task::block_in_place(f);
        }
    }
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::cmd;
    use tonic::Code;

    /// A node of a three-node group on an in-memory disk; its peers'
    /// queues are returned (what it sends them).
    fn node_of_three() -> (Node, Vec<mpsc::Receiver<Message>>) {
        let dir: Arc<dyn storage::Dir> = Arc::new(storage::SimDir::new());
        let (store, persisted, _) = RaftStore::open_with(dir, StoreOpts::default()).unwrap();
        let raft = Raft::new(Config::new(1, vec![1, 2, 3], 7), persisted);
        let (mut peers, mut queues) = (BTreeMap::new(), Vec::new());
        for id in [2, 3] {
            let (tx, rx) = mpsc::channel(1024);
            peers.insert(id, tx);
            queues.push(rx);
        }
        let node = Node::new(
            raft,
            store,
            KvState::new(false),
            peers,
            HardState::default(),
        );
        (node, queues)
    }

    /// A proposal of a leader that a later leader's snapshot overtook is
    /// answered "outcome unknown" when the snapshot is installed; it used
    /// to wait, unanswered, until a restart.
    #[test]
    fn a_snapshot_over_a_pending_proposal_answers_it_as_unknown() {
        let (mut node, mut queues) = node_of_three();
        // Node 2 grants every pre-vote and vote: node 1 leads.
        for _ in 0..1000 {
            if node.raft.status().role == Role::Leader {
                break;
            }
            node.handle(Input::Tick);
            node.process_ready().unwrap();
            while let Ok(m) = queues[0].try_recv() {
                let kind = match m.kind {
                    raft::MsgKind::PreVote { .. } => raft::MsgKind::PreVoteResp { reject: false },
                    raft::MsgKind::Vote { .. } => raft::MsgKind::VoteResp { reject: false },
                    _ => continue,
                };
                node.handle(Input::Raft(vec![Message {
                    from: 2,
                    to: 1,
                    term: m.term,
                    kind,
                }]));
                node.process_ready().unwrap();
            }
        }
        let term = node.raft.status().term;
        assert_eq!(node.raft.status().role, Role::Leader);
        // A write it proposes, which no follower acknowledges.
        let (reply, mut answer) = oneshot::channel();
        let req = pb::WriteRequest {
            client_id: 9,
            seq: 1,
            command: Some(cmd::put("k", "v")),
        };
        node.handle(Input::Write(req, reply));
        node.process_ready().unwrap();
        let index = node.raft.log().last_index();
        assert_eq!(node.waiters.keys().collect::<Vec<_>>(), [&index]);
        assert!(answer.try_recv().is_err(), "not answered yet");
        // Node 2 leads a later term and sends a snapshot past that index.
        let snapshot = raft::Snapshot {
            index: index + 5,
            term: term + 1,
            data: KvState::new(false).snapshot(),
        };
        node.handle(Input::Raft(vec![Message {
            from: 2,
            to: 1,
            term: term + 1,
            kind: raft::MsgKind::InstallSnapshot { snapshot },
        }]));
        node.process_ready().unwrap();
        assert_eq!(node.raft.log().snapshot_index(), index + 5);
        let status = answer.try_recv().expect("answered").unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("outcome unknown"), "{status:?}");
        assert!(node.waiters.is_empty());
    }

    #[test]
    fn every_event_round_trips_through_its_json_and_a_cut_line_is_refused() {
        let events = [
            NodeEvent::Recovered {
                term: 3,
                vote: Some(2),
                last_index: 40,
                snapshot_index: 20,
                cut_bytes: 7,
                damaged: true,
                floor: Some((3, 38)),
            },
            NodeEvent::Recovered {
                term: 0,
                vote: None,
                last_index: 0,
                snapshot_index: 0,
                cut_bytes: 0,
                damaged: false,
                floor: None,
            },
            NodeEvent::Role {
                term: 4,
                role: Role::PreCandidate,
                leader: None,
            },
            NodeEvent::Role {
                term: 4,
                role: Role::Leader,
                leader: Some(1),
            },
            NodeEvent::Promised {
                term: 4,
                vote: Some(1),
            },
            NodeEvent::Commit { index: 9, term: 4 },
            NodeEvent::Elected {
                term: 5,
                snapshot_index: 2,
                last_index: 9,
                runs: vec![(3, 1), (6, 4)],
            },
            NodeEvent::Applied {
                index: 9,
                term: 4,
                digest: u64::MAX - 5,
            },
            NodeEvent::ReadArrived { id: 1 },
            NodeEvent::ReadServed { id: 1, applied: 9 },
            NodeEvent::SnapshotInstalled { index: 8, term: 4 },
        ];
        for ev in events {
            let (name, v) = ev.to_json();
            let line = serde_json::to_string(&v).unwrap();
            let back: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(
                NodeEvent::from_json(name, &back),
                Some(ev.clone()),
                "{name}"
            );
            let mut cut = back.clone();
            let first = cut.as_object().unwrap().keys().next().unwrap().clone();
            cut.as_object_mut().unwrap().remove(&first);
            assert_eq!(
                NodeEvent::from_json(name, &cut),
                None,
                "{name} without {first}"
            );
        }
        assert_eq!(NodeEvent::from_json("gossip", &serde_json::json!({})), None);
    }
}
