//! Transaction verification: the business checks (a), (b) and (c).
//!
//! The course splits the checkout into events a–f. Transaction verification
//! owns three of them, each a pure function of the parsed order (and, for
//! (a), the books found for its titles; for (c), today's month):
//!
//! - (a) [`items`]: the cart is not empty, every title is in the catalogue,
//!   and there is enough stock for the total quantity of each book;
//! - (b) [`user`]: the mandatory user data is filled in, the contact looks
//!   like an email address or a phone number, the terms were accepted;
//! - (c) [`card`]: the card number is 13–19 digits passing the Luhn check,
//!   the expiry date is well-formed and not in the past, the CVV is 3–4
//!   digits.
//!
//! A failure is a [`Reject`]: the event letter, a stable code and a human
//! sentence for the page. These are business rejections of a well-formed
//! request (the syntactic gate is [`crate::request::parse_checkout`]). The
//! fraud events (d), (e) are in [`crate::fraud`], suggestions (f) in
//! [`crate::suggest`]. There is no clock here: the caller passes today's
//! `(year, month)`, see [`year_month`].

use crate::catalogue::Book;
use crate::request::Checkout;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Why a check refused the order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    /// The event, `"a"` to `"f"`.
    pub event: String,
    /// A stable machine code, e.g. `"OUT_OF_STOCK"`.
    pub code: String,
    /// A sentence for a human.
    pub reason: String,
}

impl Reject {
    pub fn new(event: &str, code: &str, reason: impl Into<String>) -> Self {
        Reject {
            event: event.to_string(),
            code: code.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}) {}: {}", self.event, self.code, self.reason)
    }
}

impl std::error::Error for Reject {}

/// (a) items not empty; each title exists (`found[i]` is the book for
/// `items[i]`, `None` = unknown title → code `"UNKNOWN_BOOK"`); enough
/// stock (quantities of the same book summed; `"OUT_OF_STOCK"`); an empty
/// cart → `"NO_ITEMS"`. A `found` shorter than the items counts the missing
/// entries as unknown.
pub fn items(order: &Checkout, found: &[Option<Book>]) -> Result<(), Reject> {
    if order.items.is_empty() {
        return Err(Reject::new("a", "NO_ITEMS", "The order has no items."));
    }
    // book id -> (book, total quantity ordered), in id order.
    let mut wanted: BTreeMap<&str, (&Book, u64)> = BTreeMap::new();
    for (i, it) in order.items.iter().enumerate() {
        match found.get(i).and_then(Option::as_ref) {
            None => {
                return Err(Reject::new(
                    "a",
                    "UNKNOWN_BOOK",
                    format!("\"{}\" is not in our catalogue.", it.name.trim()),
                ))
            }
            Some(b) => wanted.entry(&b.id).or_insert((b, 0)).1 += u64::from(it.quantity),
        }
    }
    for (b, q) in wanted.values() {
        let stock = u64::try_from(b.stock).unwrap_or(0);
        if *q > stock {
            return Err(Reject::new(
                "a",
                "OUT_OF_STOCK",
                format!("Only {stock} of \"{}\" in stock, {q} ordered.", b.title),
            ));
        }
    }
    Ok(())
}

/// Is `s` a plausible email address: `local@domain.tld`, no whitespace,
/// one `@`, a dot in the domain, no empty domain label.
pub fn looks_like_email(s: &str) -> bool {
    let s = s.trim();
    if s.chars().any(char::is_whitespace) {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && domain
            .split('.')
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
        && domain
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(char::is_alphabetic))
}

/// Is `s` a plausible phone number: an optional leading `+`, then 7–15
/// digits, with spaces, dashes, dots and parentheses allowed between.
pub fn looks_like_phone(s: &str) -> bool {
    let s = s.trim();
    let body = s.strip_prefix('+').unwrap_or(s);
    let mut digits = 0;
    for c in body.chars() {
        match c {
            '0'..='9' => digits += 1,
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return false,
        }
    }
    (7..=15).contains(&digits)
}

