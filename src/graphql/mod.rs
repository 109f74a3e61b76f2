//! The GraphQL API: `midjourneyTasks(filter, orderBy, page)` and friends, a thin layer over
//! [`crate::service`], with limits, an offline playground and a committed SDL.

mod connection;
mod context;
mod errors;
mod http;
mod inputs;
mod limits;
mod node;
mod paging;
pub mod persisted;
pub mod playground;
mod query;
mod scalars;
mod sse;
mod stats;
mod subscription;
mod task;
mod ws;

use async_graphql::{EmptyMutation, Schema};
use axum::Router;
use axum::routing::get;

use crate::state::AppState;

pub use http::{MAX_BATCH, MAX_BODY, request_error as error_response};
pub use limits::{MAX_DEPTH, MAX_FIELDS, MAX_SCANS};
pub use ws::{KEEPALIVE, WsSettings};

/// The schema type.
pub type AppSchema = Schema<query::Query, EmptyMutation, subscription::Subscription>;

/// Highest query complexity: a list counts as rows × its fields, so one 100-row page with
/// twenty fields fits and twenty aliases of it do not.
pub const MAX_COMPLEXITY: usize = 5_000;

/// Builds the schema (no I/O). `introspection = false` turns introspection off.
pub fn build_schema(introspection: bool) -> AppSchema {
    let builder = Schema::build(query::Query, EmptyMutation, subscription::Subscription)
        .enable_federation()
        .limit_complexity(MAX_COMPLEXITY)
        .extension(limits::Limits::default());
    if introspection {
        builder.finish()
    } else {
        builder.disable_introspection().finish()
    }
}

/// The schema in SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    build_schema(true).sdl()
}

/// `/graphql` (GET and POST, WebSocket upgrades, Server-Sent Events) and the playground's
/// assets.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/graphql", get(http::get_graphql).post(http::post_graphql))
        .route("/graphql/assets/{name}", get(playground::asset))
}
