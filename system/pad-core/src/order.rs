//! Orders: the statuses of the course's schema and the orchestrated saga
//! that `initOrder` starts.
//!
//! The status a client sees moves only along CREATED → APPROVED → PAID or
//! PAYMENT_FAILED, or CREATED → ITEMS_REJECTED. The saga's durable
//! progress ([`Saga`]) has one more thing to say than the status: a charge
//! was refused and the units are still held, so they must be given back
//! before PAYMENT_FAILED is shown (PAYMENT_FAILED means nothing is held).
//! Every step is idempotent, keyed by the order id, so whichever replica
//! resumes a saga after a crash runs the step its record names again.

use serde::{Deserialize, Serialize};

/// The schema's `OrderStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Unknown,
    Created,
    Approved,
    Paid,
    PaymentFailed,
    ItemsRejected,
    Unrecognized,
}

impl Status {
    /// The name the schema's enum uses.
    pub fn name(self) -> &'static str {
        match self {
            Status::Unknown => "UNKNOWN",
            Status::Created => "CREATED",
            Status::Approved => "APPROVED",
            Status::Paid => "PAID",
            Status::PaymentFailed => "PAYMENT_FAILED",
            Status::ItemsRejected => "ITEMS_REJECTED",
            Status::Unrecognized => "UNRECOGNIZED",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Paid | Status::PaymentFailed | Status::ItemsRejected
        )
    }

    /// Whether an order may move from `self` to `to` (what the harness
    /// checks of every status a client read).
    pub fn may_move_to(self, to: Status) -> bool {
        use Status::*;
        self == to
            || matches!(
                (self, to),
                (Created, Approved | ItemsRejected) | (Approved, Paid | PaymentFailed)
            )
    }
}

/// The next step of a saga.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Hold every line's units at the catalogue (all or none).
    Reserve,
    /// Charge the user the order's total.
    Charge,
    /// Give the held units back (the charge was refused).
    Release,
    /// Empty the user's cart (the order is paid).
    ClearCart,
    /// Nothing left to do.
    Done,
}

/// A saga's durable record: the status clients see and the step to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saga {
    pub status: Status,
    pub next: Step,
    /// Why it failed, for people (ITEMS_REJECTED, PAYMENT_FAILED).
    #[serde(default)]
    pub reason: String,
}

/// What a step's call answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done (or done before: the steps are idempotent).
    Done,
    /// Refused for good (out of stock, out of credit), with the reason.
    Refused(String),
}

impl Saga {
    /// A new order's record.
    pub fn new() -> Saga {
        Saga {
            status: Status::Created,
            next: Step::Reserve,
            reason: String::new(),
        }
    }

    /// The record after the current step answered `outcome` (an unknown
    /// answer is no outcome: the step runs again).
    pub fn after(&self, outcome: Outcome) -> Saga {
        let with = |status, next, reason: String| Saga {
            status,
            next,
            reason,
        };
        match (&self.next, outcome) {
            (Step::Reserve, Outcome::Done) => with(Status::Approved, Step::Charge, String::new()),
            (Step::Reserve, Outcome::Refused(r)) => with(Status::ItemsRejected, Step::Done, r),
            (Step::Charge, Outcome::Done) => with(Status::Paid, Step::ClearCart, String::new()),
            // Still APPROVED to clients: units are held until given back.
            (Step::Charge, Outcome::Refused(r)) => with(Status::Approved, Step::Release, r),
            (Step::Release, _) => with(Status::PaymentFailed, Step::Done, self.reason.clone()),
            (Step::ClearCart, _) => with(Status::Paid, Step::Done, String::new()),
            (Step::Done, _) => self.clone(),
        }
    }
}

impl Default for Saga {
    fn default() -> Self {
        Saga::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_three_endings() {
        let s = Saga::new();
        let paid = s.after(Outcome::Done).after(Outcome::Done);
        assert_eq!((paid.status, &paid.next), (Status::Paid, &Step::ClearCart));
        assert_eq!(paid.after(Outcome::Done).next, Step::Done);
        let rejected = s.after(Outcome::Refused("out of stock: 3".into()));
        assert_eq!(
            (rejected.status, rejected.reason.as_str()),
            (Status::ItemsRejected, "out of stock: 3")
        );
        let refused = s
            .after(Outcome::Done)
            .after(Outcome::Refused("out of credit".into()));
        assert_eq!(
            (refused.status, &refused.next),
            (Status::Approved, &Step::Release)
        );
        let failed = refused.after(Outcome::Done);
        assert_eq!(
            (failed.status, failed.reason.as_str()),
            (Status::PaymentFailed, "out of credit")
        );
        assert_eq!(Status::PaymentFailed.name(), "PAYMENT_FAILED");
        assert_eq!(
            serde_json::to_string(&Status::ItemsRejected).unwrap(),
            "\"ITEMS_REJECTED\""
        );
    }

    proptest! {
        /// Whatever the steps answer, the status only moves along the
        /// allowed edges and ends final within four steps.
        #[test]
        fn statuses_move_only_along_the_allowed_edges(refusals in proptest::collection::vec(any::<bool>(), 4)) {
            let mut s = Saga::new();
            for refused in refusals {
                let next = s.after(if refused { Outcome::Refused("no".into()) } else { Outcome::Done });
                prop_assert!(s.status.may_move_to(next.status), "{:?} -> {:?}", s.status, next.status);
                s = next;
            }
            prop_assert!(s.status.is_final());
            prop_assert!(s.next == Step::Done || s.next == Step::ClearCart);
        }
    }
}
