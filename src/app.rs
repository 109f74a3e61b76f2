//! Wiring: connect, migrate, bind the port, build the router; run until stopped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, extract::State};
use axum::{Router, middleware};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::cluster::Cluster;
use crate::config::{DbConfig, LiveArgs, ServeArgs, ServerArgs};
use crate::db;
use crate::error::{Error, Lang};
use crate::graphql::gate::GateRules;
use crate::graphql::persisted::Persisted;
use crate::graphql::{self, WsSettings};
use crate::metrics::Metrics;
use crate::metrics::Sample;
use crate::rest::{self, ApiError};
use crate::server::{self, Guard, Phase, RateLimits, ServerSettings, Shutdown, TrustedProxies};
use crate::service::export::{ExportLimits, LinkKey};
use crate::service::live::{Live, LiveConfig};
use crate::service::replicas::{Replicas, display_name};
use crate::service::{NewUser, Role, Service};
use crate::state::AppState;

/// Why the service could not start. Shown to the operator on the console (never to a
/// client), so it carries the underlying detail.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// What failed, in one line that names what to fix (see [`crate::db_url::explain`]).
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("applying migrations: {0}")]
    Migrate(sea_orm::DbErr),
    #[error(
        "the database is read-only (a replica?) and lacks what this version needs ({}): run `mj-tasks migrate` against the primary, or start with --no-migrate",
        .0.join(", ")
    )]
    ReadOnly(Vec<String>),
    #[error(
        "read replica {0}: a replica must be a PostgreSQL or MySQL/MariaDB database of the same kind as --database-url"
    )]
    Replica(String),
    #[error("trusted documents {path}: {reason}")]
    TrustedDocuments { path: String, reason: String },
    #[error("creating the first user: {0}")]
    FirstUser(Error),
    #[error(
        "migrations hold a session lock and build indexes outside transactions, which a transaction-pooling PgBouncer (pgbouncer=true) cannot carry: run `mj-tasks migrate` with a URL straight to PostgreSQL, then serve through PgBouncer with --no-migrate"
    )]
    MigrateThroughPooler,
    #[error(transparent)]
    Redis(#[from] crate::cluster::BadRedisUrl),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
}

/// The request id header, set on every request and response.
pub const REQUEST_ID: &str = "x-request-id";

/// A built application: a bound listener and its router, ready to run.
pub struct App {
    listener: TcpListener,
    router: Router,
    service: Service,
    live: Live,
    settings: ServerSettings,
    shutdown: Shutdown,
    cluster: Option<Cluster>,
}

fn live_config(args: &LiveArgs) -> LiveConfig {
    LiveConfig {
        interval: Duration::from_millis(args.live_poll_ms),
        max_per_user: usize::try_from(args.live_max_per_user).unwrap_or(usize::MAX),
        max_total: usize::try_from(args.live_max_subscriptions).unwrap_or(usize::MAX),
    }
}

