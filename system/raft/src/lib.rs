//! Raft consensus as a pure state machine.
//!
//! This crate is the consensus core of the bookstore's replicated key-value
//! store. It has no clock, no socket and no disk inside: the driver (the
//! `bookstore` crate under tokio, the same code under madsim, or a unit test)
//! feeds it [`Raft::tick`], [`Raft::step`], [`Raft::propose`] and
//! [`Raft::read_index`], then takes a [`Ready`] describing what to persist,
//! what to send and what to apply, and acknowledges it with [`Raft::advance`].
//! The shape follows etcd-io/raft (`Step`, `Ready`, `Advance`).
//!
//! What it implements: randomized election timeouts, pre-vote, check-quorum,
//! log replication with the consistency check and fast back-off on conflicts
//! (the follower reports the conflicting term and its first index), commit
//! only of entries of the current term (Figure 8), snapshots with log
//! compaction and InstallSnapshot for lagging followers, and linearizable
//! reads through ReadIndex confirmed by a heartbeat round.
//!
//! What it does not: membership changes, leadership transfer, lease reads.
//!
//! Contract with the driver: everything in a [`Ready`] must be made durable
//! (hard state, entries, snapshot) *before* its messages are sent; then the
//! driver calls [`Raft::advance`]. One exception is allowed: a leader's
//! `Append` messages may leave before its own entries are durable, when the
//! Ready changes neither term nor vote (Raft thesis 10.2.1), provided the
//! driver handles no input before calling `advance`: the leader counts
//! itself in the commit quorum only up to its stable index. Planted bugs ([`Bugs`]) re-introduce
//! classic mistakes so that the simulation harness can prove it finds them.

mod log;
#[cfg(test)]
mod tests;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, VecDeque};

pub use log::Log;

pub type NodeId = u64;

/// One log entry. An entry with empty `data` is a leader's no-op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub term: u64,
    pub index: u64,
    pub data: Vec<u8>,
}

/// What must survive a crash besides the log: the current term, the vote
/// cast in it, and the commit index (an optimisation; safe to lose).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    pub term: u64,
    pub vote: Option<NodeId>,
    pub commit: u64,
}

/// A state machine image covering every entry up to `index`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub index: u64,
    pub term: u64,
    pub data: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: u64,
    pub kind: MsgKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MsgKind {
    /// Would you vote for me at `term` (not yet adopted by the sender)?
    PreVote {
        last_index: u64,
        last_term: u64,
    },
    PreVoteResp {
        reject: bool,
    },
    Vote {
        last_index: u64,
        last_term: u64,
    },
    VoteResp {
        reject: bool,
    },
    Append {
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
    },
    /// On success `index` is the last index the follower now matches. On
    /// rejection `index` is the rejected `prev_index`, and the hint says where
    /// to resume: `hint_term == 0` means the follower's log ends before
    /// `hint_index`; otherwise the follower has `hint_term` at prev_index and
    /// that term starts at `hint_index`.
    AppendResp {
        reject: bool,
        index: u64,
        hint_term: u64,
        hint_index: u64,
    },
    Heartbeat {
        commit: u64,
        ctx: u64,
    },
    HeartbeatResp {
        ctx: u64,
    },
    InstallSnapshot {
        snapshot: Snapshot,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// Switches that re-introduce classic Raft bugs. All off by default; the
/// simulation harness turns one on to prove its checks catch it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// Grant votes without the "candidate's log is at least as up to date" check.
    pub vote_without_log_check: bool,
    /// Commit an earlier term's entry once a majority stores it (Figure 8).
    pub commit_old_term: bool,
    /// Answer read-index requests without a heartbeat round confirming leadership.
    pub read_without_quorum: bool,
    /// A follower takes an Append's entries as its whole log suffix: entries
    /// after the message's last one are dropped even when they match (the
    /// message may be stale: a duplicate, or overtaken by newer ones).
    pub truncate_on_stale_append: bool,
    /// Ignore the log floor a node recovered from damaged storage with:
    /// vote and campaign with the shorter log it kept.
    pub ignore_log_floor: bool,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    /// Every voter, including `id`.
    pub peers: Vec<NodeId>,
    /// Ticks without hearing from a leader before a follower campaigns; the
    /// actual timeout is drawn from [election_tick, 2 * election_tick).
    pub election_tick: u32,
    pub heartbeat_tick: u32,
    pub pre_vote: bool,
    /// A leader steps down if it has not heard from a quorum for an election
    /// timeout; followers ignore (pre-)votes while they hear from a leader.
    pub check_quorum: bool,
    /// Most entries in one Append message.
    pub max_batch: usize,
    /// Seeds the election-timeout randomness (drawn by the driver from its RNG).
    pub seed: u64,
    pub bugs: Bugs,
}

impl Config {
    pub fn new(id: NodeId, peers: Vec<NodeId>, seed: u64) -> Config {
        Config {
            id,
            peers,
            election_tick: 10,
            heartbeat_tick: 2,
            pre_vote: true,
            check_quorum: true,
            max_batch: 64,
            seed,
            bugs: Bugs::default(),
        }
    }
}

/// A read the state machine may serve once it has applied `index`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadState {
    pub ctx: u64,
    pub index: u64,
}

