//! Parsing the course's `POST /checkout` JSON body into a [`Checkout`].
//!
//! The body is the one the course's web page sends (`bookstore.yaml`):
//! user, credit card, items ordered by title, shipping method, billing
//! address, terms accepted, plus optional device/browser details that the
//! checks may read. [`parse_checkout`] walks a [`serde_json::Value`] by hand
//! rather than deriving `Deserialize`, so that every error is an
//! [`ApiError`] with an HTTP status, a stable machine code and a message that
//! names the JSON path (`creditCard.number must be a string, got number`).
//!
//! This is the *syntactic* gate only. It rejects what cannot be an order at
//! all (wrong types, missing keys, absurd sizes); it does not judge whether
//! an order is acceptable. An empty item list, an empty name or an expired
//! card parse fine and are rejected later by the checks in
//! [`crate::verify`] as business rejections. `null` counts as absent, and
//! unknown extra fields are ignored.
//!
//! Limits: a body of at most [`MAX_BODY`] bytes, at most [`MAX_ITEMS`]
//! items, quantities `1..=`[`MAX_QUANTITY`], strings of at most
//! [`MAX_STRING`] characters (anywhere, the optional JSON values included).
//! The parser never panics, whatever the bytes (property-tested).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// Largest accepted body, in bytes (413 `BODY_TOO_LARGE` above).
pub const MAX_BODY: usize = 64 * 1024;
/// Most items in one order (400 `TOO_MANY_ITEMS` above). A bookstore cart
/// with more distinct lines than this is a script, not a customer.
pub const MAX_ITEMS: usize = 100;
/// Largest quantity of one item line (400 `INVALID_QUANTITY` above, and
/// below 1). Bounds the amount arithmetic, too.
pub const MAX_QUANTITY: u32 = 1000;
/// Longest accepted string, in characters, in any field (400
/// `INVALID_VALUE` above).
pub const MAX_STRING: usize = 1000;

/// A parsed checkout request. Field names serialise in camelCase, as the
/// page sends them, so `serde_json::to_vec(&checkout)` parses back to the
/// same value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkout {
    pub user: User,
    pub credit_card: Card,
    #[serde(default)]
    pub user_comment: String,
    pub items: Vec<Item>,
    #[serde(default)]
    pub discount_code: String,
    pub shipping_method: Shipping,
    #[serde(default)]
    pub gift_message: String,
    pub billing_address: Address,
    #[serde(default)]
    pub gift_wrapping: bool,
    /// `termsAccepted` or the older `termsAndConditionsAccepted`.
    #[serde(alias = "termsAndConditionsAccepted")]
    pub terms_accepted: bool,
    #[serde(default)]
    pub notification_preferences: Option<Value>,
    #[serde(default)]
    pub device: Option<Value>,
    #[serde(default)]
    pub browser: Option<Value>,
    #[serde(default)]
    pub app_version: Option<String>,
    #[serde(default)]
    pub screen_resolution: Option<String>,
    #[serde(default)]
    pub referrer: Option<String>,
    #[serde(default)]
    pub device_language: Option<String>,
}

/// The buyer: a name and a contact (an email address or a phone number).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub name: String,
    pub contact: String,
}

/// The card as sent: the number may contain spaces or dashes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Card {
    pub number: String,
    pub expiration_date: String,
    pub cvv: String,
}

/// One order line: a book by title, and how many.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub name: String,
    pub quantity: u32,
}

/// The billing address; `state` may be empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    pub street: String,
    pub city: String,
    #[serde(default)]
    pub state: String,
    pub zip: String,
    pub country: String,
}

/// The shipping method. The derived order (`NextDay < Express < Standard`)
/// is the order queue's priority order, most urgent first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Shipping {
    #[serde(rename = "Next-Day", alias = "NextDay")]
    NextDay,
    Express,
    Standard,
}

impl Shipping {
    /// All methods, most urgent first.
    pub const ALL: [Shipping; 3] = [Shipping::NextDay, Shipping::Express, Shipping::Standard];

    /// The display name, as the page spells it.
    pub fn name(self) -> &'static str {
        match self {
            Shipping::NextDay => "Next-Day",
            Shipping::Express => "Express",
            Shipping::Standard => "Standard",
        }
    }

    /// Queue priority, 0 = most urgent.
    pub fn priority(self) -> u8 {
        match self {
            Shipping::NextDay => 0,
            Shipping::Express => 1,
            Shipping::Standard => 2,
        }
    }

    /// Case-insensitive; spaces, dashes and underscores are ignored, so
    /// "Next-Day", "Next Day", "NextDay", "next_day" are all next-day.
    pub fn parse(s: &str) -> Option<Shipping> {
        let k: String = s
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '_' | '\t'))
            .flat_map(char::to_lowercase)
            .collect();
        match k.as_str() {
            "nextday" => Some(Shipping::NextDay),
            "express" => Some(Shipping::Express),
            "standard" => Some(Shipping::Standard),
            _ => None,
        }
    }
}

