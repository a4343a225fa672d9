//! The pure logic of the third course's e-commerce platform (the issue's
//! "pad"): no IO, no clock, no randomness of its own. Every function takes
//! what it needs (the time, salt bytes, a signing key) from its caller, so
//! the same code runs in the real services and under the simulator.
//!
//! - [`auth`]: e-mail and password rules, argon2 password hashes, signed
//!   access and refresh tokens, refresh-token families (rotation, reuse
//!   detection, logout);
//! - [`registry`]: service instances with leases renewed by heartbeats,
//!   which instances a caller may route to;
//! - [`catalog`] and [`cart`]: input rules and the cart's operations;
//! - [`order`]: the order statuses of the course's schema and the saga's
//!   steps (reserve units, charge, give units back, clear the cart).
//!
//! Errors carry a stable `code` (what a GraphQL error's `extensions.code`
//! says) and a message for people.

pub mod auth;
pub mod cart;
pub mod catalog;
pub mod order;
pub mod registry;

/// A refusal: a stable code and a message that names what to fix.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// Input that breaks a rule (the message names the field).
    pub fn input(message: impl Into<String>) -> Refusal {
        Refusal::new(codes::BAD_USER_INPUT, message)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Refusal {}

/// The codes clients see.
pub mod codes {
    /// A field breaks a rule; the message names it.
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    /// The e-mail or the password is wrong (never which).
    pub const INVALID_CREDENTIALS: &str = "INVALID_CREDENTIALS";
    /// No token, or one that is malformed, forged, expired or revoked
    /// (never which).
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    /// A valid token without the role the call needs.
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// An account with this e-mail exists.
    pub const EMAIL_TAKEN: &str = "EMAIL_TAKEN";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// The call certainly did not happen (no instance answered in time);
    /// safe to send again.
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
    /// The call may or may not have happened (an instance stopped
    /// answering while it ran); read before sending it again.
    pub const OUTCOME_UNKNOWN: &str = "OUTCOME_UNKNOWN";
    /// A GraphQL document that does not parse or validate.
    pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
}
