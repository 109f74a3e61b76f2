//! State shared by every handler and resolver (cheap to clone).

use std::sync::Arc;
use std::time::Duration;

use crate::cluster::Cluster;
use crate::graphql::{GatedSchema, WsSettings};
use crate::metrics::Metrics;
use crate::server::Shutdown;
use crate::service::Service;
use crate::service::live::Live;

#[derive(Clone)]
pub struct AppState {
    pub service: Service,
    /// The GraphQL schema, behind its gate.
    pub schema: GatedSchema,
    /// Live progress, shared by every subscription of this instance.
    pub live: Live,
    /// WebSocket timeouts.
    pub ws: WsSettings,
    /// Longest a client may take to send a request body.
    pub body_timeout: Duration,
    /// Where the instance is in its life (`/healthz` reports draining).
    pub shutdown: Shutdown,
    /// Request metrics (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// The pool's size limit (`/metrics`).
    pub pool_max: u32,
    /// What the deployment shares, when `--redis-url` is set.
    pub cluster: Option<Cluster>,
}
