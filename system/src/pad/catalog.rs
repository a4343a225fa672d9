//! The catalogue's data in its own Raft KV group, with the rules of
//! [`pad_core::catalog`]:
//!
//! | key | value |
//! |---|---|
//! | `cat/next`, `prod/next` | the last id given |
//! | `cat/id/<id>` | [`Category`] as JSON |
//! | `prod/id/<id>` | [`Product`] as JSON (`units_available`: units not held) |
//! | `hold/<order>` | the units an order holds: `{"lines": [[product, units]], "released": bool}` |
//!
//! An order's units are held all or none, in one transaction that compares
//! every product it debits ([`reserve`]); holding and giving back are
//! idempotent by order id, so a saga resumed on another replica runs them
//! again safely, and units given back are never held again by the same
//! order.

use crate::client::{ClientError, KvClient};
use crate::kv::cmd;
use pad_core::catalog::{self, Category, Product};
use pad_core::{codes, Refusal};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub use super::PadError as CatalogError;

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("serialises")
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Store(ClientError::Failed(format!(
        "stored {what} is not valid: {e}"
    )))
}

fn parse<T: for<'de> Deserialize<'de>>(what: &str, v: &str) -> Result<T, CatalogError> {
    serde_json::from_str(v).map_err(|e| corrupt(what, e))
}

fn cat_key(id: i64) -> String {
    format!("cat/id/{id}")
}

fn prod_key(id: i64) -> String {
    format!("prod/id/{id}")
}

fn hold_key(order: &str) -> String {
    format!("hold/{order}")
}

/// Puts `value(id)` under `key(id)` for the next id of counter `next`.
async fn create<T: Serialize>(
    kv: &mut KvClient,
    next: &str,
    key: impl Fn(i64) -> String,
    extra: Vec<crate::pb::Compare>,
    value: impl Fn(i64) -> T,
) -> Result<(i64, T), CatalogError> {
    for _ in 0..100 {
        let last = kv.get(next).await?;
        let id = match &last {
            None => 1,
            Some(v) => v.parse::<i64>().map_err(|e| corrupt(next, e))? + 1,
        };
        let v = value(id);
        let mut compares = vec![cmd::compare(next, last.as_deref())];
        compares.extend(extra.iter().cloned());
        let r = kv
            .txn(
                compares,
                vec![
                    cmd::op_put(next, &id.to_string()),
                    cmd::op_put(&key(id), &json(&v)),
                ],
                vec![],
            )
            .await?;
        if r.succeeded {
            return Ok((id, v));
        }
    }
    Err(ClientError::Failed("creation kept racing others; try again".into()).into())
}

pub async fn create_category(
    kv: &mut KvClient,
    name: &str,
    description: &str,
) -> Result<Category, CatalogError> {
    let (name, description) = catalog::category(name, description)?;
    let (_, c) = create(kv, "cat/next", cat_key, vec![], |id| Category {
        id,
        name: name.clone(),
        description: description.clone(),
    })
    .await?;
    Ok(c)
}

/// Every category, by id.
pub async fn categories(kv: &mut KvClient) -> Result<Vec<Category>, CatalogError> {
    let mut v: Vec<Category> = kv
        .scan("cat/id/")
        .await?
        .iter()
        .map(|(_, v)| parse("category", v))
        .collect::<Result<_, _>>()?;
    v.sort_by_key(|c| c.id);
    Ok(v)
}

/// A new product; its categories must exist (and still exist when it is
/// written: the transaction compares them). The list is checked first (at
/// most [`catalog::CATEGORIES_MAX`] ids) and each category is read and
/// compared once, however often the list repeats it.
pub async fn create_product(
    kv: &mut KvClient,
    name: &str,
    price: f64,
    image_url: Option<&str>,
    units_available: i64,
    category_ids: &[i64],
) -> Result<Product, CatalogError> {
    let category_ids = &catalog::category_ids(category_ids)?[..];
    let keys: Vec<String> = category_ids.iter().map(|&id| cat_key(id)).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let found = if refs.is_empty() {
        Vec::new()
    } else {
        kv.read(&refs).await?
    };
    let exists = |id: i64| {
        category_ids
            .iter()
            .zip(&found)
            .any(|(&c, v)| c == id && v.is_some())
    };
    let p = catalog::product(
        name,
        price,
        image_url,
        units_available,
        category_ids,
        exists,
    )?;
    let compares = keys
        .iter()
        .zip(&found)
        .map(|(k, v)| cmd::compare(k, v.as_deref()))
        .collect();
    let (_, p) = create(kv, "prod/next", prod_key, compares, |id| Product {
        id,
        ..p.clone()
    })
    .await?;
    Ok(p)
}

pub async fn product(kv: &mut KvClient, id: i64) -> Result<Option<Product>, CatalogError> {
    match kv.get(&prod_key(id)).await? {
        None => Ok(None),
        Some(v) => Ok(Some(parse("product", &v)?)),
    }
}

