//! The `mj-tasks` binary: parse the command line, start tracing, run the command.

use std::io::IsTerminal;

use clap::Parser;
use mj_tasks::app::App;
use mj_tasks::commands;
use mj_tasks::config::{Cli, Command, LogFormat, UserCommand};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm_migration=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        // One JSON object per line, the request's span (method, path, request id) included.
        LogFormat::Json => logs.json().with_current_span(true).init(),
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }

    match cli.command {
        None => serve(&cli.serve).await,
        Some(Command::Serve(args)) => serve(&args).await,
        Some(Command::User(UserCommand::Create(args))) => commands::user_create(&args).await,
        Some(Command::Import(args)) => commands::import(&args).await,
        Some(Command::Demo(args)) => commands::demo(args.listen, args.tasks).await,
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