/// (b) mandatory user data: `user.name`, `user.contact`, billing street,
/// city, zip and country non-empty after trimming (`"MISSING_USER_DATA"`
/// naming the field); the contact looks like an email address or a phone
/// number (`"BAD_CONTACT"`); the terms accepted (`"TERMS_NOT_ACCEPTED"`).
pub fn user(order: &Checkout) -> Result<(), Reject> {
    let a = &order.billing_address;
    let required = [
        ("user.name", "your name", &order.user.name),
        ("user.contact", "your contact", &order.user.contact),
        ("billingAddress.street", "the billing street", &a.street),
        ("billingAddress.city", "the billing city", &a.city),
        ("billingAddress.zip", "the billing zip code", &a.zip),
        ("billingAddress.country", "the billing country", &a.country),
    ];
    for (path, what, value) in required {
        if value.trim().is_empty() {
            return Err(Reject::new(
                "b",
                "MISSING_USER_DATA",
                format!("Please fill in {what} ({path})."),
            ));
        }
    }
    let contact = &order.user.contact;
    if !looks_like_email(contact) && !looks_like_phone(contact) {
        return Err(Reject::new(
            "b",
            "BAD_CONTACT",
            "The contact must be an email address or a phone number.",
        ));
    }
    if !order.terms_accepted {
        return Err(Reject::new(
            "b",
            "TERMS_NOT_ACCEPTED",
            "Please accept the terms and conditions.",
        ));
    }
    Ok(())
}

/// The digits of a card number with spaces and dashes removed; `None` if
/// anything else is in it.
pub fn card_digits(number: &str) -> Option<String> {
    let mut out = String::with_capacity(number.len());
    for c in number.trim().chars() {
        match c {
            '0'..='9' => out.push(c),
            ' ' | '-' => {}
            _ => return None,
        }
    }
    Some(out)
}