impl fmt::Display for Shipping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rejected request: HTTP status, stable machine code, human message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(400, code, message)
    }

    /// The JSON response body: `{"error":{"code":..,"message":..}}`.
    pub fn body(&self) -> Value {
        serde_json::json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// The JSON type name of a value, for messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn wrong_type(path: &str, want: &str, got: &Value) -> ApiError {
    ApiError::bad(
        "WRONG_TYPE",
        format!("{path} must be {want}, got {}", type_name(got)),
    )
}

fn missing(path: &str) -> ApiError {
    ApiError::bad("MISSING_FIELD", format!("{path} is required"))
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// At most `n` characters of `s`, for quoting user input in messages.
fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

fn check_len(path: &str, s: &str) -> Result<(), ApiError> {
    let n = s.chars().count();
    if n > MAX_STRING {
        return Err(ApiError::bad(
            "INVALID_VALUE",
            format!("{path} is {n} characters long, at most {MAX_STRING} are allowed"),
        ));
    }
    Ok(())
}

/// The value of `key`, `None` when absent or `null`.
fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn req<'a>(obj: &'a Map<String, Value>, parent: &str, key: &str) -> Result<&'a Value, ApiError> {
    field(obj, key).ok_or_else(|| missing(&join(parent, key)))
}

fn as_obj<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ApiError> {
    v.as_object()
        .ok_or_else(|| wrong_type(path, "an object", v))
}

fn as_str(v: &Value, path: &str) -> Result<String, ApiError> {
    let s = v.as_str().ok_or_else(|| wrong_type(path, "a string", v))?;
    check_len(path, s)?;
    Ok(s.to_string())
}

fn req_obj<'a>(
    obj: &'a Map<String, Value>,
    parent: &str,
    key: &str,
) -> Result<&'a Map<String, Value>, ApiError> {
    as_obj(req(obj, parent, key)?, &join(parent, key))
}

fn req_str(obj: &Map<String, Value>, parent: &str, key: &str) -> Result<String, ApiError> {
    as_str(req(obj, parent, key)?, &join(parent, key))
}

/// An optional string: absent or `null` gives `None`.
fn opt_str(obj: &Map<String, Value>, parent: &str, key: &str) -> Result<Option<String>, ApiError> {
    field(obj, key)
        .map(|v| as_str(v, &join(parent, key)))
        .transpose()
}

fn opt_bool(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    field(obj, key)
        .map(|v| v.as_bool().ok_or_else(|| wrong_type(key, "a boolean", v)))
        .transpose()
}

/// An optional free-form JSON value, its strings length-checked.
fn opt_value(obj: &Map<String, Value>, key: &str) -> Result<Option<Value>, ApiError> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) => {
            check_strings(v, key)?;
            Ok(Some(v.clone()))
        }
    }
}

/// Every string in `v` (keys included) is at most [`MAX_STRING`] characters.
/// The recursion is bounded by serde_json's nesting limit (128).
fn check_strings(v: &Value, path: &str) -> Result<(), ApiError> {
    match v {
        Value::String(s) => check_len(path, s),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| check_strings(x, &format!("{path}[{i}]"))),
        Value::Object(o) => o.iter().try_for_each(|(k, x)| {
            let p = join(path, &clip(k, 40));
            check_len(&p, k)?;
            check_strings(x, &p)
        }),
        _ => Ok(()),
    }
}

fn parse_quantity(v: &Value, path: &str) -> Result<u32, ApiError> {
    let n = match v {
        Value::Number(n) => n,
        _ => return Err(wrong_type(path, "an integer", v)),
    };
    let bad = |shown: String| {
        ApiError::bad(
            "INVALID_QUANTITY",
            format!("{path} must be between 1 and {MAX_QUANTITY}, got {shown}"),
        )
    };
    if let Some(u) = n.as_u64() {
        return match u32::try_from(u) {
            Ok(q) if (1..=MAX_QUANTITY).contains(&q) => Ok(q),
            _ => Err(bad(u.to_string())),
        };
    }
    if let Some(i) = n.as_i64() {
        // as_u64 failed, so it is negative.
        return Err(bad(i.to_string()));
    }
    // A float: accept an integral value (2.0, 1e2), refuse a fraction.
    let f = n.as_f64().unwrap_or(f64::NAN);
    if !f.is_finite() || f.fract() != 0.0 {
        return Err(ApiError::bad(
            "WRONG_TYPE",
            format!(
                "{path} must be an integer, got {}",
                clip(&n.to_string(), 40)
            ),
        ));
    }
    if f >= 1.0 && f <= MAX_QUANTITY as f64 {
        Ok(f as u32)
    } else {
        Err(bad(clip(&n.to_string(), 40)))
    }
}