/// What an order holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub lines: Vec<(i64, i64)>,
    pub released: bool,
}

/// Holds every line's units for `order`, all or none: `Ok(Ok(()))` when
/// held (now or before), `Ok(Err(refusal))` when a product is unknown or
/// short (nothing held; the refusal is recorded, so the order is refused
/// from then on). Idempotent by order id; an order whose units were given
/// back is refused.
pub async fn reserve(
    kv: &mut KvClient,
    order: &str,
    lines: &[(i64, i64)],
) -> Result<Result<(), Refusal>, CatalogError> {
    let hk = hold_key(order);
    // One line per product (two lines of one product would compare and
    // write its record twice).
    let mut merged: std::collections::BTreeMap<i64, i64> = Default::default();
    for (p, units) in lines {
        *merged.entry(*p).or_default() += units;
    }
    let lines: Vec<(i64, i64)> = merged.into_iter().collect();
    let lines = &lines[..];
    for _ in 0..100 {
        let mut keys = vec![hk.clone()];
        keys.extend(lines.iter().map(|(p, _)| prod_key(*p)));
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let values = kv.read(&refs).await?;
        if let Some(h) = &values[0] {
            let h: Hold = parse("hold", h)?;
            return Ok(if h.released {
                Err(Refusal::input(format!("order {order} gave its units back")))
            } else {
                Ok(())
            });
        }
        let mut compares = vec![cmd::compare(&hk, None)];
        let mut ops = vec![cmd::op_put(
            &hk,
            &json(&Hold {
                lines: lines.to_vec(),
                released: false,
            }),
        )];
        let mut refused = None;
        for ((p, units), v) in lines.iter().zip(&values[1..]) {
            let Some(v) = v else {
                refused = Some(Refusal::new(
                    codes::NOT_FOUND,
                    format!("productId: no product {p}"),
                ));
                break;
            };
            let mut prod: Product = parse("product", v)?;
            if prod.units_available < *units {
                refused = Some(Refusal::input(format!(
                    "product {p}: {units} units wanted, {} available",
                    prod.units_available
                )));
                break;
            }
            prod.units_available -= units;
            compares.push(cmd::compare(&prod_key(*p), Some(v)));
            ops.push(cmd::op_put(&prod_key(*p), &json(&prod)));
        }
        if let Some(r) = refused {
            // The refusal is final: recorded as a hold given back, so that
            // a later reserve of this order (another saga driver's, after
            // units came back) is refused too instead of holding units for
            // an order already ITEMS_REJECTED.
            let done = json(&Hold {
                lines: vec![],
                released: true,
            });
            if kv.cas(&hk, None, Some(&done)).await?.succeeded {
                return Ok(Err(r));
            }
            continue;
        }
        if kv.txn(compares, ops, vec![]).await?.succeeded {
            return Ok(Ok(()));
        }
    }
    Err(ClientError::Failed("reserve kept racing others; try again".into()).into())
}

/// Gives back what `order` holds (idempotent); also marks an order that
/// held nothing, so that a late reserve of it is refused.
pub async fn release(kv: &mut KvClient, order: &str) -> Result<(), CatalogError> {
    let hk = hold_key(order);
    for _ in 0..100 {
        let Some(raw) = kv.get(&hk).await? else {
            let none = json(&Hold {
                lines: vec![],
                released: true,
            });
            if kv.cas(&hk, None, Some(&none)).await?.succeeded {
                return Ok(());
            }
            continue;
        };
        let h: Hold = parse("hold", &raw)?;
        if h.released {
            return Ok(());
        }
        let mut compares = vec![cmd::compare(&hk, Some(&raw))];
        let mut ops = vec![cmd::op_put(
            &hk,
            &json(&Hold {
                released: true,
                ..h.clone()
            }),
        )];
        for (p, units) in &h.lines {
            let v = kv.get(&prod_key(*p)).await?;
            let Some(v) = v else { continue };
            let mut prod: Product = parse("product", &v)?;
            prod.units_available += units;
            compares.push(cmd::compare(&prod_key(*p), Some(&v)));
            ops.push(cmd::op_put(&prod_key(*p), &json(&prod)));
        }
        if kv.txn(compares, ops, vec![]).await?.succeeded {
            return Ok(());
        }
    }
    Err(ClientError::Failed("release kept racing others; try again".into()).into())
}

/// The catalogue for a status page or a check: categories, products,
/// holds.
pub async fn dump(kv: &mut KvClient) -> Result<serde_json::Value, CatalogError> {
    let mut products = serde_json::Map::new();
    for (k, v) in kv.scan("prod/id/").await? {
        let p: Product = parse("product", &v)?;
        products.insert(k, json!(p));
    }
    let mut holds = serde_json::Map::new();
    for (k, v) in kv.scan("hold/").await? {
        let h: Hold = parse("hold", &v)?;
        holds.insert(k, json!(h));
    }
    Ok(json!({"categories": categories(kv).await?, "products": products, "holds": holds}))
}
