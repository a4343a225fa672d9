//! The API gateway over HTTP (real mode): the course's GraphQL schema
//! ([`super::graphql`]) at `POST /graphql` (a JSON body of at most
//! [`BODY_LIMIT`] bytes), the GraphiQL page at `GET /graphql` for browsers
//! (`Accept: text/html`; and at `/graphiql`), everything it loads served
//! from the binary (it works offline), the registry's view at `GET /status`
//! (`routable`: per service, the addresses calls go to; `instances`: every
//! registered instance, up, unhealthy or lapsed, with the time left on its
//! lease; from a listing at most [`super::rpc::VIEW_TTL`] old, asked for
//! if the one at hand is older).
//!
//! Every error is JSON in GraphQL's shape, with `extensions.code`: a body
//! that is not a GraphQL request (not JSON, a batch, no `query`) is
//! answered 400 `BAD_REQUEST`, a body over the limit 413, another method
//! 405 (with `Allow`), a `GET /graphql` that is not a browser's (GraphQL
//! over GET is not served) 405; an executed request is answered 200 with
//! `data` and `errors`.
//!
//! Cross-origin requests: none by default (no CORS headers; a preflight is
//! answered 405 like any `OPTIONS`). [`cors`] builds the layer that
//! [`serve`] adds for the origins given (`--cors-origin`): preflights from
//! them are answered, and their requests may carry credentials (the
//! refresh token's cookie) and read `x-refresh-token`.

use super::graphql::{Creds, PadSchema};
use super::rpc::Discovery;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use pad_core::codes;
use serde_json::{json, Value};

const PAGE: &str = include_str!("graphiql/page.html");
const GRAPHIQL_JS: &str = include_str!("graphiql/graphiql.min.js");
const GRAPHIQL_CSS: &str = include_str!("graphiql/graphiql.min.css");
const REACT: &str = include_str!("graphiql/react.production.min.js");
const REACT_DOM: &str = include_str!("graphiql/react-dom.production.min.js");

fn asset(ct: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, ct),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// The largest request body read (2 MiB); a larger one is answered 413.
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// How a request must be sent (the end of the errors about sending).
const HOW: &str = "send POST /graphql with a JSON body {\"query\": \"...\", \"variables\": {...}}";

/// An error in GraphQL's shape, with code `BAD_REQUEST`.
fn request_error(status: StatusCode, message: String) -> Response {
    (
        status,
        axum::Json(json!({
            "data": null,
            "errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}],
        })),
    )
        .into_response()
}

fn bad_request(message: String) -> Response {
    request_error(StatusCode::BAD_REQUEST, message)
}

/// A body the gateway could not read: too large (413) or cut off.
fn body_rejected(r: BytesRejection) -> Response {
    let status = r.status();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("the body is over {BODY_LIMIT} bytes (2 MiB): {HOW} under that size")
    } else {
        format!("the body could not be read ({}): {HOW}", r.body_text())
    };
    request_error(status, message)
}

/// Does the request accept an HTML page (a browser's navigation)?
fn accepts_html(h: &HeaderMap) -> bool {
    h.get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/html"))
}

/// `GET /graphql`: GraphiQL for a browser; anyone else is told to POST
/// (GraphQL over GET is not served: 405).
fn graphql_get(h: &HeaderMap, uri: &Uri) -> Response {
    if accepts_html(h) {
        return asset("text/html; charset=utf-8", PAGE);
    }
    let has_query = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv.split('=').next() == Some("query")));
    let message = if has_query {
        format!("GraphQL over GET is not served: {HOW}")
    } else {
        format!("GET /graphql is GraphiQL's page, for browsers (Accept: text/html); to run GraphQL, {HOW}")
    };
    let mut r = request_error(StatusCode::METHOD_NOT_ALLOWED, message);
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    r
}

/// The credentials in a request's headers (the scheme `Bearer` in any
/// case, RFC 7235).
pub fn creds(h: &HeaderMap) -> Creds {
    let bearer = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim_start().split_once([' ', '\t'])?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    let from_cookie = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix("refresh_token="))
        .find(|t| !t.is_empty())
        .map(str::to_string);
    let refresh = h
        .get("x-refresh-token")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .or(from_cookie);
    Creds { bearer, refresh }
}

