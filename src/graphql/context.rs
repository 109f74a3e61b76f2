//! What a resolver knows about the request: the caller (or why there is none) and the
//! language of messages.

use async_graphql::Context;

use crate::error::{Error, Lang};
use crate::graphql::errors::to_gql;
use crate::service::live::{Connection, Live};
use crate::service::{Service, Viewer};

/// Per-request data, attached by the HTTP handler.
pub struct RequestContext {
    pub service: Service,
    /// The authenticated caller, or the authentication failure. Introspection never looks at it; every data field does.
    pub viewer: Result<Viewer, Error>,
    pub lang: Lang,
    /// Live progress (subscriptions).
    pub live: Live,
    /// The client connection subscriptions are counted on (one per WebSocket; one per SSE or plain HTTP request).
    pub connection: Connection,
    /// When the operation reached the gate (a total is counted as of a moment after it).
    pub arrived: std::time::Instant,
}

/// The service and the caller, or `UNAUTHENTICATED` / `FORBIDDEN`.
pub fn caller<'a>(ctx: &Context<'a>) -> async_graphql::Result<(&'a Service, &'a Viewer, Lang)> {
    let req = ctx.data::<std::sync::Arc<RequestContext>>()?;
    match &req.viewer {
        Ok(v) => Ok((&req.service, v, req.lang)),
        Err(e) => Err(to_gql(e, req.lang)),
    }
}

/// The request's context (always attached by the transports).
pub fn request<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a RequestContext> {
    Ok(ctx.data::<std::sync::Arc<RequestContext>>()?.as_ref())
}

/// The language of messages.
pub fn lang(ctx: &Context<'_>) -> Lang {
    ctx.data_opt::<std::sync::Arc<RequestContext>>()
        .map_or(Lang::En, |r| r.lang)
}

/// When the operation reached the gate (now, outside one).
pub fn arrived(ctx: &Context<'_>) -> std::time::Instant {
    ctx.data_opt::<std::sync::Arc<RequestContext>>()
        .map_or_else(std::time::Instant::now, |r| r.arrived)
}
