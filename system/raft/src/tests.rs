//! Tests of the core over an in-memory network, named after the rules of the
//! Raft paper (Ongaro & Ousterhout, 2014). The network persists every Ready to
//! a per-node "disk" before delivering its messages, can cut links, crash and
//! restart nodes, and drop or reorder messages under a seeded RNG.

use super::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;

#[derive(Clone, Default)]
struct Disk {
    hs: HardState,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
    /// Set by a test: the floor a damaged disk recovered with.
    floor: Option<(u64, u64)>,
}

/// The test state machine: the list of applied (index, term, data).
type Applied = Vec<(u64, u64, Vec<u8>)>;

fn encode(applied: &Applied) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, t, d) in applied {
        out.extend(i.to_le_bytes());
        out.extend(t.to_le_bytes());
        out.extend((d.len() as u64).to_le_bytes());
        out.extend(d);
    }
    out
}

fn decode(mut b: &[u8]) -> Applied {
    let mut out = Vec::new();
    let u = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().unwrap());
    while !b.is_empty() {
        let (i, t, n) = (u(b), u(&b[8..]), u(&b[16..]) as usize);
        out.push((i, t, b[24..24 + n].to_vec()));
        b = &b[24 + n..];
    }
    out
}

struct Net {
    ids: Vec<NodeId>,
    nodes: BTreeMap<NodeId, Raft>,
    disks: BTreeMap<NodeId, Disk>,
    applied: BTreeMap<NodeId, Applied>,
    queue: Vec<Message>,
    cut: BTreeSet<(NodeId, NodeId)>,
    cfg: Box<dyn Fn(NodeId) -> Config>,
    /// Compact when this many applied entries are past the snapshot.
    compact_every: u64,
    /// (term, leader) pairs ever seen.
    leaders: BTreeMap<u64, NodeId>,
    reads: Vec<ReadState>,
    snapshots_delivered: usize,
}

impl Net {
    fn new(n: u64, seed: u64, tweak: impl Fn(&mut Config) + 'static) -> Net {
        let ids: Vec<NodeId> = (1..=n).collect();
        let peers = ids.clone();
        let cfg = Box::new(move |id| {
            let mut c = Config::new(id, peers.clone(), seed);
            tweak(&mut c);
            c
        });
        let mut net = Net {
            ids: ids.clone(),
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            applied: BTreeMap::new(),
            queue: Vec::new(),
            cut: BTreeSet::new(),
            cfg,
            compact_every: u64::MAX,
            leaders: BTreeMap::new(),
            reads: Vec::new(),
            snapshots_delivered: 0,
        };
        for id in ids {
            net.disks.insert(id, Disk::default());
            net.restart(id);
        }
        net
    }

    fn with_logs(n: u64, logs: &[(u64, &[u64])], tweak: impl Fn(&mut Config) + 'static) -> Net {
        let mut net = Net::new(n, 7, tweak);
        for &(id, terms) in logs {
            let entries: Vec<Entry> = terms
                .iter()
                .enumerate()
                .map(|(i, &t)| Entry {
                    term: t,
                    index: i as u64 + 1,
                    data: vec![t as u8, i as u8],
                })
                .collect();
            let term = terms.iter().copied().max().unwrap_or(0);
            net.disks.insert(
                id,
                Disk {
                    hs: HardState {
                        term,
                        vote: None,
                        commit: 0,
                    },
                    snapshot: None,
                    entries,
                    floor: None,
                },
            );
            net.restart(id);
        }
        net
    }

    fn crash(&mut self, id: NodeId) {
        self.nodes.remove(&id);
        self.queue.retain(|m| m.to != id && m.from != id);
    }

