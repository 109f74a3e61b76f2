//! Read replicas on a real PostgreSQL streaming replica that the test makes of the local
//! server (`pg_basebackup -R`, started with `pg_ctl` on a port of its own as the `postgres`
//! system user): starting on the replica with and without pending migrations, rows written on
//! the primary visible through it, `--read-database-url` sending reads to it while users are
//! created on the primary, and the replica stopped and started again mid-test.
//!
//! `#[ignore]`d: it needs `TEST_DATABASE_URL=postgres://…` naming the local server, whose
//! `pg_hba.conf` allows replication from 127.0.0.1 (`.ci/run` adds the line).

use std::process::Command;
use std::time::Duration;

use mj_tasks::app::App;
use mj_tasks::config::{DbConfig, ServeArgs};
use mj_tasks::service::Role;
use mj_tasks::service::replicas::Fallback;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

use crate::db_servers::{MariaServer, PgCluster, eventually};
use crate::helpers::{Backend, Task, TestApp, TestDb, spawn_app_with};
use crate::live_client::{EVENTS, Sse};

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    db.query_one_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        sql.to_owned(),
    ))
    .await
    .ok()
    .flatten()
    .and_then(|r| r.try_get_by_index::<i64>(0).ok())
    .unwrap_or(-1)
}

/// Waits until `database` exists on the replica and shows `rows` in `sql`.
async fn replicated(url: &str, sql: &str, at_least: i64) -> Duration {
    eventually(Duration::from_secs(20), url, || async {
        match Database::connect(url).await {
            Ok(db) => {
                let n = count(&db, sql).await;
                db.close().await.ok();
                n >= at_least
            }
            Err(_) => false,
        }
    })
    .await
}

fn database_name(url: &str) -> String {
    url.rsplit('/').next().unwrap_or_default().to_owned()
}

async fn healthz(app: &TestApp) -> serde_json::Value {
    app.client
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("healthz")
        .json()
        .await
        .expect("json")
}

