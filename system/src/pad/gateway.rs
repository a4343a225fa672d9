//! The API gateway over HTTP (real mode): the course's GraphQL schema
//! ([`super::graphql`]) at `POST /graphql`, the GraphiQL page at
//! `GET /graphql` (and `/graphiql`), everything it loads served from the
//! binary (it works offline), the registry's view at `GET /status` (`routable`: per service, the
//! addresses calls go to; `instances`: every registered instance, up,
//! unhealthy or lapsed, with the time left on its lease).
//!
//! A body that is not a GraphQL request (not JSON, no `query`) is answered
//! 400 with a GraphQL-shaped JSON error; an executed request is answered 200
//! with `data` and `errors`, every error with `extensions.code`.

use super::graphql::{Creds, PadSchema};
use super::rpc::Discovery;
use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
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

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({
            "data": null,
            "errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}],
        })),
    )
        .into_response()
}

/// The credentials in a request's headers.
pub fn creds(h: &HeaderMap) -> Creds {
    let bearer = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
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
                match disc.listing().await {
                    Some((all, now)) => {
                        let routable: std::collections::BTreeMap<&str, Vec<&str>> = super::SERVICES
                            .iter()
                            .map(|s| {
                                let up = pad_core::registry::routable(&all, s, now);
                                (*s, up.iter().map(|i| i.addr.as_str()).collect())
                            })
                            .collect();
                        axum::Json(json!({
                            "gateway": name,
                            "registry_now_ms": now,
                            "routable": routable,
                            "instances": pad_core::registry::view(&all, now),
                        }))
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
            get(page).post(move |h: HeaderMap, body: Bytes| {
                let schema = schema.clone();
                async move { execute(&schema, &h, &body).await }
            }),
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
}

/// Serves the gateway on `addr` until `shutdown` completes.
pub async fn serve(
    schema: PadSchema,
    disc: Discovery,
    addr: std::net::SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router(schema, disc, addr.to_string()))
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
