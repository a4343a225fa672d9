//! The Tartu bookstore's pure logic.
//!
//! The Tartu bookstore is a course project: a web page POSTs a checkout to
//! an orchestrator, which runs three checks, transaction verification
//! (events a, b, c), fraud detection (d, e) and book suggestions (f), and
//! answers with the order's status and some suggested books. This crate
//! holds everything in that flow that is a pure function of its inputs:
//!
//! - [`request`]: parsing and validating the `POST /checkout` body into a
//!   [`Checkout`], with HTTP-ready [`ApiError`]s;
//! - [`catalogue`]: the seed catalogue ([`Book`]s) and title lookup;
//! - [`verify`]: checks (a) items, (b) user data, (c) card, as [`Reject`]s;
//! - [`fraud`]: checks (d) user and (e) card, rules plus a small logistic
//!   model trained offline by `train_fraud.py`;
//! - [`suggest`]: (f) related books;
//! - [`vclock`]: the vector clocks the services stamp their events with.
//!
//! It is *not* the services: there is no IO, no async runtime, no clock and
//! no randomness here. Whatever varies (today's month, how often a card was
//! used recently, the live stock) is an argument, so every function is
//! deterministic and testable in isolation; the services that call it live
//! elsewhere in the workspace.

pub mod catalogue;
pub mod fraud;
pub mod request;
pub mod suggest;
pub mod vclock;
pub mod verify;

pub use catalogue::{seed, title_key, Book};
pub use fraud::{card_check, card_country, card_key, model, user_check, CardContext, Model};
pub use request::{
    bad_inputs, demo_body, parse_checkout, Address, ApiError, Card, Checkout, Item, Shipping, User,
};
pub use suggest::suggestions;
pub use vclock::VClock;
pub use verify::{year_month, Reject};

#[cfg(test)]
mod tests {
    use super::*;

    /// The course's demo order end to end through every check.
    #[test]
    fn demo_order_passes_every_check() {
        let order = parse_checkout(demo_body().as_bytes()).unwrap();
        let books = seed();
        let found = catalogue::lookup(&order.items, &books);
        verify::items(&order, &found).unwrap();
        verify::user(&order).unwrap();
        verify::card(&order, year_month(1_750_000_000_000)).unwrap();
        user_check(&order).unwrap();
        let ctx = CardContext {
            amount_cents: catalogue::amount_cents(&order.items, &found),
            recent_uses: 0,
        };
        card_check(&order, &ctx).unwrap();
        let titles: Vec<String> = order.items.iter().map(|i| i.name.clone()).collect();
        assert!(suggestions(&titles, &books, 3).len() >= 2);
    }
}
