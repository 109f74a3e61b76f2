//! The one gate every GraphQL operation passes, whatever carries it: `POST`, `GET`, a batch
//! entry, Server-Sent Events, a WebSocket `subscribe`, a persisted or trusted document, a
//! federation or node lookup. It is a schema extension, so no transport can go around it;
//! the transports only attach a [`Caller`] (what arrived: credentials, address, connection)
//! and move bytes.
//!
//! Per operation, in this order, before anything executes:
//!
//! 1. **which document** runs: a persisted query's hash is resolved, and with
//!    `--trusted-documents` anything unlisted is refused (on the hash, before parsing);
//! 2. **rate budgets** (`--rate-limit-per-ip`, `--rate-limit-per-user`): one unit per
//!    operation, keyed on the client address and on the credentials as authentication reads
//!    them (so `2`, `02` and `+2` are one user);
//! 3. **who the caller is now**: the credentials are authenticated again for every operation
//!    (within `--auth-cache-ms`), so a ban or a demotion reaches an open WebSocket as it
//!    reaches the next `POST`;
//! 4. **introspection**: with `--no-introspection`, the federation `_service { sdl }` field,
//!    which would publish the schema, is refused as `__schema` is;
//! 5. **concurrency**: at most `--graphql-max-running-per-user` operations of one user
//!    execute at once; the rest wait their turn within the timeout;
//! 6. **the timeout** (`--request-timeout-ms`) bounds the whole operation from its arrival
//!    at the gate, on every transport.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextRequest, NextSubscribe,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, Selection, SelectionSet,
};
use async_graphql::{Request, Response, ServerError, ServerResult, Value, Variables};
use axum::http::HeaderMap;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::Semaphore;

use crate::auth;
use crate::error::{AuthError, Error, Lang};
use crate::graphql::context::RequestContext;
use crate::graphql::errors::server_error;
use crate::graphql::limits::operations;
use crate::graphql::persisted::Persisted;
use crate::metrics::{Metrics, Outcome};
use crate::server::{ConnectionCloser, RateLimits};
use crate::service::live::{Connection, Live};
use crate::service::{Role, Service};

/// What a transport knows about who sent an operation: attached to every request (HTTP, SSE) or to the WebSocket's session (the `connection_init` credentials).
pub struct Caller {
    pub service: Service,
    pub live: Live,
    /// The credentials as sent (`Authorization`, `New-Api-User`, `Accept-Language`).
    pub credentials: HeaderMap,
    /// The client's address.
    pub ip: Option<IpAddr>,
    /// The connection subscriptions are counted on (one per WebSocket; one per request).
    pub connection: Connection,
    /// Ends the HTTP connection (an event stream whose client stopped reading).
    pub closer: Option<ConnectionCloser>,
}

/// The gate's settings, shared by every operation.
#[derive(Default)]
pub struct GateRules {
    /// Documents known by hash; the trusted list.
    pub persisted: Arc<Persisted>,
    /// Rate limits, when any are set.
    pub limits: Option<Arc<RateLimits>>,
    /// Longest an operation may take; zero for no limit.
    pub timeout: Duration,
    /// Whether the schema may be read (introspection, `_service`).
    pub introspection: bool,
    /// Operation counts (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// Most operations of one user executing at once; zero for no limit.
    pub max_running_per_user: usize,
    /// Operations running per user.
    running: Mutex<HashMap<i64, Arc<Semaphore>>>,
}

impl GateRules {
    /// Rules with these settings.
    pub fn new(
        persisted: Arc<Persisted>,
        limits: Option<Arc<RateLimits>>,
        timeout: Duration,
        introspection: bool,
        metrics: Arc<Metrics>,
    ) -> GateRules {
        GateRules {
            persisted,
            limits,
            timeout,
            introspection,
            metrics,
            max_running_per_user: 8,
            running: Mutex::default(),
        }
    }

    /// The same rules with at most `n` operations of a user running at once (0: no limit).
    pub fn with_max_running_per_user(mut self, n: usize) -> GateRules {
        self.max_running_per_user = n;
        self
    }

