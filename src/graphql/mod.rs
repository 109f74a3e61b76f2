//! The GraphQL API: `midjourneyTasks(filter, orderBy, page)` and friends, a thin layer over
//! [`crate::service`], with limits, an offline playground and a committed SDL.
//!
//! Doc comments in this module are written one line per paragraph: async-graphql turns them
//! into the schema's descriptions, where a hard line break would show (in the SDL and in the
//! playground's docs) as a ragged break mid-sentence. A test keeps the SDL free of them.

mod connection;
mod context;
mod errors;
mod export;
pub mod gate;
mod groups;
mod http;
mod inputs;
mod limits;
mod node;
mod paging;
pub mod persisted;
mod plain;
pub mod playground;
mod query;
mod scalars;
mod sse;
mod stats;
mod subscription;
mod task;
mod task_log;
mod validated;
mod ws;

use std::sync::Arc;

use async_graphql::{EmptyMutation, Schema, ValidationMode};
use axum::Router;
use axum::routing::get;

use crate::state::AppState;

pub use http::{MAX_BATCH, MAX_BODY};
pub use limits::{MAX_DEPTH, MAX_FIELDS, MAX_SCANS};
pub use ws::{KEEPALIVE, WsSettings, is_upgrade};

/// The schema type (reached only through [`gate::GatedSchema`]).
type AppSchema = Schema<query::Query, EmptyMutation, subscription::Subscription>;

pub use gate::GatedSchema;

/// Highest query complexity: a list counts as rows × its fields, so one 100-row page with twenty fields fits and twenty aliases of it do not.
pub const MAX_COMPLEXITY: usize = 5_000;

/// Builds the schema (no I/O) behind the gate every operation passes ([`gate::GateRules`]; with `introspection` off, neither `__schema` nor `_service` answers).
pub fn build_schema(rules: Arc<gate::GateRules>) -> GatedSchema {
    let strict = schema(rules.introspection, ValidationMode::Strict);
    let fast = schema(rules.introspection, ValidationMode::Fast);
    GatedSchema::new(strict, fast, rules)
}

/// The schema, validating requests in `mode` (the gate runs a request [`validated`] in full before with [`ValidationMode::Fast`]). It registers no extension: a page's nodes resolve their fields without per-field hooks ([`plain`]).
fn schema(introspection: bool, mode: ValidationMode) -> AppSchema {
    let builder = Schema::build(query::Query, EmptyMutation, subscription::Subscription)
        .enable_federation()
        .limit_complexity(MAX_COMPLEXITY)
        .validation_mode(mode);
    if introspection {
        builder.finish()
    } else {
        builder.disable_introspection().finish()
    }
}

/// The schema in SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    let rules = gate::GateRules::new(
        Arc::default(),
        None,
        std::time::Duration::ZERO,
        true,
        Arc::default(),
    );
    build_schema(Arc::new(rules)).sdl()
}

/// `/graphql` (GET and POST, WebSocket upgrades, Server-Sent Events) and the playground's assets.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/graphql", get(http::get_graphql).post(http::post_graphql))
        .route("/graphql/assets/{name}", get(playground::asset))
}

/// How `/graphql` meets the server loop: refusals as GraphQL errors with the error's status, and every operation rate-limited by the gate (a WebSocket upgrade is counted by the loop as one request).
pub fn door() -> crate::server::Door {
    crate::server::Door {
        prefix: "/graphql",
        refuse: |error, headers| {
            let status = axum::http::StatusCode::from_u16(error.status())
                .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
            http::request_error(status, &error.to_string(), error.code(), headers)
        },
        limits_itself: |headers| !is_upgrade(headers),
    }
}
