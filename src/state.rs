//! State shared by every handler and resolver (cheap to clone).

use crate::graphql::{AppSchema, WsSettings};
use crate::service::Service;
use crate::service::live::Live;

#[derive(Clone)]
pub struct AppState {
    pub service: Service,
    pub schema: AppSchema,
    /// Live progress, shared by every subscription of this instance.
    pub live: Live,
    /// WebSocket timeouts.
    pub ws: WsSettings,
}