    /// The turns of `user`'s operations (`None`: no limit); an idle user's entry goes when the table grows.
    fn turns(&self, user: i64) -> Option<Arc<Semaphore>> {
        let max = self.max_running_per_user;
        if max == 0 {
            return None;
        }
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if running.len() >= 10_000 {
            running.retain(|_, s| s.available_permits() < max);
        }
        Some(
            running
                .entry(user)
                .or_insert_with(|| Arc::new(Semaphore::new(max)))
                .clone(),
        )
    }
}

/// The gate, as a schema extension.
pub struct Gate(pub Arc<GateRules>);

impl ExtensionFactory for Gate {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(GateExtension {
            rules: self.0.clone(),
            op: Arc::default(),
        })
    }
}

/// What the gate learnt about one operation.
#[derive(Default)]
struct Admitted {
    /// When the operation reached the gate.
    arrived: Option<Instant>,
    /// The name it is counted under in `/metrics`.
    metric: Option<String>,
    /// The authenticated user, if any.
    user: Option<i64>,
}

struct GateExtension {
    rules: Arc<GateRules>,
    op: Arc<Mutex<Admitted>>,
}

fn lock(op: &Mutex<Admitted>) -> std::sync::MutexGuard<'_, Admitted> {
    op.lock().unwrap_or_else(PoisonError::into_inner)
}

fn outcome(response: &Response) -> Outcome {
    match (response.errors.is_empty(), response.data == Value::Null) {
        (true, _) => Outcome::Ok,
        (false, false) => Outcome::Partial,
        (false, true) => Outcome::Failed,
    }
}

/// A refusal as a GraphQL error, with the seconds to wait when it is a rate limit.
fn refusal(e: &Error, lang: Lang, retry_after: Option<u64>) -> ServerError {
    let mut err = server_error(e.message(lang), e.code());
    if let (Some(seconds), Some(ext)) = (retry_after, err.extensions.as_mut()) {
        ext.set("retryAfter", seconds.max(1));
    }
    err
}

fn find<T: 'static>(data: &async_graphql::Data) -> Option<&T> {
    data.get(&std::any::TypeId::of::<T>())
        .and_then(|d| d.downcast_ref::<T>())
}

impl GateExtension {
    fn admitted(&self) -> std::sync::MutexGuard<'_, Admitted> {
        lock(&self.op)
    }

    fn deadline(&self) -> Option<Instant> {
        let arrived = self.admitted().arrived?;
        (!self.rules.timeout.is_zero()).then(|| arrived + self.rules.timeout)
    }

    fn record(&self, response: &Response) {
        let name = self.admitted().metric.clone();
        self.rules
            .metrics
            .graphql(name.as_deref(), outcome(response));
    }

    fn timed_out(&self, lang: Lang) -> Response {
        let ms = self.rules.timeout.as_millis() as u64;
        tracing::warn!(timeout_ms = ms, "GraphQL operation timed out");
        Response::from_errors(vec![refusal(&Error::Timeout(ms), lang, None)])
    }
}

