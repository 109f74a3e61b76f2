//! `mj-tasks bench --http`: the service as its clients see it, against the database's own
//! floor.
//!
//! Seeds (or reuses) a database with many users, starts this binary's `serve` as its own
//! process, and drives it over HTTP at each concurrency from this process, checking every
//! body (a 200 with `success:false` or GraphQL `errors` counts as an error). In the same run
//! it measures the **floor**: the SQL statements of the same request (the page, and its
//! count when the answer has a total the service counts; a lookup's page is its own total)
//! sent straight to the database through the same driver, prepared, at the same
//! concurrency, rows serialised to the same JSON. On PostgreSQL, pgbench runs those
//! statements too, and, where the service sends page and count as one statement, that one
//! statement as well, its integer values bound as parameters as the service binds them (the
//! columns `1-stmt`). Each row gives the CPU per request of the server, the database, this
//! process (the load generator) and the whole machine (`/proc/stat`, the check on the
//! parts). With `--rounds N` the service and its pgbench floors run back to back N times and
//! the row shows medians, each ratio taken within one round (see [`rounds`]).
//! Requests are drawn from 512 prepared ones per case (users picked at random), so no cache
//! of identical requests flatters a case that is meant to spread over many users.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use entity::{midjourney, task};
use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult, Statement};

use self::rounds::Round;
use crate::app;
use crate::config::{BenchArgs, DbConfig};
use crate::rest::SelfItem;
use crate::rest::task_items::TaskItem;
use crate::service::demo::BenchUsers;
use crate::service::{Log, OffsetPage, PageRequest, PlatformTaskRecord, TaskRecord, Tasks, Viewer};

mod cases;
mod cpu;
pub mod export;
mod pgbench;
mod rounds;

/// Prepared requests per case.
const PREPARED: usize = 512;

/// What one request asks: over HTTP, and the statements of its floor.
#[derive(Clone)]
struct Prepared {
    /// `Authorization` and `New-Api-User`.
    auth: (String, String),
    /// A REST path with its query, or a GraphQL body.
    http: Http,
    /// What the database must do for it.
    floor: Floor,
}

/// The statements behind one answer.
#[derive(Clone)]
enum Floor {
    /// The page of the log named (its table), its count when the service counts for the
    /// answer's total, and then also the one statement the service sends for both.
    Page(
        &'static str,
        Statement,
        Option<Statement>,
        Option<Statement>,
    ),
    /// One aggregate row (statistics).
    Aggregate(Statement),
}

#[derive(Clone)]
enum Http {
    Get(String),
    Graphql(String),
}

struct Case {
    name: String,
    requests: Vec<Prepared>,
}

/// One measurement.
struct Measured {
    done: usize,
    errors: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    fn pct(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[i].as_secs_f64() * 1000.0
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn viewer(u: &crate::service::NewUser) -> Viewer {
    Viewer {
        id: u.id,
        username: u.username.clone(),
        role: u.role,
    }
}

fn auth(u: &crate::service::NewUser) -> (String, String) {
    (format!("Bearer {}", u.access_token), u.id.to_string())
}

fn offset(page: u64, page_size: u64) -> PageRequest {
    PageRequest::Offset(OffsetPage { page, page_size })
}

fn gql(query: &str) -> String {
    serde_json::json!({ "query": query }).to_string()
}

/// The benchmark database at `url`: seeded now, or reused with `--reuse`.
async fn seeded(
    args: &BenchArgs,
    url: &str,
) -> anyhow::Result<(crate::service::Service, BenchUsers)> {
    // The floor's pool is the server's size, but waits as long as it takes: a floor request
    // never fails for want of a connection.
    // No statement timeout either: a floor (a whole-table COPY) may take longer than a
    // request is allowed to.
    let db = DbConfig {
        db_acquire_timeout_ms: 600_000,
        db_statement_timeout_ms: 0,
        ..DbConfig::for_url(url)
    };
    let service = app::open_service(&db).await?;
    let users = match service.bench_users().await? {
        Some(users) if args.reuse => {
            println!(
                "reusing the seeded database ({} light users)",
                users.light.len()
            );
            users
        }
        Some(_) => anyhow::bail!("this database was seeded by an earlier run: pass --reuse"),
        None => {
            let started = Instant::now();
            let users = service
                .seed_bench(args.tasks as usize, args.users as usize)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("seeding (the database must hold no users yet): {e}")
                })?;
            service.refresh_statistics().await?;
            println!(
                "seeded {} tasks for {} users in {:.1} s",
                args.tasks,
                args.users + 1,
                started.elapsed().as_secs_f64()
            );
            users
        }
    };
    Ok((service, users))
}