/// What the driver must do next, in this order: persist `hard_state`,
/// `snapshot` and `entries` (entries replace any stored suffix starting at
/// `entries[0].index`), send `messages`, apply `snapshot` then `committed`,
/// answer `read_states` once applied, then call [`Raft::advance`].
#[derive(Clone, Debug, Default)]
pub struct Ready {
    pub hard_state: Option<HardState>,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub messages: Vec<Message>,
    pub committed: Vec<Entry>,
    pub read_states: Vec<ReadState>,
    /// Read requests dropped because this node lost leadership (the driver
    /// tells the client to retry elsewhere).
    pub dropped_reads: Vec<u64>,
}

impl Ready {
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.snapshot.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.committed.is_empty()
            && self.read_states.is_empty()
            && self.dropped_reads.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub term: u64,
    pub role: Role,
    pub leader: Option<NodeId>,
    pub commit: u64,
    pub applied: u64,
    pub last_index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Only the leader accepts proposals and reads; `leader` is a hint.
    NotLeader { leader: Option<NodeId> },
}

/// What a restarted node recovered from its disk.
#[derive(Clone, Debug, Default)]
pub struct Persisted {
    pub hard_state: HardState,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    /// After damage to the disk lost entries this node may have
    /// acknowledged: the (term, index) its log ended at. Until its log is at
    /// least as up to date, the node votes as if its log ended there and
    /// does not campaign (a lost entry still counts in every election).
    pub floor: Option<(u64, u64)>,
}

#[derive(Clone, Debug, Default)]
struct Progress {
    matched: u64,
    next: u64,
    recent_active: bool,
    /// `matched` at the last heartbeat tick, and whether the follower was
    /// behind then.
    mark: u64,
    behind_at_mark: bool,
    /// Behind for a whole heartbeat interval without `matched` moving: an
    /// append or its answer was probably lost (see `HeartbeatResp`).
    stalled: bool,
}

struct PendingRead {
    ctx: u64,
    index: u64,
    /// Heartbeat round that must be acknowledged by a quorum.
    round: u64,
}

pub struct Raft {
    cfg: Config,
    rng: ChaCha8Rng,
    term: u64,
    vote: Option<NodeId>,
    role: Role,
    leader: Option<NodeId>,
    log: Log,
    applied: u64,
    /// Pending snapshot received from a leader, handed out in the next Ready.
    pending_snapshot: Option<Snapshot>,
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    randomized_timeout: u32,
    votes: BTreeMap<NodeId, bool>,
    progress: BTreeMap<NodeId, Progress>,
    msgs: Vec<Message>,
    persisted_hs: HardState,
    /// Reads waiting for the leader's first commit in its term.
    reads_waiting_commit: Vec<u64>,
    reads: VecDeque<PendingRead>,
    read_round: u64,
    /// Highest heartbeat round each peer acknowledged.
    acked_round: BTreeMap<NodeId, u64>,
    read_states: Vec<ReadState>,
    dropped_reads: Vec<u64>,
    /// Appends received whose entries this log already held, and more
    /// after them (duplicated or overtaken messages).
    stale_appends: u64,
    /// See [`Persisted::floor`]; gone once the log reaches it.
    floor: Option<(u64, u64)>,
}

impl Raft {
    /// How many Appends arrived whose entries this log already held, with
    /// more entries after them: duplicated or overtaken messages.
    pub fn stale_appends(&self) -> u64 {
        self.stale_appends
    }