#[async_trait::async_trait]
impl Extension for GateExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let response = next.run(ctx).await;
        self.record(&response);
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        // A stream's first response decides its outcome (a query's answer, a refusal, or a
        // subscription's first event).
        let rules = self.rules.clone();
        let op = self.op.clone();
        let mut first = true;
        next.run(ctx, stream)
            .map(move |response| {
                if std::mem::take(&mut first) {
                    let name = lock(&op).metric.clone();
                    rules.metrics.graphql(name.as_deref(), outcome(&response));
                }
                response
            })
            .boxed()
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let arrived = Instant::now();
        self.admitted().arrived = Some(arrived);
        let caller = find::<Arc<Caller>>(&request.data)
            .or_else(|| ctx.data_opt::<Arc<Caller>>())
            .cloned()
            .ok_or_else(|| {
                tracing::error!("a GraphQL operation arrived without its caller");
                server_error("internal error", "INTERNAL")
            })?;
        let lang = auth::lang(&caller.credentials);

        // 1. Which document.
        let remember = self
            .rules
            .persisted
            .resolve(&mut request)
            .map_err(|r| server_error(r.message, r.code))?;

        // 2. Rate budgets, before any database work.
        if let Some(limits) = &self.rules.limits
            && let Err(seconds) = limits
                .admit(caller.ip, auth::presented(&caller.credentials))
                .await
        {
            return Err(refusal(&Error::RateLimited, lang, Some(seconds)));
        }

        // 3. Who the caller is now (no lookup without credentials: introspection is free).
        let viewer = if auth::has_credentials(&caller.credentials) {
            let deadline = self.deadline();
            let lookup = auth::authenticate(&caller.service, &caller.credentials, Role::Common);
            match deadline {
                Some(at) => tokio::time::timeout_at(at.into(), lookup)
                    .await
                    .unwrap_or(Err(Error::Timeout(self.rules.timeout.as_millis() as u64))),
                None => lookup.await,
            }
        } else {
            Err(AuthError::NoToken.into())
        };
        if let Err(e @ Error::Timeout(_)) = &viewer {
            return Err(refusal(e, lang, None));
        }
        {
            let mut op = self.admitted();
            op.user = viewer.as_ref().ok().map(|v| v.id);
            // Only a signed-in caller's operation names are counted by name: anonymous ones
            // cannot push real names out of the bounded table.
            op.metric = Some(match (&viewer, &request.operation_name) {
                (Ok(_), Some(name)) => name.clone(),
                (Ok(_), None) => "anonymous".to_owned(),
                (Err(_), _) => "unauthenticated".to_owned(),
            });
        }
        // A document is remembered by hash only for a signed-in caller (anonymous clients
        // cannot evict others' documents).
        if let (Some(hash), Ok(_)) = (remember, &viewer) {
            self.rules.persisted.remember(hash, &request.query);
        }
        let context = RequestContext {
            service: caller.service.clone(),
            viewer,
            lang,
            live: caller.live.clone(),
            connection: caller.connection.clone(),
            arrived,
        };
        request = request.data(Arc::new(context));
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        // A signed-in caller's lone named operation is counted by its name.
        if let DocumentOperations::Multiple(ops) = &doc.operations
            && let [name] = ops.keys().collect::<Vec<_>>().as_slice()
        {
            let mut admitted = self.admitted();
            if admitted.metric.as_deref() == Some("anonymous") {
                admitted.metric = Some(name.to_string());
            }
        }
        // 4. Introspection.
        if !self.rules.introspection && selects_service(&doc) {
            return Err(server_error(
                "introspection is off on this server: the schema is not published",
                "INTROSPECTION_DISABLED",
            ));
        }
        Ok(doc)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let lang = ctx
            .data_opt::<Arc<RequestContext>>()
            .map_or(Lang::En, |r| r.lang);
        let deadline = self.deadline();
        let user = self.admitted().user;
        // Its name, never its variables.
        let span = tracing::debug_span!(
            "graphql.operation",
            otel.name = operation_name.unwrap_or("anonymous"),
            graphql.operation.name = operation_name.unwrap_or(""),
        );
        let run = async {
            // 5. Concurrency: one user's operations take turns.
            let _turn = match user.and_then(|id| self.rules.turns(id)) {
                Some(turns) => turns.acquire_owned().await.ok(),
                None => None,
            };
            next.run(ctx, operation_name).await
        };
        let run = tracing::Instrument::instrument(run, span);
        // 6. The timeout.
        match deadline {
            Some(at) => tokio::time::timeout_at(at.into(), run)
                .await
                .unwrap_or_else(|_| self.timed_out(lang)),
            None => run.await,
        }
    }
}

/// Whether any operation of `doc` selects the federation `_service` field at its root (directly or through fragments).
fn selects_service(doc: &ExecutableDocument) -> bool {
    /// Each fragment is looked into once: fragments that spread each other many times cost no more than their text (a document of spreads only passes the field limits).
    fn walk<'a>(
        doc: &'a ExecutableDocument,
        set: &'a SelectionSet,
        seen: &mut HashSet<&'a str>,
        depth: usize,
    ) -> bool {
        if depth > 32 {
            return true;
        }
        set.items.iter().any(|item| match &item.node {
            Selection::Field(f) => f.node.name.node == "_service",
            Selection::InlineFragment(frag) => {
                walk(doc, &frag.node.selection_set.node, seen, depth + 1)
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                seen.insert(name)
                    && doc
                        .fragments
                        .get(&spread.node.fragment_name.node)
                        .is_some_and(|frag| {
                            walk(doc, &frag.node.selection_set.node, seen, depth + 1)
                        })
            }
        })
    }
    let mut seen = HashSet::new();
    operations(doc).any(|op| walk(doc, &op.selection_set.node, &mut seen, 0))
}
