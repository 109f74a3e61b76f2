//! Read replicas on a real PostgreSQL streaming replica that the test makes of the local
//! server (`pg_basebackup -R`, started with `pg_ctl` on a port of its own as the `postgres`
//! system user): starting on the replica with and without pending migrations, rows written on
//! the primary visible through it, `--read-database-url` sending reads to it while users are
//! created on the primary, and the replica stopped and started again mid-test.
//!
//! `#[ignore]`d: it needs `TEST_DATABASE_URL=postgres://…` naming the local server, whose
//! `pg_hba.conf` allows replication from 127.0.0.1 (`.ci/run` adds the line).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use mj_tasks::app::App;
use mj_tasks::config::{DbConfig, ServeArgs};
use mj_tasks::service::Role;
use mj_tasks::service::replicas::Fallback;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

use crate::helpers::{Backend, Task, TestApp, TestDb, spawn_app_with};
use crate::live_client::{EVENTS, Sse};

/// A streaming replica of the local PostgreSQL server, stopped when dropped.
struct PgReplica {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
}

fn as_postgres(program: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(program)
        .args(args)
        .output()
        .expect("runuser");
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl PgReplica {
    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Base backup of the server at 127.0.0.1:`primary_port`, started as a hot standby.
    fn create(primary_port: u16) -> PgReplica {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's binaries under /usr/lib/postgresql")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("pg_basebackup").exists())
            .expect("pg_basebackup");
        let dir = tempfile::Builder::new()
            .prefix("mj-replica-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let chown = Command::new("chown")
            .args(["postgres:postgres", &dir.path().display().to_string()])
            .status()
            .expect("chown");
        assert!(chown.success());
        let replica = PgReplica { dir, port, bin };
        let data = replica.data();
        as_postgres(
            &replica.bin.join("pg_basebackup"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary_port.to_string(),
                "-U",
                "postgres",
                "-D",
                &data,
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        );
        // Debian keeps the configuration outside the data directory: the replica gets its
        // own, with trust on loopback and its socket in its directory.
        for (file, text) in [
            (
                "postgresql.conf",
                "hot_standby = on\nlisten_addresses = '127.0.0.1'\nmax_connections = 100\n",
            ),
            (
                "pg_hba.conf",
                "local all all trust\nhost all all 127.0.0.1/32 trust\n",
            ),
            ("pg_ident.conf", ""),
        ] {
            let path = replica.dir.path().join("data").join(file);
            std::fs::write(&path, text).expect("config");
            Command::new("chown")
                .args(["postgres:postgres", &path.display().to_string()])
                .status()
                .expect("chown");
        }
        replica.start();
        replica
    }

    fn start(&self) {
        let opts = format!("-p {} -k {}", self.port, self.dir.path().display());
        let log = self.dir.path().join("log").display().to_string();
        as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        );
    }

    fn stop(&self) {
        as_postgres(
            &self.bin.join("pg_ctl"),
            &["-D", &self.data(), "-m", "fast", "-w", "stop"],
        );
    }

    /// The URL of `database` on the replica.
    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PgReplica {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// Polls `check` until it holds (at most `within`), returning how long it took.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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

    let replica = PgReplica::create(port);
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
    // Each request: the user check, the page and its count.
    assert!(replica_reads(&health) >= before + 30, "{health}");
    assert_eq!(health["primary_reads"], 0, "{health}");
    assert_eq!(health["replicas"][0]["up"], true, "{health}");
    println!("healthz with a replica: {health}");
    // Live progress polls the replica too: a row inserted on the primary arrives.
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

    // 4. The replica stops: reads go on from the primary (or 503 as configured), and come
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
    assert!(
        health["primary_reads"].as_u64().unwrap_or(0) >= 30,
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
/// no binary log to replicate from): `mariadb-install-db` then `mariadbd` on free ports, the
/// replica read-only and following the primary's GTIDs. Stopped when dropped.
struct MariaPair {
    dir: tempfile::TempDir,
    primary: u16,
    replica: u16,
    children: std::sync::Mutex<Vec<(String, std::process::Child)>>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

impl MariaPair {
    fn server_args(&self, name: &str, port: u16, id: u32) -> Vec<String> {
        let d = self.dir.path().display();
        let mut args = vec![
            "--no-defaults".into(),
            "--user=mysql".into(),
            format!("--datadir={d}/{name}"),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".into(),
            format!("--socket={d}/{name}.sock"),
            format!("--pid-file={d}/{name}.pid"),
            format!("--log-error={d}/{name}.err"),
            format!("--server-id={id}"),
            // A throwaway pair: no grants to set up.
            "--skip-grant-tables".into(),
        ];
        if name == "primary" {
            args.push(format!("--log-bin={d}/primary/bin"));
        } else {
            args.push("--read-only=1".into());
        }
        args
    }

    async fn wait_up(port: u16) {
        let url = format!("mysql://root@127.0.0.1:{port}/mysql");
        eventually(Duration::from_secs(30), &url, || async {
            match Database::connect(url.as_str()).await {
                Ok(db) => {
                    db.close().await.ok();
                    true
                }
                Err(_) => false,
            }
        })
        .await;
    }

    fn spawn(&self, name: &str, port: u16, id: u32) {
        let child = Command::new("/usr/sbin/mariadbd")
            .args(self.server_args(name, port, id))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mariadbd");
        self.children.lock().unwrap().push((name.to_owned(), child));
    }

    /// Stops `name` (SIGTERM: a clean shutdown) and waits for it to exit.
    fn stop(&self, name: &str) {
        let mut children = self.children.lock().unwrap();
        for (_, child) in children.iter_mut().filter(|(n, _)| n == name) {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
        children.retain(|(n, _)| n != name);
    }

    async fn start() -> MariaPair {
        let dir = tempfile::Builder::new()
            .prefix("mj-mariadb-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        Command::new("chown")
            .args(["mysql:mysql", &dir.path().display().to_string()])
            .status()
            .expect("chown");
        for name in ["primary", "replica"] {
            let out = Command::new("mariadb-install-db")
                .args([
                    "--no-defaults",
                    "--user=mysql",
                    &format!("--datadir={}/{name}", dir.path().display()),
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ])
                .output()
                .expect("mariadb-install-db");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let pair = MariaPair {
            dir,
            primary: free_port(),
            replica: free_port(),
            children: std::sync::Mutex::default(),
        };
        pair.spawn("primary", pair.primary, 1);
        pair.spawn("replica", pair.replica, 2);
        Self::wait_up(pair.primary).await;
        Self::wait_up(pair.replica).await;
        let replica = Database::connect(pair.url("replica", "mysql").as_str())
            .await
            .expect("replica");
        replica
            .execute_unprepared(&format!(
                "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='root', \
                 MASTER_USE_GTID=current_pos",
                pair.primary
            ))
            .await
            .expect("change master");
        replica
            .execute_unprepared("START SLAVE")
            .await
            .expect("start slave");
        replica.close().await.ok();
        pair
    }

    fn url(&self, which: &str, database: &str) -> String {
        let port = if which == "primary" {
            self.primary
        } else {
            self.replica
        };
        format!("mysql://root@127.0.0.1:{port}/{database}")
    }

    /// Creates `name` on the primary (the replica follows).
    async fn create_database(&self, name: &str) {
        let admin = Database::connect(self.url("primary", "mysql").as_str())
            .await
            .expect("primary");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        admin.close().await.ok();
    }

    fn stop_replica(&self) {
        let pid = std::fs::read_to_string(self.dir.path().join("replica.pid")).unwrap_or_default();
        Command::new("kill").arg(pid.trim()).status().expect("kill");
        let started = Instant::now();
        while self.dir.path().join("replica.pid").exists()
            && started.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    async fn start_replica(&self) {
        self.spawn("replica", self.replica, 2);
        Self::wait_up(self.replica).await;
    }
}

impl Drop for MariaPair {
    fn drop(&mut self) {
        self.stop("replica");
        self.stop("primary");
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
    assert!(replica_reads(&health) >= 15, "{health}");
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
