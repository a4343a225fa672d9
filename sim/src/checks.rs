//! Safety checks over the nodes' internal events, run continuously as
//! events arrive: at most one leader per term; every node applies the same
//! entry at the same index (so the applied sequences of all nodes are
//! prefixes of one sequence, and no committed entry is ever replaced, across
//! crashes and restarts included); a new leader holds every entry
//! committed in an earlier term (Leader Completeness, Raft 5.4); and a
//! read answered by a leader reflects every entry committed before it
//! arrived (ReadIndex, Raft thesis 6.4); and a node restarted after a crash
//! recovers at least the term and vote it had promised in messages sent
//! before the crash (Raft keeps both on stable storage before answering).

use bookstore::node::NodeEvent;
use raft::Role;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct RaftChecker {
    /// term -> the node that led it.
    leaders: BTreeMap<u64, u64>,
    /// index -> (term, digest, first node that applied it).
    applied: BTreeMap<u64, (u64, u64, u64)>,
    /// node -> (term, vote) of the last messages it sent since it started.
    promised: BTreeMap<u64, (u64, Option<u64>)>,
    /// term -> highest index a node in that term saw committed (so every
    /// entry up to it was committed in that term or earlier).
    committed_by: BTreeMap<u64, u64>,
    /// Highest commit index any node has reported.
    max_commit: u64,
    /// (node, read id) -> `max_commit` when the read arrived.
    reads: BTreeMap<(u64, u64), u64>,
    /// What was violated, in the order seen (at most 20).
    pub violations: Vec<String>,
}

impl RaftChecker {
    pub fn observe(&mut self, node: u64, ev: &NodeEvent) {
        match *ev {
            NodeEvent::Role { term, role: Role::Leader, .. } => {
                if let Some(&other) = self.leaders.get(&term) {
                    if other != node {
                        self.fail(format!("two leaders in term {term}: node {other} and node {node}"));
                    }
                } else {
                    self.leaders.insert(term, node);
                }
            }
            NodeEvent::Commit { index, term } => {
                let c = self.committed_by.entry(term).or_insert(0);
                *c = (*c).max(index);
                self.max_commit = self.max_commit.max(index);
            }
            NodeEvent::ReadArrived { id } => {
                self.reads.insert((node, id), self.max_commit);
            }
            NodeEvent::ReadServed { id, applied } => {
                if let Some(required) = self.reads.remove(&(node, id)) {
                    if applied < required {
                        self.fail(format!(
                            "node {node} answered a read at applied index {applied}, but index {required} was committed before the read arrived: a stale read"
                        ));
                    }
                }
            }
            NodeEvent::Elected {
                term,
                snapshot_index,
                last_index,
                ref runs,
            } => self.check_leader_log(node, term, snapshot_index, last_index, runs),
            NodeEvent::Promised { term, vote } => {
                self.promised.insert(node, (term, vote));
            }
            NodeEvent::Recovered { term, vote, .. } => {
                // Read ids start again at 1.
                self.reads.retain(|(n, _), _| *n != node);
                if let Some((pt, pv)) = self.promised.insert(node, (term, vote)) {
                    let kept = term > pt || (term == pt && (pv.is_none() || vote == pv));
                    if !kept {
                        self.fail(format!(
                            "node {node} recovered term {term} vote {} after a crash, but before it had sent messages in term {pt} with vote {}: term and vote were not durable before the messages that depend on them",
                            show_vote(vote),
                            show_vote(pv)
                        ));
                    }
                }
            }
            NodeEvent::Applied { index, term, digest } => match self.applied.get(&index) {
                Some(&(t, d, first)) if (t, d) != (term, digest) => self.fail(format!(
                    "node {node} applied entry {index} of term {term} (digest {}) but node {first} had applied entry {index} of term {t} (digest {}){}: a committed entry was lost or replaced",
                    show_digest(digest),
                    show_digest(d),
                    if first == node {
                        " before (the same node, two different entries at one index)"
                    } else {
                        ""
                    }
                )),
                Some(_) => {}
                None => {
                    self.applied.insert(index, (term, digest, node));
                }
            },
            _ => {}
        }
    }

