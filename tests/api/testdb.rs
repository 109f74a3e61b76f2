//! A database of its own for each test: a SQLite file, or a database created (and dropped)
//! on the PostgreSQL or MySQL server `TEST_DATABASE_URL` names.

use std::sync::atomic::{AtomicU64, Ordering};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

/// Which server the suite runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

/// A database of its own for one test, dropped when the test ends.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    admin_url: Option<String>,
    pub name: String,
    _dir: Option<tempfile::TempDir>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

pub fn unique_name() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("mjt_{}_{}_{}", std::process::id(), n, nanos)
}

fn server_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Whether `TEST_NEW_API_SHAPE=1` asks for new-api's tables in every test database.
pub fn new_api_shape() -> bool {
    std::env::var("TEST_NEW_API_SHAPE").is_ok_and(|v| v == "1")
}

/// Replaces the database name (the URL path) of a server URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{}", &base[..host_end], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl TestDb {
    /// A fresh database on the backend `TEST_DATABASE_URL` names (SQLite when unset).
    /// A URL that is given but unreachable fails the test. With `TEST_NEW_API_SHAPE=1` it
    /// already holds new-api's empty tables, as gorm creates them, so the whole suite runs
    /// against an attached database.
    pub async fn new() -> TestDb {
        let db = match server_url() {
            Some(url) => TestDb::on_server(&url).await,
            None => TestDb::sqlite(),
        };
        if new_api_shape() {
            let conn = db.connect().await;
            for sql in crate::attach::new_api_ddl(db.backend) {
                conn.execute_unprepared(sql).await.expect("new-api DDL");
            }
            conn.close().await.ok();
        }
        db
    }

    /// A fresh database on the server `TEST_DATABASE_URL` names, for the tests that need
    /// PostgreSQL or MySQL (they are `#[ignore]`d, so a plain `cargo test` lists them as
    /// not run): asked for without a server URL, the test fails.
    pub async fn server() -> TestDb {
        let url = server_url().expect(
            "this test needs a database server: set TEST_DATABASE_URL to a postgres:// or mysql:// URL",
        );
        TestDb::on_server(&url).await
    }

    /// A fresh SQLite file in a temporary directory.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        TestDb {
            url,
            backend: Backend::Sqlite,
            admin_url: None,
            name: String::new(),
            _dir: Some(dir),
        }
    }

    /// A fresh database created on the server at `admin_url`.
    pub async fn on_server(admin_url: &str) -> TestDb {
        let backend = if admin_url.starts_with("postgres") {
            Backend::Postgres
        } else if admin_url.starts_with("mysql") || admin_url.starts_with("mariadb") {
            Backend::MySql
        } else {
            panic!("TEST_DATABASE_URL must be a postgres:// or mysql:// URL: {admin_url}");
        };
        let name = unique_name();
        let admin = Database::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("database server {admin_url} unreachable: {e}"));
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        admin.close().await.ok();
        TestDb {
            url: with_database(admin_url, &name),
            backend,
            admin_url: Some(admin_url.to_owned()),
            name,
            _dir: None,
        }
    }

    /// Another handle on an existing database, which it does not drop (for a second
    /// server instance, or a different database user).
    pub fn borrowed(url: &str, backend: Backend) -> TestDb {
        TestDb {
            url: url.to_owned(),
            backend,
            admin_url: None,
            name: String::new(),
            _dir: None,
        }
    }

    /// A plain connection to this test's database (for setup and inspection).
    pub async fn connect(&self) -> DatabaseConnection {
        Database::connect(self.url.as_str())
            .await
            .expect("connect to test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(admin_url) = self.admin_url.clone() else {
            return;
        };
        let name = self.name.clone();
        let backend = self.backend;
        // Drop runs inside the test's runtime: use a thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(admin) = Database::connect(admin_url.as_str()).await {
                    let sql = match backend {
                        Backend::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                        _ => format!("DROP DATABASE IF EXISTS {name}"),
                    };
                    let _ = admin.execute_unprepared(&sql).await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// The users table locked by a session of its own (PostgreSQL or MySQL/MariaDB): every other
/// session's read of it blocks until [`UsersLock::release`].
pub struct UsersLock {
    conn: DatabaseConnection,
    txn: sea_orm::DatabaseTransaction,
    backend: Backend,
}

impl UsersLock {
    /// Locks the users table of the database at `url`.
    pub async fn take(url: &str, backend: Backend) -> UsersLock {
        use sea_orm::TransactionTrait;
        let conn = Database::connect(url).await.expect("locking session");
        let txn = conn.begin().await.expect("begin");
        let sql = match backend {
            Backend::Postgres => "LOCK TABLE users IN ACCESS EXCLUSIVE MODE",
            _ => "LOCK TABLES users WRITE",
        };
        txn.execute_unprepared(sql).await.expect("lock users");
        UsersLock { conn, txn, backend }
    }

    /// Releases the lock and closes the session.
    pub async fn release(self) {
        if self.backend != Backend::Postgres {
            self.txn
                .execute_unprepared("UNLOCK TABLES")
                .await
                .expect("unlock");
        }
        self.txn.rollback().await.ok();
        self.conn.close().await.ok();
    }
}
