//! The checkout coordinators, SAGA and 2PC, as one pure state machine: the
//! durable [`TxRecord`] says where a checkout is; [`next_step`] says what to
//! do from there; [`after`] says which record to write once the step has a
//! definite outcome. No clock, socket or store in here: the async shell in
//! [`super::orders`] reads the record, runs the step against the
//! participants (retrying a step whose outcome is unknown: every step is
//! idempotent by transaction id), and writes the next record with a
//! compare-and-set, so concurrent drivers of one checkout (a client and a
//! recovering replica) agree on every decision.
//!
//! SAGA: `reserving` (take the stock) -> `charging` (take the money) ->
//! `done`, and the order is marked paid in the same write. A refusal moves to
//! `compensating` (give back whatever may have been taken) -> `failed`.
//!
//! 2PC: `preparing` (both participants take and hold, in parallel, and vote)
//! -> decision `committed` (order paid in the same write: this record is the
//! durable decision log) -> both commit -> `done`; or decision `aborting` ->
//! both release -> `failed`. A participant's prepared state is a record in
//! its own replicated store, so it survives any crash; a stalled transaction
//! is driven to its end by the order replicas' recovery loop.

use super::keys::OrderRec;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    #[default]
    #[serde(rename = "saga")]
    Saga,
    #[serde(rename = "2pc")]
    TwoPc,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Saga => "saga",
            Mode::TwoPc => "2pc",
        }
    }
    pub fn by_name(s: &str) -> Result<Mode, String> {
        match s {
            "saga" => Ok(Mode::Saga),
            "2pc" => Ok(Mode::TwoPc),
            _ => Err(format!("unknown checkout mode '{s}': expected saga or 2pc")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Reserving,
    Charging,
    Compensating,
    Preparing,
    Committed,
    Aborting,
    Done,
    Failed,
}

/// The durable progress of one checkout attempt (key `tx/<order id>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxRecord {
    pub tx_id: String,
    pub mode: Mode,
    pub phase: Phase,
    pub user: String,
    pub lines: Vec<(String, i64)>,
    pub total: i64,
    /// A charge may have been sent: undoing must refund.
    #[serde(default)]
    pub refund: bool,
    /// Why it failed (for the client's answer).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl TxRecord {
    pub fn terminal(&self) -> bool {
        matches!(self.phase, Phase::Done | Phase::Failed)
    }
}

/// What the driver must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// SAGA: take the stock of every line.
    Reserve,
    /// SAGA: take the money.
    Charge,
    /// 2PC phase 1: reserve and charge in parallel; both vote.
    Prepare,
    /// 2PC phase 2 after the commit decision.
    Commit,
    /// Give back what may have been taken (SAGA compensation, 2PC abort).
    Undo { release: bool, refund: bool },
    /// Nothing left to do.
    Finished { paid: bool },
}

/// The definite outcome of a step (unknown outcomes never get here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Yes,
    No(String),
}

/// The planted bugs the coordinator knows about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoordinatorBugs {
    /// When the payment is refused, the reserved stock is not given back.
    pub no_compensation: bool,
}

/// A new checkout attempt of `order`.
pub fn start(mode: Mode, tx_id: String, order: &OrderRec) -> TxRecord {
    TxRecord {
        tx_id,
        mode,
        phase: match mode {
            Mode::Saga => Phase::Reserving,
            Mode::TwoPc => Phase::Preparing,
        },
        user: order.user.clone(),
        lines: super::keys::merge_lines(order.items.iter().cloned()),
        total: order.total,
        refund: false,
        reason: String::new(),
    }
}

pub fn next_step(rec: &TxRecord, bugs: CoordinatorBugs) -> Step {
    match rec.phase {
        Phase::Reserving => Step::Reserve,
        Phase::Charging => Step::Charge,
        Phase::Preparing => Step::Prepare,
        Phase::Committed => Step::Commit,
        Phase::Compensating => Step::Undo {
            release: !(bugs.no_compensation && rec.refund),
            refund: rec.refund,
        },
        Phase::Aborting => Step::Undo {
            release: true,
            refund: true,
        },
        Phase::Done => Step::Finished { paid: true },
        Phase::Failed => Step::Finished { paid: false },
    }
}