    /// Leader Completeness: the leader of `term` holds every applied entry
    /// committed in an earlier term (those in its snapshot are not checked).
    fn check_leader_log(
        &mut self,
        node: u64,
        term: u64,
        snapshot_index: u64,
        last_index: u64,
        runs: &[(u64, u64)],
    ) {
        let h = self
            .committed_by
            .range(..term)
            .map(|(_, &i)| i)
            .max()
            .unwrap_or(0);
        if h <= snapshot_index {
            return;
        }
        // Entries of `term` are the ones it appended since it won (no
        // other node leads that term): the log it won with ends before them.
        let won_with = runs
            .iter()
            .find(|&&(_, t)| t == term)
            .map_or(last_index, |&(first, _)| first - 1);
        let term_at = |i: u64| -> Option<u64> {
            if i > won_with {
                return None;
            }
            let k = runs.partition_point(|&(first, _)| first <= i);
            k.checked_sub(1).map(|k| runs[k].1)
        };
        let missing = self
            .applied
            .range(snapshot_index + 1..=h)
            .find(|(&i, &(t, _, _))| term_at(i) != Some(t))
            .map(|(&i, &(t, _, first))| (i, t, first));
        if let Some((i, t, first)) = missing {
            let has = match term_at(i) {
                Some(lt) => format!("an entry of term {lt} there"),
                None => format!("a log ending at index {won_with}"),
            };
            self.fail(format!(
                "node {node} became leader of term {term} with {has}, but entry {i} of term {t} (applied by node {first}) was committed before term {term}: a leader lacks a committed entry"
            ));
        }
    }

    fn fail(&mut self, msg: String) {
        if self.violations.len() < 20 {
            self.violations.push(msg);
        }
    }

    /// The highest commit index any node of the group has reported.
    pub fn max_commit(&self) -> u64 {
        self.max_commit
    }

    pub fn highest_applied(&self) -> u64 {
        self.applied.keys().next_back().copied().unwrap_or(0)
    }
}

fn show_vote(v: Option<u64>) -> String {
    v.map_or("none".into(), |n| format!("for node {n}"))
}

