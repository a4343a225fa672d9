//! A failed check (both builds: the simulator's scenarios and Jepsen mode
//! report the same way).

/// A failed check: which one, and what it saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The check's name: e.g. `linearizability`, `raft`, `liveness`, `panic`.
    pub check: &'static str,
    pub message: String,
}

impl Failure {
    pub fn new(check: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            check,
            message: message.into(),
        }
    }
}