/// Executes one GraphQL request from an HTTP body.
pub async fn execute(schema: &PadSchema, headers: &HeaderMap, body: &[u8]) -> Response {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return bad_request(format!(
                "the body is not JSON ({e}): send {{\"query\": \"...\", \"variables\": {{...}}}}"
            ))
        }
    };
    if v.is_array() {
        return bad_request(
            "batched requests (a JSON array) are not supported: send one request per POST, {\"query\": \"...\", \"variables\": {...}}"
                .into(),
        );
    }
    if !v.get("query").is_some_and(Value::is_string) {
        return bad_request(
            "no \"query\" string in the body: send {\"query\": \"...\", \"variables\": {...}}"
                .into(),
        );
    }
    let req: async_graphql::Request = match serde_json::from_value(v) {
        Ok(r) => r,
        Err(e) => return bad_request(format!("not a GraphQL request: {e}")),
    };
    let resp = schema.execute(req.data(creds(headers))).await;
    let extra: Vec<(HeaderName, HeaderValue)> = resp
        .http_headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut out = serde_json::to_value(&resp)
        .unwrap_or_else(|e| json!({"errors": [{"message": e.to_string()}]}));
    label(&mut out);
    let mut r = (StatusCode::OK, axum::Json(out)).into_response();
    for (k, v) in extra {
        r.headers_mut().append(k, v);
    }
    r
}

/// Gives every error a code: the resolvers' carry one; what is left are
/// the schema's own (a document that does not parse or validate, or an
/// argument that does not coerce).
fn label(out: &mut Value) {
    let data_null = out.get("data").is_none_or(Value::is_null);
    if let Some(errors) = out.get_mut("errors").and_then(Value::as_array_mut) {
        for e in errors {
            let has = e.get("extensions").and_then(|x| x.get("code")).is_some();
            if !has {
                let code = if data_null {
                    codes::GRAPHQL_VALIDATION_FAILED
                } else {
                    codes::BAD_USER_INPUT
                };
                if let Some(o) = e.as_object_mut() {
                    let ext = o.entry("extensions").or_insert_with(|| json!({}));
                    if let Some(ext) = ext.as_object_mut() {
                        ext.insert("code".into(), Value::String(code.into()));
                    }
                }
            }
        }
    }
}

