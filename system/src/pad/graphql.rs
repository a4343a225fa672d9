//! The gateway's GraphQL schema, the course's as is (`schema.graphql`
//! beside this file is what [`sdl`] prints, checked by a test), resolved by
//! calls to the services found through the registry. It runs the same in
//! both builds: the real gateway serves it over HTTP
//! ([`super::gateway`]); the simulator executes requests on it directly.
//!
//! Authentication: `Authorization: Bearer <access token>` (what `login` and
//! `refresh` return). The refresh token comes back in an HTTP-only cookie
//! `refresh_token` and in the `x-refresh-token` response header; `refresh`
//! reads it from either. Access tokens expire after 5 minutes by the
//! gateway's clock ([`pad_core::auth::ACCESS_TTL_MS`]); every check of one
//! asks the auth service, which reads its family linearizably, so a logout
//! is seen at once by every gateway. The first registered user is the admin
//! (catalogue writes).
//!
//! Errors carry `extensions.code`: `BAD_USER_INPUT` (the message names the
//! field), `UNAUTHENTICATED` (no, malformed, forged, expired or revoked
//! token: never which), `INVALID_CREDENTIALS`, `FORBIDDEN`, `EMAIL_TAKEN`,
//! `NOT_FOUND`, `UNAVAILABLE` (certainly not done: send again; every read
//! that no instance answered, since a read changes nothing) and
//! `OUTCOME_UNKNOWN` (a write that may have been done: read before sending
//! again).
//!
//! Limits ([`Limits`]): fields nest at most [`DEPTH_LIMIT`] deep, not
//! counting introspection's `ofType` (a single object, never a list: a
//! chain of them cannot multiply an answer, and the standard introspection
//! query that GraphiQL and other tools send nests nine of them); a request
//! costs at most [`COMPLEXITY_LIMIT`] (every field 1 once its fragments are
//! inlined, `login` and `registerUser` [`KDF_FIELD_COMPLEXITY`]).

use super::pb;
use super::rpc::{status_error, status_refusal, Discovery, READ_NOT_DONE};
use super::PadError;
use crate::client::ClientError;
use crate::tartu::WallClock;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{
    Context, EmptySubscription, Enum, ErrorExtensions, InputObject, Object, Schema, ServerError,
    ServerResult, SimpleObject, ValidationResult,
};
use pad_core::codes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;

pub type PadSchema = Schema<Query, Mutation, EmptySubscription>;

/// What the schema's resolvers call through.
#[derive(Clone)]
pub struct Api {
    pub disc: Discovery,
    /// The gateway's clock: token expiry is judged by it.
    pub wall: WallClock,
    /// Deadline of one call to a service (retries included).
    pub deadline: Duration,
    /// Told of every access token the auth service accepted for this
    /// gateway, with the gateway's time it was judged at (the harness's
    /// expiry check); `None`: nobody listens.
    pub audit: Option<TokenAudit>,
}

/// The gateway's hook told of every accepted access token.
pub type TokenAudit = std::sync::Arc<dyn Fn(&Accepted) + Send + Sync>;

/// An access token accepted: its expiry (read from the token) and the
/// gateway's time when it asked.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub user: u64,
    pub now_ms: u64,
    pub exp_ms: Option<u64>,
}

/// The credentials a request carries (from its HTTP headers).
#[derive(Clone, Debug, Default)]
pub struct Creds {
    pub bearer: Option<String>,
    pub refresh: Option<String>,
}

/// The complexity of `login` and `registerUser`, which run argon2 (19 MiB,
/// two passes): against the limit of [`COMPLEXITY_LIMIT`], a request holds
/// at most two of them, however they are aliased, so one request cannot
/// make the auth service hash hundreds of passwords.
pub const KDF_FIELD_COMPLEXITY: usize = 200;
/// A request's complexity limit (every other field costs 1).
pub const COMPLEXITY_LIMIT: usize = 500;
/// How deep a request's fields may nest, `ofType` not counted (the
/// standard introspection query nests 6: `__schema types fields args type
/// name`, then up to nine `ofType`).
pub const DEPTH_LIMIT: usize = 10;
/// How deep selection sets and fragment spreads may nest, everything
/// counted (what async-graphql allows).
pub const NESTING_LIMIT: usize = 32;

/// The schema, resolving through `api`.
pub fn schema(api: Api) -> PadSchema {
    Schema::build(Query, Mutation, EmptySubscription)
        .data(api)
        .limit_recursive_depth(NESTING_LIMIT)
        .extension(Limits)
        .finish()
}

/// The request limits, as an async-graphql extension: depth (with
/// `ofType` free, see [`DEPTH_LIMIT`]), the number of fields once fragments
/// are inlined (before any other check, which would inline them too: a
/// fragment spread twice in a fragment spread twice... would make them
/// visit exponentially many), fragment cycles, and the complexity, each
/// refused with a message that gives the limit.
pub struct Limits;

impl ExtensionFactory for Limits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Limits)
    }
}

fn limit_error(message: String) -> ServerError {
    ServerError::new(message, None)
}

