//! # shopcheck: did the bookstore's checkouts conserve stock and money?
//!
//! The bookstore-specific checks of a recorded history, built on the
//! generic [`checker`] crate (its [`History`](checker::History) and native
//! JSON Lines format). A checkout moves stock and money between several
//! objects (an order, its items, its user) through a saga or a two-phase
//! commit, so what matters is end to end: from the initial state, the
//! client operations and the state read after every fault healed,
//! [`invariants::check_checkout`] checks that stock and credit are
//! conserved, nothing is negative, and every answer the clients got agrees
//! with what was paid. [`invariants_html`] renders a result as one
//! self-contained HTML page.
//!
//! ```
//! use checker::History;
//! use shopcheck::invariants::{check_checkout, Verdict};
//!
//! let h = History::from_jsonl(r#"
//! {"process":"setup","type":"ok","f":"init","value":{"users":{"u1":5}}}
//! {"process":"final","type":"ok","f":"final","value":{"users":{"u1":5}}}
//! "#).unwrap();
//! let r = check_checkout(&h);
//! assert_eq!(r.verdict, Verdict::Valid);
//! let page = shopcheck::invariants_html(&h, &r, "checkout");
//! assert!(page.contains("data-rendered"));
//! ```
//!
//! The `shopcheck FILE [--json] [--report PATH]` binary does the same from
//! the command line (exit 0 valid, 1 invalid, 3 bad input or usage).

pub mod invariants;
pub mod report;

pub use invariants::{check_checkout, InvariantResult};
pub use report::invariants_html;
