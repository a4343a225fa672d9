//! A user's cart: products and quantities, as the schema's `addToCart`,
//! `updateItemQuantity`, `removeItem` and `clearCart` change it.

use crate::Refusal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Units of one product in a cart: 1 to 1,000.
pub const QUANTITY_MAX: i64 = 1_000;
/// Distinct products in a cart.
pub const LINES_MAX: usize = 100;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    /// Product id -> quantity (>= 1).
    pub items: BTreeMap<i64, i64>,
    /// The last orders whose units were taken out ([`Cart::take`]), so
    /// that taking them again does nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taken: Vec<String>,
}

/// How many orders [`Cart::taken`] remembers.
pub const TAKEN_KEPT: usize = 64;

fn quantity(field: &str, q: i64) -> Result<i64, Refusal> {
    if !(1..=QUANTITY_MAX).contains(&q) {
        return Err(Refusal::input(format!(
            "{field}: expected 1 to {QUANTITY_MAX}, got {q}"
        )));
    }
    Ok(q)
}

impl Cart {
    /// `addToCart`: adds `q` units (to those already there).
    pub fn add(&mut self, product: i64, q: i64) -> Result<(), Refusal> {
        let q = quantity("quantity", q)?;
        let now = self.items.get(&product).copied().unwrap_or(0);
        if now == 0 && self.items.len() >= LINES_MAX {
            return Err(Refusal::input(format!(
                "productId: a cart holds at most {LINES_MAX} products"
            )));
        }
        self.items.insert(product, quantity("quantity", now + q)?);
        Ok(())
    }

    /// `updateItemQuantity`: sets the quantity of a product in the cart.
    pub fn update(&mut self, product: i64, q: i64) -> Result<(), Refusal> {
        let q = quantity("newQuantity", q)?;
        match self.items.get_mut(&product) {
            Some(v) => {
                *v = q;
                Ok(())
            }
            None => Err(not_in_cart(product)),
        }
    }

    /// `removeItem`.
    pub fn remove(&mut self, product: i64) -> Result<(), Refusal> {
        self.items
            .remove(&product)
            .map(|_| ())
            .ok_or_else(|| not_in_cart(product))
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// Takes a paid order's units out of the cart (what was added since
    /// stays), once per order: asked again, it changes nothing.
    pub fn take(&mut self, order: &str, lines: &[(i64, i64)]) {
        if self.taken.iter().any(|t| t == order) {
            return;
        }
        for (product, quantity) in lines {
            let left = self.items.get(product).copied().unwrap_or(0) - quantity;
            if left > 0 {
                self.items.insert(*product, left);
            } else {
                self.items.remove(product);
            }
        }
        self.taken.push(order.to_string());
        if self.taken.len() > TAKEN_KEPT {
            self.taken.remove(0);
        }
    }
}

fn not_in_cart(product: i64) -> Refusal {
    Refusal::new(
        crate::codes::NOT_FOUND,
        format!("productId: product {product} is not in the cart"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_merges_and_every_quantity_stays_in_bounds() {
        let mut c = Cart::default();
        c.add(1, 2).unwrap();
        c.add(1, 3).unwrap();
        assert_eq!(c.items[&1], 5);
        assert!(c.add(1, 0).is_err());
        assert!(c
            .add(1, QUANTITY_MAX)
            .unwrap_err()
            .message
            .contains("got 1005"));
        assert_eq!(c.items[&1], 5, "a refused change changes nothing");
        c.update(1, 7).unwrap();
        assert!(c.update(2, 1).is_err());
        assert!(c.update(1, -1).is_err());
        c.remove(1).unwrap();
        assert_eq!(c.remove(1).unwrap_err().code, crate::codes::NOT_FOUND);
        for p in 0..LINES_MAX as i64 {
            c.add(p, 1).unwrap();
        }
        assert!(c.add(1_000, 1).is_err());
        c.clear();
        assert!(c.items.is_empty());
    }
}
