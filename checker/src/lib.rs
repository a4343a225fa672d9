//! # checker: is this history of client operations correct?
//!
//! A small, self-contained linearizability checker in the style of
//! [Porcupine](https://github.com/anishathalye/porcupine) and Knossos.
//! Feed it a *history* (invocations and completions of operations by
//! concurrent clients) and a *model* (a sequential specification such as a
//! register or a key-value map); it answers whether some total order of the
//! operations, consistent with real time, explains every observed result.
//!
//! What it is for:
//! - checking histories recorded by this project's simulation harness
//!   ([`linear::check`] with `threads: 1` never spawns a thread, so it is safe
//!   to call inside madsim);
//! - checking Jepsen EDN histories and Porcupine test logs from the command
//!   line (`checker check FILE`), with an HTML report explaining a failure.
//!
//! What it is not for:
//! - it does not know anything about the bookstore, Raft or madsim, and
//!   depends on none of them: it is a library anyone can use;
//! - it does not check liveness. Linearizability covers single-object
//!   operations (per key for the key-value model) and Knossos's
//!   multi-register transactions; transactional isolation (Elle-style:
//!   list-append and rw-register transactions, anomalies G0 to G2 and the
//!   consistency models they rule out) is [`isolation`]. Checks that need to know
//!   an application (end-to-end invariants of its transactions, say) belong
//!   in crates of their own, built on [`History`].
//!
//! ```
//! use checker::{check, History, ModelKind, Options, Verdict};
//!
//! // p1 writes 1; afterwards p2 reads 2, which nobody wrote.
//! let h = History::from_jsonl(
//!     r#"{"process":1,"type":"invoke","f":"write","value":1}
//! {"process":1,"type":"ok","f":"write","value":1}
//! {"process":2,"type":"invoke","f":"read","value":null}
//! {"process":2,"type":"ok","f":"read","value":2}"#,
//! )
//! .unwrap();
//! let r = check(&h, ModelKind::Register, &Options::default());
//! assert_eq!(r.verdict, Verdict::NotLinearizable);
//! assert_eq!(r.failing, vec![2]);
//! ```
//!
//! Each format has its own meaning ([`history::Semantics`]): Jepsen EDN
//! histories are read as Jepsen and Knossos read them (a `:fail` did not
//! happen, a read of `nil` constrains nothing), native JSON Lines and
//! Porcupine logs as Porcupine reads them (a failed cas observed the value).
//!
//! Layout, in data-flow order: [`history`] (the operation model and the
//! native JSON Lines format), [`edn`] and [`formats`] (readers and writers
//! for other formats), [`model`] (sequential specifications), [`linear`]
//! (the search), [`report`] (the HTML page), and [`isolation`] (Elle-style
//! transactional isolation, its own pipeline from reading to report).
//! [`vclock`] is separate again: it checks logs of vector-clock stamped
//! events against a declared happens-before scheme.

pub mod edn;
pub mod formats;
pub mod history;
pub mod isolation;
pub mod linear;
pub mod model;
pub mod report;
pub mod stdout;
pub mod vclock;

pub use formats::{parse_auto, Format, ParseError};
pub use history::{History, Op, OpType, Process, Semantics};
pub use linear::{check, CheckResult, Options, Verdict};
pub use model::ModelKind;
