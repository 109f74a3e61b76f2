//! Every runtime setting: clap flags, each also readable from an environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};

use crate::service::replicas::Fallback;

/// Midjourney task logs over the legacy new-api REST routes (and GraphQL), on SQLite,
/// PostgreSQL or MySQL/MariaDB, including a live new-api database.
#[derive(Debug, Parser)]
#[command(
    name = "mj-tasks",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Log lines as text, or as one JSON object per line for log shippers.
    #[arg(long, global = true, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Send traces over OTLP/HTTP to this collector, e.g. http://127.0.0.1:4318 (`/v1/traces`
    /// is added). Off when unset. The SDK's own OTEL_BSP_* variables tune its batching.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_parser = parse_endpoint)]
    pub otlp_endpoint: Option<String>,
    /// The OTLP wire format.
    #[arg(
        long,
        global = true,
        env = "OTEL_EXPORTER_OTLP_PROTOCOL",
        value_enum,
        default_value = "http/protobuf"
    )]
    pub otlp_protocol: crate::telemetry::OtlpProtocol,
    /// The `service.name` traces carry.
    #[arg(
        long,
        global = true,
        env = "OTEL_SERVICE_NAME",
        default_value = "mj-tasks"
    )]
    pub otel_service_name: String,
    /// Threads running the async work (requests, subscriptions, the client of `bench`).
    /// Unset: for `serve`, `demo` and the default command half the machine's cores (at least
    /// one), since the database usually runs beside the service and its CPU is the larger
    /// share (one thread measured a fifth less CPU per request on two cores: fewer
    /// cross-thread wake-ups); for the other commands every core.
    #[arg(long, global = true, env = "WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
    /// Settings for `serve`, the default command.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// How log lines are written (to standard error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default when no command is given).
    Serve(ServeArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Load tasks from JSON lines (the admin item shape of /api/mj/, or of /api/task/ with --log tasks); all or nothing.
    Import(ImportArgs),
    /// Serve a fresh temporary SQLite database seeded with realistic tasks.
    Demo(DemoArgs),
    /// Apply the migrations and exit.
    Migrate(DbOnlyArgs),
    /// Print the GraphQL schema (SDL), as committed in schema.graphql.
    Schema,
    /// Print the REST routes' OpenAPI 3.1 document, as committed in openapi.json.
    Openapi,
    /// Seed a database and time representative queries: through the service (median and p95), or over HTTP beside the database's own floor (--http, --export).
    Bench(BenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user and print its id and a new random 32-character access token.
    Create(UserCreateArgs),
    /// Give a user a new random access token and print it (the old one stops working).
    Token(UserTokenArgs),
}

/// Where the database is and how the pool behaves.
#[derive(Clone, Debug, Args)]
pub struct DbConfig {
    /// Database URL: sqlite://FILE?mode=rwc, postgres://USER@HOST/DB or mysql://USER@HOST/DB.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://mj-tasks.db?mode=rwc",
        value_parser = crate::db_url::parse
    )]
    pub database_url: String,
    /// Most pooled database connections.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub db_max_connections: u32,
    /// How long a request waits for a pooled connection (or a new one) before answering
    /// 503, in milliseconds.
    #[arg(long, env = "DB_ACQUIRE_TIMEOUT_MS", default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub db_acquire_timeout_ms: u64,
    /// Longest a single statement may run, in milliseconds (PostgreSQL statement_timeout,
    /// MySQL/MariaDB session limit, SQLite busy timeout); 0 disables it.
    #[arg(long, env = "DB_STATEMENT_TIMEOUT_MS", default_value_t = 10000)]
    pub db_statement_timeout_ms: u64,
    /// Log every SQL statement (target `sqlx::query`, shown at the default log level).
    #[arg(long, env = "DB_LOG_STATEMENTS", value_parser = BoolishValueParser::new())]
    pub db_log_statements: bool,
}