/// A variable the operation declares non-null, with no default, that the
/// request leaves out or sends as null: refused before anything runs, in
/// graphql-js's words. async-graphql itself said "Variable id is not
/// defined." (of a variable the query does define), and only once a
/// resolver reached it.
fn missing_variables(
    doc: &ExecutableDocument,
    operation: Option<&str>,
    vars: &async_graphql::Variables,
) -> Option<ServerError> {
    let mut ops = doc.operations.iter();
    let op = match operation {
        Some(n) => ops.find(|(k, _)| k.is_some_and(|k| k.as_str() == n)),
        // With several operations and no name, async-graphql says so.
        None => ops.next().filter(|_| doc.operations.iter().count() == 1),
    }?;
    op.1.node.variable_definitions.iter().find_map(|d| {
        let (name, ty) = (&d.node.name.node, &d.node.var_type.node);
        if ty.nullable || d.node.default_value.is_some() {
            return None;
        }
        let message = match vars.get(name) {
            None => format!("Variable \"${name}\" of required type \"{ty}\" was not provided."),
            Some(async_graphql::Value::Null) => {
                format!("Variable \"${name}\" of non-null type \"{ty}\" must not be null.")
            }
            Some(_) => return None,
        };
        Some(
            async_graphql::Error::new(message)
                .extend_with(|_, e| e.set("code", codes::BAD_USER_INPUT))
                .into_server_error(d.pos),
        )
    })
}

#[async_graphql::async_trait::async_trait]
impl Extension for Limits {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<async_graphql::Request> {
        // Parsed here (async-graphql keeps the document), checked before
        // anything walks it.
        let vars = request.variables.clone();
        let name = request.operation_name.clone();
        let doc = request.parsed_query()?;
        check_shape(doc).map_err(limit_error)?;
        if let Some(e) = missing_variables(doc, name.as_deref(), &vars) {
            return Err(e);
        }
        next.run(ctx, request).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let r = next.run(ctx).await.map_err(|mut errors| {
            // async-graphql's validation walks the document more than once,
            // and some errors ("Schema is not configured for
            // subscriptions.") come back once per walk: say each once.
            let mut seen = std::collections::BTreeSet::new();
            errors.retain(|e| {
                let at: Vec<(usize, usize)> =
                    e.locations.iter().map(|p| (p.line, p.column)).collect();
                seen.insert((e.message.clone(), at))
            });
            errors
        })?;
        if r.complexity > COMPLEXITY_LIMIT {
            return Err(vec![limit_error(format!(
                "the query is too complex: {} > {COMPLEXITY_LIMIT} (every field costs 1, login and registerUser {KDF_FIELD_COMPLEXITY} each: at most two of those per request)",
                r.complexity
            ))]);
        }
        Ok(r)
    }
}

/// What a selection set amounts to once its fragments are inlined.
#[derive(Clone, Copy, Default)]
struct Shape {
    /// Fields nested, `ofType` not counted.
    depth: usize,
    /// Selection sets and spreads nested, everything counted.
    nesting: usize,
    /// Fields (saturating).
    fields: usize,
}

/// Checks a document against [`DEPTH_LIMIT`], [`NESTING_LIMIT`] and, for
/// the fields once fragments are inlined, [`COMPLEXITY_LIMIT`] (each costs
/// at least 1), in time linear in the document (each fragment is walked
/// once); a fragment that spreads itself is refused.
fn check_shape(doc: &ExecutableDocument) -> Result<(), String> {
    /// `None` while a fragment is being walked (a cycle if met again).
    type Memo<'a> = BTreeMap<&'a str, Option<Shape>>;
    fn walk<'a>(
        doc: &'a ExecutableDocument,
        set: &'a SelectionSet,
        level: usize,
        memo: &mut Memo<'a>,
    ) -> Result<Shape, String> {
        if level > NESTING_LIMIT {
            return Err(format!(
                "the query nests selections and fragments more than {NESTING_LIMIT} deep"
            ));
        }
        let mut out = Shape::default();
        for sel in &set.items {
            let inner = match &sel.node {
                Selection::Field(f) => {
                    let s = walk(doc, &f.node.selection_set.node, level + 1, memo)?;
                    let own = usize::from(f.node.name.node.as_str() != "ofType");
                    Shape {
                        depth: s.depth + own,
                        nesting: s.nesting + 1,
                        fields: s.fields.saturating_add(1),
                    }
                }
                Selection::InlineFragment(i) => {
                    let s = walk(doc, &i.node.selection_set.node, level + 1, memo)?;
                    Shape {
                        nesting: s.nesting + 1,
                        ..s
                    }
                }
                Selection::FragmentSpread(sp) => {
                    let name = sp.node.fragment_name.node.as_str();
                    let s = match memo.get(name) {
                        Some(Some(s)) => *s,
                        Some(None) => {
                            return Err(format!("fragment {name} spreads itself"));
                        }
                        None => match doc.fragments.get(&sp.node.fragment_name.node) {
                            // Unknown: validation says so.
                            None => Shape::default(),
                            Some(fr) => {
                                memo.insert(name, None);
                                let s = walk(doc, &fr.node.selection_set.node, level + 1, memo)?;
                                memo.insert(name, Some(s));
                                s
                            }
                        },
                    };
                    if level + 1 + s.nesting > NESTING_LIMIT {
                        return Err(format!(
                            "the query nests selections and fragments more than {NESTING_LIMIT} deep"
                        ));
                    }
                    Shape {
                        nesting: s.nesting + 1,
                        ..s
                    }
                }
            };
            out.depth = out.depth.max(inner.depth);
            out.nesting = out.nesting.max(inner.nesting);
            out.fields = out.fields.saturating_add(inner.fields);
        }
        Ok(out)
    }
    let mut memo = Memo::new();
    for (_, op) in doc.operations.iter() {
        let s = walk(doc, &op.node.selection_set.node, 0, &mut memo)?;
        if s.depth > DEPTH_LIMIT {
            return Err(format!(
                "the query is nested too deep: {} > {DEPTH_LIMIT} levels of fields (ofType not counted)",
                s.depth
            ));
        }
        if s.fields > COMPLEXITY_LIMIT {
            return Err(format!(
                "the query is too complex: {} fields once its fragments are inlined > {COMPLEXITY_LIMIT}",
                s.fields
            ));
        }
    }
    Ok(())
}