/// This binary's `serve` on `url` as its own process (with `extra` arguments), once its
/// `/healthz` answers: the process and its base URL.
async fn start_server(
    url: &str,
    extra: &[&str],
    client: &reqwest::Client,
) -> anyhow::Result<(Server, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let exe = std::env::current_exe().context("locating this binary")?;
    let listen = format!("127.0.0.1:{port}");
    let server = Server(
        Command::new(exe)
            .args(["serve", "--no-migrate", "--listen", &listen])
            .args(extra)
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("starting the server")?,
    );
    let base = format!("http://{listen}");
    let started = Instant::now();
    while client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .ok()
        != Some(200)
    {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((server, base))
}

/// Runs the HTTP benchmark on the database at `url`.
pub async fn run(args: &BenchArgs, url: &str) -> anyhow::Result<()> {
    let (service, users) = seeded(args, url).await?;
    let cases = cases::cases(&service, &users, args).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let (server, base) = start_server(url, &[], &client).await?;
    let bench = Bench {
        args,
        url,
        client,
        base,
        server_pid: server.0.id(),
        db: service.db().clone(),
    };
    println!();
    println!(
        "| case | conc. | req/s | p50 ms | p99 ms | server CPU µs/req | DB CPU µs/req | client CPU µs/req | machine CPU µs/req | errors (floor) | floor req/s | floor p99 ms | ÷ floor | pgbench tps | ÷ pgbench | pgbench DB CPU µs/tx | pgbench client CPU µs/tx | pgbench 1-stmt bound tps | ÷ 1-stmt | 1-stmt DB CPU µs/tx | 1-stmt client CPU µs/tx |"
    );
    println!("| --- |{}", " ---: |".repeat(20));
    let mut total_errors = 0;
    for case in &cases {
        for &c in &args.concurrency {
            total_errors += bench.case_row(case, c).await?;
        }
    }
    let (rss, peak) = memory(server.0.id());
    println!();
    println!("server RSS at the end {rss:.1} MiB, peak {peak:.1} MiB; errors {total_errors}");
    drop(server);
    anyhow::ensure!(total_errors == 0, "{total_errors} requests failed");
    Ok(())
}

/// What every measurement of a run shares: the server under test and the database.
struct Bench<'a> {
    args: &'a BenchArgs,
    url: &'a str,
    client: reqwest::Client,
    base: String,
    server_pid: u32,
    /// The floors' connection (the same driver as the server's).
    db: DatabaseConnection,
}

/// The statements pgbench sends for a case's requests.
struct Floors {
    /// Each request's statements as the floor defines them (page, then count).
    statements: Vec<Vec<Statement>>,
    /// The one statement the service sends for page and total, where it does.
    ones: Vec<Vec<Statement>>,
}

impl Floors {
    fn of(requests: &[Prepared]) -> Floors {
        let statements = requests
            .iter()
            .map(|r| match &r.floor {
                Floor::Page(_, page, count, _) => {
                    std::iter::once(page.clone()).chain(count.clone()).collect()
                }
                Floor::Aggregate(stmt) => vec![stmt.clone()],
            })
            .collect();
        let ones = requests
            .iter()
            .filter_map(|r| match &r.floor {
                Floor::Page(_, _, _, Some(one)) => Some(vec![one.clone()]),
                _ => None,
            })
            .collect();
        Floors { statements, ones }
    }
}

impl Bench<'_> {
    /// Measures `case` at concurrency `c` (`--rounds` rounds, then the in-process floor)
    /// and prints its row; the requests that failed.
    async fn case_row(&self, case: &Case, c: u32) -> anyhow::Result<usize> {
        let requests = Arc::new(case.requests.clone());
        let floors = Floors::of(&requests);
        let (mut rounds, mut errors) = (Vec::new(), 0);
        for _ in 0..self.args.rounds {
            let (round, failed) = self.round(&requests, &floors, c).await?;
            rounds.push(round);
            errors += failed;
        }
        let floor = drive(self.args, c, {
            let (db, requests) = (self.db.clone(), requests.clone());
            move |i| {
                let (db, requests) = (db.clone(), requests.clone());
                async move { floor(&db, &requests[i % requests.len()]).await }
            }
        })
        .await;
        println!(
            "| {} | {c} | {} | {errors} ({}) | {:.0} | {:.1} | {:.2} | {} | {} |",
            case.name,
            rounds::service_cells(&rounds),
            floor.errors,
            floor.rate(),
            floor.pct(0.99),
            rounds::rate(&rounds) / floor.rate().max(1e-9),
            rounds::pgbench_cells(&rounds, |r| r.pgbench.as_ref()),
            rounds::pgbench_cells(&rounds, |r| r.pgbench_one.as_ref()),
        );
        Ok(errors + floor.errors)
    }

    /// One round: the service under load at concurrency `c` with the CPU each part spent,
    /// then its pgbench floors right after; the round, and the requests that failed.
    async fn round(
        &self,
        requests: &Arc<Vec<Prepared>>,
        floors: &Floors,
        c: u32,
    ) -> anyhow::Result<(Round, usize)> {
        let (server_before, db_before, client_before, machine_before) = (
            cpu::process(self.server_pid),
            cpu::DbCpu::read(&self.db, None).await,
            cpu::process(std::process::id()),
            cpu::machine(),
        );
        let http = drive(self.args, c, {
            let (client, base, requests) =
                (self.client.clone(), self.base.clone(), requests.clone());
            move |i| {
                let (client, base, requests) = (client.clone(), base.clone(), requests.clone());
                async move { send(&client, &base, &requests[i % requests.len()]).await }
            }
        })
        .await;
        let machine_cpu = cpu::machine()
            .zip(machine_before)
            .map(|(after, before)| after.saturating_sub(before));
        let client_cpu = cpu::since(std::process::id(), client_before);
        let server_cpu = cpu::since(self.server_pid, server_before);
        let db_after = cpu::DbCpu::read(&self.db, None).await;
        let db_cpu = db_after.measured().then(|| db_after.since(&db_before));
        let seconds = self.args.max_seconds;
        let pgbench = pgbench::floor(
            self.url,
            &self.db,
            &floors.statements,
            pgbench::Values::Written,
            c,
            seconds,
        )
        .await?;
        let pgbench_one = if floors.ones.is_empty() {
            None
        } else {
            pgbench::floor(
                self.url,
                &self.db,
                &floors.ones,
                pgbench::Values::Bound,
                c,
                seconds,
            )
            .await?
        };
        let round = Round {
            rate: http.rate(),
            p50_ms: http.pct(0.5),
            p99_ms: http.pct(0.99),
            server_us: rounds::per_request(server_cpu, http.done),
            db_us: rounds::per_request(db_cpu, http.done),
            client_us: rounds::per_request(client_cpu, http.done),
            machine_us: rounds::per_request(machine_cpu, http.done),
            pgbench,
            pgbench_one,
        };
        Ok((round, http.errors))
    }
}