fn replica_reads(health: &serde_json::Value) -> u64 {
    health["replicas"][0]["reads"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a local PostgreSQL that allows replication (run with --ignored replica:: and TEST_DATABASE_URL=postgres://…)"]
async fn a_postgresql_streaming_replica_serves_reads() {
    let primary = TestDb::server().await;
    assert!(
        primary.url.starts_with("postgres"),
        "the replica test needs TEST_DATABASE_URL=postgres://…"
    );
    let name = database_name(&primary.url);
    let port: u16 = primary
        .url
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432);
    // The primary, migrated by its first start, with a user and a task.
    let on_primary = spawn_app_with(TestDb::borrowed(&primary.url, primary.backend), |_| {}).await;
    let alice = on_primary.user("alice", Role::Common).await;
    on_primary.task(Task::of(alice.id).mj("before")).await;

    let replica = PgCluster::replica_of(port);
    let replica_url = replica.url(&name);
    let took = replicated(&replica_url, "SELECT COUNT(*) FROM midjourneys", 1).await;
    println!(
        "replica of {name} on port {} ready ({took:?})",
        replica.port
    );

    // 1. The service starts on the replica with no flag: every migration is applied, so it
    //    writes nothing; rows written on the primary show through it.
    let on_replica = spawn_app_with(TestDb::borrowed(&replica_url, primary.backend), |_| {}).await;
    let a = on_replica.get_as(&alice, "/api/mj/self").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.total(), 1);
    on_primary.task(Task::of(alice.id).mj("after")).await;
    let seen = eventually(
        Duration::from_secs(2),
        "a new row through the replica",
        || async { on_replica.get_as(&alice, "/api/mj/self").await.total() == 2 },
    )
    .await;
    println!("a row written on the primary was served from the replica after {seen:?}");

    // 2. A database with migrations pending, seen through the read-only replica: refused
    //    with one line naming the fix, by the binary as by the library.
    let empty = TestDb::server().await;
    let empty_on_replica = replica.url(&database_name(&empty.url));
    replicated(&empty_on_replica, "SELECT CAST(1 AS BIGINT)", 1).await;
    let refused = App::build(&ServeArgs::new(
        DbConfig::for_url(empty_on_replica.clone()),
        "127.0.0.1:0".parse().unwrap(),
    ))
    .await;
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("read-only")
            && message.contains("mj-tasks migrate")
            && message.contains("--no-migrate"),
        "{message}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mj-tasks"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &empty_on_replica,
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run mj-tasks");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("run `mj-tasks migrate` against the primary"),
        "{stderr}"
    );
    assert!(!stderr.contains("CREATE TABLE"), "{stderr}");
    println!("pending migrations on the replica: {}", stderr.trim());
    // The same with --no-migrate starts (and answers what the empty database holds: errors).
    let no_migrate = App::build(&{
        let mut cfg = ServeArgs::new(
            DbConfig::for_url(empty_on_replica.clone()),
            "127.0.0.1:0".parse().unwrap(),
        );
        cfg.no_migrate = true;
        cfg
    })
    .await;
    assert!(no_migrate.is_ok());
    drop(no_migrate);

    // 3. Reads to the replica, writes to the primary.
    let split = spawn_app_with(TestDb::borrowed(&primary.url, primary.backend), |cfg| {
        cfg.replicas.read_database_urls = vec![replica_url.clone()];
    })
    .await;
    let fallback_503 = spawn_app_with(TestDb::borrowed(&primary.url, primary.backend), |cfg| {
        cfg.replicas.read_database_urls = vec![replica_url.clone()];
        cfg.replicas.replica_fallback = Fallback::Unavailable;
    })
    .await;
    let before = replica_reads(&healthz(&split).await);
    for _ in 0..10 {
        let a = split.get_as(&alice, "/api/mj/self").await;
        assert_eq!((a.status, a.total()), (200, 2), "{}", a.text);
    }
    let health = healthz(&split).await;
    // Each request: one read, its page and count in one statement (the user check reads
    // the primary).
    assert!(replica_reads(&health) >= before + 10, "{health}");
    assert_eq!(health["primary_reads"], 0, "{health}");
    assert_eq!(health["replicas"][0]["up"], true, "{health}");
    println!("healthz with a replica: {health}");
    // Live progress (polled on the primary) with replicas configured: a row inserted on the
    // primary arrives.
    let mut events = Sse::open(&split, Some(&alice), EVENTS, serde_json::json!({})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    primary.submit(alice.id, "live-via-replica", 1).await;
    let e = events.event().await;
    assert_eq!(e["task"]["mjId"], "live-via-replica", "{e}");
    drop(events);
    let bob = split.user("bob", Role::Common).await; // written on the primary
    let lag = eventually(
        Duration::from_secs(2),
        "bob through the replica",
        || async { split.get_as(&bob, "/api/mj/self").await.status == 200 },
    )
    .await;
    println!("a user created on the primary authenticated through the replica after {lag:?}");

    // 4 (issue 18, item 9). A ban on the primary takes effect at once, however far behind
    //    the replica is: who a token belongs to is read from the primary.
    let dave = split.user("dave", Role::Common).await;
    replicated(
        &replica_url,
        &format!("SELECT COUNT(*) FROM users WHERE id = {}", dave.id),
        1,
    )
    .await;
    let replica_db = Database::connect(replica_url.as_str())
        .await
        .expect("replica");
    replica_db
        .execute_unprepared("SELECT pg_wal_replay_pause()")
        .await
        .expect("pause replay");
    on_primary
        .sql(&format!(
            "UPDATE users SET status = 2 WHERE id = {}",
            dave.id
        ))
        .await;
    let banned = split.get_as(&dave, "/api/mj/self").await;
    assert_eq!(
        banned.json["success"], false,
        "banned at once: {}",
        banned.text
    );
    let gql = split.gql(&dave, "{ midjourneyTasks { totalCount } }").await;
    assert_eq!(gql.codes(), ["FORBIDDEN"], "{}", gql.text);
    replica_db
        .execute_unprepared("SELECT pg_wal_replay_resume()")
        .await
        .expect("resume replay");
    println!("a ban on the primary refused the next request while the replica's replay was paused");

    // 5 (issue 18, item 8). A query cut off at the statement timeout on a replica is the
    //    query's fault: the replica stays in rotation and other users' reads go on (here
    //    with no fallback to the primary, where an eviction would refuse them).
    let heavy = on_primary.user("heavy", Role::Common).await;
    on_primary
        .sql(&format!(
            "INSERT INTO midjourneys (user_id, mj_id, action, status, progress, prompt, submit_time) \
             SELECT {}, 'heavy-' || g, 'IMAGINE', 'SUCCESS', '100%', repeat('a slow prompt ', 40), g \
             FROM generate_series(1, 300000) g",
            heavy.id
        ))
        .await;
    replicated(
        &replica_url,
        &format!(
            "SELECT COUNT(*) FROM midjourneys WHERE user_id = {}",
            heavy.id
        ),
        300_000,
    )
    .await;
    let strict = spawn_app_with(TestDb::borrowed(&primary.url, primary.backend), |cfg| {
        cfg.replicas.read_database_urls = vec![replica_url.clone()];
        cfg.replicas.replica_fallback = Fallback::Unavailable;
        cfg.db.db_statement_timeout_ms = 30;
    })
    .await;
    let slow = r#"{ midjourneyTaskStats(filter: {prompt: {contains: "never there"}}) { count } }"#;
    let mut cheap_ok = 0;
    for _ in 0..5 {
        let a = strict.gql(&heavy, slow).await;
        assert_eq!(a.codes(), ["UNAVAILABLE"], "cut off: {}", a.text);
        let b = strict.get_as(&alice, "/api/mj/self").await;
        assert_eq!(b.status, 200, "another user's cheap read: {}", b.text);
        cheap_ok += 1;
    }
    let health = healthz(&strict).await;
    assert_eq!(health["replicas"][0]["up"], true, "{health}");
    println!(
        "5 statement timeouts on the replica; {cheap_ok} of 5 cheap reads answered; replica still up"
    );

    // 6. The replica stops: reads go on from the primary (or 503 as configured), and come
    //    back to the replica once it answers again.
    replica.stop();
    for _ in 0..10 {
        let a = split.get_as(&alice, "/api/mj/self").await;
        assert_eq!((a.status, a.total()), (200, 3), "{}", a.text);
        let b = fallback_503.get_as(&alice, "/api/mj/self").await;
        assert_eq!(b.status, 503, "{}", b.text);
        assert_eq!(b.json["success"], false);
    }
    let health = healthz(&split).await;
    assert_eq!(health["replicas"][0]["up"], false, "{health}");
    assert_eq!(health["status"], "degraded");
    // The page and count (one statement) of each of the ten requests (the user check
    // always reads the primary and is not a fallback).
    assert!(
        health["primary_reads"].as_u64().unwrap_or(0) >= 10,
        "{health}"
    );
    let down = split
        .client
        .get(fallback_503.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), 503, "no database can serve reads");

    replica.start();
    let back = eventually(
        Duration::from_secs(10),
        "the replica back in rotation",
        || async { healthz(&split).await["replicas"][0]["up"] == true },
    )
    .await;
    let reads = replica_reads(&healthz(&split).await);
    let a = split.get_as(&alice, "/api/mj/self").await;
    assert_eq!(a.status, 200);
    assert!(replica_reads(&healthz(&split).await) > reads);
    eventually(
        Duration::from_secs(5),
        "503 mode answering again",
        || async { fallback_503.get_as(&alice, "/api/mj/self").await.status == 200 },
    )
    .await;
    println!("the restarted replica was back in rotation after {back:?}");
}