/// Parses a document once on this thread, outside any simulation: the
/// GraphQL parser (pest) asks the OS for the thread's stack bounds on its
/// first use, through a call madsim refuses inside a simulation (it prints
/// "attempt to spawn a system thread"); asked before, the answer is kept
/// for the thread. Changes nothing else.
pub fn warm_up() {
    let _ = async_graphql::parser::parse_query("{ hello }");
}

/// The schema in SDL.
pub fn sdl() -> String {
    Schema::build(Query, Mutation, EmptySubscription)
        .finish()
        .sdl()
}

type Res<T> = async_graphql::Result<T>;

fn gql_error(code: &str, message: impl Into<String>) -> async_graphql::Error {
    let code = code.to_string();
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code.clone()))
}

fn pad_error(e: PadError) -> async_graphql::Error {
    match e {
        PadError::Refused(r) => gql_error(r.code, r.message),
        PadError::Store(ClientError::Failed(m)) => gql_error(
            codes::UNAVAILABLE,
            format!("not done, a service did not answer; send again: {m}"),
        ),
        PadError::Store(ClientError::Unknown(m)) => gql_error(
            codes::OUTCOME_UNKNOWN,
            format!("outcome unknown, a service stopped answering; read before sending again: {m}"),
        ),
    }
}

fn status(s: tonic::Status) -> async_graphql::Error {
    pad_error(status_error(s))
}

/// The code an error carries.
fn code_of(e: &async_graphql::Error) -> Option<&str> {
    match e.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(c) => Some(c.as_str()),
        _ => None,
    }
}

/// A read's error: a refusal as is; anything else certainly did nothing
/// (a read changes nothing), so UNAVAILABLE, send again.
fn read_error(s: tonic::Status) -> async_graphql::Error {
    if let Some(r) = status_refusal(&s) {
        return gql_error(r.code, r.message);
    }
    let m = s.message();
    let m = m.strip_prefix(READ_NOT_DONE).unwrap_or(m);
    gql_error(codes::UNAVAILABLE, format!("{READ_NOT_DONE}{m}"))
}

/// A whole number from a `Float!` argument (the schema's ids).
fn whole(field: &str, v: f64) -> Res<i64> {
    if v.fract() != 0.0 || !v.is_finite() || !(1.0..=9.0e15).contains(&v) {
        // 1e300 as 1e300, not its 301 digits.
        let shown = if v.abs() < 1e16 {
            format!("{v}")
        } else {
            format!("{v:e}")
        };
        return Err(gql_error(
            codes::BAD_USER_INPUT,
            format!("{field}: expected a whole number from 1, got {shown}"),
        ));
    }
    Ok(v as i64)
}

impl Api {
    fn now_ms(&self) -> u64 {
        self.wall.now_ms()
    }

    /// A read from `service` ([`Discovery::read`]); its failures are
    /// UNAVAILABLE (not done: send again), refusals stay refusals.
    async fn read<T, F, Fut>(&self, service: &str, f: F) -> Res<T>
    where
        F: FnMut(Channel) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.disc
            .read(service, self.deadline, f)
            .await
            .map_err(read_error)
    }

    /// The identity of the request's access token (UNAUTHENTICATED
    /// otherwise).
    async fn who(&self, ctx: &Context<'_>) -> Res<pb::Identity> {
        let creds = ctx.data_opt::<Creds>().cloned().unwrap_or_default();
        let Some(token) = creds.bearer else {
            return Err(gql_error(
                codes::UNAUTHENTICATED,
                "sign in: send Authorization: Bearer <access token from login>",
            ));
        };
        let now_ms = self.now_ms();
        let exp_ms = self
            .audit
            .as_ref()
            .and_then(|_| pad_core::auth::peek(&token))
            .map(|c| c.exp);
        let req = pb::TokenAt { token, now_ms };
        // A read: a failure leaves the request not done, whatever it is.
        let who = self
            .read("auth", |ch| {
                let req = req.clone();
                async move { pb::auth_client::AuthClient::new(ch).authenticate(req).await }
            })
            .await?;
        if let Some(audit) = &self.audit {
            audit(&Accepted {
                user: who.user,
                now_ms,
                exp_ms,
            });
        }
        Ok(who)
    }

    async fn admin(&self, ctx: &Context<'_>) -> Res<pb::Identity> {
        let who = self.who(ctx).await?;
        if !who.admin {
            return Err(gql_error(
                codes::FORBIDDEN,
                "catalogue writes need the admin role (the first registered user)",
            ));
        }
        Ok(who)
    }

    async fn product(&self, id: i64) -> Res<pb::Product> {
        self.read("catalog", |ch| async move {
            pb::catalog_client::CatalogClient::new(ch)
                .get_product(pb::ProductRef { id })
                .await
        })
        .await
    }

    async fn cart_change(
        &self,
        ctx: &Context<'_>,
        op: &str,
        product: i64,
        quantity: i64,
        idempotent: bool,
    ) -> Res<pb::Cart> {
        let who = self.who(ctx).await?;
        let req = pb::CartChange {
            user: who.user,
            op: op.into(),
            product,
            quantity,
            lines: Vec::new(),
            order: String::new(),
        };
        self.disc
            .call("cart", self.deadline, idempotent, |ch| {
                let req = req.clone();
                async move { pb::carts_client::CartsClient::new(ch).change(req).await }
            })
            .await
            .map_err(status)
    }

    /// Hands the refresh token to the client: an HTTP-only cookie and a
    /// header.
    fn give_refresh(ctx: &Context<'_>, refresh: &str) {
        ctx.insert_http_header(
            "set-cookie",
            format!("refresh_token={refresh}; HttpOnly; SameSite=Strict; Path=/graphql"),
        );
        ctx.insert_http_header("x-refresh-token", refresh.to_string());
    }
}

