//! Book suggestions: event (f).
//!
//! After an order passes, the page shows a few related books. Related means
//! by the same author or in the same category as an ordered book; a book
//! that shares both ranks first, then same author, then same category, ties
//! broken by id, so the answer is deterministic. Suggestions are in stock,
//! never a book already ordered (titles compared by [`title_key`]), and
//! never one of the course's placeholder books (category
//! [`TEMPLATE_CATEGORY`]).
//!
//! Fallback: when no ordered title is a real catalogue book (the course's
//! demo orders only "Book A" and "Book B", or every title is unknown),
//! there is nothing to relate to, and the suggestions are the best-stocked
//! books instead (most stock first, then id), at most one per category
//! before a second from any, so the demo gets a varied list.

use crate::catalogue::{title_key, Book, TEMPLATE_CATEGORY};
use std::collections::{BTreeSet, HashSet};

/// Up to `n` books related to the ordered titles (see the module doc).
pub fn suggestions(ordered_titles: &[String], all: &[Book], n: usize) -> Vec<Book> {
    let ordered: HashSet<String> = ordered_titles.iter().map(|t| title_key(t)).collect();
    let real = |b: &&Book| b.category != TEMPLATE_CATEGORY;
    let bought: Vec<&Book> = all
        .iter()
        .filter(|b| ordered.contains(&title_key(&b.title)))
        .filter(real)
        .collect();
    let candidates = all
        .iter()
        .filter(real)
        .filter(|b| b.stock > 0 && !ordered.contains(&title_key(&b.title)));

    if bought.is_empty() {
        return fallback(candidates.collect(), n);
    }
    let authors: BTreeSet<&str> = bought.iter().map(|b| b.author.as_str()).collect();
    let categories: BTreeSet<&str> = bought.iter().map(|b| b.category.as_str()).collect();
    let mut scored: Vec<(u8, &Book)> = candidates
        .filter_map(|b| {
            let score = 2 * u8::from(authors.contains(b.author.as_str()))
                + u8::from(categories.contains(b.category.as_str()));
            (score > 0).then_some((score, b))
        })
        .collect();
    scored.sort_by(|(sa, a), (sb, b)| sb.cmp(sa).then_with(|| a.id.cmp(&b.id)));
    scored.into_iter().take(n).map(|(_, b)| b.clone()).collect()
}

/// The best-stocked books, round-robin over categories: each round takes
/// the best remaining book of every category, rounds ordered by stock
/// (descending) then id.
fn fallback(mut books: Vec<&Book>, n: usize) -> Vec<Book> {
    books.sort_by(|a, b| b.stock.cmp(&a.stock).then_with(|| a.id.cmp(&b.id)));
    let mut rounds: Vec<Vec<&Book>> = Vec::new();
    let mut seen: Vec<(&str, usize)> = Vec::new(); // category -> books taken so far
    for b in books {
        let round = match seen.iter_mut().find(|(c, _)| *c == b.category) {
            Some((_, k)) => {
                *k += 1;
                *k - 1
            }
            None => {
                seen.push((&b.category, 1));
                0
            }
        };
        if rounds.len() <= round {
            rounds.resize_with(round + 1, Vec::new);
        }
        rounds[round].push(b);
    }
    rounds.into_iter().flatten().take(n).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{find, seed};
    use proptest::prelude::*;

    fn titles(v: &[Book]) -> Vec<&str> {
        v.iter().map(|b| b.title.as_str()).collect()
    }

    fn s(t: &[&str]) -> Vec<String> {
        t.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn same_author_first_then_category() {
        let all = seed();
        let got = suggestions(&s(&["The Hobbit"]), &all, 5);
        assert_eq!(
            titles(&got),
            [
                "The Fellowship of the Ring",
                "The Two Towers",
                "The Return of the King",
                "A Wizard of Earthsea",
                "The Colour of Magic"
            ]
        );
        assert!(got[..3].iter().all(|b| b.author == "J. R. R. Tolkien"));
        assert!(got.iter().all(|b| b.category == "Fantasy"));
    }

    #[test]
    fn excludes_ordered_titles_and_normalises() {
        let all = seed();
        let got = suggestions(&s(&["  dune ", "DUNE  MESSIAH"]), &all, 3);
        assert_eq!(titles(&got)[0], "Children of Dune");
        assert!(!titles(&got).contains(&"Dune") && !titles(&got).contains(&"Dune Messiah"));
        assert_eq!(got.len(), 3);
        assert!(got[1..].iter().all(|b| b.category == "Science Fiction"));
    }

    #[test]
    fn out_of_stock_is_skipped() {
        let mut all = seed();
        for b in all.iter_mut().filter(|b| b.title == "Mort") {
            b.stock = 0;
        }
        let got = suggestions(&s(&["Guards! Guards!"]), &all, 3);
        assert_eq!(titles(&got)[0], "The Colour of Magic");
        assert!(!titles(&got).contains(&"Mort"));
    }

    #[test]
    fn demo_order_gets_varied_suggestions() {
        let all = seed();
        let got = suggestions(&s(&["Book A", "Book B"]), &all, 3);
        assert_eq!(got.len(), 3);
        assert!(got
            .iter()
            .all(|b| b.category != TEMPLATE_CATEGORY && b.stock > 0));
        let cats: HashSet<_> = got.iter().map(|b| b.category.as_str()).collect();
        assert_eq!(cats.len(), 3, "{got:?}");
        assert!(got.windows(2).all(|w| w[0].stock >= w[1].stock));
        // Unknown titles only: the same fallback.
        assert_eq!(suggestions(&s(&["No Such Book"]), &all, 3), got);
        // Many asked: every non-template book is reachable.
        assert_eq!(
            suggestions(&s(&["Book A"]), &all, 1000).len(),
            all.len() - 2
        );
    }

    #[test]
    fn never_suggests_template_books() {
        let all = seed();
        let got = suggestions(&s(&["Book A", "Dune"]), &all, 100);
        assert!(got.iter().all(|b| b.category != TEMPLATE_CATEGORY));
        assert!(find(&got, "Book B").is_none());
        assert!(suggestions(&s(&["Dune"]), &all, 0).is_empty());
        assert!(suggestions(&s(&["Dune"]), &[], 5).is_empty());
    }

    proptest! {
        #[test]
        fn suggestion_invariants(picks in prop::collection::vec(0usize..65, 0..5), n in 0usize..12) {
            let all = seed();
            let ordered: Vec<String> = picks.iter().map(|i| all[i % all.len()].title.clone()).collect();
            let got = suggestions(&ordered, &all, n);
            prop_assert!(got.len() <= n);
            let keys: HashSet<String> = ordered.iter().map(|t| title_key(t)).collect();
            let mut ids = HashSet::new();
            for b in &got {
                prop_assert!(b.stock > 0 && b.category != TEMPLATE_CATEGORY);
                prop_assert!(!keys.contains(&title_key(&b.title)));
                prop_assert!(ids.insert(b.id.clone()));
            }
            prop_assert_eq!(suggestions(&ordered, &all, n), got);
        }
    }
}
