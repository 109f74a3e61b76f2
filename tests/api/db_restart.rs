//! The database server restarted under load (a PostgreSQL cluster and a MariaDB server the
//! test runs itself, stopped and started for real): while it is down every request is
//! answered 503 / `UNAVAILABLE` within the acquire timeout (no hang, no 500, no reset), and
//! within 5 s of the database accepting connections again every request succeeds, with the
//! same service process and no connection left behind in its pool.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mj_tasks::service::{Role, Service};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

use crate::db_servers::{MariaServer, PgCluster};
use crate::helpers::TestUser;
use crate::process::ServerProcess;

const ACQUIRE_MS: u64 = 1000;
const WORKERS: usize = 8;

#[derive(Debug, PartialEq)]
enum Outcome {
    Ok,
    Unavailable,
    Other(String),
}

struct Sample {
    sent: Instant,
    latency: Duration,
    outcome: Outcome,
}

enum DbServer {
    Pg(PgCluster),
    Maria(MariaServer),
}

impl DbServer {
    fn name(&self) -> &'static str {
        match self {
            DbServer::Pg(_) => "PostgreSQL 15",
            DbServer::Maria(_) => "MariaDB 10.11",
        }
    }

    fn url(&self, database: &str) -> String {
        match self {
            DbServer::Pg(c) => c.url(database),
            DbServer::Maria(m) => m.url(database),
        }
    }

    fn admin_url(&self) -> String {
        match self {
            DbServer::Pg(c) => c.url("postgres"),
            DbServer::Maria(m) => m.url("mysql"),
        }
    }

    fn stop(&self) {
        match self {
            DbServer::Pg(c) => c.stop(),
            DbServer::Maria(m) => m.stop(),
        }
    }

    async fn start(&self) {
        match self {
            DbServer::Pg(c) => c.start(),
            DbServer::Maria(m) => m.restart().await,
        }
    }

    /// Sessions open on database `mj`.
    fn sessions_sql(&self) -> &'static str {
        match self {
            DbServer::Pg(_) => "SELECT count(*) FROM pg_stat_activity WHERE datname = 'mj'",
            DbServer::Maria(_) => {
                "SELECT CAST(COUNT(*) AS SIGNED) FROM information_schema.PROCESSLIST WHERE DB = 'mj'"
            }
        }
    }
}

/// Request `i` (REST and GraphQL in turn) to the server at `base`, classified.
async fn one_request(client: &reqwest::Client, base: &str, user: &TestUser, i: usize) -> Outcome {
    let id = user.id.to_string();
    let rest = i.is_multiple_of(2);
    let request = if rest {
        client.get(format!("{base}/api/mj/self?p=1&page_size=10"))
    } else {
        client
            .post(format!("{base}/graphql"))
            .json(&json!({"query": "{ midjourneyTasks { totalCount nodes { mjId } } }"}))
    };
    let response = request
        .header("Authorization", &user.token)
        .header("New-Api-User", &id)
        .send()
        .await;
    let response = match response {
        Ok(r) => r,
        Err(e) => return Outcome::Other(format!("transport: {e}")),
    };
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let outcome = if rest {
        match (status, &body["success"]) {
            (200, Value::Bool(true)) => Some(Outcome::Ok),
            (503, Value::Bool(false)) if body["message"] == "database unavailable" => {
                Some(Outcome::Unavailable)
            }
            _ => None,
        }
    } else if status == 200
        && body["errors"].is_null()
        && body["data"]["midjourneyTasks"].is_object()
    {
        Some(Outcome::Ok)
    } else if body["errors"][0]["extensions"]["code"] == "UNAVAILABLE" {
        Some(Outcome::Unavailable)
    } else {
        None
    };
    outcome.unwrap_or_else(|| Outcome::Other(format!("{status} {text}")))
}

