//! The one gate every GraphQL operation passes, whatever carries it: `POST`, `GET`, a batch
//! entry, Server-Sent Events, a WebSocket `subscribe`, a persisted or trusted document, a
//! federation or node lookup. It wraps the schema ([`GatedSchema`], the only way to it), so
//! no transport can go around it; the transports only attach a [`Caller`] (what arrived:
//! credentials, address, connection) and move bytes.
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

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection,
    SelectionSet,
};
use async_graphql::{Data, Request, Response, ServerError, Value};
use axum::http::HeaderMap;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use tokio::sync::Semaphore;

use crate::auth;
use crate::error::{AuthError, Error, Lang};
use crate::graphql::AppSchema;
use crate::graphql::context::RequestContext;
use crate::graphql::errors::server_error;
use crate::graphql::limits::{OverGet, ParsedDocuments, operations};
use crate::graphql::persisted::Persisted;
use crate::graphql::validated::Validated;
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

/// The schema behind its gate: the only way an operation reaches the schema (the schema
/// itself is private to it), so no transport can go around the gate. Transports hand it a
/// request carrying a [`Caller`] (or, on a WebSocket, session data holding one).
///
/// The gate wraps the schema rather than being one of its extensions: any extension makes
/// async-graphql run an extension chain, with a registry lookup, around every field of every
/// answer.
#[derive(Clone)]
pub struct GatedSchema {
    schema: AppSchema,
    /// The same schema validating only what execution relies on (complexity, depth, fragment cycles), for a request that passed full validation before ([`Validated`]).
    fast: AppSchema,
    rules: Arc<GateRules>,
    parsed: Arc<ParsedDocuments>,
    validated: Arc<Validated>,
}

/// An operation the gate let through, about to execute.
struct Admitted {
    request: Request,
    /// When it reached the gate.
    arrived: Instant,
    /// The name it is counted under in `/metrics`.
    metric: String,
    /// The authenticated user, if any.
    user: Option<i64>,
    lang: Lang,
    /// Whether the operation that runs is a subscription.
    subscription: bool,
    /// The name of the operation that runs, when it has one (for its span).
    name: Option<String>,
}

/// An operation the gate refused: its answer, and the name it is counted under when the
/// gate got that far.
struct Refused {
    response: Response,
    metric: Option<String>,
}

impl Refused {
    fn new(error: ServerError, metric: Option<String>) -> Refused {
        Refused {
            response: Response::from_errors(vec![error]),
            metric,
        }
    }
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

/// The operation of `doc` that `name` selects (the only one when unnamed).
fn selected<'a>(
    doc: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| &op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| &op.node)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

impl GatedSchema {
    /// `schema` behind a gate with `rules`.
    pub(super) fn new(schema: AppSchema, fast: AppSchema, rules: Arc<GateRules>) -> GatedSchema {
        GatedSchema {
            schema,
            fast,
            rules,
            parsed: Arc::default(),
            validated: Arc::default(),
        }
    }

    /// The schema in SDL.
    pub fn sdl(&self) -> String {
        self.schema.sdl()
    }

    /// Executes one operation (a query or mutation; a subscription is refused, as
    /// async-graphql refuses it on this transport) and answers once.
    pub async fn execute(&self, request: Request) -> Response {
        match self.admit(request, None).await {
            Ok(op) => self.run_once(op, None).await,
            Err(refused) => self.record(refused),
        }
    }

    /// Executes one operation as a stream of answers: a subscription's events, or a query's
    /// one answer. `session` is a WebSocket's data (its [`Caller`]).
    pub fn execute_stream(
        &self,
        request: Request,
        session: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let gate = self.clone();
        stream::once(async move {
            match gate.admit(request, session.as_deref()).await {
                Err(refused) => stream::once(std::future::ready(gate.record(refused))).boxed(),
                Ok(op) if op.subscription => {
                    // A stream's first response decides its outcome (a refusal, or its first
                    // event).
                    let metrics = gate.rules.metrics.clone();
                    let metric = op.metric;
                    let mut first = true;
                    gate.schema
                        .execute_stream_with_session_data(op.request, session.unwrap_or_default())
                        .map(move |response| {
                            if std::mem::take(&mut first) {
                                metrics.graphql(Some(&metric), outcome(&response));
                            }
                            response
                        })
                        .boxed()
                }
                Ok(op) => {
                    let response = gate.run_once(op, session).await;
                    stream::once(std::future::ready(response)).boxed()
                }
            }
        })
        .flatten()
        .boxed()
    }

    /// Counts a refused operation and answers with its refusal.
    fn record(&self, refused: Refused) -> Response {
        let outcome = outcome(&refused.response);
        self.rules
            .metrics
            .graphql(refused.metric.as_deref(), outcome);
        refused.response
    }

    fn deadline(&self, arrived: Instant) -> Option<Instant> {
        (!self.rules.timeout.is_zero()).then(|| arrived + self.rules.timeout)
    }