/// An applied entry's digest as a message shows it: an empty entry (a new
/// leader's first, whose digest is FNV's offset basis) says so, since two
/// of them in different terms show the same digest.
fn show_digest(d: u64) -> String {
    if d == bookstore::node::digest(&[]) {
        format!("{d:x}, an empty entry")
    } else {
        format!("{d:x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(index: u64, term: u64, digest: u64) -> NodeEvent {
        NodeEvent::Applied {
            index,
            term,
            digest,
        }
    }

    #[test]
    fn consistent_events_pass() {
        let mut c = RaftChecker::default();
        c.observe(
            1,
            &NodeEvent::Role {
                term: 1,
                role: Role::Leader,
                leader: Some(1),
            },
        );
        c.observe(
            1,
            &NodeEvent::Role {
                term: 1,
                role: Role::Leader,
                leader: Some(1),
            },
        );
        c.observe(
            2,
            &NodeEvent::Role {
                term: 2,
                role: Role::Leader,
                leader: Some(2),
            },
        );
        for n in 1..=3 {
            c.observe(n, &applied(1, 1, 10));
            c.observe(n, &applied(2, 1, 20));
        }
        // A restarted node re-applies the same entries: fine.
        c.observe(2, &applied(1, 1, 10));
        assert!(c.violations.is_empty(), "{:?}", c.violations);
    }

    #[test]
    fn two_leaders_in_one_term_are_caught() {
        let mut c = RaftChecker::default();
        c.observe(
            1,
            &NodeEvent::Role {
                term: 3,
                role: Role::Leader,
                leader: Some(1),
            },
        );
        c.observe(
            2,
            &NodeEvent::Role {
                term: 3,
                role: Role::Leader,
                leader: Some(2),
            },
        );
        assert_eq!(c.violations.len(), 1);
        assert!(c.violations[0].contains("two leaders in term 3"));
    }

    fn recovered(term: u64, vote: Option<u64>) -> NodeEvent {
        NodeEvent::Recovered {
            term,
            vote,
            last_index: 0,
            snapshot_index: 0,
            cut_bytes: 0,
            floor: None,
            damaged: false,
        }
    }

    #[test]
    fn a_vote_or_term_lost_in_a_crash_is_caught() {
        let mut c = RaftChecker::default();
        c.observe(1, &recovered(0, None));
        c.observe(
            1,
            &NodeEvent::Promised {
                term: 2,
                vote: Some(3),
            },
        );
        // Recovering what was promised, or more, is fine.
        c.observe(1, &recovered(2, Some(3)));
        c.observe(
            1,
            &NodeEvent::Promised {
                term: 3,
                vote: None,
            },
        );
        c.observe(1, &recovered(4, Some(1)));
        c.observe(
            1,
            &NodeEvent::Promised {
                term: 4,
                vote: None,
            },
        );
        c.observe(1, &recovered(4, Some(2)));
        assert!(c.violations.is_empty(), "{:?}", c.violations);
        // A vote forgotten, then a term forgotten.
        c.observe(
            1,
            &NodeEvent::Promised {
                term: 5,
                vote: Some(2),
            },
        );
        c.observe(1, &recovered(5, None));
        c.observe(
            1,
            &NodeEvent::Promised {
                term: 6,
                vote: None,
            },
        );
        c.observe(1, &recovered(5, None));
        assert_eq!(c.violations.len(), 2, "{:?}", c.violations);
        assert!(c.violations[0].contains("recovered term 5 vote none"));
        assert!(c.violations[1].contains("sent messages in term 6"));
    }

    fn elected(term: u64, last_index: u64, runs: Vec<(u64, u64)>) -> NodeEvent {
        NodeEvent::Elected {
            term,
            snapshot_index: 0,
            last_index,
            runs,
        }
    }

    #[test]
    fn a_leader_without_a_committed_entry_is_caught() {
        let mut c = RaftChecker::default();
        for i in 1..=3 {
            c.observe(1, &applied(i, 1, i));
        }
        c.observe(1, &applied(4, 2, 4));
        c.observe(1, &NodeEvent::Commit { index: 4, term: 3 });
        // Entries 1-4 were committed by term 3 at the latest: a leader of
        // term 3 may lack some (it may have been elected before), a
        // leader of term 4 may not.
        c.observe(2, &elected(3, 3, vec![(1, 1)]));
        c.observe(3, &elected(4, 5, vec![(1, 1), (4, 2), (5, 4)]));
        assert!(c.violations.is_empty(), "{:?}", c.violations);
        c.observe(2, &elected(4, 3, vec![(1, 1)]));
        c.observe(2, &elected(5, 5, vec![(1, 1), (4, 3)]));
        assert_eq!(c.violations.len(), 2, "{:?}", c.violations);
        assert!(c.violations[0].contains("log ending at index 3"));
        assert!(c.violations[1].contains("entry 4 of term 2"));
        // A new leader's log ends with the empty entry it appends on
        // winning: the message names the log it won with, not that entry.
        c.observe(3, &elected(6, 4, vec![(1, 1), (4, 6)]));
        assert_eq!(c.violations.len(), 3, "{:?}", c.violations);
        assert!(
            c.violations[2].starts_with("node 3 became leader of term 6 with a log ending at index 3, but entry 4 of term 2"),
            "{}",
            c.violations[2]
        );
    }

    #[test]
    fn a_stale_read_is_caught() {
        let mut c = RaftChecker::default();
        c.observe(1, &NodeEvent::Commit { index: 10, term: 1 });
        c.observe(1, &NodeEvent::ReadArrived { id: 1 });
        // Committed after the read arrived: the read need not see it.
        c.observe(2, &NodeEvent::Commit { index: 12, term: 2 });
        c.observe(1, &NodeEvent::ReadServed { id: 1, applied: 10 });
        assert!(c.violations.is_empty(), "{:?}", c.violations);
        c.observe(1, &NodeEvent::ReadArrived { id: 2 });
        c.observe(1, &NodeEvent::ReadServed { id: 2, applied: 11 });
        assert_eq!(c.violations.len(), 1, "{:?}", c.violations);
        assert!(c.violations[0].contains("index 12 was committed before the read arrived"));
    }

    #[test]
    fn a_replaced_applied_entry_is_caught() {
        let mut c = RaftChecker::default();
        c.observe(1, &applied(5, 2, 0xaa));
        c.observe(3, &applied(5, 3, 0xbb));
        assert_eq!(c.violations.len(), 1);
        assert!(c.violations[0].contains("committed entry was lost or replaced"));
        // Two empty entries (new leaders' first) in different terms.
        let empty = bookstore::node::digest(&[]);
        let mut c = RaftChecker::default();
        c.observe(1, &applied(7, 9, empty));
        c.observe(3, &applied(7, 8, empty));
        assert!(
            c.violations[0].contains("of term 9 (digest cbf29ce484222325, an empty entry)"),
            "{:?}",
            c.violations
        );
    }
}