    fn restart(&mut self, id: NodeId) {
        let d = self.disks[&id].clone();
        let applied = d
            .snapshot
            .as_ref()
            .map(|s| decode(&s.data))
            .unwrap_or_default();
        self.applied.insert(id, applied);
        let p = Persisted {
            hard_state: d.hs,
            snapshot: d.snapshot,
            entries: d.entries,
            floor: d.floor,
        };
        self.nodes.insert(id, Raft::new((self.cfg)(id), p));
    }

    fn node(&mut self, id: NodeId) -> &mut Raft {
        self.nodes.get_mut(&id).unwrap()
    }

    /// Persists, sends and applies one node's Ready, as a driver would.
    fn process(&mut self, id: NodeId) {
        let Some(r) = self.nodes.get_mut(&id) else {
            return;
        };
        if !r.has_ready() {
            return;
        }
        let rd = r.ready();
        let disk = self.disks.get_mut(&id).unwrap();
        if let Some(hs) = rd.hard_state {
            disk.hs = hs;
        }
        if let Some(s) = &rd.snapshot {
            disk.snapshot = Some(s.clone());
            disk.entries.clear();
            self.applied.insert(id, decode(&s.data));
        }
        if let Some(first) = rd.entries.first() {
            disk.entries.retain(|e| e.index < first.index);
            disk.entries.extend(rd.entries.iter().cloned());
        }
        self.queue.extend(rd.messages);
        let applied = self.applied.get_mut(&id).unwrap();
        for e in rd.committed {
            applied.push((e.index, e.term, e.data));
        }
        self.reads.extend(rd.read_states);
        let r = self.nodes.get_mut(&id).unwrap();
        r.advance();
        let st = r.status();
        if st.role == Role::Leader {
            let prev = self.leaders.insert(st.term, id);
            assert!(
                prev.is_none() || prev == Some(id),
                "two leaders in term {}: {prev:?} and {id}",
                st.term
            );
        }
        if st.applied >= r.log().snapshot_index() + self.compact_every {
            let applied = &self.applied[&id];
            let data = encode(applied);
            r.compact(st.applied, data.clone());
            let snap = r.log().snapshot().clone();
            let disk = self.disks.get_mut(&id).unwrap();
            disk.entries.retain(|e| e.index > snap.index);
            disk.snapshot = Some(snap);
        }
    }

    fn deliver(&mut self, m: Message) {
        if self.cut.contains(&(m.from, m.to)) || !self.nodes.contains_key(&m.to) {
            return;
        }
        if matches!(m.kind, MsgKind::InstallSnapshot { .. }) {
            self.snapshots_delivered += 1;
        }
        self.node(m.to).step(m);
    }

    /// Processes and delivers until nothing is left to do.
    fn stabilize(&mut self) {
        self.stabilize_filtered(|_| true)
    }

    fn stabilize_filtered(&mut self, keep: impl Fn(&Message) -> bool) {
        for _ in 0..10_000 {
            for id in self.ids.clone() {
                self.process(id);
            }
            if self.queue.is_empty() {
                return;
            }
            for m in std::mem::take(&mut self.queue) {
                if keep(&m) {
                    self.deliver(m);
                }
            }
        }
        panic!("network did not stabilize");
    }

    fn tick(&mut self, id: NodeId) {
        if let Some(r) = self.nodes.get_mut(&id) {
            r.tick();
        }
    }

    /// Ticks `id` alone until it campaigns, then lets the network settle.
    fn campaign(&mut self, id: NodeId) {
        let term = self.node(id).status().term;
        for _ in 0..100 {
            self.tick(id);
            self.process(id);
            if self.node(id).status().term > term || !self.queue.is_empty() {
                break;
            }
        }
        self.stabilize();
    }

