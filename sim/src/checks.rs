//! Safety checks over the nodes' internal events, run continuously as
//! events arrive: at most one leader per term; every node applies the same
//! entry at the same index (so the applied sequences of all nodes are
//! prefixes of one sequence, and no committed entry is ever replaced, across
//! crashes and restarts included).

use bookstore::node::NodeEvent;
use raft::Role;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct RaftChecker {
    /// term -> the node that led it.
    leaders: BTreeMap<u64, u64>,
    /// index -> (term, digest, first node that applied it).
    applied: BTreeMap<u64, (u64, u64, u64)>,
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
            NodeEvent::Applied { index, term, digest } => match self.applied.get(&index) {
                Some(&(t, d, first)) if (t, d) != (term, digest) => self.fail(format!(
                    "node {node} applied entry {index} of term {term} (digest {digest:x}) but node {first} applied entry {index} of term {t} (digest {d:x}): a committed entry was lost or replaced"
                )),
                Some(_) => {}
                None => {
                    self.applied.insert(index, (term, digest, node));
                }
            },
            _ => {}
        }
    }

    fn fail(&mut self, msg: String) {
        if self.violations.len() < 20 {
            self.violations.push(msg);
        }
    }

    pub fn highest_applied(&self) -> u64 {
        self.applied.keys().next_back().copied().unwrap_or(0)
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

    #[test]
    fn a_replaced_applied_entry_is_caught() {
        let mut c = RaftChecker::default();
        c.observe(1, &applied(5, 2, 0xaa));
        c.observe(3, &applied(5, 3, 0xbb));
        assert_eq!(c.violations.len(), 1);
        assert!(c.violations[0].contains("committed entry was lost or replaced"));
    }
}
