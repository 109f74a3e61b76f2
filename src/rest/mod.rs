//! The legacy routes of the new-api gateway: `GET /api/mj/self` and `GET /api/mj/`, answering
//! what its published documentation promises, and `GET /api/task/self` and `GET /api/task/`
//! (the generic task log), answering as new-api's handlers do. Handlers parse the query
//! string, call the service and shape the legacy JSON; no rule lives here.

mod envelope;
mod export_handlers;
pub mod go_json;
mod handlers;
mod items;
pub mod openapi;
mod openapi_export;
mod params;
mod task_handlers;
pub(crate) mod task_items;
pub mod task_params;

pub use envelope::{ApiError, failure_body};
pub use items::SelfItem;

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

/// The legacy routes, both spellings of each path answering directly (no redirect).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/mj/self", get(handlers::list_own))
        .route("/api/mj/self/", get(handlers::list_own))
        .route("/api/mj", get(handlers::list_all))
        .route("/api/mj/", get(handlers::list_all))
        .route("/api/mj/self/export", get(export_handlers::mj_own))
        .route("/api/mj/export", get(export_handlers::mj_all))
        .route("/api/mj/export/download", get(export_handlers::mj_download))
        .merge(task_router())
        .route("/openapi.json", get(openapi_json))
}

/// The task log's routes, both spellings of each path, every refusal in their envelope.
fn task_router() -> Router<AppState> {
    let own = || get(task_handlers::list_own).fallback(task_handlers::method_not_allowed);
    let all = || get(task_handlers::list_all).fallback(task_handlers::method_not_allowed);
    Router::new()
        .route("/api/task/self", own())
        .route("/api/task/self/", own())
        .route("/api/task", all())
        .route("/api/task/", all())
        .route(
            "/api/task/self/export",
            get(export_handlers::task_own).fallback(task_handlers::method_not_allowed),
        )
        .route(
            "/api/task/export",
            get(export_handlers::task_all).fallback(task_handlers::method_not_allowed),
        )
        .route(
            "/api/task/export/download",
            get(export_handlers::task_download).fallback(task_handlers::method_not_allowed),
        )
        .route(
            "/api/task/{*rest}",
            axum::routing::any(task_handlers::not_found),
        )
}

/// How the task routes meet the server loop: refusals (rate limits, timeouts, shutdown) in
/// their sorted envelope.
pub fn task_door() -> crate::server::Door {
    crate::server::Door {
        prefix: "/api/task",
        refuse: |error, headers| {
            axum::response::IntoResponse::into_response(ApiError::sorted(
                error,
                crate::auth::lang(headers),
            ))
        },
        limits_itself: |_| false,
    }
}

/// `GET /openapi.json`: the routes' OpenAPI 3.1 description.
async fn openapi_json() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi::pretty(),
    )
}

/// How the legacy routes (and every path no other door claims) meet the server loop: refusals
/// in the legacy envelope, in the caller's language.
pub fn door() -> crate::server::Door {
    crate::server::Door {
        prefix: "",
        refuse: |error, headers| {
            axum::response::IntoResponse::into_response(ApiError::new(
                error,
                crate::auth::lang(headers),
            ))
        },
        limits_itself: |_| false,
    }
}

/// The body of the 503 a connection over the cap gets: the legacy envelope.
pub fn over_cap_body() -> Vec<u8> {
    failure_body(
        &crate::error::Error::TooManyConnections,
        crate::error::Lang::En,
    )
}
