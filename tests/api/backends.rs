//! Production backends: an outage cut mid-run through a proxy the test controls, several
//! instances on one database, a read-only database user, and byte-identical REST answers
//! across SQLite, PostgreSQL and MySQL/MariaDB.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mj_tasks::service::Role;
use sea_orm::{ConnectionTrait, Database};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::attach::{NEW_API_ALICE, new_api_database};
use crate::helpers::{Backend, Task, TestApp, TestDb, TestUser, spawn_app_with};
use crate::testdb::UsersLock;

/// A TCP proxy to the database server that the test can cut and restore.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (o, l) = (open.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    drop(client); // the database is "down": connections are refused
                    continue;
                }
                let upstream = upstream.clone();
                l.lock().await.push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Proxy {
            port,
            open,
            links,
            accept,
        }
    }

    /// Cuts every live connection and refuses new ones.
    async fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for link in self.links.lock().await.drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Polls until the same server process answers `u`'s one task again (at most 10 s).
async fn serves_again(app: &TestApp, u: &TestUser) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = app.get_as(u, "/api/mj/self").await;
        if a.status == 200 {
            assert_eq!(a.total(), 1);
            return;
        }
        assert!(Instant::now() < deadline, "no recovery: {}", a.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `host:port` of a server URL.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap().to_owned()
}

#[tokio::test]
#[ignore = "needs a database server: TEST_DATABASE_URL (run with --include-ignored)"]
async fn an_outage_answers_503_quickly_and_the_same_process_recovers() {
    let db = TestDb::server().await;
    let upstream = host_port(&db.url);
    let proxy = Proxy::start(upstream.clone()).await;
    let proxied = db
        .url
        .replacen(&upstream, &format!("127.0.0.1:{}", proxy.port), 1);
    let setup = spawn_app_with(db, |_| {}).await;
    let u = setup.user("alice", Role::Common).await;
    setup.task(Task::of(u.id)).await;

    let acquire_ms = 1000;
    let backend = setup.db.backend;
    let app = spawn_app_with(TestDb::borrowed(&proxied, backend), |c| {
        c.db.db_acquire_timeout_ms = acquire_ms;
        c.db.db_max_connections = 3;
    })
    .await;
    assert_eq!(app.get_as(&u, "/api/mj/self").await.total(), 1);

    proxy.cut().await;
    for _ in 0..3 {
        let started = Instant::now();
        let a = app.get_as(&u, "/api/mj/self").await;
        let took = started.elapsed();
        assert_eq!(a.status, 503, "{}", a.text);
        assert_eq!(
            a.text,
            r#"{"success":false,"message":"database unavailable"}"#
        );
        // Bounded by the acquire timeout (plus a connect attempt), never hanging.
        assert!(
            took < Duration::from_millis(acquire_ms * 3 + 2000),
            "took {took:?}"
        );
    }
    let a = app.gql(&u, "{ midjourneyTasks { nodes { id } } }").await;
    assert_eq!(a.codes(), ["UNAVAILABLE"], "{}", a.text);
    assert_eq!(app.get_with("/healthz", &[]).await.status, 503);

    proxy.restore();
    serves_again(&app, &u).await;
    drop(app);
    drop(setup);
}

#[tokio::test]
async fn several_instances_on_one_database_give_the_same_answers() {
    let db = TestDb::new().await;
    let url = db.url.clone();
    let backend = db.backend;
    // Start two instances at once: their migrations race on the same database.
    let (first, second) = tokio::join!(
        spawn_app_with(db, |_| {}),
        spawn_app_with(TestDb::borrowed(&url, backend), |_| {})
    );
    let third = spawn_app_with(TestDb::borrowed(&url, backend), |_| {}).await;
    let admin = first.user("admin", Role::Admin).await;
    let u = second.user("alice", Role::Common).await;
    for i in 0..30 {
        let owner = if i % 2 == 0 { u.id } else { admin.id };
        first
            .task(Task::of(owner).channel(i % 3).submitted(i * 10))
            .await;
    }
    let cases: [(&TestUser, &str); 5] = [
        (&admin, "/api/mj/?p=2&page_size=7"),
        (&admin, "/api/mj/?channel_id=1"),
        (&u, "/api/mj/self?start_timestamp=50&end_timestamp=200"),
        (&u, "/api/mj/self?page_size=3"),
        (&u, "/api/mj/?p=1"),
    ];
    for (user, path) in cases {
        let a = first.get_as(user, path).await;
        let b = second.get_as(user, path).await;
        let c = third.get_as(user, path).await;
        assert_eq!((a.status, &a.text), (b.status, &b.text), "{path}");
        assert_eq!((a.status, &a.text), (c.status, &c.text), "{path}");
    }
    // A write through one instance's database is seen by the others at once.
    second.task(Task::of(u.id).mj("fresh")).await;
    assert_eq!(
        third.get_as(&u, "/api/mj/self?mj_id=fresh").await.total(),
        1
    );
    drop((second, third));
}