fn api<'a>(ctx: &Context<'a>) -> &'a Api {
    ctx.data_unchecked::<Api>()
}

#[derive(SimpleObject)]
#[graphql(name = "CategoryGraphqlType")]
pub struct CategoryGql {
    id: i32,
    name: String,
    description: String,
}

#[derive(SimpleObject)]
#[graphql(name = "ProductCategoryGraphqlType")]
pub struct ProductCategoryGql {
    id: i32,
    name: String,
}

#[derive(SimpleObject)]
#[graphql(name = "ProductGraphqlType")]
pub struct ProductGql {
    id: i32,
    name: String,
    price: f64,
    units_available: i32,
    image_url: String,
    categories: Option<Vec<ProductCategoryGql>>,
}

impl From<pb::Product> for ProductGql {
    fn from(p: pb::Product) -> Self {
        ProductGql {
            id: p.id as i32,
            name: p.name,
            price: p.price_cents as f64 / 100.0,
            units_available: p.units_available.min(i32::MAX as i64) as i32,
            image_url: p.image_url,
            categories: Some(
                p.categories
                    .into_iter()
                    .map(|c| ProductCategoryGql {
                        id: c.id as i32,
                        name: c.name,
                    })
                    .collect(),
            ),
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "CartItemGraphqlType")]
pub struct CartItemGql {
    product_id: i32,
    quantity: i32,
    image_url: String,
    /// The unit price in cents.
    price: i32,
    name: String,
}

#[derive(SimpleObject)]
#[graphql(name = "CartGraphqlType")]
pub struct CartGql {
    user_id: i32,
    items: Vec<CartItemGql>,
}

#[derive(SimpleObject)]
#[graphql(name = "OrderCreatedType")]
pub struct OrderCreatedGql {
    order_id: i32,
}

#[derive(SimpleObject)]
#[graphql(name = "OrderStatusGraphqlType")]
pub struct OrderStatusGql {
    value: OrderStatus,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum OrderStatus {
    Unknown,
    Created,
    Approved,
    Paid,
    PaymentFailed,
    ItemsRejected,
    Unrecognized,
}

impl OrderStatus {
    fn from_name(s: &str) -> OrderStatus {
        match s {
            "UNKNOWN" => OrderStatus::Unknown,
            "CREATED" => OrderStatus::Created,
            "APPROVED" => OrderStatus::Approved,
            "PAID" => OrderStatus::Paid,
            "PAYMENT_FAILED" => OrderStatus::PaymentFailed,
            "ITEMS_REJECTED" => OrderStatus::ItemsRejected,
            _ => OrderStatus::Unrecognized,
        }
    }
}

#[derive(InputObject)]
#[graphql(name = "AuthLoginInput")]
pub struct AuthLoginInput {
    email: String,
    password: String,
}

#[derive(InputObject)]
#[graphql(name = "RegisterUserInput")]
pub struct RegisterUserInput {
    email: String,
    password: String,
}

#[derive(InputObject)]
#[graphql(name = "CreateCategoryInput")]
pub struct CreateCategoryInput {
    name: String,
    description: String,
}

#[derive(InputObject)]
#[graphql(name = "CreateProductInput")]
pub struct CreateProductInput {
    name: String,
    price: f64,
    image_url: Option<String>,
    units_available: i32,
    categories_ids: Vec<i32>,
}

#[derive(InputObject)]
#[graphql(name = "CartItemInput")]
pub struct CartItemInput {
    product_id: i32,
    quantity: i32,
}

#[derive(InputObject)]
#[graphql(name = "UpdateItemInput")]
pub struct UpdateItemInput {
    product_id: i32,
    new_quantity: i32,
}

pub struct Query;

#[Object]
impl Query {
    async fn order_status(&self, ctx: &Context<'_>, order_id: f64) -> Res<OrderStatusGql> {
        let a = api(ctx);
        let who = a.who(ctx).await?;
        let id = whole("orderId", order_id)?;
        let o = a
            .read("orders", |ch| async move {
                pb::orders_client::OrdersClient::new(ch)
                    .status(pb::OrderRef { id })
                    .await
            })
            .await?;
        // Someone else's order is as unknown as a missing one.
        let value = if o.user == who.user {
            OrderStatus::from_name(&o.status)
        } else {
            OrderStatus::Unknown
        };
        Ok(OrderStatusGql { value })
    }