    /// Steps 1 to 4, before anything executes.
    async fn admit(
        &self,
        mut request: Request,
        session: Option<&Data>,
    ) -> Result<Admitted, Refused> {
        let arrived = Instant::now();
        let caller = find::<Arc<Caller>>(&request.data)
            .or_else(|| session.and_then(find::<Arc<Caller>>))
            .cloned()
            .ok_or_else(|| {
                tracing::error!("a GraphQL operation arrived without its caller");
                Refused::new(server_error("internal error", "INTERNAL"), None)
            })?;
        let lang = auth::lang(&caller.credentials);

        // 1. Which document.
        let remember = self
            .rules
            .persisted
            .resolve(&mut request)
            .map_err(|r| Refused::new(server_error(r.message, r.code), None))?;

        // 2. Rate budgets, before any database work.
        if let Some(limits) = &self.rules.limits
            && let Err(seconds) = limits
                .admit(caller.ip, auth::presented(&caller.credentials))
                .await
        {
            return Err(Refused::new(
                refusal(&Error::RateLimited, lang, Some(seconds)),
                None,
            ));
        }

        // 3. Who the caller is now (no lookup without credentials: introspection is free).
        let viewer = if auth::has_credentials(&caller.credentials) {
            let lookup = auth::authenticate(&caller.service, &caller.credentials, Role::Common);
            match self.deadline(arrived) {
                Some(at) => tokio::time::timeout_at(at.into(), lookup)
                    .await
                    .unwrap_or(Err(Error::Timeout(self.rules.timeout.as_millis() as u64))),
                None => lookup.await,
            }
        } else {
            Err(AuthError::NoToken.into())
        };
        if let Err(e @ Error::Timeout(_)) = &viewer {
            return Err(Refused::new(refusal(e, lang, None), None));
        }
        let user = viewer.as_ref().ok().map(|v| v.id);
        // Only a signed-in caller's operation names are counted by name: anonymous ones
        // cannot push real names out of the bounded table.
        let mut metric = match (&viewer, &request.operation_name) {
            (Ok(_), Some(name)) => name.clone(),
            (Ok(_), None) => "anonymous".to_owned(),
            (Err(_), _) => "unauthenticated".to_owned(),
        };
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

        // The document's shape (depth, fields, scans), measured before async-graphql's own
        // checks walk it. One that does not parse goes on, to be refused with the parser's
        // message.
        let over_get = find::<OverGet>(&request.data).is_some();
        let mut subscription = false;
        let mut name = request.operation_name.clone();
        let parsed = self
            .parsed
            .parse(&request.query)
            .map_err(|e| Refused::new(e, Some(metric.clone())))?;
        if let Some(doc) = parsed {
            if over_get && operations(&doc).any(|op| op.ty == OperationType::Mutation) {
                return Err(Refused::new(
                    server_error(
                        "mutations are not executed over GET; use POST",
                        "METHOD_NOT_ALLOWED",
                    ),
                    Some(metric),
                ));
            }
            // A lone named operation is the one that runs; a signed-in caller's is counted
            // by its name.
            if let DocumentOperations::Multiple(ops) = &doc.operations
                && let [lone] = ops.keys().collect::<Vec<_>>().as_slice()
            {
                name.get_or_insert_with(|| lone.to_string());
                if metric == "anonymous" {
                    metric = lone.to_string();
                }
            }
            // 4. Introspection.
            if !self.rules.introspection && selects_service(&doc) {
                return Err(Refused::new(
                    server_error(
                        "introspection is off on this server: the schema is not published",
                        "INTROSPECTION_DISABLED",
                    ),
                    Some(metric),
                ));
            }
            subscription = selected(&doc, request.operation_name.as_deref())
                .is_some_and(|op| op.ty == OperationType::Subscription);
            request.set_parsed_query(doc);
        }
        Ok(Admitted {
            request,
            arrived,
            metric,
            user,
            lang,
            subscription,
            name,
        })
    }

    /// Steps 5 and 6: runs an admitted query or mutation in its user's turn, within the
    /// timeout, and answers once (with `session`, as a stream's operation); the answer is
    /// counted under the operation's name.
    async fn run_once(&self, op: Admitted, session: Option<Arc<Data>>) -> Response {
        let metric = op.metric.clone();
        let response = self.run_in_turn(op, session).await;
        self.rules
            .metrics
            .graphql(Some(&metric), outcome(&response));
        response
    }

    /// [`GatedSchema::run_once`] before its answer is counted.
    async fn run_in_turn(&self, op: Admitted, session: Option<Arc<Data>>) -> Response {
        // Its name, never its variables.
        let span = tracing::debug_span!(
            "graphql.operation",
            otel.name = op.name.as_deref().unwrap_or("anonymous"),
            graphql.operation.name = op.name.as_deref().unwrap_or(""),
        );
        let deadline = self.deadline(op.arrived);
        let (request, user, lang) = (op.request, op.user, op.lang);
        let run = async {
            // 5. Concurrency: one user's operations take turns.
            let _turn = match user.and_then(|id| self.rules.turns(id)) {
                Some(turns) => turns.acquire_owned().await.ok(),
                None => None,
            };
            // A request validated in full before is not validated again.
            let key = self.validated.key(&request);
            let known = key.is_some_and(|k| self.validated.contains(k));
            let schema = if known { &self.fast } else { &self.schema };
            let response = match session {
                Some(session) => schema
                    .execute_stream_with_session_data(request, session)
                    .next()
                    .await
                    .unwrap_or_default(),
                None => schema.execute(request).await,
            };
            if let (Some(key), false, true) = (key, known, response.errors.is_empty()) {
                self.validated.insert(key);
            }
            response
        };
        let run = tracing::Instrument::instrument(run, span);
        // 6. The timeout.
        match deadline {
            Some(at) => tokio::time::timeout_at(at.into(), run)
                .await
                .unwrap_or_else(|_| {
                    let ms = self.rules.timeout.as_millis() as u64;
                    tracing::warn!(timeout_ms = ms, "GraphQL operation timed out");
                    Response::from_errors(vec![refusal(&Error::Timeout(ms), lang, None)])
                }),
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