#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbConfig,
    /// Address to listen on: IP:PORT, localhost:PORT, :PORT (every interface) or PORT
    /// (127.0.0.1); port 0 picks a free port.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:3000", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Skip migrations entirely (read-only deployments, or a database managed elsewhere).
    #[arg(long, env = "NO_MIGRATE", value_parser = BoolishValueParser::new())]
    pub no_migrate: bool,
    /// Rewrite every non-empty image_url to <BASE>/mj/image/<mj_id>, as new-api's image
    /// forwarding does. Unset: stored URLs are returned.
    #[arg(long, env = "IMAGE_FORWARD_BASE")]
    pub image_forward_base: Option<String>,
    /// Run only the GraphQL documents in this JSON file (an object of SHA-256 hash →
    /// document), sent by hash or in full; anything else is refused before parsing.
    /// Unset: any document runs, and automatic persisted queries are on.
    #[arg(long, env = "TRUSTED_DOCUMENTS")]
    pub trusted_documents: Option<PathBuf>,
    /// Turn GraphQL introspection off (the playground then cannot show the schema).
    #[arg(long, env = "GRAPHQL_NO_INTROSPECTION", value_parser = BoolishValueParser::new())]
    pub no_introspection: bool,
    /// Most GraphQL operations of one user executing at once on this instance (whatever
    /// carries them); more wait their turn within --request-timeout-ms. 0: no limit.
    #[arg(long = "graphql-max-running-per-user", env = "GRAPHQL_MAX_RUNNING_PER_USER", default_value_t = 8, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub max_running_per_user: u32,
    #[command(flatten)]
    pub live: LiveArgs,
    #[command(flatten)]
    pub replicas: ReplicaArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub exports: ExportArgs,
    /// Milliseconds a token's user is remembered (a ban, deletion or new token takes effect
    /// within this); 0 looks the user up on every request.
    #[arg(long, env = "AUTH_CACHE_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub auth_cache_ms: u64,
    /// Milliseconds a finished count may be reused for the same question (a total is at most
    /// this old); 0 (the default) counts for every request, sharing only counts running at
    /// the same moment.
    #[arg(long, env = "COUNT_FRESHNESS_MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub count_freshness_ms: u64,
}

/// Connections, timeouts, shutdown and browsers.
#[derive(Clone, Debug, Args)]
pub struct ServerArgs {
    /// Origins whose browser pages may call the API (CORS): exact origins such as
    /// https://dash.example.com (repeat the flag, or separate with commas), or `*` for any
    /// origin (no cookies are involved: credentials travel in headers). Off when unset.
    #[arg(long = "cors-origins", env = "CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<String>,
    /// Most connections open at once (WebSockets count until upgraded); one more is answered
    /// 503 and closed.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Milliseconds a client has to send a request's headers; also how long an idle
    /// keep-alive connection stays open. 0 disables it.
    #[arg(long, env = "HEADER_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub header_timeout_ms: u64,
    /// Milliseconds a client has to send a request body (a GraphQL POST), answered 408 after.
    #[arg(long, env = "BODY_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub body_timeout_ms: u64,
    /// Longest a request may take, in milliseconds, answered 504 (`TIMEOUT`) after; 0 for no
    /// limit. Subscriptions are not requests in this sense.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 30_000, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub request_timeout_ms: u64,
    /// Requests a second one client IP may send (bursts of as many); 0 for no limit. Over it:
    /// 429 with Retry-After.
    #[arg(long, env = "RATE_LIMIT_PER_IP", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub rate_limit_per_ip: u32,
    /// Requests a second one user (one set of credentials) may send (bursts of as many); 0 for
    /// no limit.
    #[arg(long, env = "RATE_LIMIT_PER_USER", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub rate_limit_per_user: u32,
    /// Load balancers and proxies (addresses or networks, e.g. 10.0.0.0/8,127.0.0.1; repeat
    /// the flag or separate with commas) whose `Forwarded`/`X-Forwarded-For` headers name
    /// the client for the per-IP limit and the logs. Unset: the socket's address, always.
    #[arg(long = "trusted-proxies", env = "TRUSTED_PROXIES", value_delimiter = ',', value_parser = crate::server::parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Redis shared by the deployment's instances (redis://HOST:PORT[/DB], rediss:// for
    /// TLS): rate limits become one budget per user and per client address across all
    /// instances. Redis down: each instance limits on its own and /healthz says `degraded`,
    /// until it answers again. Unset: every instance on its own.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// What every Redis key of this deployment starts with (deployments may share a Redis).
    #[arg(long, env = "REDIS_PREFIX", default_value = "mj-tasks")]
    pub redis_prefix: String,
    /// Milliseconds a Redis call may take before the instance stops using Redis (it tries
    /// again every second).
    #[arg(long, env = "REDIS_TIMEOUT_MS", default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub redis_timeout_ms: u64,
    /// Milliseconds /healthz reports `draining` after SIGTERM while everything is still served
    /// (set it to the load balancer's health-check interval).
    #[arg(long, env = "SHUTDOWN_DRAIN_MS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub shutdown_drain_ms: u64,
    /// Milliseconds from SIGTERM to the exit: requests still running then are answered 503.
    #[arg(long, env = "SHUTDOWN_GRACE_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub shutdown_grace_ms: u64,
}

