//! The web page of the Tartu bookstore, served on its own port (8080 in the
//! course's setup): the catalogue, a cart, the checkout form, the result
//! with its suggestions and the order's status. Plain HTML, JavaScript and
//! CSS compiled into the binary: it needs no internet access. `/config.js`
//! tells the page where the orchestrator's API is.

use axum::http::{header, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("page/index.html");
const APP: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/style.css");

pub fn router(api: String) -> Router {
    let config = format!("window.TARTU_API = {};\n", serde_json::Value::String(api));
    Router::new()
        .route(
            "/",
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX) }),
        )
        .route(
            "/index.html",
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX) }),
        )
        .route(
            "/app.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    APP,
                )
            }),
        )
        .route(
            "/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }),
        )
        .route(
            "/config.js",
            get(move || {
                let c = config.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                        c,
                    )
                        .into_response()
                }
            }),
        )
        .fallback(|uri: Uri| async move {
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!(
                    "404 not found: {}\nThe bookstore's page is at /; its files are /app.js, /style.css and /config.js. The API is the orchestrator's, on its own port.\n",
                    uri.path()
                ),
            )
        })
        .method_not_allowed_fallback(|method: Method| async move {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("405 method not allowed: this server only serves the page, with GET; {method} requests go to the orchestrator's API\n"),
            )
        })
}

/// Serves the page on `addr` until `shutdown` completes; `api` is the
/// orchestrator's base URL as the browser reaches it.
pub async fn serve(
    api: String,
    addr: std::net::SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router(api))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(method: &str, path: &str) -> (u16, String) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let resp = super::router("http://127.0.0.1:8081".into())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_page_its_files_and_what_is_not_there() {
        let (s, body) = get("GET", "/").await;
        assert_eq!(s, 200);
        assert!(body.contains("<html"), "{body}");
        let (s, body) = get("GET", "/config.js").await;
        assert_eq!(
            (s, body.as_str()),
            (200, "window.TARTU_API = \"http://127.0.0.1:8081\";\n")
        );
        // A missing file or a wrong method says what this server serves,
        // instead of an empty body.
        let (s, body) = get("GET", "/checkout").await;
        assert_eq!(s, 404);
        assert!(
            body.contains("/checkout") && body.contains("page is at /"),
            "{body}"
        );
        let (s, body) = get("POST", "/").await;
        assert_eq!(s, 405);
        assert!(
            body.contains("POST") && body.contains("orchestrator"),
            "{body}"
        );
    }
}
