//! The `mj-tasks` binary: parse the command line, start tracing, run the command. A failure
//! is one line on standard error (`error: …`, naming what to fix) and exit status 1.

use std::io::IsTerminal;
use std::process::ExitCode;

use mj_tasks::app::App;
use mj_tasks::commands;
use mj_tasks::config::{Cli, Command, LogFormat, UserCommand};
use mj_tasks::telemetry::{self, Telemetry, TraceSettings};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// mimalloc rather than glibc's malloc: measured by `bench --http` (see the README's
/// Performance section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What is logged when `RUST_LOG` says nothing else: the service at INFO, the drivers only
/// when something is wrong.
const DEFAULT_LOGS: &str = "sqlx=warn,sea_orm_migration=warn";

fn main() -> ExitCode {
    let cli = Cli::parse_naming_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads(&cli))
        .enable_all()
        .build();
    match runtime {
        Ok(rt) => rt.block_on(main_async(cli)),
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--worker-threads`, or its default (see its help).
fn worker_threads(cli: &Cli) -> usize {
    if let Some(n) = cli.worker_threads {
        return usize::from(n);
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    match &cli.command {
        None | Some(Command::Serve(_) | Command::Demo(_)) => (cores / 2).max(1),
        Some(_) => cores,
    }
}

async fn main_async(cli: Cli) -> ExitCode {
    let telemetry = match init_logs(&cli) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = run(cli).await;
    if let Some(t) = telemetry {
        // Sends the spans still buffered (a blocking flush, off the async workers).
        let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each said once (a message that already carries its
/// cause is not followed by it again).
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let text = text.lines().next().unwrap_or_default().trim();
        if text.is_empty() || out.contains(text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(text);
    }
    out
}

/// Logs: INFO for the service, WARN for the drivers, then `RUST_LOG` on top (so
/// `RUST_LOG=sqlx=debug` adds the driver's lines without hiding the service's); a `RUST_LOG`
/// that does not parse is reported and ignored. `--db-log-statements` shows every statement.
/// With `--otlp-endpoint`, spans also go to the collector (see [`mj_tasks::telemetry`]).
fn init_logs(cli: &Cli) -> Result<Option<Telemetry>, String> {
    let user = std::env::var("RUST_LOG").unwrap_or_default();
    let mut rejected = None;
    let user = if user.trim().is_empty() {
        String::new()
    } else if let Err(e) = EnvFilter::try_new(&user) {
        rejected = Some(format!("RUST_LOG={user:?} ignored: {e}"));
        String::new()
    } else {
        user
    };
    // A bare level in RUST_LOG (`warn`, `debug`) sets the base level; otherwise INFO for the
    // server, WARN for one-off commands (which print their own summary).
    let bare = user
        .split(',')
        .map(str::trim)
        .rfind(|d| !d.is_empty() && !d.contains('='))
        .filter(|d| d.parse::<tracing::Level>().is_ok() || d.eq_ignore_ascii_case("off"));
    let serving = matches!(
        cli.command,
        None | Some(Command::Serve(_)) | Some(Command::Demo(_))
    );
    let base = bare.unwrap_or(if serving { "info" } else { "warn" });
    let mut directives = vec![base.to_owned(), DEFAULT_LOGS.to_owned()];
    if logs_statements(cli) {
        directives.push("sqlx::query=info".to_owned());
    }
    if !user.is_empty() {
        directives.push(user.clone());
    }
    let filter = EnvFilter::new(directives.join(","));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match cli.log_format {
        // One JSON object per line, the request's span (method, path, request id) included.
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => fmt
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed(),
    };
    let (traces, telemetry) = match &cli.otlp_endpoint {
        Some(endpoint) => {
            let settings = TraceSettings {
                endpoint: endpoint.clone(),
                protocol: cli.otlp_protocol,
                service_name: cli.otel_service_name.clone(),
            };
            let (layer, telemetry) = telemetry::layer(&settings)?;
            (Some(layer), Some(telemetry))
        }
        None => (None, None),
    };
    tracing_subscriber::registry().with(fmt).with(traces).init();
    if let Some(warning) = rejected {
        tracing::warn!("{warning}");
    }
    if let Some(endpoint) = &cli.otlp_endpoint {
        tracing::info!(%endpoint, "sending traces over OTLP");
    }
    Ok(telemetry)
}

/// Whether the command was asked to log its SQL statements.
fn logs_statements(cli: &Cli) -> bool {
    match &cli.command {
        None => cli.serve.db.db_log_statements,
        Some(Command::Serve(a)) => a.db.db_log_statements,
        Some(Command::User(UserCommand::Create(a))) => a.db.db_log_statements,
        Some(Command::User(UserCommand::Token(a))) => a.db.db_log_statements,
        Some(Command::Import(a)) => a.db.db_log_statements,
        Some(Command::Migrate(a)) => a.db.db_log_statements,
        _ => false,
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => serve(&cli.serve).await,
        Some(Command::Serve(args)) => serve(&args).await,
        Some(Command::User(UserCommand::Create(args))) => commands::user_create(&args).await,
        Some(Command::User(UserCommand::Token(args))) => commands::user_token(&args).await,
        Some(Command::Import(args)) => commands::import(&args).await,
        Some(Command::Demo(args)) => commands::demo(&args).await,
        Some(Command::Migrate(args)) => commands::migrate(&args.db).await,
        Some(Command::Bench(args)) => commands::bench(&args).await,
        Some(Command::Openapi) => {
            print!("{}", mj_tasks::rest::openapi::pretty());
            Ok(())
        }
        Some(Command::Schema) => {
            print!("{}", mj_tasks::graphql::sdl());
            Ok(())
        }
    }
}

async fn serve(args: &mj_tasks::config::ServeArgs) -> anyhow::Result<()> {
    let app = App::build(args).await?;
    app.run_until_stopped().await?;
    Ok(())
}