/// A collector's base URL: http:// or https://.
fn parse_endpoint(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(value.to_owned())
    } else {
        Err("a collector URL starts with http:// or https:// (e.g. http://127.0.0.1:4318)".into())
    }
}

/// A listen address as people write it: `127.0.0.1:3000`, `[::1]:3000`, `localhost:3000`,
/// `:3000` (every interface) or `3000` (loopback).
pub fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    let value = value.trim();
    let hint = "use IP:PORT, localhost:PORT, :PORT or PORT (e.g. 127.0.0.1:3000)";
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("{p:?} is not a port (0 to 65535): {hint}"))
    };
    if let Some(p) = value.strip_prefix(':') {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port(p)?)));
    }
    if value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port(value)?)));
    }
    if let Some(p) = value.strip_prefix("localhost:") {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port(p)?)));
    }
    Err(format!("{value:?} is not an address to listen on: {hint}"))
}

/// An origin as browsers send it (`scheme://host[:port]`, no path), or `*`.
fn parse_origin(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value == "*" {
        return Ok(value.to_owned());
    }
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
        .ok_or("an origin starts with http:// or https://")?;
    let valid = !rest.is_empty()
        && !rest.contains('/')
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if valid {
        Ok(value.to_owned())
    } else {
        Err(
            "an origin is scheme://host[:port], with no path (e.g. https://dash.example.com)"
                .into(),
        )
    }
}

impl Default for ServerArgs {
    fn default() -> Self {
        ServerArgs {
            cors_origins: Vec::new(),
            rate_limit_per_ip: 0,
            rate_limit_per_user: 0,
            trusted_proxies: Vec::new(),
            redis_url: None,
            redis_prefix: "mj-tasks".to_owned(),
            redis_timeout_ms: 250,
            max_connections: 10_000,
            header_timeout_ms: 30_000,
            body_timeout_ms: 30_000,
            request_timeout_ms: 30_000,
            shutdown_drain_ms: 0,
            shutdown_grace_ms: 10_000,
        }
    }
}

/// Read replicas.
#[derive(Clone, Debug, Default, Args)]
pub struct ReplicaArgs {
    /// A read replica of --database-url (repeat the flag, or separate URLs with commas in the
    /// variable): pages, counts, stats, lookups, the user check and the live poller read from
    /// the replicas in rotation; migrations and user creation write to --database-url.
    #[arg(
        long = "read-database-url",
        env = "READ_DATABASE_URLS",
        value_delimiter = ',',
        value_parser = crate::db_url::parse
    )]
    pub read_database_urls: Vec<String>,
    /// Where reads go when no replica answers: the primary, or nowhere (503).
    #[arg(long, env = "REPLICA_FALLBACK", value_enum, default_value_t = Fallback::Primary)]
    pub replica_fallback: Fallback,
}