#[tokio::test]
async fn a_read_only_database_user_serves_with_no_migrate() {
    let db = new_api_database().await;
    let backend = db.backend;
    let (ro_url, cleanup): (String, Option<String>) = match backend {
        Backend::Sqlite => (db.url.replace("mode=rwc", "mode=ro"), None),
        Backend::Postgres => {
            let role = format!("ro_{}", db.name);
            let conn = db.connect().await;
            for sql in [
                format!("CREATE ROLE {role} LOGIN"),
                format!("GRANT CONNECT ON DATABASE {} TO {role}", db.name),
                format!("GRANT USAGE ON SCHEMA public TO {role}"),
                format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"),
            ] {
                conn.execute_unprepared(&sql).await.unwrap();
            }
            conn.close().await.ok();
            let rest = db.url.split_once('@').unwrap().1;
            (
                format!("postgres://{role}@{rest}"),
                Some(format!("DROP ROLE IF EXISTS {role}")),
            )
        }
        Backend::MySql => {
            let user = format!("ro_{}", &db.name[db.name.len().saturating_sub(20)..]);
            let conn = db.connect().await;
            for sql in [
                format!("CREATE USER '{user}'@'%'"),
                format!("CREATE USER '{user}'@'localhost'"),
                format!("GRANT SELECT ON {}.* TO '{user}'@'%'", db.name),
                format!("GRANT SELECT ON {}.* TO '{user}'@'localhost'", db.name),
            ] {
                conn.execute_unprepared(&sql).await.unwrap();
            }
            conn.close().await.ok();
            let rest = db.url.split_once('@').unwrap().1;
            (
                format!("mysql://{user}@{rest}"),
                Some(format!(
                    "DROP USER IF EXISTS '{user}'@'%', '{user}'@'localhost'"
                )),
            )
        }
    };
    let app = spawn_app_with(TestDb::borrowed(&ro_url, backend), |c| c.no_migrate = true).await;
    let alice = NEW_API_ALICE;
    let a = app.get_with("/api/mj/self", &alice).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.ids(), vec![3, 2, 1]);
    let g = app
        .client
        .post(app.url("/graphql"))
        .header("Authorization", alice[0].1)
        .header("New-Api-User", "2")
        .json(&serde_json::json!({"query": "{ midjourneyTaskStats { count } }"}))
        .send()
        .await
        .unwrap();
    let g: serde_json::Value = g.json().await.unwrap();
    assert_eq!(g["data"]["midjourneyTaskStats"]["count"], 3, "{g}");
    // The user really is read-only: a write through it fails.
    let ro = Database::connect(ro_url.as_str()).await.unwrap();
    assert!(
        ro.execute_unprepared("DELETE FROM midjourneys")
            .await
            .is_err()
    );
    ro.close().await.ok();
    drop(app);
    if let Some(sql) = cleanup {
        let conn = db.connect().await;
        if backend == Backend::Postgres {
            // Revoke its grants here first: a role holding privileges cannot be dropped.
            let role = sql.trim_start_matches("DROP ROLE IF EXISTS ");
            conn.execute_unprepared(&format!("DROP OWNED BY {role}"))
                .await
                .unwrap();
        }
        conn.execute_unprepared(&sql).await.unwrap();
        conn.close().await.ok();
    }
}

/// Waits until a statement of the server is blocked on a lock (seen from `conn`).
async fn wait_for_blocked_statement(conn: &sea_orm::DatabaseConnection, backend: Backend) {
    use sea_orm::Statement;
    let sql = match backend {
        Backend::Postgres => {
            "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%users%'"
        }
        _ => {
            "SELECT COUNT(*) AS n FROM information_schema.processlist WHERE state LIKE '%lock%' AND info LIKE '%users%'"
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = conn
            .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
            .await
            .unwrap()
            .unwrap();
        if row.try_get::<i64>("", "n").unwrap() > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the request never blocked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
#[ignore = "needs a database server: TEST_DATABASE_URL (run with --include-ignored)"]
async fn an_exhausted_pool_answers_503_within_the_acquire_timeout() {
    let db = TestDb::server().await;
    let url = db.url.clone();
    let backend = db.backend;
    let setup = spawn_app_with(db, |_| {}).await;
    let u = setup.user("alice", Role::Common).await;
    setup.task(Task::of(u.id)).await;
    let app = Arc::new(
        spawn_app_with(TestDb::borrowed(&url, backend), |c| {
            c.db.db_max_connections = 1;
            c.db.db_acquire_timeout_ms = 500;
            c.db.db_statement_timeout_ms = 3000;
        })
        .await,
    );

    // Another session locks the users table: the next request's user lookup blocks while
    // holding the pool's only connection.
    let lock = UsersLock::take(&url, backend).await;
    let blocked = {
        let (app, u) = (app.clone(), u.clone());
        tokio::spawn(async move { app.get_as(&u, "/api/mj/self").await })
    };
    let observer = Database::connect(url.as_str()).await.unwrap();
    wait_for_blocked_statement(&observer, backend).await;

    let started = Instant::now();
    let a = app.get_as(&u, "/api/mj/self").await;
    assert_eq!(a.status, 503, "{}", a.text);
    assert_eq!(
        a.text,
        r#"{"success":false,"message":"database unavailable"}"#
    );
    assert!(
        started.elapsed() < Duration::from_millis(500 + 1500),
        "took {:?}",
        started.elapsed()
    );

    if backend == Backend::Postgres {
        // The statement timeout ends the blocked request: 503, not a hang.
        let a = blocked.await.unwrap();
        assert_eq!(a.status, 503, "{}", a.text);
        lock.release().await;
    } else {
        lock.release().await;
        let a = blocked.await.unwrap();
        assert!(a.status == 200 || a.status == 503, "{}", a.text);
    }
    // With the lock gone, the same process serves again.
    serves_again(&app, &u).await;
    observer.close().await.ok();
}