    fn isolate(&mut self, id: NodeId) {
        for &o in &self.ids {
            if o != id {
                self.cut.insert((id, o));
                self.cut.insert((o, id));
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    fn leader(&self) -> Option<NodeId> {
        let mut best: Option<(u64, NodeId)> = None;
        for (id, r) in &self.nodes {
            let s = r.status();
            if s.role == Role::Leader && best.is_none_or(|(t, _)| s.term > t) {
                best = Some((s.term, *id));
            }
        }
        best.map(|(_, id)| id)
    }

    fn elect(&mut self) -> NodeId {
        for _ in 0..500 {
            for id in self.ids.clone() {
                self.tick(id);
            }
            self.stabilize();
            if let Some(l) = self.leader() {
                return l;
            }
        }
        panic!("no leader elected");
    }

    fn propose(&mut self, id: NodeId, v: u64) -> (u64, u64) {
        let r = self
            .node(id)
            .propose(v.to_le_bytes().to_vec())
            .expect("leader");
        self.stabilize();
        r
    }

    /// State machine safety: every node's applied sequence is a prefix of
    /// the longest one.
    fn check_applied_prefixes(&self) {
        let longest = self.applied.values().max_by_key(|a| a.len()).unwrap();
        for (id, a) in &self.applied {
            assert_eq!(
                &longest[..a.len()],
                &a[..],
                "node {id} applied a different sequence"
            );
        }
    }

    /// Log matching: if two logs have an entry with the same index and term,
    /// the logs are identical up to it.
    fn check_log_matching(&self) {
        let nodes: Vec<&Raft> = self.nodes.values().collect();
        for a in &nodes {
            for b in &nodes {
                let (la, lb) = (a.log(), b.log());
                let hi = la.last_index().min(lb.last_index());
                let lo = la.snapshot_index().max(lb.snapshot_index()) + 1;
                let mut matched = false;
                for i in (lo..=hi).rev() {
                    let (ea, eb) = (la.get(i).unwrap(), lb.get(i).unwrap());
                    if matched {
                        assert_eq!(
                            ea,
                            eb,
                            "log matching violated at {i} between {} and {}",
                            a.id(),
                            b.id()
                        );
                    } else if ea.term == eb.term {
                        matched = true;
                        assert_eq!(ea, eb);
                    }
                }
            }
        }
    }
}

// ----- 5.2 Leader election -----

#[test]
fn s5_2_a_leader_is_elected_and_others_follow() {
    let mut net = Net::new(3, 1, |_| {});
    let l = net.elect();
    let term = net.node(l).status().term;
    for id in 1..=3 {
        let s = net.node(id).status();
        assert_eq!(s.term, term);
        assert_eq!(s.leader, Some(l));
    }
}

#[test]
fn s5_2_election_safety_at_most_one_leader_per_term() {
    // `Net::process` asserts on every Ready that no term has two leaders;
    // here we force many competing elections.
    for seed in 0..30 {
        let mut net = Net::new(5, seed, |c| c.pre_vote = false);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for _ in 0..300 {
            let id = rng.random_range(1..=5);
            net.tick(id);
            net.process(id);
            if rng.random_bool(0.5) {
                net.stabilize();
            }
        }
        assert!(!net.leaders.is_empty());
    }
}

#[test]
fn s5_2_candidate_with_stale_log_is_not_elected() {
    // Node 3 missed entries of term 2; the others refuse it their vote.
    let mut net = Net::with_logs(3, &[(1, &[1, 2]), (2, &[1, 2]), (3, &[1])], |_| {});
    net.campaign(3);
    assert_ne!(net.leader(), Some(3));
    net.campaign(1);
    assert_eq!(net.leader(), Some(1));
}

/// Node 2 acknowledged entry 2 of term 2, then its disk damaged it away:
/// it recovered log [1] with floor (2, 2). Returns whether stale node 3 got
/// elected, and node 2's campaigns and floor after a leader repaired it.
fn damaged_voter(bug: bool) -> (bool, bool, Option<(u64, u64)>) {
    let mut net = Net::with_logs(3, &[(1, &[1, 2]), (2, &[1]), (3, &[1])], move |c| {
        c.bugs.ignore_log_floor = bug
    });
    net.disks.get_mut(&2).unwrap().floor = Some((2, 2));
    net.restart(2);
    net.isolate(1);
    net.campaign(3);
    let stale_elected = net.leader() == Some(3);
    // Node 2 alone with its floor never campaigns.
    let term = net.node(2).status().term;
    for _ in 0..200 {
        net.tick(2);
        net.process(2);
    }
    let campaigned = net.node(2).status().term > term || !net.queue.is_empty();
    net.queue.clear();
    net.heal();
    if !stale_elected {
        net.campaign(1);
        net.propose(1, 9);
    }
    (stale_elected, campaigned, net.node(2).floor())
}

#[test]
fn s5_4_1_a_node_that_lost_acknowledged_entries_votes_with_its_floor() {
    let (stale_elected, campaigned, floor) = damaged_voter(false);
    assert!(
        !stale_elected,
        "node 3 lacks entry 2 that node 2 acknowledged"
    );
    assert!(!campaigned, "a node below its floor must not campaign");
    assert_eq!(floor, None, "the floor goes once a leader repaired the log");
}

#[test]
fn planted_ignore_log_floor_elects_a_leader_without_an_acknowledged_entry() {
    let (stale_elected, campaigned, _) = damaged_voter(true);
    assert!(
        stale_elected && campaigned,
        "the planted bug must be observable"
    );
}

#[test]
fn s5_2_planted_vote_without_log_check_elects_stale_candidate() {
    let mut net = Net::with_logs(3, &[(1, &[1, 2]), (2, &[1, 2]), (3, &[1])], |c| {
        c.bugs.vote_without_log_check = true
    });
    net.campaign(3);
    assert_eq!(net.leader(), Some(3), "the planted bug must be observable");
}

#[test]
fn s9_6_pre_vote_keeps_a_rejoining_node_from_disrupting_the_leader() {
    let mut net = Net::new(3, 2, |_| {});
    let l = net.elect();
    let term = net.node(l).status().term;
    let other = (1..=3).find(|&i| i != l).unwrap();
    net.isolate(other);
    for _ in 0..100 {
        net.tick(other);
        net.process(other);
    }
    net.queue.clear();
    net.heal();
    net.stabilize();
    assert_eq!(
        net.node(other).status().term,
        term,
        "pre-vote must not bump the term"
    );
    assert_eq!(net.leader(), Some(l));
}

// ----- 5.3 Log replication -----

#[test]
fn s5_3_committed_entries_are_applied_everywhere_in_order() {
    let mut net = Net::new(3, 3, |_| {});
    let l = net.elect();
    for v in 0..20 {
        net.propose(l, v);
    }
    for id in 1..=3 {
        net.tick(l);
        net.tick(l);
        net.stabilize();
        let _ = id;
    }
    let lens: Vec<usize> = net.applied.values().map(|a| a.len()).collect();
    assert!(
        lens.iter().all(|&n| n == 21),
        "all nodes apply the no-op and 20 entries: {lens:?}"
    );
    net.check_applied_prefixes();
    net.check_log_matching();
}

#[test]
fn s5_3_log_matching_after_conflicting_suffixes_are_repaired() {
    // Figure 7 style: followers with missing and extra uncommitted entries.
    let mut net = Net::with_logs(
        5,
        &[
            (1, &[1, 1, 4, 4, 5, 5, 6, 6]),
            (2, &[1, 1, 4]),
            (3, &[1, 1, 4, 4, 5, 5, 6, 6, 6]),
            (4, &[1, 1, 2, 2, 2, 3, 3, 3, 3]),
            (5, &[1, 1, 4, 4, 5, 5, 6]),
        ],
        |_| {},
    );
    net.campaign(1);
    assert_eq!(net.leader(), Some(1));
    net.propose(1, 99);
    for _ in 0..3 {
        net.tick(1);
        net.tick(1);
        net.stabilize();
    }
    let full = |r: &Raft| r.log().entries_between(1, r.log().last_index());
    let leader_log = full(&net.nodes[&1]);
    for id in 2..=5 {
        let log = full(&net.nodes[&id]);
        assert_eq!(log, leader_log, "node {id}");
    }
    net.check_log_matching();
}

#[test]
fn s5_3_fast_backoff_skips_a_conflicting_term_in_one_round_trip() {
    // Follower 2 has 50 entries of term 2 that the leader never had.
    let mut stale = vec![1u64];
    stale.extend(std::iter::repeat_n(2, 50));
    let mut net = Net::with_logs(3, &[(1, &[1, 3]), (2, &stale), (3, &[1, 3])], |c| {
        c.max_batch = 1000
    });
    net.campaign(1);
    let mut rejects = 0;
    for _ in 0..20 {
        for id in [1, 2, 3] {
            net.process(id);
        }
        for m in std::mem::take(&mut net.queue) {
            if m.from == 2 && matches!(m.kind, MsgKind::AppendResp { reject: true, .. }) {
                rejects += 1;
            }
            net.deliver(m);
        }
    }
    assert_eq!(net.node(2).log().last_term(), net.node(1).log().last_term());
    assert!(rejects <= 2, "expected at most 2 rejections, got {rejects}");
}

// ----- 5.4 Safety -----

/// The scenario of Figure 8: S1 (leader of term 4) holds index 2 from term 2
/// on a majority. It must not commit it by counting replicas, because S5
/// (last term 3) can still be elected and overwrite it. Returns the term of
/// the entry S1 committed at index 2 (if any) and what became of index 2
/// afterwards: the term S2 holds there, or the panic of a follower asked to
/// overwrite an entry it knew committed.
fn figure8(bug: bool) -> (Option<u64>, Result<u64, String>) {
    let tweak = move |c: &mut Config| {
        c.pre_vote = false;
        c.check_quorum = false;
        c.max_batch = 1;
        c.bugs.commit_old_term = bug;
    };
    let mut net = Net::with_logs(
        5,
        &[
            (1, &[1, 2]),
            (2, &[1, 2]),
            (3, &[1]),
            (4, &[1]),
            (5, &[1, 3]),
        ],
        tweak,
    );
    // S1 restarted with term 3 (it saw S5's term); S5 is down.
    net.disks.get_mut(&1).unwrap().hs.term = 3;
    net.restart(1);
    net.crash(5);
    // Elect S1 and replicate, but lose every message carrying index 3 (S1's
    // no-op of term 4).
    let no_index3 = |m: &Message| !matches!(&m.kind, MsgKind::Append { entries, .. } if entries.iter().any(|e| e.index == 3));
    while net.queue.is_empty() {
        net.tick(1);
        net.process(1);
    }
    net.stabilize_filtered(no_index3);
    // Two heartbeat intervals in which no follower's match moves let S1
    // resend from what each is known to match, and so learn how far that is.
    for _ in 0..4 {
        net.tick(1);
    }
    net.stabilize_filtered(no_index3);
    assert_eq!(net.leader(), Some(1));
    assert_eq!(net.node(1).status().term, 4);
    let committed = net.node(1).status().commit;
    let s1_committed_at_2 = (committed >= 2).then(|| net.node(1).log().term(2).unwrap());
    // S1 crashes; S5 comes back and wins with its term-3 entry.
    net.crash(1);
    net.restart(5);
    let after = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for _ in 0..3 {
            net.campaign(5);
            if net.leader() == Some(5) {
                break;
            }
        }
        assert_eq!(net.leader(), Some(5));
        net.propose(5, 7);
        net.node(2).log().term(2).unwrap()
    }));
    let after = after.map_err(|p| p.downcast_ref::<String>().cloned().unwrap_or_default());
    (s1_committed_at_2, after)
}

