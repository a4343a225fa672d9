//! The catalogue's input rules: categories and products as the course's
//! GraphQL schema takes them (`CreateCategoryInput`, `CreateProductInput`).
//! Prices arrive as floats and are kept in cents.

use crate::Refusal;
use serde::{Deserialize, Serialize};

pub const NAME_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 2_000;
pub const URL_MAX: usize = 2_000;
/// The highest price accepted: 1,000,000.00.
pub const PRICE_MAX_CENTS: i64 = 100_000_000;
/// The most units of one product.
pub const UNITS_MAX: i64 = 1_000_000_000;
/// The most ids in a product's `categoriesIds` (as sent, repeats
/// included): the catalogue reads and compares each category it names, so
/// a longer list is refused before the store is touched.
pub const CATEGORIES_MAX: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub id: i64,
    pub name: String,
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub price_cents: i64,
    pub units_available: i64,
    pub image_url: String,
    pub category_ids: Vec<i64>,
}

fn text(field: &str, v: &str, max: usize, required: bool) -> Result<String, Refusal> {
    let t = v.trim();
    if required && t.is_empty() {
        return Err(Refusal::input(format!("{field}: must not be empty")));
    }
    if t.chars().count() > max {
        return Err(Refusal::input(format!(
            "{field}: at most {max} characters, got {}",
            t.chars().count()
        )));
    }
    if t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Refusal::input(format!(
            "{field}: control characters are not allowed"
        )));
    }
    Ok(t.to_string())
}

/// A new category's name and description, trimmed, or why not.
pub fn category(name: &str, description: &str) -> Result<(String, String), Refusal> {
    Ok((
        text("name", name, NAME_MAX, true)?,
        text("description", description, DESCRIPTION_MAX, false)?,
    ))
}

/// A price in cents from the schema's float: finite, not negative, at most
/// [`PRICE_MAX_CENTS`], with at most two decimals.
pub fn price_cents(price: f64) -> Result<i64, Refusal> {
    if !price.is_finite() || price < 0.0 {
        return Err(Refusal::input(format!(
            "price: expected a number >= 0, got {price}"
        )));
    }
    let cents = (price * 100.0).round();
    if cents > PRICE_MAX_CENTS as f64 {
        return Err(Refusal::input(format!(
            "price: at most {}.00, got {price}",
            PRICE_MAX_CENTS / 100
        )));
    }
    if (cents - price * 100.0).abs() > 1e-6 * cents.max(1.0) {
        return Err(Refusal::input(format!(
            "price: at most two decimals, got {price}"
        )));
    }
    Ok(cents as i64)
}

/// A product's category ids as sent, at most [`CATEGORIES_MAX`] of them:
/// sorted, each once; or why not.
pub fn category_ids(ids: &[i64]) -> Result<Vec<i64>, Refusal> {
    if ids.len() > CATEGORIES_MAX {
        return Err(Refusal::input(format!(
            "categoriesIds: at most {CATEGORIES_MAX} ids, got {}",
            ids.len()
        )));
    }
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// A new product's fields, checked (the category ids must also exist:
/// `known` says which do), or why not.
pub fn product(
    name: &str,
    price: f64,
    image_url: Option<&str>,
    units_available: i64,
    category_ids: &[i64],
    known: impl Fn(i64) -> bool,
) -> Result<Product, Refusal> {
    let name = text("name", name, NAME_MAX, true)?;
    let price_cents = price_cents(price)?;
    let image_url = text("imageUrl", image_url.unwrap_or(""), URL_MAX, false)?;
    if !(0..=UNITS_MAX).contains(&units_available) {
        return Err(Refusal::input(format!(
            "unitsAvailable: expected 0 to {UNITS_MAX}, got {units_available}"
        )));
    }
    let ids = self::category_ids(category_ids)?;
    if let Some(id) = ids.iter().find(|&&id| !known(id)) {
        return Err(Refusal::new(
            crate::codes::NOT_FOUND,
            format!("categoriesIds: no category {id}"),
        ));
    }
    Ok(Product {
        id: 0,
        name,
        price_cents,
        units_available,
        image_url,
        category_ids: ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_cents_with_two_decimals_at_most() {
        assert_eq!(price_cents(12.5).unwrap(), 1250);
        assert_eq!(price_cents(0.0).unwrap(), 0);
        assert_eq!(price_cents(19.99).unwrap(), 1999);
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1.005, 2e6] {
            assert!(
                price_cents(bad).unwrap_err().message.starts_with("price:"),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_product_needs_a_name_known_categories_and_sane_units() {
        let known = |id| id == 1 || id == 2;
        let p = product(" Book ", 9.5, None, 3, &[2, 1, 2], known).unwrap();
        assert_eq!(
            (p.name.as_str(), p.price_cents, p.category_ids),
            ("Book", 950, vec![1, 2])
        );
        assert_eq!(
            product("", 1.0, None, 1, &[], known).unwrap_err().message,
            "name: must not be empty"
        );
        assert!(product("x", 1.0, None, -1, &[], known)
            .unwrap_err()
            .message
            .starts_with("unitsAvailable"));
        let e = product("x", 1.0, None, 1, &[3], known).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (crate::codes::NOT_FOUND, "categoriesIds: no category 3")
        );
        assert!(category("  ", "d").is_err());
        // A long list is refused, naming the field and the limit; repeats
        // count once in the product but as sent against the limit.
        let e = product("x", 1.0, None, 1, &vec![1; 100_000], known).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                crate::codes::BAD_USER_INPUT,
                "categoriesIds: at most 100 ids, got 100000"
            )
        );
        let p = product("x", 1.0, None, 1, &[2; CATEGORIES_MAX], known).unwrap();
        assert_eq!(p.category_ids, vec![2]);
        assert_eq!(category_ids(&[3, 1, 3, 2, 1]).unwrap(), vec![1, 2, 3]);
        assert_eq!(
            category(" Novels ", "long ones").unwrap(),
            ("Novels".into(), "long ones".into())
        );
    }
}