/// The gateway's routes.
pub fn router(schema: PadSchema, disc: Discovery, name: String) -> Router {
    let page = || async { asset("text/html; charset=utf-8", PAGE) };
    let status = {
        let disc = disc.clone();
        move || {
            let disc = disc.clone();
            let name = name.clone();
            async move {
                // A fresh listing: an old one's leases would show lapsed.
                match disc.fresh_listing().await {
                    Some(l) => {
                        let (all, now) = (&l.instances, l.registry_now_ms);
                        let routable: std::collections::BTreeMap<&str, Vec<&str>> = super::SERVICES
                            .iter()
                            .map(|s| {
                                let up = pad_core::registry::routable(all, s, now);
                                (*s, up.iter().map(|i| i.addr.as_str()).collect())
                            })
                            .collect();
                        let age_ms = l.age.as_millis() as u64;
                        let mut body = json!({
                            "gateway": name,
                            "registry_now_ms": now,
                            "listing_age_ms": age_ms,
                            "routable": routable,
                            "instances": pad_core::registry::view(all, now),
                        });
                        if l.age > super::rpc::VIEW_TTL {
                            body["warning"] = json!(format!(
                                "the registry did not answer: this listing is {age_ms} ms old, and leases renewed since show as lapsed"
                            ));
                        }
                        axum::Json(body)
                    }
                    .into_response(),
                    None => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(
                            json!({"gateway": name, "error": "the registry did not answer"}),
                        ),
                    )
                        .into_response(),
                }
            }
        }
    };
    Router::new()
        .route(
            "/graphql",
            get(|h: HeaderMap, uri: Uri| async move { graphql_get(&h, &uri) }).post(
                move |h: HeaderMap, body: Result<Bytes, BytesRejection>| {
                    let schema = schema.clone();
                    async move {
                        match body {
                            Ok(body) => execute(&schema, &h, &body).await,
                            Err(r) => body_rejected(r),
                        }
                    }
                },
            ),
        )
        .route("/graphiql", get(page))
        .route("/", get(page))
        .route(
            "/graphiql/graphiql.min.js",
            get(|| async { asset("text/javascript; charset=utf-8", GRAPHIQL_JS) }),
        )
        .route(
            "/graphiql/graphiql.min.css",
            get(|| async { asset("text/css; charset=utf-8", GRAPHIQL_CSS) }),
        )
        .route(
            "/graphiql/react.production.min.js",
            get(|| async { asset("text/javascript; charset=utf-8", REACT) }),
        )
        .route(
            "/graphiql/react-dom.production.min.js",
            get(|| async { asset("text/javascript; charset=utf-8", REACT_DOM) }),
        )
        .route("/status", get(status))
        .route("/health", get(|| async { "ok" }))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": "no such page: POST /graphql, GET /graphql (GraphiQL), GET /status"})),
            )
        })
        // After every route: it applies to those before it. The `Allow`
        // header is axum's.
        .method_not_allowed_fallback(|m: Method, uri: Uri| async move {
            request_error(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "{m} is not allowed on {}: {HOW} (GET /graphql is GraphiQL's page, GET /status the registry's view)",
                    uri.path()
                ),
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// The CORS layer for browser pages served from `origins` (each
/// `scheme://host[:port]`, as a browser sends it in `Origin`), or `None`
/// for no origin. Their requests may carry credentials: the refresh token
/// travels in a cookie, and `x-refresh-token` is exposed to them. So `*` is
/// refused (a page of any site could then refresh a visitor's tokens), as
/// is anything that is not an origin, with a message that says what to give.
pub fn cors(origins: &[String]) -> Result<Option<tower_http::cors::CorsLayer>, String> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return Ok(None);
    }
    let mut allowed = Vec::new();
    for o in origins {
        let example = "e.g. --cors-origin http://localhost:3000";
        if o == "*" {
            return Err(format!(
                "--cors-origin '*': name each origin allowed ({example}); any origin is refused because requests carry the refresh token's cookie"
            ));
        }
        let (scheme, rest) = o.split_once("://").ok_or_else(|| {
            format!("--cors-origin '{o}': an origin is scheme://host[:port] ({example})")
        })?;
        let host_ok = !rest.is_empty()
            && !rest.contains(['/', '?', '#', '@', ' '])
            && rest.parse::<axum::http::uri::Authority>().is_ok();
        if !matches!(scheme, "http" | "https") || !host_ok {
            return Err(format!(
                "--cors-origin '{o}': an origin is http:// or https://, a host and maybe a port, with no path ({example})"
            ));
        }
        allowed.push(HeaderValue::from_str(o).map_err(|e| format!("--cors-origin '{o}': {e}"))?);
    }
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("x-refresh-token"),
            ])
            .expose_headers([HeaderName::from_static("x-refresh-token")])
            .max_age(std::time::Duration::from_secs(600)),
    ))
}