impl App {
    /// Connects (lazily with `--no-migrate`, so a read-only or not-yet-reachable database
    /// does not stop the start), applies migrations, creates a first root user on an empty
    /// users table, binds the listen address and builds the router.
    pub async fn build(cfg: &ServeArgs) -> Result<App, StartError> {
        // The address first: a start that cannot listen changes nothing (no first user is
        // created whose token would be printed and lost).
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| StartError::Bind {
                addr: cfg.listen,
                reason: bind_reason(&e),
            })?;
        let pooled = |url: &str| crate::db_url::pgbouncer(url).0;
        if pooled(&cfg.db.database_url) && !cfg.no_migrate {
            return Err(StartError::MigrateThroughPooler);
        }
        let (db, trouble) = match db::connect_serving(&cfg.db, cfg.no_migrate).await {
            Ok(opened) => opened,
            Err(e) => return Err(connect_error(&cfg.db.database_url, &e).await),
        };
        if !cfg.no_migrate {
            migrate(&cfg.db, &db).await?;
        }
        let mut service = Service::new(db, cfg.image_forward_base.clone())
            .with_trouble(trouble)
            .with_caches(
                Duration::from_millis(cfg.auth_cache_ms),
                Duration::from_millis(cfg.count_freshness_ms),
            );
        // Reads are pinned when any of the databases they may go to is behind PgBouncer.
        if pooled(&cfg.db.database_url) || cfg.replicas.read_database_urls.iter().any(|u| pooled(u))
        {
            service = service.behind_pooler(cfg.db.db_statement_timeout_ms);
        }
        let exports = &cfg.exports;
        if exports.export_link_secret.is_empty() {
            tracing::info!(
                "export links are signed with a random key: they open only on this instance until it restarts (set --export-link-secret, the same on every instance, to share them)"
            );
        }
        service = service.with_exports(
            ExportLimits::new(
                exports.export_max_per_user as usize,
                exports.export_max_running as usize,
                exports.export_max_rows,
            ),
            LinkKey::new(&exports.export_link_secret),
            exports.export_link_ttl_secs,
        );
        // SQLite's statement timeout bounds a connection from the moment it is handed out,
        // and an export holds one for as long as it streams: exports get a pool of their own
        // without it (each of their statements is one short keyset batch).
        if cfg.db.database_url.starts_with("sqlite:") && !db::sqlite_in_memory(&cfg.db.database_url)
        {
            let export_cfg = crate::config::DbConfig {
                db_max_connections: exports.export_max_running.min(64) as u32,
                ..cfg.db.clone()
            };
            match db::connect(&export_cfg, true).await {
                Ok(export_db) => service = service.with_export_pool(export_db),
                Err(e) => return Err(connect_error(&cfg.db.database_url, &e).await),
            }
        }
        if !cfg.replicas.read_database_urls.is_empty() {
            service = service.with_replicas(replicas(cfg).await?);
            if let Some(r) = service.replicas() {
                r.check(0).await;
            }
            service.watch_replicas();
        }
        if !cfg.no_migrate {
            first_root_user(&service)
                .await
                .map_err(StartError::FirstUser)?;
        }
        let persisted = match &cfg.trusted_documents {
            None => Persisted::default(),
            Some(path) => {
                let failed = |reason: String| StartError::TrustedDocuments {
                    path: path.display().to_string(),
                    reason,
                };
                let json = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
                Persisted::trusted(&json).map_err(failed)?
            }
        };
        let shutdown = Shutdown::default();
        let cluster = match &cfg.server.redis_url {
            None => None,
            Some(url) => Some(Cluster::new(
                url,
                &cfg.server.redis_prefix,
                Duration::from_millis(cfg.server.redis_timeout_ms),
            )?),
        };
        let live = Live::in_deployment(service.clone(), live_config(&cfg.live), cluster.clone());
        if let Some(cluster) = &cluster
            && !cluster.probe().await
        {
            tracing::warn!(
                "redis does not answer: serving with this instance's own limits until it does"
            );
        }
        let limits = RateLimits::new(cfg.server.rate_limit_per_ip, cfg.server.rate_limit_per_user)
            .map(|l| Arc::new(l.shared(cluster.clone())));
        let request_timeout = Duration::from_millis(cfg.server.request_timeout_ms);
        let guard = Guard {
            shutdown: shutdown.clone(),
            request_timeout,
            limits: limits.clone(),
            doors: Arc::new([graphql::door(), rest::task_door(), rest::door()]),
        };
        let metrics = Arc::<Metrics>::default();
        let rules = GateRules::new(
            Arc::new(persisted),
            limits,
            request_timeout,
            !cfg.no_introspection,
            metrics.clone(),
        )
        .with_max_running_per_user(cfg.max_running_per_user as usize);
        let state = AppState {
            service: service.clone(),
            schema: graphql::build_schema(Arc::new(rules)),
            live: live.clone(),
            ws: WsSettings {
                init_timeout: Duration::from_millis(cfg.live.ws_init_timeout_ms),
                keepalive: Duration::from_millis(cfg.live.ws_keepalive_ms),
            },
            body_timeout: Duration::from_millis(cfg.server.body_timeout_ms),
            shutdown: shutdown.clone(),
            metrics,
            pool_max: cfg.db.db_max_connections,
            cluster: cluster.clone(),
        };
        let mut router = router(state, guard);
        if let Some(cors) = cors(&cfg.server.cors_origins) {
            router = router.layer(cors);
        }
        Ok(App {
            listener,
            router,
            service,
            live,
            settings: server_settings(&cfg.server),
            shutdown,
            cluster,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The service behind the routes.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// Live progress behind the subscriptions.
    pub fn live(&self) -> &Live {
        &self.live
    }

    /// Serves until SIGTERM or Ctrl-C, letting in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Where the instance is in its life.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// Serves until `stop` completes, then shuts down gracefully (see [`crate::server`]).
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let address = self.listener.local_addr()?;
        tracing::info!(%address, "listening");
        // Where a person goes next (an unspecified address is reached on loopback).
        let mut reachable = address;
        if reachable.ip().is_unspecified() {
            reachable.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        tracing::info!(
            "playground: http://{reachable}/graphql · REST: http://{reachable}/api/mj/self · health: http://{reachable}/healthz"
        );
        let live = self.live.clone();
        let closing = self.shutdown.clone();
        let stopping = live.clone();
        // Subscriptions complete and WebSockets close (1001) once the listener stops.
        tokio::spawn(async move {
            closing.reached(Phase::Closing).await;
            stopping.shutdown();
        });
        if let Some(cluster) = self.cluster.clone() {
            let closing = self.shutdown.clone();
            tokio::spawn(cluster.monitor(async move { closing.reached(Phase::Closing).await }));
        }
        let grace = self.settings.grace;
        let started = std::time::Instant::now();
        let served = server::serve(
            self.listener,
            self.router,
            self.settings,
            self.shutdown,
            stop,
        )
        .await;
        let left = grace
            .saturating_sub(started.elapsed())
            .min(Duration::from_secs(3));
        live.drained(left).await;
        tracing::info!("stopped");
        served
    }
}

/// Opens a lazy pool per read replica (a replica that is down at start joins the rotation
/// when it answers), with the primary's pool settings.
async fn replicas(cfg: &ServeArgs) -> Result<Replicas, StartError> {
    let scheme = |url: &str| url.split(':').next().unwrap_or("").to_owned();
    let mut pools = Vec::new();
    for url in &cfg.replicas.read_database_urls {
        if scheme(url) != scheme(&cfg.db.database_url) || url.starts_with("sqlite:") {
            return Err(StartError::Replica(display_name(url)));
        }
        let replica = DbConfig {
            database_url: url.clone(),
            ..cfg.db.clone()
        };
        let (pool, trouble) = match db::connect_serving(&replica, true).await {
            Ok(opened) => opened,
            Err(e) => return Err(connect_error(url, &e).await),
        };
        pools.push((url.clone(), pool, trouble));
    }
    Ok(Replicas::new(pools, cfg.replicas.replica_fallback))
}

/// Applies pending migrations and builds missing indexes (safe when several instances
/// start at once), on a session of its own with no statement timeout: its lock belongs to
/// the session, and an online index build on a large table takes minutes. `pool` is used
/// instead for an in-memory SQLite database, which exists only inside its one connection.
///
/// Nothing is written when nothing is missing, so a read-only replica of a migrated database
/// starts as it is; a read-only database that lacks something is refused with the fix.
pub async fn migrate(cfg: &DbConfig, pool: &DatabaseConnection) -> Result<(), StartError> {
    pending_then_apply(cfg, pool).await.map(drop)
}

/// [`migrate`], saying what was missing (and is now applied); empty when nothing was.
pub async fn pending_then_apply(
    cfg: &DbConfig,
    pool: &DatabaseConnection,
) -> Result<Vec<String>, StartError> {
    let todo = migration::missing(pool)
        .await
        .map_err(StartError::Migrate)?;
    if todo.is_empty() {
        return Ok(todo);
    }
    let read_only = cfg.database_url.starts_with("sqlite:") && cfg.database_url.contains("mode=ro");
    if read_only
        || migration::read_only(pool)
            .await
            .map_err(StartError::Migrate)?
    {
        return Err(StartError::ReadOnly(todo));
    }
    if db::sqlite_in_memory(&cfg.database_url) {
        migration::apply(pool).await.map_err(StartError::Migrate)?;
        return Ok(todo);
    }
    let sqlite = cfg.database_url.starts_with("sqlite:");
    let session = DbConfig {
        db_max_connections: 1,
        // SQLite's is its busy timeout, which the migration needs too.
        db_statement_timeout_ms: if sqlite {
            cfg.db_statement_timeout_ms
        } else {
            0
        },
        ..cfg.clone()
    };
    let db = match db::connect(&session, false).await {
        Ok(db) => db,
        Err(e) => return Err(connect_error(&cfg.database_url, &e).await),
    };
    let result = migration::apply(&db).await.map_err(StartError::Migrate);
    db.close().await.ok();
    result.map(|()| todo)
}

/// A failed connection, diagnosed in one line.
async fn connect_error(url: &str, err: &sea_orm::DbErr) -> StartError {
    tracing::debug!(error = %err, "connecting to the database");
    StartError::Connect(crate::db_url::explain(url, err).await)
}

/// Why an address cannot be listened on, with the usual fix.
fn bind_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "the port is taken by another program: stop it, or pass --listen with another port"
                .into()
        }
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need privileges): use a port above 1024".into()
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "this machine has no such address: use 127.0.0.1, 0.0.0.0 or one of its own".into()
        }
        _ => e.to_string(),
    }
}