    async fn hello(&self) -> String {
        "Hello from the bookstore's GraphQL gateway".to_string()
    }

    async fn categories(&self, ctx: &Context<'_>) -> Res<Vec<CategoryGql>> {
        let a = api(ctx);
        let cs = a
            .read("catalog", |ch| async move {
                pb::catalog_client::CatalogClient::new(ch)
                    .list_categories(pb::Empty {})
                    .await
            })
            .await?;
        Ok(cs
            .categories
            .into_iter()
            .map(|c| CategoryGql {
                id: c.id as i32,
                name: c.name,
                description: c.description,
            })
            .collect())
    }

    async fn product(&self, ctx: &Context<'_>, id: f64) -> Res<ProductGql> {
        let id = whole("id", id)?;
        Ok(api(ctx).product(id).await?.into())
    }

    async fn cart(&self, ctx: &Context<'_>) -> Res<Option<CartGql>> {
        let a = api(ctx);
        let who = a.who(ctx).await?;
        let user = who.user;
        let c = a
            .read("cart", |ch| async move {
                pb::carts_client::CartsClient::new(ch)
                    .get(pb::UserRef { user })
                    .await
            })
            .await?;
        let mut items = Vec::new();
        for l in c.items {
            // A product gone from the catalogue shows without name and price.
            let p = match a.product(l.product).await {
                Ok(p) => Some(p),
                Err(e) if code_of(&e) == Some(codes::NOT_FOUND) => None,
                Err(e) => return Err(e),
            };
            items.push(CartItemGql {
                product_id: l.product as i32,
                quantity: l.quantity as i32,
                image_url: p.as_ref().map_or(String::new(), |p| p.image_url.clone()),
                price: p
                    .as_ref()
                    .map_or(0, |p| p.price_cents.min(i32::MAX as i64) as i32),
                name: p.map_or(String::new(), |p| p.name),
            });
        }
        Ok(Some(CartGql {
            user_id: user as i32,
            items,
        }))
    }
}

pub struct Mutation;

#[Object]
impl Mutation {
    /// The access token; the refresh token comes in a cookie and a header.
    /// Costs [`KDF_FIELD_COMPLEXITY`]: a request holds at most two of the
    /// fields that run the password hash (aliases included).
    #[graphql(complexity = KDF_FIELD_COMPLEXITY)]
    async fn login(&self, ctx: &Context<'_>, input: AuthLoginInput) -> Res<String> {
        let a = api(ctx);
        let req = pb::Credentials {
            email: input.email,
            password: input.password,
        };
        let t = a
            .disc
            .call("auth", a.deadline, true, |ch| {
                let req = req.clone();
                async move { pb::auth_client::AuthClient::new(ch).login(req).await }
            })
            .await
            .map_err(status)?;
        Api::give_refresh(ctx, &t.refresh);
        Ok(t.access)
    }

    async fn logout(&self, ctx: &Context<'_>) -> Res<String> {
        let a = api(ctx);
        let creds = ctx.data_opt::<Creds>().cloned().unwrap_or_default();
        let Some(token) = creds.bearer else {
            return Err(gql_error(codes::UNAUTHENTICATED, "sign in first"));
        };
        let req = pb::TokenAt {
            token,
            now_ms: a.now_ms(),
        };
        a.disc
            .call("auth", a.deadline, true, |ch| {
                let req = req.clone();
                async move { pb::auth_client::AuthClient::new(ch).logout(req).await }
            })
            .await
            .map_err(status)?;
        ctx.insert_http_header(
            "set-cookie",
            "refresh_token=; HttpOnly; SameSite=Strict; Path=/graphql; Max-Age=0",
        );
        Ok("logged out".to_string())
    }

    /// A new access token for the refresh token (cookie `refresh_token` or
    /// header `x-refresh-token`), which is rotated: using one twice revokes
    /// every token of its login.
    async fn refresh(&self, ctx: &Context<'_>) -> Res<String> {
        let a = api(ctx);
        let creds = ctx.data_opt::<Creds>().cloned().unwrap_or_default();
        let Some(token) = creds.refresh else {
            return Err(gql_error(
                codes::UNAUTHENTICATED,
                "no refresh token: send the cookie refresh_token or the header x-refresh-token that login gave",
            ));
        };
        let req = pb::TokenAt {
            token,
            now_ms: a.now_ms(),
        };
        let t = a
            .disc
            .call("auth", a.deadline, false, |ch| {
                let req = req.clone();
                async move { pb::auth_client::AuthClient::new(ch).refresh(req).await }
            })
            .await
            .map_err(status)?;
        Api::give_refresh(ctx, &t.refresh);
        Ok(t.access)
    }

    /// The new user's id. Costs [`KDF_FIELD_COMPLEXITY`].
    #[graphql(complexity = KDF_FIELD_COMPLEXITY)]
    async fn register_user(&self, ctx: &Context<'_>, input: RegisterUserInput) -> Res<String> {
        let a = api(ctx);
        let req = pb::Credentials {
            email: input.email,
            password: input.password,
        };
        let u = a
            .disc
            .call("auth", a.deadline, false, |ch| {
                let req = req.clone();
                async move { pb::auth_client::AuthClient::new(ch).register(req).await }
            })
            .await
            .map_err(status)?;
        Ok(u.user.to_string())
    }