/// Serves the gateway on `addr` until `shutdown` completes; with `cors`
/// (see [`cors`]), to browser pages of those origins too.
pub async fn serve(
    schema: PadSchema,
    disc: Discovery,
    addr: std::net::SocketAddr,
    cors: Option<tower_http::cors::CorsLayer>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let mut app = router(schema, disc, addr.to_string());
    if let Some(c) = cors {
        app = app.layer(c);
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// A GraphQL client over HTTP (tests, the benchmark, readiness checks).
pub mod client {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::{connect::HttpConnector, Client};
    use hyper_util::rt::TokioExecutor;
    use serde_json::Value;
    use std::time::Duration;

    /// An HTTP answer: status, JSON body (Null if not JSON), the refresh
    /// token header if any.
    #[derive(Clone, Debug)]
    pub struct Answer {
        pub status: u16,
        pub body: Value,
        pub refresh: Option<String>,
    }

    impl Answer {
        /// The first error's code, if any.
        pub fn code(&self) -> Option<&str> {
            self.body["errors"][0]["extensions"]["code"].as_str()
        }
        /// `data.<field>` when there is no error.
        pub fn data(&self, field: &str) -> Option<&Value> {
            if self.body["errors"].is_array() {
                return None;
            }
            self.body["data"].get(field)
        }
    }

    #[derive(Clone)]
    pub struct Gql {
        url: String,
        client: Client<HttpConnector, Full<Bytes>>,
        pub timeout: Duration,
    }

    impl Gql {
        /// `url`: the gateway's base, e.g. `http://127.0.0.1:8090`.
        pub fn new(url: &str) -> Gql {
            let mut conn = HttpConnector::new();
            conn.set_nodelay(true);
            Gql {
                url: url.trim_end_matches('/').to_string(),
                client: Client::builder(TokioExecutor::new())
                    .pool_max_idle_per_host(256)
                    .build(conn),
                timeout: Duration::from_secs(30),
            }
        }

        pub fn url(&self) -> &str {
            &self.url
        }

        /// Sends `body` as is to `method path` with `headers`; `Err`: no
        /// HTTP answer.
        pub async fn raw(
            &self,
            method: &str,
            path: &str,
            headers: &[(&str, &str)],
            body: Vec<u8>,
        ) -> Result<Answer, String> {
            let mut b = hyper::Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.url));
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            let req = b
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| e.to_string())?;
            let fut = async {
                let resp = self
                    .client
                    .request(req)
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                let status = resp.status().as_u16();
                let refresh = resp
                    .headers()
                    .get("x-refresh-token")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let bytes = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                Ok(Answer {
                    status,
                    body,
                    refresh,
                })
            };
            match tokio::time::timeout(self.timeout, fut).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "{method} {path}: no answer within {:?}",
                    self.timeout
                )),
            }
        }

        /// A GraphQL request, with an access token if given.
        pub async fn query(
            &self,
            query: &str,
            variables: Value,
            token: Option<&str>,
        ) -> Result<Answer, String> {
            self.query_with(query, variables, token, None).await
        }

        /// A GraphQL request with an access token and a refresh token.
        pub async fn query_with(
            &self,
            query: &str,
            variables: Value,
            token: Option<&str>,
            refresh: Option<&str>,
        ) -> Result<Answer, String> {
            let body =
                serde_json::to_vec(&serde_json::json!({"query": query, "variables": variables}))
                    .expect("serialises");
            let auth = token.map(|t| format!("Bearer {t}"));
            let mut h: Vec<(&str, &str)> = vec![("content-type", "application/json")];
            if let Some(a) = &auth {
                h.push(("authorization", a));
            }
            if let Some(r) = refresh {
                h.push(("x-refresh-token", r));
            }
            self.raw("POST", "/graphql", &h, body).await
        }

        /// GET `path`, JSON answer.
        pub async fn get(&self, path: &str) -> Result<Answer, String> {
            self.raw("GET", path, &[], Vec::new()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pad::rpc::testing::{rt, serve, StubRegistry};
    use axum::body::Body;
    use axum::http::Request;
    use std::time::Duration;
    use tower::ServiceExt;

    fn disc(registry: &str) -> Discovery {
        Discovery::new(
            vec![registry.to_string()],
            crate::clock::Clock::new(),
            Duration::from_millis(500),
        )
    }

    /// The gateway's routes over a registry at `registry`.
    fn gateway(registry: &str) -> Router {
        let clock = crate::clock::Clock::new();
        let schema = super::super::graphql::schema(super::super::graphql::Api {
            disc: disc(registry),
            wall: crate::tartu::WallClock::system(clock),
            deadline: Duration::from_secs(1),
            audit: None,
        });
        router(schema, disc(registry), "test".into())
    }

    struct Got {
        status: StatusCode,
        headers: HeaderMap,
        text: String,
        json: Value,
    }

    async fn send(app: &Router, req: Request<Body>) -> Got {
        let r = app.clone().oneshot(req).await.unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Got {
            status,
            headers,
            text,
            json,
        }
    }

    fn req(method: &str, uri: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Request<Body> {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::from(body)).unwrap()
    }

    /// A GraphQL-shaped error with code BAD_REQUEST; its message.
    fn message(g: &Got) -> &str {
        assert_eq!(g.json["data"], Value::Null, "{}", g.text);
        assert_eq!(
            g.json["errors"][0]["extensions"]["code"], "BAD_REQUEST",
            "{}",
            g.text
        );
        g.json["errors"][0]["message"].as_str().unwrap()
    }

    #[test]
    fn the_standard_introspection_query_is_answered_over_http() {
        rt().block_on(async {
            let app = gateway("127.0.0.1:9");
            let body = serde_json::to_vec(&json!({
                "query": include_str!("introspection.graphql"),
                "operationName": "IntrospectionQuery",
            }))
            .unwrap();
            let g = send(
                &app,
                req(
                    "POST",
                    "/graphql",
                    &[("content-type", "application/json")],
                    body,
                ),
            )
            .await;
            assert_eq!(g.status, StatusCode::OK);
            assert!(g.json.get("errors").is_none(), "{}", g.text);
            assert_eq!(g.json["data"]["__schema"]["queryType"]["name"], "Query");
        });
    }

    /// GraphiQL goes to browsers only; GraphQL over GET, other methods, a
    /// body over the limit and a batch get a JSON error that says what to
    /// send.
    #[test]
    fn every_refusal_is_json_and_says_what_to_send() {
        rt().block_on(async {
            let app = gateway("127.0.0.1:9");
            let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
            let g = send(&app, req("GET", "/graphql", &[("accept", browser)], vec![])).await;
            assert_eq!(g.status, StatusCode::OK);
            assert!(g.text.starts_with("<!doctype html>"));
            for (uri, accept, want) in [
                ("/graphql?query=%7Bhello%7D", "application/json", "GraphQL over GET is not served"),
                ("/graphql?query=%7Bhello%7D", "*/*", "GraphQL over GET is not served"),
                ("/graphql", "*/*", "GET /graphql is GraphiQL's page, for browsers"),
                ("/graphql", "application/json", "GET /graphql is GraphiQL's page, for browsers"),
            ] {
                let g = send(&app, req("GET", uri, &[("accept", accept)], vec![])).await;
                assert_eq!(g.status, StatusCode::METHOD_NOT_ALLOWED, "{uri} {accept}");
                assert_eq!(g.headers[header::ALLOW], "POST");
                let m = message(&g);
                assert!(m.starts_with(want), "{m}");
                assert!(m.contains("send POST /graphql with a JSON body"), "{m}");
            }
            for (method, uri) in [
                ("PUT", "/graphql"),
                ("DELETE", "/graphql"),
                ("OPTIONS", "/graphql"),
                ("POST", "/status"),
                ("POST", "/"),
            ] {
                let g = send(&app, req(method, uri, &[], b"{}".to_vec())).await;
                assert_eq!(g.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
                assert!(g.headers.contains_key(header::ALLOW), "{method} {uri}");
                let m = message(&g);
                assert!(m.starts_with(&format!("{method} is not allowed on {uri}:")), "{m}");
            }
            let big = format!(
                "{{\"query\": \"{{ hello }}\", \"pad\": \"{}\"}}",
                "x".repeat(3 << 20)
            );
            let g = send(&app, req("POST", "/graphql", &[], big.into_bytes())).await;
            assert_eq!(g.status, StatusCode::PAYLOAD_TOO_LARGE);
            assert_eq!(
                message(&g),
                "the body is over 2097152 bytes (2 MiB): send POST /graphql with a JSON body {\"query\": \"...\", \"variables\": {...}} under that size"
            );
            let batch = br#"[{"query": "{ hello }"}, {"query": "{ hello }"}]"#.to_vec();
            let g = send(&app, req("POST", "/graphql", &[], batch)).await;
            assert_eq!(g.status, StatusCode::BAD_REQUEST);
            assert!(message(&g).starts_with("batched requests (a JSON array) are not supported"));
            // Just under the limit is read and run.
            let fits = format!(
                "{{\"query\": \"{{ hello }}\", \"extensions\": {{\"pad\": \"{}\"}}}}",
                "x".repeat(BODY_LIMIT - 100)
            );
            let g = send(&app, req("POST", "/graphql", &[], fits.into_bytes())).await;
            assert_eq!(g.status, StatusCode::OK, "{}", &g.text[..200.min(g.text.len())]);
            assert!(g.json["data"]["hello"].is_string());
        });
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let bearer = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            creds(&h).bearer
        };
        for v in [
            "Bearer tok",
            "bearer tok",
            "BEARER tok",
            "BeArEr  tok ",
            "Bearer\ttok",
        ] {
            assert_eq!(bearer(v).as_deref(), Some("tok"), "{v:?}");
        }
        for v in ["Basic tok", "tok", "Bearer", "Bearer ", "Bearertok"] {
            assert_eq!(bearer(v), None, "{v:?}");
        }
    }

    /// `/status` after a pause longer than the leases: every instance up,
    /// from a listing asked for then (it used to show the old listing, every
    /// lease lapsed).
    #[test]
    fn status_after_a_pause_shows_a_fresh_listing() {
        rt().block_on(async {
            let registry = serve(StubRegistry {
                instances: super::super::SERVICES
                    .iter()
                    .map(|s| (s.to_string(), "127.0.0.1:9".to_string()))
                    .collect(),
                lease_ms: 300,
                lists: Default::default(),
            })
            .await;
            let app = gateway(&registry);
            for pause in [0, 700, 700] {
                tokio::time::sleep(Duration::from_millis(pause)).await;
                let g = send(&app, req("GET", "/status", &[], vec![])).await;
                assert_eq!(g.status, StatusCode::OK);
                for s in super::super::SERVICES {
                    assert_eq!(
                        g.json["routable"][s].as_array().map(Vec::len),
                        Some(1),
                        "after {pause} ms: {}",
                        g.text
                    );
                }
                assert!(
                    g.json["listing_age_ms"].as_u64().unwrap() < 500,
                    "{}",
                    g.text
                );
                assert!(g.json.get("warning").is_none(), "{}", g.text);
            }
        });
    }

    /// With `--cors-origin`, a page of that origin gets its preflight
    /// answered and may send credentials and read `x-refresh-token`; any
    /// other origin gets no CORS header (the browser refuses the answer);
    /// without it, nothing changes (a preflight is 405, as any OPTIONS).
    #[test]
    fn cross_origin_requests_only_from_the_origins_given() {
        rt().block_on(async {
            let page = "http://localhost:3000";
            let app = gateway("127.0.0.1:9").layer(cors(&[page.into()]).unwrap().unwrap());
            let preflight = |origin: &'static str| {
                req(
                    "OPTIONS",
                    "/graphql",
                    &[
                        ("origin", origin),
                        ("access-control-request-method", "POST"),
                        (
                            "access-control-request-headers",
                            "content-type,authorization",
                        ),
                    ],
                    vec![],
                )
            };
            let g = send(&app, preflight(page)).await;
            assert_eq!(g.status, StatusCode::OK, "{}", g.text);
            let h = |g: &Got, name: &str| {
                g.headers
                    .get(name)
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default()
            };
            assert_eq!(h(&g, "access-control-allow-origin"), page);
            assert_eq!(h(&g, "access-control-allow-credentials"), "true");
            let allowed = h(&g, "access-control-allow-headers");
            assert!(
                allowed.contains("authorization") && allowed.contains("content-type"),
                "{allowed}"
            );
            assert!(h(&g, "access-control-allow-methods").contains("POST"));

            let post = |origin: &'static str| {
                req(
                    "POST",
                    "/graphql",
                    &[("origin", origin), ("content-type", "application/json")],
                    br#"{"query": "{ hello }"}"#.to_vec(),
                )
            };
            let g = send(&app, post(page)).await;
            assert_eq!(g.status, StatusCode::OK, "{}", g.text);
            assert_eq!(h(&g, "access-control-allow-origin"), page);
            assert_eq!(h(&g, "access-control-expose-headers"), "x-refresh-token");

            let other = "http://evil.example";
            let g = send(&app, post(other)).await;
            assert_eq!(h(&g, "access-control-allow-origin"), "");
            let g = send(&app, preflight(other)).await;
            assert_eq!(h(&g, "access-control-allow-origin"), "");

            let plain = gateway("127.0.0.1:9");
            let g = send(&plain, preflight(page)).await;
            assert_eq!(g.status, StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(h(&g, "access-control-allow-origin"), "");
            let g = send(&plain, post(page)).await;
            assert_eq!(h(&g, "access-control-allow-origin"), "");
        });
    }

    #[test]
    fn a_cors_origin_that_is_not_one_is_refused_with_what_to_give() {
        assert!(cors(&[]).unwrap().is_none());
        assert!(cors(&[
            "https://shop.example:8443".into(),
            "http://127.0.0.1:5173".into()
        ])
        .unwrap()
        .is_some());
        for (bad, says) in [
            ("*", "name each origin allowed"),
            ("localhost:3000", "an origin is scheme://host[:port]"),
            ("http://localhost:3000/", "with no path"),
            ("http://localhost:3000/app", "with no path"),
            ("ftp://localhost", "http:// or https://"),
            ("http://", "http:// or https://"),
            ("http://user@host", "with no path"),
        ] {
            let e = cors(&[bad.into()])
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(e.contains(says) && e.contains(bad), "{bad}: {e}");
            assert!(
                e.contains("e.g. --cors-origin http://localhost:3000"),
                "{e}"
            );
        }
    }
}
