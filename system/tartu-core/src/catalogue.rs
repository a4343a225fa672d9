//! The book catalogue: the seed data the store starts from, and title keys.
//!
//! Orders name books by title (the course's page sends `"Book A"`), so the
//! services look a title up by its [`title_key`]. [`seed`] is the initial
//! catalogue: real books (title and author only, both facts) in a few
//! categories, several per author and per category so that suggestions have
//! something to find, plus the two placeholder books "Book A" and "Book B"
//! of category [`TEMPLATE_CATEGORY`] that the course's template page
//! orders. Prices and stock are invented. The data is
//! `src/catalogue.json`, compiled in; the live stock is the store's
//! business, not this crate's.

use crate::request::Item;
use serde::{Deserialize, Serialize};

/// A book for sale. `price_cents` and `stock` are signed so that stock
/// arithmetic in the store cannot wrap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Book {
    pub id: String,
    pub title: String,
    pub author: String,
    pub price_cents: i64,
    pub stock: i64,
    pub category: String,
    pub tags: Vec<String>,
}

/// The category of the course's placeholder books ("Book A", "Book B").
pub const TEMPLATE_CATEGORY: &str = "Template";

const CATALOGUE_JSON: &str = include_str!("catalogue.json");

/// The initial catalogue (ids `b001`, `b002`, ...), in id order.
pub fn seed() -> Vec<Book> {
    serde_json::from_str(CATALOGUE_JSON).expect("src/catalogue.json is a valid catalogue")
}

/// The lookup key of a title: trimmed, lowercase, inner whitespace
/// collapsed to single spaces. `"  The  Hobbit "` and `"the hobbit"` match.
pub fn title_key(title: &str) -> String {
    title
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The book of `books` whose title has the same [`title_key`] as `title`.
pub fn find<'a>(books: &'a [Book], title: &str) -> Option<&'a Book> {
    let k = title_key(title);
    books.iter().find(|b| title_key(&b.title) == k)
}

/// For each item, its book in `books` (`None` for an unknown title): the
/// `found` argument of [`crate::verify::items`].
pub fn lookup(items: &[Item], books: &[Book]) -> Vec<Option<Book>> {
    items
        .iter()
        .map(|it| find(books, &it.name).cloned())
        .collect()
}

/// The order's amount in cents: sum of quantity × price over the found
/// books (unknown titles count 0). Saturating, never overflows.
pub fn amount_cents(items: &[Item], found: &[Option<Book>]) -> i64 {
    items
        .iter()
        .zip(found)
        .filter_map(|(it, b)| {
            b.as_ref()
                .map(|b| b.price_cents.saturating_mul(i64::from(it.quantity)))
        })
        .fold(0i64, i64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashSet};

    #[test]
    fn seed_is_well_formed() {
        let books = seed();
        assert!(books.len() >= 60, "{}", books.len());
        let ids: HashSet<_> = books.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids.len(), books.len(), "unique ids");
        let keys: HashSet<_> = books.iter().map(|b| title_key(&b.title)).collect();
        assert_eq!(keys.len(), books.len(), "unique title keys");
        for (i, b) in books.iter().enumerate() {
            assert_eq!(b.id, format!("b{:03}", i + 1));
            assert!(!b.title.is_empty() && !b.author.is_empty() && !b.category.is_empty());
            if b.category != TEMPLATE_CATEGORY {
                assert!((500..=6000).contains(&b.price_cents), "{b:?}");
                assert!((5..=200).contains(&b.stock), "{b:?}");
            }
        }
        let mut per_author: BTreeMap<&str, usize> = BTreeMap::new();
        let mut per_category: BTreeMap<&str, usize> = BTreeMap::new();
        for b in &books {
            *per_author.entry(&b.author).or_default() += 1;
            *per_category.entry(&b.category).or_default() += 1;
        }
        assert!(
            per_author.values().filter(|n| **n >= 3).count() >= 8,
            "{per_author:?}"
        );
        assert!(
            per_category.iter().all(|(_, n)| *n >= 2),
            "{per_category:?}"
        );
    }

    #[test]
    fn template_books() {
        let books = seed();
        let a = find(&books, "Book A").unwrap();
        let b = find(&books, " book  b").unwrap();
        assert_eq!(
            (a.price_cents, a.stock, a.category.as_str()),
            (1000, 1000, TEMPLATE_CATEGORY)
        );
        assert_eq!(
            (b.price_cents, b.stock, b.author.as_str()),
            (1500, 1000, "Course Template")
        );
    }

    #[test]
    fn title_keys() {
        assert_eq!(title_key("  The \t Hobbit\n"), "the hobbit");
        assert_eq!(title_key("GUARDS! Guards!"), "guards! guards!");
        assert_eq!(title_key(""), "");
        assert_eq!(title_key("Stanisław"), "stanisław");
    }

    #[test]
    fn lookup_and_amount() {
        let books = seed();
        let order = crate::request::parse_checkout(crate::request::demo_body().as_bytes()).unwrap();
        let found = lookup(&order.items, &books);
        assert!(found.iter().all(Option::is_some));
        assert_eq!(amount_cents(&order.items, &found), 4000);
        let items = vec![Item {
            name: "No Such Book".into(),
            quantity: 3,
        }];
        let found = lookup(&items, &books);
        assert_eq!(found, vec![None]);
        assert_eq!(amount_cents(&items, &found), 0);
    }
}