    async fn create_category(
        &self,
        ctx: &Context<'_>,
        input: CreateCategoryInput,
    ) -> Res<CategoryGql> {
        let a = api(ctx);
        a.admin(ctx).await?;
        let req = pb::NewCategory {
            name: input.name,
            description: input.description,
        };
        let c = a
            .disc
            .call("catalog", a.deadline, false, |ch| {
                let req = req.clone();
                async move {
                    pb::catalog_client::CatalogClient::new(ch)
                        .create_category(req)
                        .await
                }
            })
            .await
            .map_err(status)?;
        Ok(CategoryGql {
            id: c.id as i32,
            name: c.name,
            description: c.description,
        })
    }

    async fn create_product(
        &self,
        ctx: &Context<'_>,
        input: CreateProductInput,
    ) -> Res<ProductGql> {
        let a = api(ctx);
        a.admin(ctx).await?;
        // A list too long to read is refused here, definitely (the catalog
        // checks it too); each id is sent once.
        let ids: Vec<i64> = input.categories_ids.into_iter().map(i64::from).collect();
        let category_ids =
            pad_core::catalog::category_ids(&ids).map_err(|r| gql_error(r.code, r.message))?;
        let req = pb::NewProduct {
            name: input.name,
            price: input.price,
            image_url: input.image_url.unwrap_or_default(),
            units_available: input.units_available as i64,
            category_ids,
        };
        let p = a
            .disc
            .call("catalog", a.deadline, false, |ch| {
                let req = req.clone();
                async move {
                    pb::catalog_client::CatalogClient::new(ch)
                        .create_product(req)
                        .await
                }
            })
            .await
            .map_err(status)?;
        Ok(p.into())
    }

    async fn add_to_cart(&self, ctx: &Context<'_>, input: CartItemInput) -> Res<String> {
        let a = api(ctx);
        a.who(ctx).await?;
        // The product must exist (a cart holds only what can be ordered).
        let id = input.product_id as i64;
        a.product(id).await.map_err(|e| {
            if code_of(&e) == Some(codes::NOT_FOUND) {
                // The argument here is productId.
                gql_error(codes::NOT_FOUND, format!("productId: no product {id}"))
            } else {
                e
            }
        })?;
        a.cart_change(
            ctx,
            "add",
            input.product_id as i64,
            input.quantity as i64,
            false,
        )
        .await?;
        Ok("added to cart".to_string())
    }

    async fn update_item_quantity(&self, ctx: &Context<'_>, input: UpdateItemInput) -> Res<String> {
        api(ctx)
            .cart_change(
                ctx,
                "set",
                input.product_id as i64,
                input.new_quantity as i64,
                true,
            )
            .await?;
        Ok("quantity updated".to_string())
    }

    async fn clear_cart(&self, ctx: &Context<'_>) -> Res<String> {
        api(ctx).cart_change(ctx, "clear", 0, 0, true).await?;
        Ok("cart cleared".to_string())
    }

    /// The user's cart as an order in status CREATED; its saga runs on
    /// (follow it with `orderStatus`). Asked again while that order runs
    /// with the same cart, it answers the same order.
    async fn init_order(&self, ctx: &Context<'_>) -> Res<OrderCreatedGql> {
        let a = api(ctx);
        let user = a.who(ctx).await?.user;
        let o = a
            .disc
            // Idempotent while the order runs (the same cart answers the
            // same order), so a call whose outcome is unknown is resent.
            .call("orders", a.deadline, true, |ch| async move {
                pb::orders_client::OrdersClient::new(ch)
                    .init_order(pb::UserRef { user })
                    .await
            })
            .await
            .map_err(status)?;
        Ok(OrderCreatedGql {
            order_id: o.id as i32,
        })
    }

