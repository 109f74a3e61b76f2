//! The floor as PostgreSQL's own client measures it: `pgbench` running a case's statements
//! (the page, and its count when the answer has a total; or the one statement the service
//! sends for both; one script per prepared request, their values written in), prepared, at
//! the same concurrency. Its backends' CPU per transaction is read from `/proc` while it runs.
//! MySQL/MariaDB and SQLite have no such tool in this run: their floor is the in-process
//! one (the same statements through the same driver).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sea_orm::{DatabaseConnection, DbBackend, Statement};

use super::cpu::DbCpu;

/// Scripts per case (prepared requests, users drawn at random among them).
const SCRIPTS: usize = 32;

/// What pgbench measured.
pub struct PgbenchFloor {
    pub tps: f64,
    /// Its backends' CPU per transaction.
    pub db_cpu: Option<Duration>,
}

/// Runs pgbench for `seconds` at `concurrency` over `requests` (each the statements of one
/// answer) against `url`; `None` when the database is not PostgreSQL or pgbench is missing.
pub async fn floor(
    url: &str,
    db: &DatabaseConnection,
    requests: &[Vec<Statement>],
    concurrency: u32,
    seconds: u64,
) -> anyhow::Result<Option<PgbenchFloor>> {
    if db.get_database_backend() != DbBackend::Postgres
        || Command::new("pgbench").arg("--version").output().is_err()
    {
        return Ok(None);
    }
    let dir = tempfile::tempdir()?;
    let mut command = Command::new("pgbench");
    command
        .args(["-n", "-M", "prepared", "-T"])
        .arg(seconds.max(2).to_string());
    command
        .arg("-c")
        .arg(concurrency.to_string())
        .arg("-j")
        .arg(concurrency.clamp(1, 4).to_string());
    for (i, statements) in requests.iter().take(SCRIPTS).enumerate() {
        let path = dir.path().join(format!("r{i}.sql"));
        let script: String = statements
            .iter()
            .map(|s| format!("{};\n", s.to_string().replace('\n', " ")))
            .collect();
        std::fs::write(&path, script)?;
        command.arg("-f").arg(format!("{}@1", path.display()));
    }
    let child = command
        .arg(url)
        .env("PGAPPNAME", "pgbench")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let started = Instant::now();
    // Its backends' CPU from shortly after they connected to shortly before they end.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = DbCpu::read(db, Some("pgbench")).await;
    let window_end = Duration::from_secs(seconds.max(2)).saturating_sub(Duration::from_millis(300));
    tokio::time::sleep(window_end.saturating_sub(started.elapsed())).await;
    let after = DbCpu::read(db, Some("pgbench")).await;
    let window = started.elapsed().saturating_sub(Duration::from_millis(500));
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
    let text = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {}{}",
        text,
        String::from_utf8_lossy(&output.stderr)
    );
    let tps = text
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no tps in pgbench's output: {text}"))?;
    let transactions = tps * window.as_secs_f64();
    let db_cpu = (after.measured() && transactions >= 1.0)
        .then(|| after.since(&before).div_f64(transactions));
    Ok(Some(PgbenchFloor { tps, db_cpu }))
}