/// The record to write after `rec`'s step ended with `outcome`, and whether
/// the same write marks the order paid.
pub fn after(rec: &TxRecord, outcome: Outcome) -> (TxRecord, bool) {
    let mut next = rec.clone();
    let mut paid = false;
    next.phase = match (rec.phase, outcome) {
        (Phase::Reserving, Outcome::Yes) => Phase::Charging,
        (Phase::Charging, Outcome::Yes) => {
            paid = true;
            Phase::Done
        }
        (Phase::Preparing, Outcome::Yes) => {
            paid = true;
            Phase::Committed
        }
        (Phase::Committed, _) => Phase::Done,
        (Phase::Reserving, Outcome::No(r)) => {
            next.reason = r;
            Phase::Compensating
        }
        (Phase::Charging, Outcome::No(r)) => {
            next.reason = r;
            // A charge was sent (maybe by another driver): refund it, or
            // leave a tombstone that refuses a late one.
            next.refund = true;
            Phase::Compensating
        }
        (Phase::Preparing, Outcome::No(r)) => {
            next.reason = r;
            next.refund = true;
            Phase::Aborting
        }
        (Phase::Compensating | Phase::Aborting, _) => Phase::Failed,
        (p @ (Phase::Done | Phase::Failed), _) => p,
    };
    (next, paid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> OrderRec {
        OrderRec {
            user: "u".into(),
            items: vec![("a".into(), 1), ("b".into(), 2), ("a".into(), 1)],
            total: 7,
            paid: false,
        }
    }

    /// Runs a record to the end with the given answers, returning the
    /// steps taken and whether the order was marked paid.
    fn run(mode: Mode, bugs: CoordinatorBugs, mut answers: Vec<Outcome>) -> (Vec<Step>, bool) {
        let mut rec = start(mode, "t".into(), &order());
        let mut steps = vec![];
        let mut paid = false;
        loop {
            let s = next_step(&rec, bugs);
            steps.push(s.clone());
            if let Step::Finished { paid: p } = s {
                assert_eq!(p, paid);
                return (steps, paid);
            }
            let o = if answers.is_empty() {
                Outcome::Yes
            } else {
                answers.remove(0)
            };
            let (n, p) = after(&rec, o);
            paid |= p;
            rec = n;
        }
    }

    #[test]
    fn start_merges_repeated_items() {
        let r = start(Mode::Saga, "t".into(), &order());
        assert_eq!(r.lines, vec![("a".into(), 2), ("b".into(), 2)]);
    }

    #[test]
    fn saga_happy_path_reserves_charges_and_pays() {
        let (steps, paid) = run(Mode::Saga, Default::default(), vec![]);
        assert_eq!(
            steps,
            vec![Step::Reserve, Step::Charge, Step::Finished { paid: true }]
        );
        assert!(paid);
    }

    #[test]
    fn saga_out_of_stock_releases_without_refund() {
        let (steps, paid) = run(
            Mode::Saga,
            Default::default(),
            vec![Outcome::No("out of stock".into())],
        );
        assert_eq!(
            steps,
            vec![
                Step::Reserve,
                Step::Undo {
                    release: true,
                    refund: false
                },
                Step::Finished { paid: false }
            ]
        );
        assert!(!paid);
    }

    #[test]
    fn saga_refused_payment_compensates_both() {
        let answers = vec![Outcome::Yes, Outcome::No("out of credit".into())];
        let (steps, _) = run(Mode::Saga, Default::default(), answers.clone());
        assert_eq!(
            steps[2],
            Step::Undo {
                release: true,
                refund: true
            }
        );
        // The planted bug keeps the stock.
        let bug = CoordinatorBugs {
            no_compensation: true,
        };
        let (steps, _) = run(Mode::Saga, bug, answers);
        assert_eq!(
            steps[2],
            Step::Undo {
                release: false,
                refund: true
            }
        );
    }

    #[test]
    fn two_pc_commit_decision_marks_paid_then_commits() {
        let (steps, paid) = run(Mode::TwoPc, Default::default(), vec![]);
        assert_eq!(
            steps,
            vec![Step::Prepare, Step::Commit, Step::Finished { paid: true }]
        );
        assert!(paid);
    }

    #[test]
    fn two_pc_no_vote_aborts_both_participants() {
        let (steps, paid) = run(
            Mode::TwoPc,
            Default::default(),
            vec![Outcome::No("x".into())],
        );
        assert_eq!(
            steps,
            vec![
                Step::Prepare,
                Step::Undo {
                    release: true,
                    refund: true
                },
                Step::Finished { paid: false }
            ]
        );
        assert!(!paid);
    }

    #[test]
    fn records_round_trip_through_json() {
        let r = start(Mode::TwoPc, "t".into(), &order());
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<TxRecord>(&s).unwrap(), r);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            s,
            "same record, same string (CAS relies on it)"
        );
    }
}