/// Runs `one(i)` for i = 0.. at concurrency `c` until `--requests` are done or
/// `--max-seconds` have passed.
async fn drive<F, Fut>(args: &BenchArgs, c: u32, one: F) -> Measured
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let total = args.requests as usize;
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..c.max(1) {
        let (next, one) = (next.clone(), one.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total || Instant::now() > deadline {
                    break;
                }
                let t = Instant::now();
                if !one(i).await {
                    errors += 1;
                }
                latencies.push(t.elapsed());
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for w in workers {
        if let Ok((l, e)) = w.await {
            latencies.extend(l);
            errors += e;
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Measured {
        done: latencies.len(),
        errors,
        elapsed,
        latencies,
    }
}

/// One HTTP request; whether its answer was a success.
async fn send(client: &reqwest::Client, base: &str, p: &Prepared) -> bool {
    let req = match &p.http {
        Http::Get(path) => client.get(format!("{base}{path}")),
        Http::Graphql(body) => client
            .post(format!("{base}/graphql"))
            .header("Content-Type", "application/json")
            .body(body.clone()),
    };
    let resp = req
        .header("Authorization", &p.auth.0)
        .header("New-Api-User", &p.auth.1)
        .send()
        .await;
    let Ok(resp) = resp else { return false };
    if resp.status() != 200 {
        return false;
    }
    let Ok(body) = resp.bytes().await else {
        return false;
    };
    match &p.http {
        // `/api/mj` leads with success, `/api/task` (sorted keys) ends with it.
        Http::Get(_) => {
            body.starts_with(br#"{"success":true"#) || body.ends_with(br#","success":true}"#)
        }
        Http::Graphql(_) => {
            !body.windows(9).any(|w| w == br#""errors":"#) && body.starts_with(br#"{"data":{"#)
        }
    }
}

/// The floor of one request: its statements straight to the database, rows as JSON.
async fn floor(db: &DatabaseConnection, p: &Prepared) -> bool {
    let (log, page, count) = match &p.floor {
        Floor::Page(log, page, count, _) => (log, page, count),
        Floor::Aggregate(stmt) => {
            let Ok(Some(row)) = db.query_one_raw(stmt.clone()).await else {
                return false;
            };
            let totals: Vec<i64> = (0..4)
                .map(|i| row.try_get_by_index::<i64>(i).unwrap_or(0))
                .collect();
            return serde_json::to_vec(&serde_json::json!({"data": totals})).is_ok();
        }
    };
    let Ok(rows) = db.query_all_raw(page.clone()).await else {
        return false;
    };
    let mut items = Vec::with_capacity(rows.len());
    for row in &rows {
        let item = if *log == Tasks::TABLE {
            let Ok(m) = task::Model::from_query_result(row, "") else {
                return false;
            };
            serde_json::to_value(TaskItem::new(
                PlatformTaskRecord::from_model(m),
                false,
                None,
            ))
        } else {
            let Ok(m) = midjourney::Model::from_query_result(row, "") else {
                return false;
            };
            serde_json::to_value(SelfItem::from(TaskRecord::from_model(m, None)))
        };
        let Ok(item) = item else { return false };
        items.push(item);
    }
    let mut total = 0i64;
    if let Some(count) = count {
        let Ok(Some(row)) = db.query_one_raw(count.clone()).await else {
            return false;
        };
        total = row.try_get_by_index::<i64>(0).unwrap_or(0);
    }
    let body = serde_json::json!({"success": true, "data": {"items": items, "total": total}});
    serde_json::to_vec(&body).is_ok()
}

/// `VmRSS` and `VmHWM` of `pid`, in MiB (0 where /proc does not tell).
pub fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