    /// The (term, index) this node votes as if its log ended at, after
    /// damaged storage lost entries (see [`Persisted::floor`]).
    pub fn floor(&self) -> Option<(u64, u64)> {
        self.floor
            .filter(|&f| (self.log.last_term(), self.log.last_index()) < f)
    }

    fn lift_floor(&mut self) {
        if self
            .floor
            .is_some_and(|f| (self.log.last_term(), self.log.last_index()) >= f)
        {
            self.floor = None;
        }
    }

    /// A node starting from what its disk holds (empty for a new node).
    pub fn new(cfg: Config, persisted: Persisted) -> Raft {
        assert!(
            cfg.peers.contains(&cfg.id),
            "peers must include the node itself"
        );
        let Persisted {
            hard_state,
            snapshot,
            entries,
            floor,
        } = persisted;
        let log = Log::restore(snapshot, entries, hard_state.commit);
        let applied = log.snapshot_index();
        let mut r = Raft {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ cfg.id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            cfg,
            term: hard_state.term,
            vote: hard_state.vote,
            role: Role::Follower,
            leader: None,
            log,
            applied,
            pending_snapshot: None,
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_timeout: 0,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            msgs: Vec::new(),
            persisted_hs: hard_state,
            reads_waiting_commit: Vec::new(),
            reads: VecDeque::new(),
            read_round: 0,
            acked_round: BTreeMap::new(),
            read_states: Vec::new(),
            dropped_reads: Vec::new(),
            stale_appends: 0,
            floor: None,
        };
        if !r.cfg.bugs.ignore_log_floor {
            r.floor = floor;
        }
        r.lift_floor();
        r.reset_randomized_timeout();
        r
    }

    pub fn id(&self) -> NodeId {
        self.cfg.id
    }

