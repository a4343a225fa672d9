//! The web page of the Tartu bookstore, served on its own port (8080 in the
//! course's setup): the catalogue, a cart, the checkout form, the result
//! with its suggestions and the order's status. Plain HTML, JavaScript and
//! CSS compiled into the binary: it needs no internet access. `/config.js`
//! tells the page where the orchestrator's API is.

use axum::http::header;
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