impl Cli {
    /// Parses the command line like [`Parser::parse`], but a value refused because of an
    /// environment variable names that variable (clap names only the flag, which the user
    /// may never have typed).
    pub fn parse_naming_env() -> Cli {
        use clap::CommandFactory;
        use clap::error::{ContextKind, ContextValue};
        let err = match Cli::try_parse() {
            Ok(cli) => return cli,
            Err(err) => err,
        };
        let flag = match err.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(s)) => s.split_whitespace().next().map(str::to_owned),
            _ => None,
        };
        let typed: Vec<String> = std::env::args().collect();
        let from_env = flag.as_deref().and_then(|flag| {
            let long = flag.strip_prefix("--")?;
            if typed
                .iter()
                .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
            {
                return None;
            }
            let mut command = Cli::command();
            command.build();
            let mut commands = vec![&command];
            while let Some(c) = commands.pop() {
                for arg in c.get_arguments() {
                    if arg.get_long() == Some(long)
                        && let Some(env) = arg.get_env()
                        && std::env::var_os(env).is_some()
                    {
                        return Some(env.to_string_lossy().into_owned());
                    }
                }
                commands.extend(c.get_subcommands());
            }
            None
        });
        let _ = err.print();
        if let Some(env) = from_env {
            eprintln!("note: the value came from the environment variable {env}");
        }
        std::process::exit(err.exit_code());
    }
}

/// Exports (CSV, NDJSON) and their download links.
#[derive(Clone, Debug, Args)]
pub struct ExportArgs {
    /// Most rows one export may hold; a larger one is refused with EXPORT_TOO_LARGE before
    /// any row is sent.
    #[arg(long, env = "EXPORT_MAX_ROWS", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub export_max_rows: u64,
    /// Most exports of one user running at once (on this instance).
    #[arg(long, env = "EXPORT_MAX_PER_USER", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub export_max_per_user: u64,
    /// Most exports running at once on this instance (each holds one database connection).
    #[arg(long, env = "EXPORT_MAX_RUNNING", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub export_max_running: u64,
    /// The secret export links are signed with: give every instance of a deployment the
    /// same one. Unset: a random key, so links work only on the instance that issued them,
    /// until it restarts.
    #[arg(
        long,
        env = "EXPORT_LINK_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    pub export_link_secret: String,
    /// Seconds an export link stays valid.
    #[arg(long, env = "EXPORT_LINK_TTL_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(10..=86_400))]
    pub export_link_ttl_secs: u64,
}

impl Default for ExportArgs {
    fn default() -> Self {
        ExportArgs {
            export_max_rows: 1_000_000,
            export_max_per_user: 2,
            export_max_running: 8,
            export_link_secret: String::new(),
            export_link_ttl_secs: 300,
        }
    }
}

/// Live progress (GraphQL subscriptions).
#[derive(Clone, Debug, Args)]
pub struct LiveArgs {
    /// Milliseconds between two reads of what changed, while anyone is subscribed (one
    /// poller per instance, whatever the number of subscribers).
    #[arg(long, env = "LIVE_POLL_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(20..=60_000))]
    pub live_poll_ms: u64,
    /// Most open subscriptions per user.
    #[arg(long, env = "LIVE_MAX_PER_USER", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub live_max_per_user: u64,
    /// Most open subscriptions on this instance.
    #[arg(long, env = "LIVE_MAX_SUBSCRIPTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub live_max_subscriptions: u64,
    /// Milliseconds a WebSocket may take to send connection_init before it is closed (4408).
    #[arg(long, env = "WS_INIT_TIMEOUT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub ws_init_timeout_ms: u64,
    /// Milliseconds between WebSocket pings (a peer silent for two is dropped).
    #[arg(long, env = "WS_KEEPALIVE_MS", default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub ws_keepalive_ms: u64,
}

impl Default for LiveArgs {
    fn default() -> Self {
        LiveArgs {
            live_poll_ms: 1000,
            live_max_per_user: 20,
            live_max_subscriptions: 10_000,
            ws_init_timeout_ms: 5000,
            ws_keepalive_ms: 15_000,
        }
    }
}