    pub fn status(&self) -> Status {
        Status {
            id: self.cfg.id,
            term: self.term,
            role: self.role,
            leader: self.leader,
            commit: self.log.committed(),
            applied: self.applied,
            last_index: self.log.last_index(),
        }
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    fn quorum(&self) -> usize {
        self.cfg.peers.len() / 2 + 1
    }

    fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed(),
        }
    }

    fn reset_randomized_timeout(&mut self) {
        let e = self.cfg.election_tick;
        self.randomized_timeout = self.rng.random_range(e..2 * e);
    }

    fn send(&mut self, to: NodeId, kind: MsgKind) {
        self.msgs.push(Message {
            from: self.cfg.id,
            to,
            term: self.term,
            kind,
        });
    }

    fn others(&self) -> Vec<NodeId> {
        self.cfg
            .peers
            .iter()
            .copied()
            .filter(|&p| p != self.cfg.id)
            .collect()
    }

    // ----- role transitions -----

    fn reset(&mut self, term: u64) {
        if self.term != term {
            self.term = term;
            self.vote = None;
        }
        self.leader = None;
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.reset_randomized_timeout();
        self.votes.clear();
        self.abort_reads();
    }

    fn abort_reads(&mut self) {
        let dropped: Vec<u64> = self
            .reads_waiting_commit
            .drain(..)
            .chain(self.reads.drain(..).map(|r| r.ctx))
            .collect();
        self.dropped_reads.extend(dropped);
    }

    fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        self.reset(term);
        self.role = Role::Follower;
        self.leader = leader;
    }

    fn become_pre_candidate(&mut self) {
        // A pre-candidate does not change its term or vote.
        self.votes.clear();
        self.role = Role::PreCandidate;
        self.leader = None;
        self.election_elapsed = 0;
        self.reset_randomized_timeout();
        self.abort_reads();
    }

    fn become_candidate(&mut self) {
        self.reset(self.term + 1);
        self.vote = Some(self.cfg.id);
        self.role = Role::Candidate;
    }

    fn become_leader(&mut self) {
        self.reset(self.term);
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        let last = self.log.last_index();
        self.progress = self
            .cfg
            .peers
            .iter()
            .map(|&p| {
                (
                    p,
                    Progress {
                        matched: 0,
                        next: last + 1,
                        recent_active: true,
                        mark: 0,
                        behind_at_mark: false,
                        stalled: false,
                    },
                )
            })
            .collect();
        self.acked_round.clear();
        // A no-op of the new term: committing it commits every earlier entry.
        self.log.append(vec![Entry {
            term: self.term,
            index: last + 1,
            data: Vec::new(),
        }]);
        self.maybe_commit();
        self.broadcast_append();
    }

    fn campaign(&mut self, pre: bool) {
        let (last_index, last_term) = (self.log.last_index(), self.log.last_term());
        if pre {
            self.become_pre_candidate();
        } else {
            self.become_candidate();
        }
        let term = if pre { self.term + 1 } else { self.term };
        self.votes.insert(self.cfg.id, true);
        if self.tally() == Some(true) {
            // Single-node cluster.
            if pre {
                return self.campaign(false);
            }
            return self.become_leader();
        }
        for p in self.others() {
            let kind = if pre {
                MsgKind::PreVote {
                    last_index,
                    last_term,
                }
            } else {
                MsgKind::Vote {
                    last_index,
                    last_term,
                }
            };
            self.msgs.push(Message {
                from: self.cfg.id,
                to: p,
                term,
                kind,
            });
        }
    }

    /// Some(true) won, Some(false) lost, None undecided.
    fn tally(&self) -> Option<bool> {
        let granted = self.votes.values().filter(|&&g| g).count();
        let rejected = self.votes.len() - granted;
        if granted >= self.quorum() {
            Some(true)
        } else if rejected >= self.quorum() {
            Some(false)
        } else {
            None
        }
    }

    // ----- inputs -----

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.election_elapsed += 1;
        if self.role == Role::Leader {
            self.heartbeat_elapsed += 1;
            if self.heartbeat_elapsed >= self.cfg.heartbeat_tick {
                self.heartbeat_elapsed = 0;
                let last = self.log.last_index();
                for pr in self.progress.values_mut() {
                    pr.stalled = pr.behind_at_mark && pr.matched == pr.mark;
                    pr.mark = pr.matched;
                    pr.behind_at_mark = pr.matched < last;
                }
                self.broadcast_heartbeat();
            }
            if self.election_elapsed >= self.cfg.election_tick {
                self.election_elapsed = 0;
                if self.cfg.check_quorum {
                    let me = self.cfg.id;
                    let mut active = 0;
                    for (id, pr) in self.progress.iter_mut() {
                        if *id == me || std::mem::take(&mut pr.recent_active) {
                            active += 1;
                        }
                    }
                    if active < self.quorum() {
                        self.become_follower(self.term, None);
                    }
                }
            }
        } else if self.election_elapsed >= self.randomized_timeout {
            self.lift_floor();
            if self.floor.is_some() {
                // Lost entries it may have acknowledged: it must not lead
                // before a leader has repaired its log.
                self.election_elapsed = 0;
                self.reset_randomized_timeout();
            } else {
                self.campaign(self.cfg.pre_vote);
            }
        }
    }

    /// Appends a command to the leader's log. Returns its (index, term): it is
    /// committed once an applied entry at that index carries that term.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(u64, u64), Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        let index = self.log.last_index() + 1;
        self.log.append(vec![Entry {
            term: self.term,
            index,
            data,
        }]);
        self.broadcast_append();
        Ok((index, self.term))
    }

    /// Asks for a linearizable read point. The answer comes as a
    /// [`ReadState`] with the same `ctx` in a later Ready (or in
    /// `dropped_reads` if leadership is lost first).
    pub fn read_index(&mut self, ctx: u64) -> Result<(), Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        if self.cfg.bugs.read_without_quorum {
            self.read_states.push(ReadState {
                ctx,
                index: self.log.committed(),
            });
            return Ok(());
        }
        if !self.committed_in_term() {
            // The commit index is only known to be current once an entry of
            // this term commits (Raft thesis 6.4).
            self.reads_waiting_commit.push(ctx);
            return Ok(());
        }
        self.start_read(ctx);
        Ok(())
    }

    fn committed_in_term(&self) -> bool {
        self.log.term(self.log.committed()) == Some(self.term)
    }

    fn start_read(&mut self, ctx: u64) {
        self.read_round += 1;
        let round = self.read_round;
        self.reads.push_back(PendingRead {
            ctx,
            index: self.log.committed(),
            round,
        });
        self.broadcast_heartbeat();
        self.release_reads();
    }

    fn release_reads(&mut self) {
        // Round r is confirmed when a quorum (self included) acked >= r.
        let me = self.cfg.id;
        let mut acks: Vec<u64> = self
            .cfg
            .peers
            .iter()
            .map(|p| {
                if *p == me {
                    u64::MAX
                } else {
                    self.acked_round.get(p).copied().unwrap_or(0)
                }
            })
            .collect();
        acks.sort_unstable_by(|a, b| b.cmp(a));
        let confirmed = acks[self.quorum() - 1];
        while self.reads.front().is_some_and(|r| r.round <= confirmed) {
            let r = self.reads.pop_front().unwrap();
            self.read_states.push(ReadState {
                ctx: r.ctx,
                index: r.index,
            });
        }
    }

    /// Handles a message from a peer.
    pub fn step(&mut self, m: Message) {
        if m.to != self.cfg.id || !self.cfg.peers.contains(&m.from) {
            return;
        }
        let in_lease = self.cfg.check_quorum
            && self.leader.is_some()
            && self.election_elapsed < self.cfg.election_tick;
        if m.term > self.term {
            match m.kind {
                MsgKind::PreVote { .. } | MsgKind::Vote { .. } if in_lease => {
                    // We heard from a leader recently: do not disrupt it.
                    return;
                }
                MsgKind::PreVote { .. } => {}
                MsgKind::PreVoteResp { reject: false } => {}
                MsgKind::Append { .. }
                | MsgKind::Heartbeat { .. }
                | MsgKind::InstallSnapshot { .. } => {
                    self.become_follower(m.term, Some(m.from));
                }
                _ => self.become_follower(m.term, None),
            }
        } else if m.term < self.term {
            match m.kind {
                MsgKind::Append { .. }
                | MsgKind::Heartbeat { .. }
                | MsgKind::InstallSnapshot { .. } => {
                    // A stale leader: tell it our term so it steps down.
                    self.send(
                        m.from,
                        MsgKind::AppendResp {
                            reject: true,
                            index: 0,
                            hint_term: 0,
                            hint_index: 0,
                        },
                    );
                }
                MsgKind::PreVote { .. } => {
                    self.send(m.from, MsgKind::PreVoteResp { reject: true });
                }
                _ => {}
            }
            return;
        }

        match m.kind {
            MsgKind::PreVote {
                last_index,
                last_term,
            }
            | MsgKind::Vote {
                last_index,
                last_term,
            } => {
                let pre = matches!(m.kind, MsgKind::PreVote { .. });
                let can_vote = self.vote == Some(m.from)
                    || (self.vote.is_none() && self.leader.is_none())
                    || (pre && m.term > self.term);
                self.lift_floor();
                let own = (self.log.last_term(), self.log.last_index());
                let (my_term, my_index) = self.floor.map_or(own, |f| f.max(own));
                let up_to_date = self.cfg.bugs.vote_without_log_check
                    || last_term > my_term
                    || (last_term == my_term && last_index >= my_index);
                let grant = can_vote && up_to_date;
                if pre {
                    let term = if grant { m.term } else { self.term };
                    self.msgs.push(Message {
                        from: self.cfg.id,
                        to: m.from,
                        term,
                        kind: MsgKind::PreVoteResp { reject: !grant },
                    });
                } else {
                    if grant {
                        self.vote = Some(m.from);
                        self.election_elapsed = 0;
                    }
                    self.send(m.from, MsgKind::VoteResp { reject: !grant });
                }
            }
            MsgKind::PreVoteResp { reject } if self.role == Role::PreCandidate => {
                self.votes.insert(m.from, !reject);
                match self.tally() {
                    Some(true) => self.campaign(false),
                    Some(false) => self.become_follower(self.term, None),
                    None => {}
                }
            }
            MsgKind::VoteResp { reject } if self.role == Role::Candidate => {
                self.votes.insert(m.from, !reject);
                match self.tally() {
                    Some(true) => self.become_leader(),
                    Some(false) => self.become_follower(self.term, None),
                    None => {}
                }
            }
            MsgKind::PreVoteResp { .. } | MsgKind::VoteResp { .. } => {}
            MsgKind::Append { .. }
            | MsgKind::Heartbeat { .. }
            | MsgKind::InstallSnapshot { .. } => {
                if self.role != Role::Follower {
                    self.become_follower(m.term, Some(m.from));
                }
                self.leader = Some(m.from);
                self.election_elapsed = 0;
                match m.kind {
                    MsgKind::Append {
                        prev_index,
                        prev_term,
                        entries,
                        commit,
                    } => self.handle_append(m.from, prev_index, prev_term, entries, commit),
                    MsgKind::Heartbeat { commit, ctx } => {
                        // The leader sends min(match, commit): safe to adopt.
                        let c = commit.min(self.log.last_index());
                        self.log.commit_to(c);
                        self.send(m.from, MsgKind::HeartbeatResp { ctx });
                    }
                    MsgKind::InstallSnapshot { snapshot } => self.handle_snapshot(m.from, snapshot),
                    _ => unreachable!(),
                }
            }
            MsgKind::AppendResp {
                reject,
                index,
                hint_term,
                hint_index,
            } => {
                if self.role == Role::Leader {
                    self.handle_append_resp(m.from, reject, index, hint_term, hint_index);
                }
            }
            MsgKind::HeartbeatResp { ctx } => {
                if self.role == Role::Leader {
                    if let Some(pr) = self.progress.get_mut(&m.from) {
                        pr.recent_active = true;
                        let behind = pr.matched < self.log.last_index();
                        if behind && pr.stalled {
                            // Resend from the last known match: covers lost
                            // appends. Only when the follower has not moved
                            // for a whole heartbeat interval: appends still
                            // on their way would be sent twice.
                            pr.stalled = false;
                            pr.next = pr.matched + 1;
                            self.send_append(m.from);
                        }
                    }
                    let e = self.acked_round.entry(m.from).or_insert(0);
                    *e = (*e).max(ctx);
                    self.release_reads();
                }
            }
        }
    }

    fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
    ) {
        if prev_index < self.log.committed() {
            // Everything up to our commit already matches the leader.
            let index = self.log.committed();
            self.ack(from, index);
            return;
        }
        match self.log.term(prev_index) {
            Some(t) if t == prev_term => {
                let last_new = prev_index + entries.len() as u64;
                if last_new < self.log.last_index() && self.log.term(last_new).is_some() {
                    self.stale_appends += 1;
                    if self.cfg.bugs.truncate_on_stale_append && last_new >= self.log.committed() {
                        self.log.truncate_after(last_new);
                    }
                }
                self.log.merge(entries);
                self.log.commit_to(commit.min(last_new));
                self.ack(from, last_new);
            }
            Some(t) => {
                // Conflict: report the term we have there and where it starts,
                // so the leader can skip the whole term in one round trip.
                let first = self
                    .log
                    .first_index_of_term(t, prev_index)
                    .max(self.log.committed() + 1);
                self.send(
                    from,
                    MsgKind::AppendResp {
                        reject: true,
                        index: prev_index,
                        hint_term: t,
                        hint_index: first,
                    },
                );
            }
            None => {
                let hint_index = self.log.last_index() + 1;
                self.send(
                    from,
                    MsgKind::AppendResp {
                        reject: true,
                        index: prev_index,
                        hint_term: 0,
                        hint_index,
                    },
                );
            }
        }
    }

    /// Tells the leader this log now matches its log up to `index`.
    fn ack(&mut self, to: NodeId, index: u64) {
        let kind = MsgKind::AppendResp {
            reject: false,
            index,
            hint_term: 0,
            hint_index: 0,
        };
        self.send(to, kind);
    }

    fn handle_snapshot(&mut self, from: NodeId, snap: Snapshot) {
        let index = snap.index;
        if index <= self.log.committed() {
            let index = self.log.committed();
            self.ack(from, index);
            return;
        }
        if self.log.term(index) == Some(snap.term) {
            // We already have the entries: just fast-forward the commit.
            self.log.commit_to(index);
        } else {
            self.log.install_snapshot(&snap);
            self.applied = index;
            self.pending_snapshot = Some(snap);
        }
        self.ack(from, index);
    }

    fn handle_append_resp(
        &mut self,
        from: NodeId,
        reject: bool,
        index: u64,
        hint_term: u64,
        hint_index: u64,
    ) {
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.recent_active = true;
        if reject {
            if index == 0 && hint_index == 0 {
                return; // a stale-term notice; the term rule already handled it
            }
            if index < pr.next.saturating_sub(1) && index <= pr.matched {
                return; // stale rejection
            }
            let mut next = if hint_term == 0 {
                hint_index
            } else {
                match self.log.last_index_of_term(hint_term) {
                    Some(i) => i + 1,
                    None => hint_index,
                }
            };
            let pr = self.progress.get_mut(&from).unwrap();
            next = next.min(index).max(pr.matched + 1);
            pr.next = next;
            self.send_append(from);
        } else {
            if index > pr.matched {
                pr.matched = index;
            }
            pr.next = pr.next.max(pr.matched + 1);
            self.maybe_commit();
            let pr = &self.progress[&from];
            if pr.next <= self.log.last_index() {
                self.send_append(from);
            }
        }
    }

    fn maybe_commit(&mut self) {
        let me = self.cfg.id;
        let stable = self.log.stable_index();
        let mut matched: Vec<u64> = self
            .progress
            .iter()
            .map(|(id, pr)| if *id == me { stable } else { pr.matched })
            .collect();
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let n = matched[self.quorum() - 1];
        if n > self.log.committed()
            && (self.cfg.bugs.commit_old_term || self.log.term(n) == Some(self.term))
        {
            self.log.commit_to(n);
            if self.committed_in_term() && !self.reads_waiting_commit.is_empty() {
                for ctx in std::mem::take(&mut self.reads_waiting_commit) {
                    self.start_read(ctx);
                }
            }
        }
    }

    fn broadcast_heartbeat(&mut self) {
        let ctx = self.read_round;
        for p in self.others() {
            let commit = self.progress[&p].matched.min(self.log.committed());
            self.send(p, MsgKind::Heartbeat { commit, ctx });
        }
    }

    fn broadcast_append(&mut self) {
        for p in self.others() {
            self.send_append(p);
        }
    }

    fn send_append(&mut self, to: NodeId) {
        let next = self.progress[&to].next;
        let prev_index = next - 1;
        match self.log.term(prev_index) {
            Some(prev_term) if next > self.log.snapshot_index() => {
                let entries = self.log.slice(next, self.cfg.max_batch);
                let commit = self.log.committed();
                let sent = entries.len() as u64;
                if let Some(pr) = self.progress.get_mut(&to) {
                    pr.next = next + sent; // optimistic pipelining
                }
                self.send(
                    to,
                    MsgKind::Append {
                        prev_index,
                        prev_term,
                        entries,
                        commit,
                    },
                );
            }
            _ => {
                // The entries the follower needs were compacted away.
                let snapshot = self.log.snapshot().clone();
                if let Some(pr) = self.progress.get_mut(&to) {
                    pr.next = snapshot.index + 1;
                }
                self.send(to, MsgKind::InstallSnapshot { snapshot });
            }
        }
    }

    /// Compacts the log up to `index` (which must be applied), keeping
    /// `data` as the snapshot that lagging followers will be sent. The driver
    /// persists the snapshot itself before calling this.
    pub fn compact(&mut self, index: u64, data: Vec<u8>) {
        assert!(
            index <= self.applied,
            "compact({index}) beyond applied {}",
            self.applied
        );
        if index <= self.log.snapshot_index() {
            return;
        }
        self.log.compact(index, data);
    }

    // ----- output -----

    pub fn has_ready(&self) -> bool {
        self.hard_state() != self.persisted_hs
            || self.pending_snapshot.is_some()
            || self.log.has_unstable()
            || !self.msgs.is_empty()
            || self.log.committed() > self.applied
            || !self.read_states.is_empty()
            || !self.dropped_reads.is_empty()
    }

    /// Takes everything the driver must do now. Call [`Raft::advance`] once done.
    pub fn ready(&mut self) -> Ready {
        let hs = self.hard_state();
        let hard_state = (hs != self.persisted_hs).then(|| {
            self.persisted_hs = hs.clone();
            hs
        });
        let committed = self
            .log
            .entries_between(self.applied + 1, self.log.committed());
        if let Some(e) = committed.last() {
            self.applied = e.index;
        }
        Ready {
            hard_state,
            snapshot: self.pending_snapshot.take(),
            entries: self.log.take_unstable(),
            messages: std::mem::take(&mut self.msgs),
            committed,
            read_states: std::mem::take(&mut self.read_states),
            dropped_reads: std::mem::take(&mut self.dropped_reads),
        }
    }

    /// The previous Ready has been persisted, sent and applied.
    pub fn advance(&mut self) {
        self.log.mark_stable();
        if self.role == Role::Leader {
            self.maybe_commit();
        }
    }
}
