//! CPU time as `/proc` counts it (user + system): the server process's, and the database
//! server's side of the work (PostgreSQL: the backends serving the benchmark's database;
//! MySQL/MariaDB: the whole `mariadbd`/`mysqld` process; SQLite runs inside the server, so
//! its work is in the server's figure).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

/// Clock ticks a second (`getconf CLK_TCK`; 100 where it cannot be asked).
fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// User + system CPU of process `pid` so far (`None` when it is gone).
pub fn process(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis,
    // from the third (`state`); utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_secs_f64(ticks as f64 / ticks_per_second()))
}

/// Busy CPU of the whole machine so far, summed over its cores (`/proc/stat`: every state
/// but idle and iowait), to check the parts against.
pub fn machine() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = cpu
        .split_whitespace()
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is
    // already in user.
    let busy: u64 = ticks.iter().take(8).sum::<u64>() - ticks.get(3)? - ticks.get(4)?;
    Some(Duration::from_secs_f64(busy as f64 / ticks_per_second()))
}

/// CPU process `pid` spent since it had spent `before` (`None` when either is unknown).
pub fn since(pid: u32, before: Option<Duration>) -> Option<Duration> {
    process(pid)
        .zip(before)
        .map(|(after, before)| after.saturating_sub(before))
}

/// The database server's processes whose CPU counts, by pid, with their CPU now.
#[derive(Debug, Default)]
pub struct DbCpu(HashMap<u32, Duration>);

impl DbCpu {
    /// Reads them now through `db` (PostgreSQL: the client backends connected to this
    /// database — not autovacuum, which a fresh seed sets off —, `application_name` matching
    /// `app` when given; MySQL: the server process). Empty on SQLite, or when the server is
    /// on another machine.
    pub async fn read(db: &DatabaseConnection, app: Option<&str>) -> DbCpu {
        let pids: Vec<u32> = match db.get_database_backend() {
            DbBackend::Postgres => {
                let mut sql = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()".to_owned();
                if let Some(app) = app {
                    sql.push_str(&format!(" AND application_name = '{app}'"));
                }
                db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
                    .await
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|r| r.try_get_by_index::<i32>(0).ok())
                    .filter_map(|p| u32::try_from(p).ok())
                    .collect()
            }
            DbBackend::MySql => ["mariadbd", "mysqld"]
                .iter()
                .filter_map(|name| {
                    std::process::Command::new("pidof")
                        .arg(name)
                        .output()
                        .ok()
                        .and_then(|o| String::from_utf8(o.stdout).ok())
                })
                .flat_map(|s| {
                    s.split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .collect::<Vec<u32>>()
                })
                .collect(),
            _ => Vec::new(),
        };
        DbCpu(
            pids.into_iter()
                .filter_map(|pid| process(pid).map(|cpu| (pid, cpu)))
                .collect(),
        )
    }

    /// Whether anything was found to measure.
    pub fn measured(&self) -> bool {
        !self.0.is_empty()
    }

    /// CPU spent since `before` by the processes read now (a process new since then counts
    /// from zero).
    pub fn since(&self, before: &DbCpu) -> Duration {
        self.0
            .iter()
            .map(|(pid, now)| now.saturating_sub(before.0.get(pid).copied().unwrap_or_default()))
            .sum()
    }
}