#[test]
fn s5_4_2_figure8_leader_does_not_commit_entries_of_earlier_terms_by_counting() {
    let (committed, after) = figure8(false);
    assert_eq!(committed, None);
    assert_eq!(after, Ok(3), "S5 may overwrite the uncommitted entry");
}

#[test]
fn s5_4_2_planted_figure8_bug_loses_a_committed_entry() {
    let (committed, after) = figure8(true);
    assert_eq!(
        committed,
        Some(2),
        "with the bug S1 commits index 2 of term 2"
    );
    // ...which S5 then overwrites: either a follower trips over it or it is gone.
    match after {
        Ok(term) => assert_eq!(term, 3),
        Err(msg) => assert!(msg.contains("conflict at committed index 2"), "{msg}"),
    }
}

#[test]
fn s5_4_leader_completeness_and_state_machine_safety_under_random_faults() {
    for seed in 0..60 {
        random_schedule(seed, Bugs::default()).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

#[test]
fn planted_bugs_are_caught_by_the_random_schedule() {
    let bug = Bugs {
        vote_without_log_check: true,
        ..Bugs::default()
    };
    let found = (0..200).find(|&seed| random_schedule(seed, bug).is_err());
    assert!(
        found.is_some(),
        "vote_without_log_check went unnoticed for 200 seeds"
    );
}

/// Runs a random schedule (ticks, proposals, message loss, reordering,
/// duplicates, partitions, crashes with restarts, compaction) and checks
/// leader completeness and state machine safety throughout.
fn random_schedule(seed: u64, bugs: Bugs) -> Result<(), String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = if seed.is_multiple_of(2) { 3 } else { 5 };
    let mut net = Net::new(n, seed, move |c| c.bugs = bugs);
    net.compact_every = rng.random_range(5..40);
    let mut next_value = 0u64;
    // index -> (term, data, an upper bound of the term it was committed in)
    let mut committed: BTreeMap<u64, (u64, Vec<u8>, u64)> = BTreeMap::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for _step in 0..1500 {
            match rng.random_range(0..100) {
                0..=39 => {
                    let id = rng.random_range(1..=n);
                    net.tick(id);
                }
                40..=54 => {
                    if let Some(l) = net.leader() {
                        next_value += 1;
                        let _ = net.node(l).propose(next_value.to_le_bytes().to_vec());
                    }
                }
                55..=56 => {
                    let id = rng.random_range(1..=n);
                    net.crash(id);
                    net.restart(id);
                }
                57..=58 => {
                    net.heal();
                    let id = rng.random_range(1..=n);
                    net.isolate(id);
                }
                59..=60 => net.heal(),
                _ => {}
            }
            for id in 1..=n {
                net.process(id);
            }
            // Deliver a random subset in random order; drop or duplicate some.
            let mut q = std::mem::take(&mut net.queue);
            let mut keep = Vec::new();
            while !q.is_empty() {
                let m = q.swap_remove(rng.random_range(0..q.len()));
                match rng.random_range(0..100) {
                    0..=4 => {}
                    5..=7 => {
                        net.deliver(m.clone());
                        keep.push(m);
                    }
                    8..=30 => keep.push(m),
                    _ => net.deliver(m),
                }
            }
            net.queue.extend(keep);
            let max_term = net
                .nodes
                .values()
                .map(|r| r.status().term)
                .max()
                .unwrap_or(0);
            for (id, a) in &net.applied {
                for (i, t, d) in a {
                    if let Some((t0, d0, _)) = committed.get(i) {
                        if (t0, d0) != (t, d) {
                            return Err(format!(
                                "node {id} applied ({i},{t}) where ({i},{t0}) was applied before"
                            ));
                        }
                    } else {
                        committed.insert(*i, (*t, d.clone(), max_term));
                    }
                }
            }
            // Leader completeness: the leader of a term holds every entry
            // committed in an earlier term.
            for (l, r) in &net.nodes {
                let s = r.status();
                if s.role != Role::Leader {
                    continue;
                }
                let log = r.log();
                for (i, (t, _, commit_term)) in committed.range(log.snapshot_index() + 1..) {
                    if s.term > *commit_term && log.term(*i) != Some(*t) {
                        return Err(format!(
                            "leader {l} of term {} lacks committed entry ({i},{t})",
                            s.term
                        ));
                    }
                }
            }
            net.check_log_matching();
        }
        Ok(())
    }));
    match result {
        Ok(r) => r,
        Err(p) => Err(p
            .downcast_ref::<String>()
            .cloned()
            .or(p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()),
    }
}