async fn restart_under_load(db: DbServer) {
    let admin = Database::connect(db.admin_url().as_str())
        .await
        .expect("admin");
    admin
        .execute_unprepared("CREATE DATABASE mj")
        .await
        .expect("create database");
    admin.close().await.ok();
    let url = db.url("mj");
    let server =
        ServerProcess::start(&url, &["--db-acquire-timeout-ms", &ACQUIRE_MS.to_string()]).await;
    let user = {
        let service = Service::new(Database::connect(url.as_str()).await.expect("db"), None);
        let u = service
            .create_user("restart", Role::Common)
            .await
            .expect("user");
        service
            .db()
            .execute_unprepared(&format!(
                "INSERT INTO midjourneys (user_id, mj_id, action, status, progress, submit_time) \
                 VALUES ({0}, 'r-1', 'IMAGINE', 'SUCCESS', '100%', 1), ({0}, 'r-2', 'IMAGINE', 'SUCCESS', '100%', 2)",
                u.id
            ))
            .await
            .expect("tasks");
        service.db().clone().close().await.ok();
        TestUser {
            id: u.id,
            token: u.access_token,
        }
    };

    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (samples, stop, client, user) =
            (samples.clone(), stop.clone(), client.clone(), user.clone());
        let server_url = server.addr;
        workers.push(tokio::spawn(async move {
            let server = ServerRef(server_url);
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let outcome = server.request(&client, &user, i).await;
                samples.lock().unwrap().push(Sample {
                    sent,
                    latency: sent.elapsed(),
                    outcome,
                });
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let down_at = Instant::now();
    db.stop();
    let stopped_in = down_at.elapsed();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Counted from the start command: the database accepts connections a little later, so
    // the recovery time below is an upper bound.
    let up_at = Instant::now();
    db.start().await;
    let started_in = up_at.elapsed();
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }

    let samples = std::mem::take(&mut *samples.lock().unwrap());
    // Answered while the database was down (a request still waiting for a connection when
    // it comes back is served: that is a success, not counted here).
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent >= down_at + stopped_in && s.sent + s.latency < up_at)
        .collect();
    let unavailable = samples
        .iter()
        .filter(|s| s.outcome == Outcome::Unavailable)
        .count();
    let others: Vec<&String> = samples
        .iter()
        .filter_map(|s| match &s.outcome {
            Outcome::Other(o) => Some(o),
            _ => None,
        })
        .collect();
    let max_latency = samples.iter().map(|s| s.latency).max().unwrap_or_default();
    let max_down = during.iter().map(|s| s.latency).max().unwrap_or_default();
    // Recovered: the end of the last failed request, counted from the moment the database
    // accepted connections again.
    let last_failure_end = samples
        .iter()
        .filter(|s| s.outcome != Outcome::Ok)
        .map(|s| s.sent + s.latency)
        .max();
    let recovery = last_failure_end.map_or(Duration::ZERO, |t| t.saturating_duration_since(up_at));
    let after = samples
        .iter()
        .filter(|s| s.sent >= up_at + recovery)
        .count();

    // The same process serves on; its pool holds no more than its size.
    for i in 0..50 {
        assert_eq!(
            ServerRef(server.addr).request(&client, &user, i).await,
            Outcome::Ok
        );
    }
    let check = Database::connect(db.url("mj").as_str()).await.expect("db");
    let sessions = check
        .query_one_raw(sea_orm::Statement::from_string(
            check.get_database_backend(),
            db.sessions_sql().to_owned(),
        ))
        .await
        .expect("sessions")
        .and_then(|r| r.try_get_by_index::<i64>(0).ok())
        .unwrap_or(-1);
    check.close().await.ok();

    println!(
        "\n| database | requests | answered while down | 503 / UNAVAILABLE | other | slowest while down | slowest overall | database start | all succeed again after the start command | requests after | sessions after |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {} | {} | {} | {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {} | {} |",
        db.name(),
        samples.len(),
        during.len(),
        unavailable,
        others.len(),
        max_down.as_secs_f64() * 1000.0,
        max_latency.as_secs_f64() * 1000.0,
        started_in.as_secs_f64() * 1000.0,
        recovery.as_secs_f64() * 1000.0,
        after,
        sessions,
    );
    assert!(
        others.is_empty(),
        "answers other than success or 503: {:?}",
        &others[..others.len().min(5)]
    );
    assert!(
        !during.is_empty() && during.iter().all(|s| s.outcome == Outcome::Unavailable),
        "every request answered while the database was down is 503 / UNAVAILABLE"
    );
    assert!(
        max_latency < Duration::from_millis(ACQUIRE_MS + 2000),
        "a request took {max_latency:?} (acquire timeout {ACQUIRE_MS} ms)"
    );
    assert!(
        recovery <= Duration::from_secs(5),
        "recovered {recovery:?} after the database came back"
    );
    assert!(after > 0);
    // The pool (10) plus this check's own session.
    assert!(
        (1..=11).contains(&sessions),
        "{sessions} sessions on the database"
    );
}

/// The server by address, for worker tasks.
#[derive(Clone, Copy)]
struct ServerRef(std::net::SocketAddr);

impl ServerRef {
    async fn request(&self, client: &reqwest::Client, user: &TestUser, i: usize) -> Outcome {
        one_request(client, &format!("http://{}", self.0), user, i).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts a PostgreSQL cluster of its own (initdb, pg_ctl as the postgres user); run with --ignored db_restart::"]
async fn postgresql_restarted_under_load() {
    restart_under_load(DbServer::Pg(PgCluster::init())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts a MariaDB server of its own (mariadb-install-db, mariadbd); run with --ignored db_restart::"]
async fn mariadb_restarted_under_load() {
    restart_under_load(DbServer::Maria(MariaServer::start(1, false, &[]).await)).await;
}