/// Opens the database for `mj-tasks migrate`: what was missing and is now applied.
pub async fn migrate_only(cfg: &DbConfig) -> Result<Vec<String>, StartError> {
    if crate::db_url::pgbouncer(&cfg.database_url).0 {
        return Err(StartError::MigrateThroughPooler);
    }
    let db = match db::connect(cfg, false).await {
        Ok(db) => db,
        Err(e) => return Err(connect_error(&cfg.database_url, &e).await),
    };
    let applied = pending_then_apply(cfg, &db).await;
    db.close().await.ok();
    applied
}

/// Opens the database for a one-off command (migrations applied).
pub async fn open_service(cfg: &DbConfig) -> Result<Service, StartError> {
    let db = match db::connect(cfg, false).await {
        Ok(db) => db,
        Err(e) => return Err(connect_error(&cfg.database_url, &e).await),
    };
    migrate(cfg, &db).await?;
    Ok(Service::new(db, None))
}

/// On a fresh install (no users at all) creates `root` and prints its token once; on a
/// read-only database says where to create one instead.
async fn first_root_user(service: &Service) -> Result<(), Error> {
    if service.count_users().await? > 0 {
        return Ok(());
    }
    if migration::read_only(service.db()).await? {
        tracing::warn!(
            "no users yet and the database is read-only: create one on the primary (mj-tasks user create)"
        );
        return Ok(());
    }
    match service.create_user("root", Role::Root).await {
        Ok(user) => print_new_user("No users yet: created the first one.", &user),
        // Another instance starting at the same moment created it.
        Err(_) if service.count_users().await? > 0 => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Prints a new user's id and token (the only time the token is shown).
pub fn print_new_user(headline: &str, user: &NewUser) {
    println!("{headline}");
    println!("  username: {}", user.username);
    println!("  role:     {}", user.role.name());
    println!("  id:       {}", user.id);
    println!("  token:    {}", user.access_token);
}

/// The CORS policy for `origins` (none when empty): the two auth headers and
/// `Content-Type` allowed, the request id and `Retry-After` readable by the page.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                HeaderName::from_static("new-api-user"),
                header::CONTENT_TYPE,
                header::ACCEPT_LANGUAGE,
                HeaderName::from_static(REQUEST_ID),
            ])
            .expose_headers([
                HeaderName::from_static(REQUEST_ID),
                header::RETRY_AFTER,
                header::CONTENT_DISPOSITION,
                HeaderName::from_static("x-export-rows"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

fn server_settings(args: &ServerArgs) -> ServerSettings {
    ServerSettings {
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        header_timeout: Duration::from_millis(args.header_timeout_ms),
        drain: Duration::from_millis(args.shutdown_drain_ms),
        grace: Duration::from_millis(args.shutdown_grace_ms),
        over_cap_body: rest::over_cap_body,
        trusted_proxies: TrustedProxies::new(args.trusted_proxies.clone()),
    }
}

/// The whole HTTP surface, every request passing `guard`.
pub fn router(state: AppState, guard: Guard) -> Router {
    rest::router()
        .merge(graphql::router())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/", get(index))
        // Browsers ask for it on every page: nothing, rather than a 404 envelope.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(guard, server::guard))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            server::record,
        ))
        .layer(
            // One INFO line per request (method, path, request id, status, latency); headers
            // are not logged, so tokens never reach the log.
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(DefaultOnRequest::new().level(Level::DEBUG))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        // Every request has an id (the client's `x-request-id`, else a new UUID), logged and
        // returned in the response's `x-request-id`.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    // The route pattern, not the path (which may carry ids): traces group by it.
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", axum::extract::MatchedPath::as_str);
    let client = request
        .extensions()
        .get::<server::ClientAddr>()
        .map(|c| c.0);
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id,
        client.address = client.map(tracing::field::display),
        otel.name = %format_args!("{} {route}", request.method()),
        otel.kind = "server",
        http.route = route,
    );
    crate::telemetry::continue_trace(&span, request.headers());
    span
}

/// Liveness plus a database ping: 200 when reads can be served, 503 otherwise (and 503
/// `draining` from the shutdown signal on, so load balancers stop sending). With read
/// replicas, each one's state, reads and replay lag are listed; `status` is `ok` only when
/// every database answers.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if state.shutdown.phase() != Phase::Serving {
        let body = serde_json::json!({ "status": "draining" });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    let primary_up = state.service.primary_up().await;
    let mut body = serde_json::json!({
        "status": if primary_up { "ok" } else { "degraded" },
        "database": if primary_up { "ok" } else { "unavailable" },
        "pool": state.service.pool_status(),
    });
    // Redis down costs sharing, not service: degraded, still 200.
    if let Some(cluster) = &state.cluster {
        let up = cluster.up();
        body["redis"] = if up { "ok" } else { "unavailable" }.into();
        if !up {
            body["status"] = "degraded".into();
        }
    }
    let serving = match state.service.replicas() {
        None => primary_up,
        Some(replicas) => {
            let status = replicas.status();
            if status.iter().any(|r| !r.up) {
                body["status"] = "degraded".into();
            }
            body["replicas"] = serde_json::to_value(&status).unwrap_or_default();
            body["primary_reads"] = replicas.primary_reads().into();
            replicas.can_serve(primary_up)
        }
    };
    let code = if serving {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

/// Prometheus metrics (text format); see [`crate::metrics`].
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let pool = state.service.pool_status();
    let counts = state.service.query_counts();
    let exports = state.service.export_progress();
    let value = |name, help, kind, values| Sample::Value {
        name,
        help,
        kind,
        values,
    };
    let mut extra = vec![
        value(
            "mj_tasks_db_pool_connections",
            "Database connections of the primary's pool, by state (waiting: reads waiting for a connection).",
            "gauge",
            vec![
                ("state=\"open\"".into(), f64::from(pool.open)),
                ("state=\"in_use\"".into(), pool.in_use as f64),
                ("state=\"waiting\"".into(), pool.waiting as f64),
                ("state=\"max\"".into(), f64::from(state.pool_max)),
            ],
        ),
        value(
            "mj_tasks_db_queries_total",
            "Task queries run, by kind (rows: pages and lookups; aggregates: counts and stats; live: the subscriptions' poller; live_check: the subscribed users read again before changes are delivered).",
            "counter",
            vec![
                ("kind=\"rows\"".into(), counts.rows as f64),
                ("kind=\"aggregates\"".into(), counts.aggregates as f64),
                ("kind=\"live\"".into(), counts.live as f64),
                ("kind=\"live_check\"".into(), counts.live_checks as f64),
            ],
        ),
        Sample::Histogram {
            name: "mj_tasks_db_read_duration_seconds",
            help: "Time each database read took, waiting for a connection included.",
            histogram: state.service.read_durations(),
        },
        value(
            "mj_tasks_live_subscriptions",
            "Open GraphQL subscriptions on this instance.",
            "gauge",
            vec![(String::new(), state.live.subscriptions() as f64)],
        ),
        value(
            "mj_tasks_exports_running",
            "Exports streaming now on this instance.",
            "gauge",
            vec![(String::new(), exports.running as f64)],
        ),
        value(
            "mj_tasks_exports_total",
            "Exports started on this instance.",
            "counter",
            vec![(String::new(), exports.started as f64)],
        ),
        value(
            "mj_tasks_export_rows_total",
            "Rows written by exports so far (running ones included): a running export's progress.",
            "counter",
            vec![(String::new(), exports.rows as f64)],
        ),
        value(
            "mj_tasks_draining",
            "1 from the shutdown signal on.",
            "gauge",
            vec![(
                String::new(),
                f64::from(u8::from(state.shutdown.phase() != Phase::Serving)),
            )],
        ),
    ];
    if let Some(cluster) = &state.cluster {
        extra.push(value(
            "mj_tasks_redis_up",
            "1 while the deployment's Redis answers (rate limits shared), 0 while this instance limits on its own.",
            "gauge",
            vec![(String::new(), f64::from(u8::from(cluster.up())))],
        ));
        extra.push(value(
            "mj_tasks_redis_outages_total",
            "Times this instance lost Redis and fell back to its own limits.",
            "counter",
            vec![(String::new(), cluster.outages() as f64)],
        ));
        extra.push(value(
            "mj_tasks_live_leader",
            "1 while this instance polls the log for the whole deployment (it holds the lease in Redis).",
            "gauge",
            state
                .live
                .leading()
                .iter()
                .map(|(log, on)| (format!("log=\"{log}\""), f64::from(u8::from(*on))))
                .collect(),
        ));
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&extra),
    )
}

/// `GET /`: browsers go to the playground; anything else gets a map of the routes.
async fn index(headers: axum::http::HeaderMap) -> axum::response::Response {
    let html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if html {
        return axum::response::Redirect::temporary("/graphql").into_response();
    }
    Json(serde_json::json!({
        "service": "mj-tasks",
        "graphql": "/graphql",
        "playground": "/graphql (in a browser)",
        "rest": ["/api/mj/self", "/api/mj/"],
        "openapi": "/openapi.json",
        "health": "/healthz",
        "metrics": "/metrics",
    }))
    .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(Error::NotFound, Lang::En)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(Error::MethodNotAllowed, Lang::En)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