/// A MariaDB primary and its replica, both started by the test (the machine's own server has
/// no binary log to replicate from), the replica read-only and following the primary's GTIDs.
struct MariaPair {
    primary: MariaServer,
    replica: MariaServer,
}

impl MariaPair {
    async fn start() -> MariaPair {
        let primary = MariaServer::start(1, true, &[]).await;
        let replica = MariaServer::start(2, false, &["--read-only=1"]).await;
        let db = Database::connect(replica.url("mysql").as_str())
            .await
            .expect("replica");
        db.execute_unprepared(&format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='root', \
             MASTER_USE_GTID=current_pos",
            primary.port
        ))
        .await
        .expect("change master");
        db.execute_unprepared("START SLAVE")
            .await
            .expect("start slave");
        db.close().await.ok();
        MariaPair { primary, replica }
    }

    fn url(&self, which: &str, database: &str) -> String {
        if which == "primary" {
            self.primary.url(database)
        } else {
            self.replica.url(database)
        }
    }

    /// Creates `name` on the primary (the replica follows).
    async fn create_database(&self, name: &str) {
        let admin = Database::connect(self.primary.url("mysql").as_str())
            .await
            .expect("primary");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        admin.close().await.ok();
    }

    fn stop_replica(&self) {
        self.replica.stop();
    }

    async fn start_replica(&self) {
        self.replica.restart().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts a MariaDB primary and replica of its own (run with --ignored replica::)"]
async fn a_mariadb_replica_serves_reads() {
    let pair = MariaPair::start().await;
    pair.create_database("mj").await;
    let primary_url = pair.url("primary", "mj");
    let replica_url = pair.url("replica", "mj");

    let on_primary = spawn_app_with(TestDb::borrowed(&primary_url, Backend::MySql), |_| {}).await;
    let alice = on_primary.user("alice", Role::Common).await;
    on_primary.task(Task::of(alice.id).mj("before")).await;
    replicated(&replica_url, "SELECT COUNT(*) FROM midjourneys", 1).await;

    // On the replica alone, no flag: nothing to migrate, nothing written.
    let on_replica = spawn_app_with(TestDb::borrowed(&replica_url, Backend::MySql), |_| {}).await;
    assert_eq!(on_replica.get_as(&alice, "/api/mj/self").await.total(), 1);
    on_primary.task(Task::of(alice.id).mj("after")).await;
    let seen = eventually(
        Duration::from_secs(2),
        "a new row through the replica",
        || async { on_replica.get_as(&alice, "/api/mj/self").await.total() == 2 },
    )
    .await;
    println!("MariaDB: a row written on the primary was served from the replica after {seen:?}");

    // Pending migrations on the read-only replica: refused, naming the fix.
    pair.create_database("empty").await;
    let empty_on_replica = pair.url("replica", "empty");
    replicated(&empty_on_replica, "SELECT CAST(1 AS SIGNED)", 1).await;
    let refused = App::build(&ServeArgs::new(
        DbConfig::for_url(empty_on_replica),
        "127.0.0.1:0".parse().unwrap(),
    ))
    .await;
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("run `mj-tasks migrate` against the primary"),
        "{message}"
    );

    // Reads to the replica, writes to the primary; the replica stopped and started again.
    let split = spawn_app_with(TestDb::borrowed(&primary_url, Backend::MySql), |cfg| {
        cfg.replicas.read_database_urls = vec![replica_url.clone()];
    })
    .await;
    for _ in 0..5 {
        assert_eq!(split.get_as(&alice, "/api/mj/self").await.total(), 2);
    }
    let health = healthz(&split).await;
    // The page and the count of each request (the user check reads the primary).
    assert!(replica_reads(&health) >= 10, "{health}");
    assert_eq!(health["primary_reads"], 0, "{health}");
    assert!(
        health["replicas"][0]["lag_seconds"].is_number(),
        "Seconds_Behind_Master: {health}"
    );
    println!("MariaDB healthz with a replica: {health}");
    let bob = split.user("bob", Role::Common).await;
    eventually(
        Duration::from_secs(2),
        "bob through the replica",
        || async { split.get_as(&bob, "/api/mj/self").await.status == 200 },
    )
    .await;

    pair.stop_replica();
    for _ in 0..5 {
        let a = split.get_as(&alice, "/api/mj/self").await;
        assert_eq!((a.status, a.total()), (200, 2), "{}", a.text);
    }
    assert_eq!(healthz(&split).await["replicas"][0]["up"], false);
    pair.start_replica().await;
    let back = eventually(
        Duration::from_secs(10),
        "the replica back in rotation",
        || async { healthz(&split).await["replicas"][0]["up"] == true },
    )
    .await;
    let reads = replica_reads(&healthz(&split).await);
    assert_eq!(split.get_as(&alice, "/api/mj/self").await.status, 200);
    assert!(replica_reads(&healthz(&split).await) > reads);
    println!("MariaDB: the restarted replica was back in rotation after {back:?}");
}