// ----- 5.1 / Figure 2: persistent state -----

#[test]
fn s5_1_restarted_node_recovers_term_vote_and_log() {
    let mut net = Net::new(3, 4, |c| c.pre_vote = false);
    net.isolate(3);
    // Node 2 votes for node 1 in a new term.
    net.campaign(1);
    let l = net.leader().unwrap();
    net.propose(l, 5);
    let before = net.node(2).status();
    let vote = net.disks[&2].hs.vote;
    net.crash(2);
    net.restart(2);
    let after = net.node(2).status();
    assert_eq!(after.term, before.term);
    assert_eq!(net.node(2).log().last_index(), before.last_index);
    assert_eq!(vote, Some(l));
    // Having voted in this term, it refuses another candidate of the same term.
    let other = (1..=3).find(|&i| i != l && i != 2).unwrap();
    net.node(2).step(Message {
        from: other,
        to: 2,
        term: after.term,
        kind: MsgKind::Vote {
            last_index: 100,
            last_term: 100,
        },
    });
    let rd = net.node(2).ready();
    assert!(rd
        .messages
        .iter()
        .any(|m| m.kind == MsgKind::VoteResp { reject: true }));
}

// ----- 7 Log compaction -----

#[test]
fn s7_lagging_follower_catches_up_through_install_snapshot() {
    let mut net = Net::new(3, 5, |_| {});
    net.compact_every = 10;
    let l = net.elect();
    let lagger = (1..=3).find(|&i| i != l).unwrap();
    net.isolate(lagger);
    for v in 0..50 {
        net.propose(l, v);
    }
    assert!(net.node(l).log().snapshot_index() > 0);
    net.heal();
    for _ in 0..10 {
        net.tick(l);
        net.tick(l);
        net.stabilize();
    }
    assert!(net.snapshots_delivered > 0);
    assert_eq!(net.applied[&lagger].len(), net.applied[&l].len());
    net.check_applied_prefixes();
}