    async fn remove_item(&self, ctx: &Context<'_>, product_id: f64) -> Res<String> {
        api(ctx).who(ctx).await?;
        let id = whole("productId", product_id)?;
        api(ctx).cart_change(ctx, "remove", id, 0, false).await?;
        Ok("item removed".to_string())
    }
}

/// The gateway as a gRPC service: the schema executed for a request that
/// comes as JSON with its credentials (the simulator's clients call it; a
/// real gateway serves the same schema over HTTP).
pub struct GatewaySvc {
    pub schema: PadSchema,
}

#[tonic::async_trait]
impl pb::gateway_server::Gateway for GatewaySvc {
    async fn execute(
        &self,
        r: tonic::Request<pb::GqlRequest>,
    ) -> Result<tonic::Response<pb::GqlResponse>, tonic::Status> {
        let r = r.into_inner();
        let req: async_graphql::Request = serde_json::from_str(&r.body)
            .map_err(|e| tonic::Status::invalid_argument(format!("not a GraphQL request: {e}")))?;
        let some = |s: String| (!s.is_empty()).then_some(s);
        let creds = Creds {
            bearer: some(r.bearer),
            refresh: some(r.refresh),
        };
        let resp = self.schema.execute(req.data(creds)).await;
        let refresh = resp
            .http_headers
            .get("x-refresh-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = serde_json::to_string(&resp).expect("a response serialises");
        Ok(tonic::Response::new(pb::GqlResponse { body, refresh }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    /// Every type, input and enum of an SDL text with its fields (name,
    /// arguments, type) or values, descriptions and directives left out.
    fn shape(sdl: &str) -> BTreeMap<String, BTreeSet<String>> {
        // Drop block and line descriptions.
        let mut text = String::new();
        let mut rest = sdl;
        while let Some(i) = rest.find("\"\"\"") {
            text.push_str(&rest[..i]);
            let after = &rest[i + 3..];
            rest = after.find("\"\"\"").map_or("", |j| &after[j + 3..]);
        }
        text.push_str(rest);
        let text: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('"') && !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join(" ");
        let mut out = BTreeMap::new();
        let words: Vec<&str> = text.split_whitespace().collect();
        let mut i = 0;
        while i < words.len() {
            let kind = words[i];
            if ["type", "input", "enum"].contains(&kind) && i + 1 < words.len() {
                let name = words[i + 1];
                let open = text_block(&words[i + 2..]);
                if let Some(body) = open {
                    let fields = fields(&body);
                    out.insert(format!("{kind} {name}"), fields);
                }
            }
            i += 1;
        }
        out.retain(|k, _| !k.contains("__"));
        out
    }

    /// The words between the next `{` and its `}`.
    fn text_block(words: &[&str]) -> Option<String> {
        let joined = words.join(" ");
        let start = joined.find('{')?;
        if joined[..start].trim().contains(' ') && !joined[..start].trim().starts_with('@') {
            return None;
        }
        let end = joined[start..].find('}')? + start;
        Some(joined[start + 1..end].to_string())
    }

    /// Fields as `name(args):Type` with no spaces (enum values as is).
    fn fields(body: &str) -> BTreeSet<String> {
        let mut s = body.split_whitespace().collect::<Vec<_>>().join(" ");
        for (a, b) in [
            (" :", ":"),
            (": ", ":"),
            ("( ", "("),
            (" )", ")"),
            (", ", ","),
            (" (", "("),
        ] {
            while s.contains(a) {
                s = s.replace(a, b);
            }
        }
        let mut out = BTreeSet::new();
        let mut cur = String::new();
        let mut depth = 0;
        for c in s.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if c == ' ' && depth == 0 {
                if !cur.is_empty() && !cur.starts_with('@') {
                    out.insert(std::mem::take(&mut cur));
                }
                cur.clear();
            } else {
                cur.push(c);
            }
        }
        if !cur.is_empty() && !cur.starts_with('@') {
            out.insert(cur);
        }
        out
    }

    /// The schema as the gateway builds it, over a registry nobody
    /// answers at (nothing here calls a service).
    #[cfg(not(madsim))]
    fn offline() -> super::PadSchema {
        let clock = crate::clock::Clock::new();
        super::schema(super::Api {
            disc: super::Discovery::new(
                vec!["127.0.0.1:9".into()],
                clock.clone(),
                std::time::Duration::from_millis(200),
            ),
            wall: crate::tartu::WallClock::system(clock),
            deadline: std::time::Duration::from_secs(1),
            audit: None,
        })
    }

    #[cfg(not(madsim))]
    fn run(schema: &super::PadSchema, q: &str) -> async_graphql::Response {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(schema.execute(q))
    }

    /// A subscription (the schema has none) is refused with one error, not
    /// one per validation walk.
    #[cfg(not(madsim))]
    #[test]
    fn an_error_of_validation_is_said_once() {
        let schema = offline();
        let r = run(&schema, "subscription { x }");
        let messages: Vec<&str> = r.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["Schema is not configured for subscriptions."]);
        // Two different errors stay two.
        let r = run(&schema, "{ nope1 nope2 }");
        assert_eq!(r.errors.len(), 2, "{:?}", r.errors);
    }

    /// A required variable left out, or sent as null, is named with its
    /// type before anything runs; given, or with a default, it is fine.
    #[cfg(not(madsim))]
    #[test]
    fn a_missing_required_variable_is_named() {
        let schema = offline();
        let q = "query($id: Float!) { product(id: $id) { name } }";
        let with = |vars: serde_json::Value| {
            let req =
                async_graphql::Request::new(q).variables(async_graphql::Variables::from_json(vars));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(schema.execute(req))
        };
        let r = with(serde_json::json!({}));
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert_eq!(
            r.errors[0].message,
            "Variable \"$id\" of required type \"Float!\" was not provided."
        );
        assert_eq!(
            (
                r.errors[0].locations[0].line,
                r.errors[0].locations[0].column
            ),
            (1, 7)
        );
        let r = with(serde_json::json!({"id": null}));
        assert_eq!(
            r.errors[0].message,
            "Variable \"$id\" of non-null type \"Float!\" must not be null."
        );
        // Given, or with a default: not this error (the registry does not
        // answer here, so another one).
        let r = with(serde_json::json!({"id": 1}));
        assert!(
            r.errors.iter().all(|e| !e.message.contains("Variable")),
            "{:?}",
            r.errors
        );
        let r = run(
            &schema,
            "query($id: Float! = 1) { product(id: $id) { name } }",
        );
        assert!(
            r.errors.iter().all(|e| !e.message.contains("Variable")),
            "{:?}",
            r.errors
        );
    }

    /// The standard introspection query (GraphiQL's, every option on, nine
    /// `ofType`) gets the schema back: GraphiQL's docs, completion and
    /// validation work, and so do the tools that send the same.
    #[cfg(not(madsim))]
    #[test]
    fn the_standard_introspection_query_gets_the_schema() {
        let q = include_str!("introspection.graphql");
        assert_eq!(q.matches("ofType {").count(), 9);
        let r = run(&offline(), q);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let v = r.data.into_json().unwrap();
        assert_eq!(v["__schema"]["queryType"]["name"], "Query");
        assert_eq!(v["__schema"]["mutationType"]["name"], "Mutation");
        let types = v["__schema"]["types"].as_array().unwrap();
        assert!(
            types.iter().any(|t| t["name"] == "ProductGraphqlType"),
            "{types:?}"
        );
        // graphql-js's default (no options) too.
        let plain = q
            .replace("    description\n    queryType", "    queryType")
            .replace("  specifiedByURL\n  isOneOf\n", "")
            .replace("      isRepeatable\n", "");
        assert_ne!(plain, q);
        let r = run(&offline(), &plain);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
    }

    /// Deep and hostile documents are refused before anything runs, each
    /// with its limit in the message.
    #[cfg(not(madsim))]
    #[test]
    fn deep_and_exploding_queries_are_refused_with_their_limit() {
        let schema = offline();
        let error = |q: &str| {
            let r = run(&schema, q);
            assert!(r.data == async_graphql::Value::Null, "{q}: {:?}", r.data);
            r.errors
                .first()
                .map(|e| e.message.clone())
                .unwrap_or_default()
        };
        // 11 levels of fields that multiply the answer.
        let deep = "{ __schema { types { fields { type { fields { type { fields { type { fields { type { name } } } } } } } } } } }";
        assert_eq!(
            error(deep),
            "the query is nested too deep: 11 > 10 levels of fields (ofType not counted)"
        );
        // 10 levels are fine, and 20 ofType in a row cost nothing.
        let ten = "{ __schema { types { fields { type { fields { type { fields { type { name } } } } } } } } }";
        assert!(run(&schema, ten).errors.is_empty());
        let chain = format!(
            "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
            "ofType {".repeat(20),
            "}".repeat(20)
        );
        assert!(run(&schema, &chain).errors.is_empty(), "{chain}");
        // Too many nested selections, ofType or not.
        let nested = format!(
            "{{ __schema {{ types {{ {} name {} }} }} }}",
            "ofType {".repeat(40),
            "}".repeat(40)
        );
        assert!(error(&nested).contains("32"), "{}", error(&nested));
        // A fragment bomb: 40 fragments each spreading the next twice (2^40
        // fields inlined) is refused at once, without inlining them.
        let mut bomb = String::from("{ ...F0 }\n");
        for i in 0..40 {
            bomb.push_str(&format!(
                "fragment F{i} on Query {{ a: hello ...F{} ...F{} }}\n",
                i + 1,
                i + 1
            ));
        }
        bomb.push_str("fragment F40 on Query { hello }\n");
        // Refused before any inlining: inlined, its 2^40 fields would not
        // be counted in a lifetime, so the test would hang, not pass.
        let m = error(&bomb);
        assert!(m.starts_with("the query "), "{m}");
        // A fragment that spreads itself.
        let cycle = "{ ...A } fragment A on Query { hello ...B } fragment B on Query { ...A }";
        assert_eq!(error(cycle), "fragment A spreads itself");
        // Many fields.
        let wide = format!(
            "{{ {} }}",
            (0..501)
                .map(|i| format!("h{i}: hello"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert_eq!(
            error(&wide),
            "the query is too complex: 501 fields once its fragments are inlined > 500"
        );
    }

    /// Three aliased logins are refused before any runs (the schema has no
    /// backend here: it would fail at the first otherwise), saying why.
    #[cfg(not(madsim))]
    #[test]
    fn a_request_holds_at_most_two_password_hashing_fields() {
        let login =
            |a: &str| format!("{a}: login(input: {{email: \"a@b.co\", password: \"12345678\"}})");
        let q = format!(
            "mutation {{ {} {} {} }}",
            login("a"),
            login("b"),
            login("c")
        );
        let r = run(&offline(), &q);
        assert_eq!(
            r.errors[0].message,
            "the query is too complex: 600 > 500 (every field costs 1, login and registerUser 200 each: at most two of those per request)"
        );
        const { assert!(2 * super::KDF_FIELD_COMPLEXITY + 50 < super::COMPLEXITY_LIMIT) };
    }

    /// An id out of range is shown as given, not as its digits.
    #[test]
    fn a_huge_id_is_shown_short() {
        let m = super::whole("orderId", 1e300).unwrap_err().message;
        assert_eq!(m, "orderId: expected a whole number from 1, got 1e300");
        let m = super::whole("id", 1.5).unwrap_err().message;
        assert_eq!(m, "id: expected a whole number from 1, got 1.5");
    }

    #[test]
    fn the_schema_is_the_courses() {
        let ours = shape(&super::sdl());
        let course = shape(include_str!("schema.graphql"));
        assert_eq!(course.len(), 16, "{course:#?}");
        for (k, v) in &course {
            assert_eq!(ours.get(k), Some(v), "{k}:\n{}", super::sdl());
        }
        let extra: Vec<&String> = ours.keys().filter(|k| !course.contains_key(*k)).collect();
        assert!(
            extra.is_empty(),
            "types not in the course's schema: {extra:?}"
        );
    }
}