#[derive(Debug, Args)]
pub struct UserTokenArgs {
    #[command(flatten)]
    pub db: DbConfig,
    /// The user's name.
    #[arg(long)]
    pub username: String,
}

#[derive(Clone, Debug, Args)]
pub struct UserCreateArgs {
    #[command(flatten)]
    pub db: DbConfig,
    /// The new user's name (1 to 64 characters, unique).
    #[arg(long)]
    pub username: String,
    /// The new user's role.
    #[arg(long, value_parser = ["user", "admin", "root"], default_value = "user")]
    pub role: String,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub db: DbConfig,
    /// A JSON-lines file, or - for standard input.
    pub file: PathBuf,
    /// The log to load into: `midjourney` (lines shaped like `/api/mj/` items) or `tasks`
    /// (new-api's generic log of Suno and video tasks, lines shaped like `/api/task/` items).
    #[arg(long, value_parser = ["midjourney", "tasks"], default_value = "midjourney")]
    pub log: String,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to listen on: IP:PORT, localhost:PORT, :PORT (every interface) or PORT
    /// (127.0.0.1).
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:3000", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// How many tasks to seed.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub tasks: u32,
    #[command(flatten)]
    pub live: LiveArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The database to seed: it must hold no users yet. Default: a fresh temporary SQLite
    /// file. (Its own variable, not DATABASE_URL, so a benchmark never seeds the service's
    /// database by accident.)
    #[arg(long, env = "BENCH_DATABASE_URL", value_parser = crate::db_url::parse)]
    pub database_url: Option<String>,
    /// How many tasks to seed.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1000..=20_000_000))]
    pub tasks: u32,
    /// How many times each case runs (service-layer benchmark).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub runs: u32,
    /// Benchmark over HTTP instead: the release server started as its own process, driven at
    /// each concurrency, against the floor (the same SQL sent straight to the database).
    #[arg(long)]
    pub http: bool,
    /// Benchmark a whole export (CSV, every row) and grouped statistics over HTTP instead,
    /// each beside the database doing the same work by itself (PostgreSQL: COPY … TO
    /// STDOUT), with the server's memory during the export.
    #[arg(long, conflicts_with = "http")]
    pub export: bool,
    /// HTTP: reuse the database when an earlier run seeded it (its bench-* users are there).
    #[arg(long)]
    pub reuse: bool,
    /// HTTP: how many light users share 90 % of the tasks (a heavy one owns the other 10 %).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub users: u32,
    /// HTTP: requests per case and concurrency (fewer when --max-seconds is reached first).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub requests: u32,
    /// HTTP: the concurrency levels, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub concurrency: Vec<u32>,
    /// HTTP: longest time one case runs at one concurrency, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub max_seconds: u64,
    /// HTTP: how many rounds each case runs at each concurrency, the service and its pgbench
    /// floors back to back in each; the table shows medians (a ratio: its median over the
    /// rounds, each taken within one).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub rounds: u32,
    /// HTTP: only the cases whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
}

#[derive(Debug, Args)]
pub struct DbOnlyArgs {
    #[command(flatten)]
    pub db: DbConfig,
}

impl DbConfig {
    /// Settings for `url` with every other knob at its default.
    pub fn for_url(url: impl Into<String>) -> DbConfig {
        DbConfig {
            database_url: url.into(),
            db_max_connections: 10,
            db_acquire_timeout_ms: 3000,
            db_statement_timeout_ms: 10000,
            db_log_statements: false,
        }
    }
}

impl ServeArgs {
    /// Serve settings for `db` on `listen` with every other knob at its default.
    pub fn new(db: DbConfig, listen: SocketAddr) -> ServeArgs {
        ServeArgs {
            db,
            listen,
            no_migrate: false,
            image_forward_base: None,
            no_introspection: false,
            max_running_per_user: 8,
            trusted_documents: None,
            live: LiveArgs::default(),
            replicas: ReplicaArgs::default(),
            server: ServerArgs::default(),
            exports: ExportArgs::default(),
            auth_cache_ms: 1000,
            count_freshness_ms: 0,
        }
    }
}
