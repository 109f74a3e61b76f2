//! Through Debian's PgBouncer (1.18) in transaction pooling mode, started by the test on a
//! free port in front of the PostgreSQL server `TEST_DATABASE_URL` names (ignored: it needs
//! both; asked for without them, it fails).
//!
//! First the fixture is shown to be what it claims: without `pgbouncer=true` the driver's
//! named prepared statements fail through it. Then two instances with `pgbouncer=true`
//! answer every request of 8 clients, and ten instances with pools of 10 (100 client
//! connections) share 20 server connections under a closed-loop load, without one error.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mj_tasks::service::Role;
use sea_orm::{ConnectionTrait, Database, Statement};

use crate::helpers::{Backend, Task, TestApp, TestDb, TestUser, spawn_app_with};

/// A PgBouncer of the test's own, stopped on drop.
pub struct PgBouncer {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl PgBouncer {
    /// Transaction pooling in front of `server` (a postgres:// URL): `pool` server
    /// connections per database and user; `ignore`: the startup parameters it lets pass.
    pub fn start(server: &str, pool: u32, ignore: &str) -> PgBouncer {
        let hostport = server
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|r| r.rsplit('@').next())
            .expect("host:port in the URL");
        let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
        let listen = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = |f: &str| dir.path().join(f).display().to_string();
        let ini = format!(
            "[databases]\n* = host={host} port={port}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {listen}\nunix_socket_dir =\nauth_type = trust\nauth_file = {}\npool_mode = transaction\ndefault_pool_size = {pool}\nmax_client_conn = 2000\nmax_db_connections = {pool}\nignore_startup_parameters = {ignore}\nlogfile = {}\n",
            path("users.txt"),
            path("pgbouncer.log"),
        );
        std::fs::write(path("pgbouncer.ini"), ini).expect("pgbouncer.ini");
        std::fs::write(path("users.txt"), "\"postgres\" \"\"\n").expect("users.txt");
        // PgBouncer refuses to run as root: as root it is told to become `postgres`, who
        // must be able to read its files.
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if root {
            Command::new("chmod")
                .args(["-R", "a+rwX"])
                .arg(dir.path())
                .status()
                .expect("chmod");
        }
        let mut command = Command::new("pgbouncer");
        if root {
            command.args(["-u", "postgres"]);
        }
        let child = command
            .arg(path("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pgbouncer (Debian's pgbouncer package) must be installed");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "pgbouncer did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PgBouncer {
            port: listen,
            child,
            _dir: dir,
        }
    }

    /// The URL of `database` through it.
    pub fn url(&self, database: &str, pgbouncer: bool) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}?pgbouncer={pgbouncer}",
            self.port
        )
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A migrated PostgreSQL database with two users and 60 tasks, and its server's URL.
async fn seeded() -> (TestDb, String, Vec<TestUser>) {
    let db = TestDb::server().await;
    assert_eq!(
        db.backend,
        Backend::Postgres,
        "PgBouncer pools PostgreSQL: set TEST_DATABASE_URL=postgres://…"
    );
    mj_tasks::app::migrate_only(&mj_tasks::config::DbConfig::for_url(db.url.clone()))
        .await
        .expect("migrations");
    let server = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
    // A direct instance seeds (users and tasks), then stops.
    let direct = spawn_app_with(TestDb::borrowed(&db.url, Backend::Postgres), |c| {
        c.no_migrate = true;
    })
    .await;
    let users = vec![
        direct.user("alice", Role::Common).await,
        direct.user("bob", Role::Common).await,
    ];
    for i in 0..60 {
        direct
            .task(
                Task::of(users[i % 2].id)
                    .mj(&format!("mj-{i}"))
                    .submitted(1_000 + i as i64),
            )
            .await;
    }
    drop(direct);
    (db, server, users)
}

/// `n` instances serving `url` with pools of `pool`.
async fn instances(n: usize, url: &str, pool: u32) -> Vec<TestApp> {
    let mut apps = Vec::new();
    for _ in 0..n {
        apps.push(
            spawn_app_with(TestDb::borrowed(url, Backend::Postgres), |c| {
                c.no_migrate = true;
                c.db.db_max_connections = pool;
            })
            .await,
        );
    }
    apps
}