/// The Luhn checksum of a string of ASCII digits holds.
pub fn luhn(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        if !b.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// `body` (ASCII digits) with the Luhn check digit appended: a valid card
/// number for tests and workloads.
pub fn with_luhn_digit(body: &str) -> String {
    (0..10)
        .map(|d| format!("{body}{d}"))
        .find(|n| luhn(n))
        .expect("a body of ASCII digits: one of ten check digits completes it")
}

fn all_digits(s: &str, lens: std::ops::RangeInclusive<usize>) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses an expiry date: `"MM/YY"`, `"MM/YYYY"` (month may be one digit)
/// or `"YYYY-MM"`, into `(year, month)` with `YY` meaning `20YY`. `None`
/// when malformed or the month is not 1–12.
pub fn parse_expiry(s: &str) -> Option<(i32, u32)> {
    let s = s.trim();
    let (y, m) = if let Some((m, y)) = s.split_once('/') {
        let (m, y) = (m.trim(), y.trim());
        if !all_digits(m, 1..=2) {
            return None;
        }
        let year: i32 = match y.len() {
            2 if all_digits(y, 2..=2) => 2000 + y.parse::<i32>().ok()?,
            4 if all_digits(y, 4..=4) => y.parse().ok()?,
            _ => return None,
        };
        (year, m.parse::<u32>().ok()?)
    } else if let Some((y, m)) = s.split_once('-') {
        if !all_digits(y, 4..=4) || !all_digits(m, 2..=2) {
            return None;
        }
        (y.parse().ok()?, m.parse().ok()?)
    } else {
        return None;
    };
    (1..=12).contains(&m).then_some((y, m))
}

/// (c) card: the number is 13–19 digits once spaces and dashes are removed,
/// and passes Luhn (`"BAD_CARD_NUMBER"`); the expiry is `"MM/YY"`,
/// `"MM/YYYY"` or `"YYYY-MM"` with month 1–12 (`"BAD_EXPIRY"`) and not
/// before `today` = `(year, month)` (`"CARD_EXPIRED"`; a card is valid
/// through its expiry month); the CVV is 3–4 digits (`"BAD_CVV"`).
pub fn card(order: &Checkout, today: (i32, u32)) -> Result<(), Reject> {
    let c = &order.credit_card;
    let bad_number =
        |why: &str| Reject::new("c", "BAD_CARD_NUMBER", format!("The card number {why}."));
    let digits = card_digits(&c.number)
        .ok_or_else(|| bad_number("may contain only digits, spaces and dashes"))?;
    if !(13..=19).contains(&digits.len()) {
        return Err(bad_number(&format!(
            "must have 13 to 19 digits, it has {}",
            digits.len()
        )));
    }
    if !luhn(&digits) {
        return Err(bad_number("is not valid (checksum)"));
    }
    let (y, m) = parse_expiry(&c.expiration_date).ok_or_else(|| {
        Reject::new(
            "c",
            "BAD_EXPIRY",
            "The expiration date must look like MM/YY, MM/YYYY or YYYY-MM.",
        )
    })?;
    if (y, m) < today {
        return Err(Reject::new(
            "c",
            "CARD_EXPIRED",
            format!("The card expired in {m:02}/{y}."),
        ));
    }
    if !all_digits(c.cvv.trim(), 3..=4) {
        return Err(Reject::new(
            "c",
            "BAD_CVV",
            "The CVV must be 3 or 4 digits.",
        ));
    }
    Ok(())
}

/// The civil `(year, month)` in UTC of a Unix time in milliseconds (Howard
/// Hinnant's `civil_from_days`).
pub fn year_month(unix_ms: u64) -> (i32, u32) {
    let days = (unix_ms / 86_400_000) as i64; // < 2^45, exact
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{lookup, seed};
    use crate::request::{demo_body, parse_checkout, Item};
    use proptest::prelude::*;

    fn demo() -> Checkout {
        parse_checkout(demo_body().as_bytes()).unwrap()
    }

    const TODAY: (i32, u32) = (2025, 6);

    fn code<T>(r: Result<T, Reject>) -> String {
        match r {
            Ok(_) => "OK".into(),
            Err(e) => {
                assert!(!e.reason.is_empty());
                e.code
            }
        }
    }

    #[test]
    fn demo_passes_a_b_c() {
        let o = demo();
        let found = lookup(&o.items, &seed());
        assert_eq!(items(&o, &found), Ok(()));
        assert_eq!(user(&o), Ok(()));
        assert_eq!(card(&o, TODAY), Ok(()));
    }

    #[test]
    fn items_rejections() {
        let books = seed();
        let mut o = demo();
        o.items.clear();
        assert_eq!(code(items(&o, &[])), "NO_ITEMS");

        let mut o = demo();
        o.items.push(Item {
            name: "The Necronomicon".into(),
            quantity: 1,
        });
        let found = lookup(&o.items, &books);
        let e = items(&o, &found).unwrap_err();
        assert_eq!((e.event.as_str(), e.code.as_str()), ("a", "UNKNOWN_BOOK"));
        assert!(e.reason.contains("The Necronomicon"));
        assert_eq!(code(items(&demo(), &[])), "UNKNOWN_BOOK", "short found");

        // 5 Pride and Prejudice in stock: 3 + 3 of the same title is too many.
        let mut o = demo();
        o.items = vec![
            Item {
                name: "Pride and Prejudice".into(),
                quantity: 3,
            },
            Item {
                name: "Dune".into(),
                quantity: 1,
            },
            Item {
                name: "pride and  prejudice".into(),
                quantity: 3,
            },
        ];
        let found = lookup(&o.items, &books);
        assert_eq!(found[0].as_ref().unwrap().stock, 5);
        let e = items(&o, &found).unwrap_err();
        assert_eq!(e.code, "OUT_OF_STOCK");
        assert!(
            e.reason.contains("Only 5") && e.reason.contains("6 ordered"),
            "{}",
            e.reason
        );
        o.items[2].quantity = 2;
        assert_eq!(items(&o, &lookup(&o.items, &books)), Ok(()));
    }

    #[test]
    fn user_rejections() {
        let mut o = demo();
        o.user.name = "  ".into();
        let e = user(&o).unwrap_err();
        assert_eq!(
            (e.event.as_str(), e.code.as_str()),
            ("b", "MISSING_USER_DATA")
        );
        assert!(e.reason.contains("user.name"));
        let mut o = demo();
        o.billing_address.zip = String::new();
        assert!(user(&o).unwrap_err().reason.contains("billingAddress.zip"));
        let mut o = demo();
        o.billing_address.state = String::new();
        assert_eq!(user(&o), Ok(()), "state is optional");
        let mut o = demo();
        o.user.contact = "john at example".into();
        assert_eq!(code(user(&o)), "BAD_CONTACT");
        o.user.contact = "+372 5123 4567".into();
        assert_eq!(user(&o), Ok(()));
        let mut o = demo();
        o.terms_accepted = false;
        assert_eq!(code(user(&o)), "TERMS_NOT_ACCEPTED");
    }

    #[test]
    fn contacts() {
        for ok in ["a@b.ee", "john.doe@example.com", " x+tag@mail.ut.ee "] {
            assert!(looks_like_email(ok), "{ok}");
        }
        for bad in [
            "",
            "a@b",
            "@b.com",
            "a@@b.com",
            "a b@c.com",
            "a@.com",
            "a@b.c",
            "a@b.12",
            "a@-b.com",
        ] {
            assert!(!looks_like_email(bad), "{bad}");
        }
        for ok in ["+372 5123 4567", "(555) 123-4567", "5551234"] {
            assert!(looks_like_phone(ok), "{ok}");
        }
        for bad in ["", "123", "+", "555-CALL-NOW", "1234567890123456"] {
            assert!(!looks_like_phone(bad), "{bad}");
        }
    }

    #[test]
    fn card_rejections() {
        let with = |number: &str, exp: &str, cvv: &str| {
            let mut o = demo();
            o.credit_card.number = number.into();
            o.credit_card.expiration_date = exp.into();
            o.credit_card.cvv = cvv.into();
            code(card(&o, TODAY))
        };
        assert_eq!(with("4111 1111-1111 1111", "12/30", "123"), "OK");
        assert_eq!(
            with("5555555555554444", "2025-06", "1234"),
            "OK",
            "valid through its month"
        );
        assert_eq!(with("378282246310005", "6/2025", "1234"), "OK");
        assert_eq!(with("4111111111111112", "12/30", "123"), "BAD_CARD_NUMBER");
        assert_eq!(with("4111x111111111111", "12/30", "123"), "BAD_CARD_NUMBER");
        assert_eq!(with("", "12/30", "123"), "BAD_CARD_NUMBER");
        assert_eq!(
            with("0000 0000 0000", "12/30", "123"),
            "BAD_CARD_NUMBER",
            "12 digits"
        );
        assert_eq!(with("4111111111111111", "05/25", "123"), "CARD_EXPIRED");
        assert_eq!(with("4111111111111111", "2024-12", "123"), "CARD_EXPIRED");
        assert_eq!(with("4111111111111111", "13/30", "123"), "BAD_EXPIRY");
        assert_eq!(with("4111111111111111", "00/30", "123"), "BAD_EXPIRY");
        assert_eq!(with("4111111111111111", "12-30", "123"), "BAD_EXPIRY");
        assert_eq!(with("4111111111111111", "tomorrow", "123"), "BAD_EXPIRY");
        assert_eq!(with("4111111111111111", "12/30", "12"), "BAD_CVV");
        assert_eq!(with("4111111111111111", "12/30", "12a"), "BAD_CVV");
        assert_eq!(with("4111111111111111", "12/30", "12345"), "BAD_CVV");
        let mut o = demo();
        o.credit_card.number = "1".into();
        assert_eq!(card(&o, TODAY).unwrap_err().event, "c");
    }

    #[test]
    fn expiry_formats() {
        assert_eq!(parse_expiry("12/30"), Some((2030, 12)));
        assert_eq!(parse_expiry("1/2031"), Some((2031, 1)));
        assert_eq!(parse_expiry(" 2029-07 "), Some((2029, 7)));
        assert_eq!(parse_expiry("12/3"), None);
        assert_eq!(parse_expiry("+1/30"), None);
        assert_eq!(parse_expiry("/"), None);
        assert_eq!(parse_expiry("2029-7"), None);
    }

    #[test]
    fn luhn_known() {
        assert!(luhn("4111111111111111"));
        assert!(luhn("79927398713"));
        assert!(!luhn("79927398710"));
        assert!(!luhn(""));
        assert!(!luhn("12a4"));
        assert_eq!(with_luhn_digit("7992739871"), "79927398713");
        assert_eq!(with_luhn_digit("411111111111111"), "4111111111111111");
    }

    #[test]
    fn year_month_known_dates() {
        assert_eq!(year_month(0), (1970, 1));
        assert_eq!(year_month(951_782_400_000), (2000, 2)); // 2000-02-29T00:00Z
        assert_eq!(year_month(951_868_799_999), (2000, 2)); // 2000-02-29T23:59:59.999Z
        assert_eq!(year_month(951_868_800_000), (2000, 3)); // 2000-03-01
        assert_eq!(year_month(1_704_067_199_999), (2023, 12)); // 2023-12-31T23:59:59.999Z
        assert_eq!(year_month(1_704_067_200_000), (2024, 1)); // 2024-01-01
        assert_eq!(year_month(1_749_340_800_000), (2025, 6)); // 2025-06-08
        assert_eq!(year_month(4_102_444_800_000), (2100, 1)); // 2100-01-01
        let (y, m) = year_month(u64::MAX);
        assert!(y > 500_000_000 && (1..=12).contains(&m));
    }

    proptest! {
        #[test]
        fn year_month_is_monotone_and_valid(a in 0u64..10_000_000_000_000, d in 0u64..100_000_000_000) {
            let (y1, m1) = year_month(a);
            let (y2, m2) = year_month(a + d);
            prop_assert!((1..=12).contains(&m1));
            prop_assert!((y1, m1) <= (y2, m2));
        }

        #[test]
        fn checks_never_panic(number in ".{0,25}", exp in ".{0,10}", cvv in ".{0,6}", contact in ".{0,30}") {
            let mut o = demo();
            o.credit_card = crate::request::Card { number, expiration_date: exp, cvv };
            o.user.contact = contact;
            let _ = card(&o, TODAY);
            let _ = user(&o);
        }
    }
}