// ----- 6.4 Linearizable reads -----

#[test]
fn s6_4_read_index_needs_a_quorum_heartbeat() {
    let mut net = Net::new(3, 6, |_| {});
    let l = net.elect();
    net.propose(l, 1);
    net.node(l).read_index(42).unwrap();
    net.stabilize();
    assert_eq!(net.reads.iter().filter(|r| r.ctx == 42).count(), 1);
    // A leader cut off from everyone cannot confirm a read.
    net.isolate(l);
    net.node(l).read_index(43).unwrap();
    net.stabilize();
    assert!(net.reads.iter().all(|r| r.ctx != 43));
}

#[test]
fn s6_4_planted_read_without_quorum_answers_while_isolated() {
    let mut net = Net::new(3, 6, |c| c.bugs.read_without_quorum = true);
    let l = net.elect();
    net.isolate(l);
    net.node(l).read_index(43).unwrap();
    net.stabilize();
    assert!(net.reads.iter().any(|r| r.ctx == 43));
}

#[test]
fn followers_answer_not_leader_with_a_hint() {
    let mut net = Net::new(3, 8, |_| {});
    let l = net.elect();
    let f = (1..=3).find(|&i| i != l).unwrap();
    assert_eq!(
        net.node(f).propose(vec![1]),
        Err(Error::NotLeader { leader: Some(l) })
    );
    assert_eq!(
        net.node(f).read_index(1),
        Err(Error::NotLeader { leader: Some(l) })
    );
}