/// One request of the mix (REST page and total, GraphQL page and total, a lookup), by its
/// number; its status.
async fn request(app: &TestApp, user: &TestUser, i: usize) -> u16 {
    match i % 3 {
        0 => {
            app.get_as(user, "/api/mj/self?p=1&page_size=10")
                .await
                .status
        }
        1 => {
            let a = app
                .gql(
                    user,
                    "{ midjourneyTasks(page: {offset: {pageSize: 10}}) { totalCount nodes { mjId } } }",
                )
                .await;
            if a.json["errors"].is_null() {
                a.status
            } else {
                500
            }
        }
        _ => {
            let mj = format!("mj-{}", (i / 3) % 60);
            app.gql(
                user,
                &format!("{{ midjourneyTask(mjId: \"{mj}\") {{ mjId }} }}"),
            )
            .await
            .status
        }
    }
}

/// 8 clients, `total` requests spread over `apps`: the statuses counted.
async fn eight_clients(
    apps: &Arc<Vec<TestApp>>,
    users: &[TestUser],
    total: usize,
) -> HashMap<u16, usize> {
    let mut tasks = Vec::new();
    for client in 0..8 {
        let apps = apps.clone();
        let user = users[client % users.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..total / 8 {
                let app = &apps[(client + i) % apps.len()];
                statuses.push(request(app, &user, i).await);
            }
            statuses
        }));
    }
    let mut counted = HashMap::new();
    for t in tasks {
        for s in t.await.expect("client") {
            *counted.entry(s).or_insert(0) += 1;
        }
    }
    counted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's pgbouncer and TEST_DATABASE_URL=postgres://…"]
async fn instances_behind_transaction_pooling_pgbouncer_answer_every_request() {
    let (db, server, users) = seeded().await;

    // The fixture: transaction pooling really shares server connections between
    // statements, so the driver's named prepared statements fail without pgbouncer=true.
    let bouncer = PgBouncer::start(&server, 4, "extra_float_digits,options");
    let apps = Arc::new(instances(2, &bouncer.url(&db.name, false), 10).await);
    let control = eight_clients(&apps, &users, 320).await;
    println!("without pgbouncer=true, 2 instances, pool of 4: {control:?}");
    assert!(
        control.keys().any(|s| *s != 200),
        "the fixture does not share server connections between statements: {control:?}"
    );
    drop(apps);
    drop(bouncer);

    // With pgbouncer=true: every request answered.
    let bouncer = PgBouncer::start(&server, 4, "extra_float_digits");
    let apps = Arc::new(instances(2, &bouncer.url(&db.name, true), 10).await);
    let answered = eight_clients(&apps, &users, 320).await;
    println!("with pgbouncer=true, 2 instances, pool of 4: {answered:?}");
    assert_eq!(answered, HashMap::from([(200, 320)]));
    drop(apps);
    drop(bouncer);

    // Ten instances with pools of 10 (100 client connections) through 20 server
    // connections, 40 clients in a closed loop.
    let secs: u64 = std::env::var("PGBOUNCER_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let bouncer = PgBouncer::start(&server, 20, "extra_float_digits");
    let apps = Arc::new(instances(10, &bouncer.url(&db.name, true), 10).await);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut clients = Vec::new();
    for client in 0..40 {
        let (apps, stop) = (apps.clone(), stop.clone());
        let user = users[client % users.len()].clone();
        clients.push(tokio::spawn(async move {
            let mut done = Vec::new();
            let mut i = client;
            while !stop.load(Ordering::Relaxed) {
                let at = Instant::now();
                let status = request(&apps[i % apps.len()], &user, i).await;
                done.push((status, at.elapsed()));
                i += 1;
            }
            done
        }));
    }
    // The server connections PostgreSQL sees for this database, sampled under the load.
    let watcher = Database::connect(&db.url).await.expect("direct connection");
    let mut most_servers = 0i64;
    while started.elapsed() < Duration::from_secs(secs) {
        let row = watcher
            .query_one_raw(Statement::from_string(
                watcher.get_database_backend(),
                format!(
                    "SELECT COUNT(*)::int8 AS n FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
                    db.name
                ),
            ))
            .await
            .expect("pg_stat_activity")
            .expect("a row");
        most_servers = most_servers.max(row.try_get::<i64>("", "n").expect("n"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut failed = HashMap::new();
    for c in clients {
        for (status, took) in c.await.expect("client") {
            if status != 200 {
                *failed.entry(status).or_insert(0usize) += 1;
            }
            latencies.push(took);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    println!(
        "10 instances × pool 10 through 20 server connections, 40 clients, {secs} s: {} requests ({:.0}/s), p50 {:.1} ms, p99 {:.1} ms, failed {failed:?}, at most {most_servers} server connections seen",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99),
    );
    assert!(failed.is_empty(), "failed: {failed:?}");
    assert!(
        most_servers <= 20,
        "{most_servers} server connections: PgBouncer's pool is 20"
    );
    watcher.close().await.ok();
}