fn parse_items(v: &Value) -> Result<Vec<Item>, ApiError> {
    let arr = v
        .as_array()
        .ok_or_else(|| wrong_type("items", "an array", v))?;
    if arr.len() > MAX_ITEMS {
        return Err(ApiError::bad(
            "TOO_MANY_ITEMS",
            format!(
                "items has {} entries, at most {MAX_ITEMS} are allowed",
                arr.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(arr.len());
    for (i, it) in arr.iter().enumerate() {
        let path = format!("items[{i}]");
        let obj = as_obj(it, &path)?;
        let name = req_str(obj, &path, "name")?;
        if name.trim().is_empty() {
            return Err(ApiError::bad(
                "INVALID_VALUE",
                format!("{path}.name must not be empty"),
            ));
        }
        let qpath = format!("{path}.quantity");
        let quantity = parse_quantity(req(obj, &path, "quantity")?, &qpath)?;
        out.push(Item { name, quantity });
    }
    Ok(out)
}

/// Parses and validates a `POST /checkout` body (see the module doc for
/// the rules and the error codes). Never panics.
pub fn parse_checkout(body: &[u8]) -> Result<Checkout, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::new(
            413,
            "BODY_TOO_LARGE",
            format!(
                "the body is {} bytes, at most {MAX_BODY} are allowed",
                body.len()
            ),
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad(
            "EMPTY_BODY",
            "the body is empty; send the order as a JSON object",
        ));
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::bad(
            "INVALID_JSON",
            format!(
                "the body is not UTF-8 text (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })?;
    let root: Value = serde_json::from_str(text).map_err(|e| {
        ApiError::bad(
            "INVALID_JSON",
            // serde_json's message already ends with "at line L column C".
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    let top = root
        .as_object()
        .ok_or_else(|| wrong_type("the body", "a JSON object", &root))?;

    let u = req_obj(top, "", "user")?;
    let user = User {
        name: req_str(u, "user", "name")?,
        contact: req_str(u, "user", "contact")?,
    };

    let c = req_obj(top, "", "creditCard")?;
    let credit_card = Card {
        number: req_str(c, "creditCard", "number")?,
        expiration_date: req_str(c, "creditCard", "expirationDate")?,
        cvv: req_str(c, "creditCard", "cvv")?,
    };

    let items = parse_items(req(top, "", "items")?)?;

    let a = req_obj(top, "", "billingAddress")?;
    let billing_address = Address {
        street: req_str(a, "billingAddress", "street")?,
        city: req_str(a, "billingAddress", "city")?,
        state: opt_str(a, "billingAddress", "state")?.unwrap_or_default(),
        zip: req_str(a, "billingAddress", "zip")?,
        country: req_str(a, "billingAddress", "country")?,
    };

    let sm = req_str(top, "", "shippingMethod")?;
    let shipping_method = Shipping::parse(&sm).ok_or_else(|| {
        ApiError::bad(
            "INVALID_VALUE",
            format!(
                "shippingMethod must be one of Next-Day, Express, Standard; got \"{}\"",
                clip(&sm, 40)
            ),
        )
    })?;

    let t_new = opt_bool(top, "termsAccepted")?;
    let t_old = opt_bool(top, "termsAndConditionsAccepted")?;
    let terms_accepted = match (t_new, t_old) {
        (None, None) => return Err(missing("termsAccepted (or termsAndConditionsAccepted)")),
        (a, b) => a.unwrap_or(false) || b.unwrap_or(false),
    };

    Ok(Checkout {
        user,
        credit_card,
        user_comment: opt_str(top, "", "userComment")?.unwrap_or_default(),
        items,
        discount_code: opt_str(top, "", "discountCode")?.unwrap_or_default(),
        shipping_method,
        gift_message: opt_str(top, "", "giftMessage")?.unwrap_or_default(),
        billing_address,
        gift_wrapping: opt_bool(top, "giftWrapping")?.unwrap_or(false),
        terms_accepted,
        notification_preferences: opt_value(top, "notificationPreferences")?,
        device: opt_value(top, "device")?,
        browser: opt_value(top, "browser")?,
        app_version: opt_str(top, "", "appVersion")?,
        screen_resolution: opt_str(top, "", "screenResolution")?,
        referrer: opt_str(top, "", "referrer")?,
        device_language: opt_str(top, "", "deviceLanguage")?,
    })
}

const DEMO_BODY: &str = r#"{"user":{"name":"John Doe","contact":"john.doe@example.com"},"creditCard":{"number":"4111111111111111","expirationDate":"12/30","cvv":"123"},"userComment":"Please handle with care.","items":[{"name":"Book A","quantity":1},{"name":"Book B","quantity":2}],"discountCode":"","shippingMethod":"Standard","giftMessage":"","billingAddress":{"street":"123 Main St","city":"Springfield","state":"IL","zip":"62701","country":"USA"},"giftWrapping":true,"termsAndConditionsAccepted":true,"notificationPreferences":["email"],"device":{"type":"Smartphone","model":"iPhone 12","os":"iOS 14.4"},"browser":{"name":"Chrome","version":"85.0.4183.127"},"appVersion":"3.0.0","screenResolution":"1440x900","referrer":"Google","deviceLanguage":"en-US"}"#;

/// The body the course's template page sends, byte for byte. It parses,
/// and it passes every check (for a catalogue from [`crate::catalogue::seed`]).
pub fn demo_body() -> &'static str {
    DEMO_BODY
}

/// The demo body with `edit` applied to its top-level object.
fn demo_with(edit: impl FnOnce(&mut Map<String, Value>)) -> Vec<u8> {
    let mut v: Value = serde_json::from_str(DEMO_BODY).expect("the demo body is JSON");
    if let Some(o) = v.as_object_mut() {
        edit(o);
    }
    serde_json::to_vec(&v).expect("a Value serialises")
}

/// `o[a][b] = new` (or removes `o[a][b]` when `new` is `None`).
fn set2(o: &mut Map<String, Value>, a: &str, b: &str, new: Option<Value>) {
    if let Some(Value::Object(inner)) = o.get_mut(a) {
        match new {
            Some(v) => inner.insert(b.to_string(), v),
            None => inner.remove(b),
        };
    }
}

/// `o.items[i][key] = new` (or removes it when `new` is `None`).
fn set_item(o: &mut Map<String, Value>, i: usize, key: &str, new: Option<Value>) {
    if let Some(Value::Object(item)) = o.get_mut("items").and_then(|v| v.get_mut(i)) {
        match new {
            Some(v) => item.insert(key.to_string(), v),
            None => item.remove(key),
        };
    }
}

/// Bad request bodies, each with the status and code [`parse_checkout`]
/// gives it: `(what, body, status, code)`. Each differs from
/// [`demo_body`] by one defect. Shared with the HTTP end-to-end tests, which
/// replay them against the real server.
pub fn bad_inputs() -> Vec<(&'static str, Vec<u8>, u16, &'static str)> {
    use serde_json::json;
    let mut v: Vec<(&'static str, Vec<u8>, u16, &'static str)> = vec![
        (
            "malformed JSON",
            br#"{"user": {name: "x"}}"#.to_vec(),
            400,
            "INVALID_JSON",
        ),
        (
            "truncated JSON",
            DEMO_BODY.as_bytes()[..DEMO_BODY.len() / 2].to_vec(),
            400,
            "INVALID_JSON",
        ),
        (
            "trailing garbage after the object",
            format!("{DEMO_BODY} x").into_bytes(),
            400,
            "INVALID_JSON",
        ),
        (
            "nesting deeper than the JSON parser allows",
            format!("{}{}", "[".repeat(200), "]".repeat(200)).into_bytes(),
            400,
            "INVALID_JSON",
        ),
        (
            "non-UTF-8 bytes",
            b"{\"user\": \"\xff\xfe\"}".to_vec(),
            400,
            "INVALID_JSON",
        ),
        ("empty body", Vec::new(), 400, "EMPTY_BODY"),
        (
            "whitespace-only body",
            b"  \r\n ".to_vec(),
            400,
            "EMPTY_BODY",
        ),
        ("top-level array", b"[1, 2, 3]".to_vec(), 400, "WRONG_TYPE"),
        (
            "top-level string",
            b"\"checkout\"".to_vec(),
            400,
            "WRONG_TYPE",
        ),
        ("top-level null", b"null".to_vec(), 400, "WRONG_TYPE"),
    ];
    let mut big = DEMO_BODY.as_bytes().to_vec();
    big.resize(MAX_BODY + 1, b' ');
    v.push((
        "oversized body (valid JSON padded with spaces)",
        big,
        413,
        "BODY_TOO_LARGE",
    ));

    let edits: Vec<(&'static str, Vec<u8>, u16, &'static str)> = vec![
        (
            "missing user",
            demo_with(|o| {
                o.remove("user");
            }),
            400,
            "MISSING_FIELD",
        ),
        (
            "user is null",
            demo_with(|o| {
                o.insert("user".into(), Value::Null);
            }),
            400,
            "MISSING_FIELD",
        ),
        (
            "user as string",
            demo_with(|o| {
                o.insert("user".into(), json!("John Doe"));
            }),
            400,
            "WRONG_TYPE",
        ),
        (
            "user without contact",
            demo_with(|o| set2(o, "user", "contact", None)),
            400,
            "MISSING_FIELD",
        ),
        (
            "user.name as number",
            demo_with(|o| set2(o, "user", "name", Some(json!(42)))),
            400,
            "WRONG_TYPE",
        ),
        (
            "missing creditCard",
            demo_with(|o| {
                o.remove("creditCard");
            }),
            400,
            "MISSING_FIELD",
        ),
        (
            "missing creditCard.cvv",
            demo_with(|o| set2(o, "creditCard", "cvv", None)),
            400,
            "MISSING_FIELD",
        ),
        (
            "card number as number",
            demo_with(|o| set2(o, "creditCard", "number", Some(json!(4111111111111111u64)))),
            400,
            "WRONG_TYPE",
        ),
        (
            "expirationDate as array",
            demo_with(|o| set2(o, "creditCard", "expirationDate", Some(json!([12, 30])))),
            400,
            "WRONG_TYPE",
        ),
        (
            "missing items",
            demo_with(|o| {
                o.remove("items");
            }),
            400,
            "MISSING_FIELD",
        ),
        (
            "items not an array",
            demo_with(|o| {
                o.insert("items".into(), json!({"name": "Book A", "quantity": 1}));
            }),
            400,
            "WRONG_TYPE",
        ),
        (
            "item not an object",
            demo_with(|o| {
                o.insert("items".into(), json!(["Book A"]));
            }),
            400,
            "WRONG_TYPE",
        ),
        (
            "item without name",
            demo_with(|o| set_item(o, 0, "name", None)),
            400,
            "MISSING_FIELD",
        ),
        (
            "item with empty name",
            demo_with(|o| set_item(o, 1, "name", Some(json!("  ")))),
            400,
            "INVALID_VALUE",
        ),
        (
            "item without quantity",
            demo_with(|o| set_item(o, 1, "quantity", None)),
            400,
            "MISSING_FIELD",
        ),
        (
            "quantity 0",
            demo_with(|o| set_item(o, 0, "quantity", Some(json!(0)))),
            400,
            "INVALID_QUANTITY",
        ),
        (
            "quantity -1",
            demo_with(|o| set_item(o, 0, "quantity", Some(json!(-1)))),
            400,
            "INVALID_QUANTITY",
        ),
        (
            "quantity above MAX_QUANTITY",
            demo_with(|o| set_item(o, 0, "quantity", Some(json!(MAX_QUANTITY + 1)))),
            400,
            "INVALID_QUANTITY",
        ),
        (
            "quantity 1.5",
            demo_with(|o| set_item(o, 0, "quantity", Some(json!(1.5)))),
            400,
            "WRONG_TYPE",
        ),
        (
            "quantity \"2\" (a string)",
            demo_with(|o| set_item(o, 0, "quantity", Some(json!("2")))),
            400,
            "WRONG_TYPE",
        ),
        (
            "too many items",
            demo_with(|o| {
                o.insert(
                    "items".into(),
                    json!(vec![
                        json!({"name": "Book A", "quantity": 1});
                        MAX_ITEMS + 1
                    ]),
                );
            }),
            400,
            "TOO_MANY_ITEMS",
        ),
        (
            "missing billingAddress",
            demo_with(|o| {
                o.remove("billingAddress");
            }),
            400,
            "MISSING_FIELD",
        ),
        (
            "billingAddress missing country",
            demo_with(|o| set2(o, "billingAddress", "country", None)),
            400,
            "MISSING_FIELD",
        ),
        (
            "billingAddress.zip as number",
            demo_with(|o| set2(o, "billingAddress", "zip", Some(json!(62701)))),
            400,
            "WRONG_TYPE",
        ),
        (
            "unknown shippingMethod",
            demo_with(|o| {
                o.insert("shippingMethod".into(), json!("Drone"));
            }),
            400,
            "INVALID_VALUE",
        ),
        (
            "missing shippingMethod",
            demo_with(|o| {
                o.remove("shippingMethod");
            }),
            400,
            "MISSING_FIELD",
        ),
        (
            "terms missing",
            demo_with(|o| {
                o.remove("termsAndConditionsAccepted");
            }),
            400,
            "MISSING_FIELD",
        ),
        (
            "terms as string",
            demo_with(|o| {
                o.insert("termsAndConditionsAccepted".into(), json!("true"));
            }),
            400,
            "WRONG_TYPE",
        ),
        (
            "termsAccepted as number",
            demo_with(|o| {
                o.insert("termsAccepted".into(), json!(1));
            }),
            400,
            "WRONG_TYPE",
        ),
        (
            "giftWrapping as string",
            demo_with(|o| {
                o.insert("giftWrapping".into(), json!("yes"));
            }),
            400,
            "WRONG_TYPE",
        ),
        (
            "userComment as object",
            demo_with(|o| {
                o.insert("userComment".into(), json!({"text": "hi"}));
            }),
            400,
            "WRONG_TYPE",
        ),
        (
            "appVersion as number",
            demo_with(|o| {
                o.insert("appVersion".into(), json!(3));
            }),
            400,
            "WRONG_TYPE",
        ),
        (
            "userComment over 1000 characters",
            demo_with(|o| {
                o.insert("userComment".into(), json!("x".repeat(MAX_STRING + 1)));
            }),
            400,
            "INVALID_VALUE",
        ),
        (
            "string over 1000 characters inside device",
            demo_with(|o| {
                set2(
                    o,
                    "device",
                    "model",
                    Some(json!("é".repeat(MAX_STRING + 1))),
                )
            }),
            400,
            "INVALID_VALUE",
        ),
    ];
    v.extend(edits);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::collections::HashSet;

    fn demo_value() -> Value {
        serde_json::from_str(DEMO_BODY).unwrap()
    }

    fn parse_value(v: &Value) -> Result<Checkout, ApiError> {
        parse_checkout(&serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn demo_body_parses() {
        let c = parse_checkout(demo_body().as_bytes()).unwrap();
        assert_eq!(
            c.user,
            User {
                name: "John Doe".into(),
                contact: "john.doe@example.com".into()
            }
        );
        assert_eq!(c.credit_card.number, "4111111111111111");
        assert_eq!(c.credit_card.expiration_date, "12/30");
        assert_eq!(c.credit_card.cvv, "123");
        assert_eq!(c.user_comment, "Please handle with care.");
        assert_eq!(
            c.items,
            vec![
                Item {
                    name: "Book A".into(),
                    quantity: 1
                },
                Item {
                    name: "Book B".into(),
                    quantity: 2
                }
            ]
        );
        assert_eq!(c.discount_code, "");
        assert_eq!(c.shipping_method, Shipping::Standard);
        assert_eq!(c.billing_address.state, "IL");
        assert_eq!(c.billing_address.country, "USA");
        assert!(c.gift_wrapping);
        assert!(c.terms_accepted);
        assert_eq!(c.notification_preferences, Some(json!(["email"])));
        assert_eq!(c.device.as_ref().unwrap()["model"], "iPhone 12");
        assert_eq!(c.browser.as_ref().unwrap()["name"], "Chrome");
        assert_eq!(c.app_version.as_deref(), Some("3.0.0"));
        assert_eq!(c.screen_resolution.as_deref(), Some("1440x900"));
        assert_eq!(c.referrer.as_deref(), Some("Google"));
        assert_eq!(c.device_language.as_deref(), Some("en-US"));
    }

    #[test]
    fn terms_accepted_spelling_and_combination() {
        let mut v = demo_value();
        let o = v.as_object_mut().unwrap();
        o.remove("termsAndConditionsAccepted");
        o.insert("termsAccepted".into(), json!(true));
        assert!(parse_value(&v).unwrap().terms_accepted);
        v["termsAccepted"] = json!(false);
        assert!(!parse_value(&v).unwrap().terms_accepted);
        v["termsAndConditionsAccepted"] = json!(true);
        assert!(
            parse_value(&v).unwrap().terms_accepted,
            "either true counts"
        );
        v["termsAccepted"] = json!(true);
        v["termsAndConditionsAccepted"] = json!(false);
        assert!(parse_value(&v).unwrap().terms_accepted);
        v["termsAccepted"] = Value::Null;
        assert!(
            !parse_value(&v).unwrap().terms_accepted,
            "null counts as absent"
        );
    }

    #[test]
    fn optional_fields_default() {
        let v = json!({
            "user": {"name": "A B", "contact": "a@b.ee"},
            "creditCard": {"number": "4111 1111-1111 1111", "expirationDate": "12/30", "cvv": "123"},
            "items": [],
            "billingAddress": {"street": "", "city": "Tartu", "zip": "50090", "country": "Estonia", "state": null},
            "shippingMethod": "next_day",
            "termsAccepted": false,
            "userComment": null,
            "extra": {"ignored": [1, 2, 3]}
        });
        let c = parse_value(&v).unwrap();
        assert!(
            c.items.is_empty(),
            "an empty cart is a business rejection, not a parse error"
        );
        assert_eq!(c.credit_card.number, "4111 1111-1111 1111", "kept as sent");
        assert_eq!(c.billing_address.street, "");
        assert_eq!(c.billing_address.state, "");
        assert_eq!(c.user_comment, "");
        assert_eq!(c.discount_code, "");
        assert_eq!(c.gift_message, "");
        assert!(!c.gift_wrapping);
        assert_eq!(c.shipping_method, Shipping::NextDay);
        assert_eq!(c.device, None);
        assert_eq!(c.app_version, None);
    }

    #[test]
    fn integral_float_quantity_is_accepted() {
        let mut v = demo_value();
        v["items"][0]["quantity"] = json!(2.0);
        assert_eq!(parse_value(&v).unwrap().items[0].quantity, 2);
        v["items"][0]["quantity"] = json!(1e9);
        assert_eq!(parse_value(&v).unwrap_err().code, "INVALID_QUANTITY");
        v["items"][0]["quantity"] = json!(u64::MAX);
        assert_eq!(parse_value(&v).unwrap_err().code, "INVALID_QUANTITY");
        v["items"][0]["quantity"] = json!(MAX_QUANTITY);
        assert_eq!(parse_value(&v).unwrap().items[0].quantity, MAX_QUANTITY);
    }

    #[test]
    fn shipping_names() {
        for s in [
            "Next-Day",
            "Next Day",
            "NextDay",
            "next_day",
            "NEXT-DAY",
            " next day ",
        ] {
            assert_eq!(Shipping::parse(s), Some(Shipping::NextDay), "{s}");
        }
        assert_eq!(Shipping::parse("express"), Some(Shipping::Express));
        assert_eq!(Shipping::parse("STANDARD"), Some(Shipping::Standard));
        assert_eq!(Shipping::parse("overnight"), None);
        assert_eq!(Shipping::parse(""), None);
        for s in Shipping::ALL {
            assert_eq!(Shipping::parse(s.name()), Some(s));
        }
        assert!(Shipping::NextDay < Shipping::Express && Shipping::Express < Shipping::Standard);
        assert_eq!(Shipping::ALL.map(Shipping::priority), [0, 1, 2]);
        assert_eq!(
            serde_json::to_string(&Shipping::NextDay).unwrap(),
            "\"Next-Day\""
        );
        assert_eq!(
            serde_json::from_str::<Shipping>("\"NextDay\"").unwrap(),
            Shipping::NextDay
        );
    }

    #[test]
    fn messages_name_the_path() {
        let mut v = demo_value();
        v["creditCard"]["number"] = json!(4111);
        let e = parse_value(&v).unwrap_err();
        assert_eq!(e.message, "creditCard.number must be a string, got number");
        let mut v = demo_value();
        v["items"][1].as_object_mut().unwrap().remove("quantity");
        let e = parse_value(&v).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            ("MISSING_FIELD", "items[1].quantity is required")
        );
        let mut v = demo_value();
        v["items"][1]["quantity"] = json!(0);
        assert!(parse_value(&v)
            .unwrap_err()
            .message
            .starts_with("items[1].quantity"));
        let mut v = demo_value();
        v["shippingMethod"] = json!("Drone");
        let m = parse_value(&v).unwrap_err().message;
        assert!(
            m.contains("Next-Day") && m.contains("Express") && m.contains("Standard"),
            "{m}"
        );
        let e = parse_checkout(b"{\"user\": ").unwrap_err();
        assert_eq!(
            e.message,
            "the body is not valid JSON: EOF while parsing a value at line 1 column 9"
        );
    }

    #[test]
    fn error_body_and_display() {
        let e = ApiError::new(400, "MISSING_FIELD", "user is required");
        assert_eq!(
            e.body(),
            json!({"error": {"code": "MISSING_FIELD", "message": "user is required"}})
        );
        assert_eq!(e.to_string(), "400 MISSING_FIELD: user is required");
    }

    #[test]
    fn bad_inputs_give_their_status_and_code() {
        let all = bad_inputs();
        assert!(all.len() >= 20, "{}", all.len());
        let names: HashSet<_> = all.iter().map(|b| b.0).collect();
        assert_eq!(names.len(), all.len(), "distinct names");
        let bodies: HashSet<_> = all.iter().map(|b| b.1.clone()).collect();
        assert_eq!(bodies.len(), all.len(), "distinct bodies");
        for (what, body, status, code) in all {
            match parse_checkout(&body) {
                Ok(_) => panic!("{what}: parsed"),
                Err(e) => {
                    assert_eq!((e.status, e.code), (status, code), "{what}: {e}");
                    assert!(!e.message.is_empty());
                }
            }
        }
    }

    #[test]
    fn serialised_checkout_parses_back() {
        let c = parse_checkout(demo_body().as_bytes()).unwrap();
        let again = parse_checkout(&serde_json::to_vec(&c).unwrap()).unwrap();
        assert_eq!(again, c);
        let via_serde: Checkout = serde_json::from_str(demo_body()).unwrap();
        assert_eq!(via_serde, c);
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            (-5i64..1100).prop_map(|i| json!(i)),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,12}".prop_map(Value::String),
            prop::sample::select(vec![
                "Standard", "Express", "next day", "Book A", "12/30", ""
            ])
            .prop_map(|s| json!(s)),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Paths into the demo body that the shaped strategy mutates.
    const PATHS: &[&[&str]] = &[
        &[],
        &["user"],
        &["user", "name"],
        &["user", "contact"],
        &["creditCard"],
        &["creditCard", "number"],
        &["creditCard", "expirationDate"],
        &["creditCard", "cvv"],
        &["items"],
        &["items", "0"],
        &["items", "0", "name"],
        &["items", "1", "quantity"],
        &["billingAddress"],
        &["billingAddress", "state"],
        &["billingAddress", "country"],
        &["shippingMethod"],
        &["termsAndConditionsAccepted"],
        &["termsAccepted"],
        &["giftWrapping"],
        &["userComment"],
        &["device"],
        &["appVersion"],
    ];

    fn mutate(v: &mut Value, path: &[&str], new: Option<Value>) {
        let Some((last, init)) = path.split_last() else {
            if let Some(n) = new {
                *v = n;
            }
            return;
        };
        let mut cur = v;
        for k in init {
            cur = match cur {
                Value::Object(o) => match o.get_mut(*k) {
                    Some(x) => x,
                    None => return,
                },
                Value::Array(a) => match k.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                    Some(x) => x,
                    None => return,
                },
                _ => return,
            };
        }
        match (cur, new) {
            (Value::Object(o), Some(n)) => {
                o.insert(last.to_string(), n);
            }
            (Value::Object(o), None) => {
                o.remove(*last);
            }
            (Value::Array(a), n) => {
                if let Some(i) = last.parse::<usize>().ok().filter(|i| *i < a.len()) {
                    match n {
                        Some(n) => a[i] = n,
                        None => {
                            a.remove(i);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    const CODES: &[&str] = &[
        "BODY_TOO_LARGE",
        "EMPTY_BODY",
        "INVALID_JSON",
        "WRONG_TYPE",
        "MISSING_FIELD",
        "TOO_MANY_ITEMS",
        "INVALID_QUANTITY",
        "INVALID_VALUE",
    ];

    fn check_outcome(r: &Result<Checkout, ApiError>) -> Result<(), TestCaseError> {
        match r {
            Ok(c) => {
                prop_assert!(c.items.len() <= MAX_ITEMS);
                for it in &c.items {
                    prop_assert!((1..=MAX_QUANTITY).contains(&it.quantity));
                    prop_assert!(!it.name.trim().is_empty());
                }
                for s in [&c.user.name, &c.credit_card.number, &c.user_comment] {
                    prop_assert!(s.chars().count() <= MAX_STRING);
                }
            }
            Err(e) => {
                prop_assert!(CODES.contains(&e.code), "{}", e.code);
                prop_assert_eq!(e.status, if e.code == "BODY_TOO_LARGE" { 413 } else { 400 });
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..300)) {
            check_outcome(&parse_checkout(&body))?;
        }

        #[test]
        fn demo_prefixes_never_panic(cut in 0usize..DEMO_BODY.len()) {
            let r = parse_checkout(&DEMO_BODY.as_bytes()[..cut]);
            prop_assert!(r.is_err());
            check_outcome(&r)?;
        }

        #[test]
        fn arbitrary_json_never_panics(v in arb_json()) {
            check_outcome(&parse_value(&v))?;
        }

        #[test]
        fn shaped_bodies_never_panic(
            edits in prop::collection::vec(
                (0..PATHS.len(), prop::option::of(arb_json())), 1..4)
        ) {
            let mut v = demo_value();
            for (p, new) in edits {
                mutate(&mut v, PATHS[p], new);
            }
            let r = parse_value(&v);
            check_outcome(&r)?;
            if let Ok(c) = r {
                // What parses serialises to a body that parses to the same.
                let again = parse_checkout(&serde_json::to_vec(&c).unwrap());
                prop_assert_eq!(again.as_ref(), Ok(&c));
            }
        }
    }
}
