//! The floor as PostgreSQL's own client measures it: `pgbench` running a case's statements
//! (the page, and its count when the answer has a total: one script per prepared request,
//! their values written in; or the one statement the service sends for both, its integer
//! values bound as parameters as the service binds them), prepared, at the same
//! concurrency. Its backends' CPU per transaction, and its own, are read from `/proc`
//! while it runs.
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
    /// pgbench's own CPU per transaction (the load generator's share of the machine).
    pub client_cpu: Option<Duration>,
}

/// How a script carries a statement's values.
#[derive(Clone, Copy, PartialEq)]
pub enum Values {
    /// Written into the statement's text: one plan, made once per connection.
    Written,
    /// Bound as parameters (`\set` variables) where every value is an integer, as the
    /// service binds them: PostgreSQL then plans each execution for its values (a custom
    /// plan), as it does the service's.
    Bound,
}

/// `statement` as a line of a pgbench script (with `\set` lines before it when its values
/// are bound).
fn script_line(statement: &Statement, values: Values) -> String {
    let written = || format!("{};\n", statement.to_string().replace('\n', " "));
    let Some(bound) = statement
        .values
        .as_ref()
        .filter(|_| values == Values::Bound)
    else {
        return written();
    };
    let integers: Option<Vec<i64>> = bound
        .0
        .iter()
        .map(|v| match v {
            sea_orm::Value::Int(Some(i)) => Some(i64::from(*i)),
            sea_orm::Value::BigInt(Some(i)) => Some(*i),
            sea_orm::Value::Unsigned(Some(i)) => Some(i64::from(*i)),
            sea_orm::Value::BigUnsigned(Some(i)) => i64::try_from(*i).ok(),
            _ => None,
        })
        .collect();
    let Some(integers) = integers else {
        return written();
    };
    let mut sql = statement.sql.replace('\n', " ");
    let mut sets = String::new();
    // From the highest placeholder down, so `$1` never matches the start of `$10`.
    for (i, v) in integers.iter().enumerate().rev() {
        sql = sql.replace(&format!("${}", i + 1), &format!(":p{}", i + 1));
        sets = format!("\\set p{} {v}\n{sets}", i + 1);
    }
    format!("{sets}{sql};\n")
}

/// Runs pgbench for `seconds` at `concurrency` over `requests` (each the statements of one
/// answer, their values as `values` says) against `url`; `None` when the database is not
/// PostgreSQL or pgbench is missing.
pub async fn floor(
    url: &str,
    db: &DatabaseConnection,
    requests: &[Vec<Statement>],
    values: Values,
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
        let script: String = statements.iter().map(|s| script_line(s, values)).collect();
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
    let client_before = super::cpu::process(child.id());
    let window_end = Duration::from_secs(seconds.max(2)).saturating_sub(Duration::from_millis(300));
    tokio::time::sleep(window_end.saturating_sub(started.elapsed())).await;
    let after = DbCpu::read(db, Some("pgbench")).await;
    let client_cpu = super::cpu::since(child.id(), client_before);
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
    let per_transaction = |cpu: Duration| cpu.div_f64(transactions.max(1.0));
    let db_cpu =
        (after.measured() && transactions >= 1.0).then(|| per_transaction(after.since(&before)));
    let client_cpu = client_cpu
        .filter(|_| transactions >= 1.0)
        .map(per_transaction);
    Ok(Some(PgbenchFloor {
        tps,
        db_cpu,
        client_cpu,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(sql: &str, values: Vec<sea_orm::Value>) -> Statement {
        Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
    }

    #[test]
    fn integer_values_are_bound_as_variables_and_others_written_in() {
        let values: Vec<sea_orm::Value> = (1..=10).map(|i: i64| i.into()).collect();
        let sql = "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10";
        let bound = script_line(&statement(sql, values.clone()), Values::Bound);
        assert!(bound.starts_with("\\set p1 1\n\\set p2 2\n"), "{bound}");
        assert!(
            bound.ends_with("SELECT :p1, :p2, :p3, :p4, :p5, :p6, :p7, :p8, :p9, :p10;\n"),
            "{bound}"
        );
        let written = script_line(&statement(sql, values), Values::Written);
        assert_eq!(written, "SELECT 1, 2, 3, 4, 5, 6, 7, 8, 9, 10;\n");
        let text = script_line(
            &statement("SELECT $1 WHERE x = $2", vec![1i64.into(), "a".into()]),
            Values::Bound,
        );
        assert_eq!(text, "SELECT 1 WHERE x = 'a';\n");
    }
}