/// A heartbeat answered while an append is still on its way to the
/// follower does not send that append again; once the follower's match has
/// not moved for a whole heartbeat interval (the append was lost), the next
/// answer does. Returns how many times index 2 went to the follower while it
/// was in flight, then in all.
fn resend_on_heartbeat() -> (usize, usize, bool) {
    let mut net = Net::new(3, 9, |c| c.max_batch = 1);
    let l = net.elect();
    let f = (1..=3).find(|&i| i != l).unwrap();
    let (index, _) = net.node(l).propose(vec![7]).unwrap();
    net.process(l);
    // The append to `f` is on its way (held here); the other follower's is
    // delivered and commits the entry.
    let to_f = |m: &Message| {
        m.to == f
            && matches!(&m.kind, MsgKind::Append { entries, .. } if entries.iter().any(|e| e.index == index))
    };
    let held: Vec<Message> = net.queue.iter().filter(|m| to_f(m)).cloned().collect();
    assert_eq!(held.len(), 1);
    net.queue.retain(|m| !to_f(m));
    let sent = std::cell::Cell::new(0);
    let count = |m: &Message| {
        if to_f(m) {
            sent.set(sent.get() + 1);
        }
        true
    };
    // One heartbeat interval, answered.
    for _ in 0..2 {
        net.tick(l);
    }
    net.stabilize_filtered(count);
    let while_in_flight = sent.get();
    // The held append is lost. Another interval without f's match moving.
    for _ in 0..2 {
        net.tick(l);
    }
    net.stabilize_filtered(count);
    let has = net.node(f).log().last_index() >= index;
    (while_in_flight, sent.get(), has)
}

#[test]
fn a_heartbeat_answer_resends_appends_only_to_a_stalled_follower() {
    let (while_in_flight, total, has) = resend_on_heartbeat();
    assert_eq!(while_in_flight, 0, "an append on its way was sent again");
    assert_eq!(total, 1, "the lost append was not sent again");
    assert!(has, "the follower never got the lost entry");
}

// ----- Stale messages (duplicated, or overtaken by newer ones) -----

/// A follower gets an old Append again after newer ones: it keeps its
/// longer log; with the planted bug it drops the entries after the stale
/// message's last one, though they match and it had acknowledged them.
fn stale_append(bug: bool) -> (u64, u64) {
    let mut net = Net::new(3, 5, move |c| c.bugs.truncate_on_stale_append = bug);
    let l = net.elect();
    let f = *net.ids.iter().find(|&&id| id != l).unwrap();
    // Five entries, each in its own Append to f, none committed yet.
    let mut to_f = Vec::new();
    for v in 1..=5u8 {
        net.node(l).propose(vec![v]).expect("leader");
        net.process(l);
        let (mine, rest): (Vec<Message>, Vec<Message>) =
            net.queue.drain(..).partition(|m| m.to == f);
        net.queue = rest;
        to_f.extend(mine);
    }
    for m in to_f.clone() {
        net.deliver(m);
    }
    let before = net.node(f).log().last_index();
    let first = to_f
        .into_iter()
        .find(|m| matches!(&m.kind, MsgKind::Append { entries, .. } if !entries.is_empty()))
        .expect("an Append with entries");
    net.deliver(first);
    assert_eq!(net.node(f).stale_appends(), 1);
    (before, net.node(f).log().last_index())
}

#[test]
fn a_stale_append_leaves_a_longer_matching_log_alone() {
    let (before, after) = stale_append(false);
    assert_eq!(before, after);
}

#[test]
fn planted_truncate_on_stale_append_drops_acknowledged_entries() {
    let (before, after) = stale_append(true);
    assert!(after < before, "{after} < {before}");
}
