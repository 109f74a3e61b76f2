//! Database servers that a test starts, stops and restarts itself: a PostgreSQL cluster
//! (fresh with `initdb`, or a streaming replica of the local server with `pg_basebackup`)
//! run by `pg_ctl` as the `postgres` system user, and a MariaDB server (`mariadb-install-db`
//! then `mariadbd`) on a free port. Each is stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sea_orm::Database;

use crate::process::free_port;

/// Polls `check` until it holds (at most `within`), returning how long it took.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
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

fn as_postgres(program: &Path, args: &[&str]) -> std::process::Output {
    as_postgres_in(None, program, args)
}

/// A command running `program` as the `postgres` system user, inside network namespace
/// `netns` when given.
fn postgres_command(netns: Option<&str>, program: &Path) -> Command {
    let mut command = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "runuser"]);
            c
        }
        None => Command::new("runuser"),
    };
    command.args(["-u", "postgres", "--"]).arg(program);
    command
}

/// `program` as the `postgres` system user, inside network namespace `netns` when given.
fn as_postgres_in(netns: Option<&str>, program: &Path, args: &[&str]) -> std::process::Output {
    let out = postgres_command(netns, program)
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

fn chown(path: &Path, owner: &str) {
    let ok = Command::new("chown")
        .args([owner, &path.display().to_string()])
        .status()
        .expect("chown")
        .success();
    assert!(ok, "chown {owner} {}", path.display());
}

/// A PostgreSQL cluster of the test's own.
pub struct PgCluster {
    dir: tempfile::TempDir,
    pub port: u16,
    bin: PathBuf,
    /// The network namespace it runs in, and the address it listens on there.
    netns: Option<String>,
    pub host: String,
}

impl PgCluster {
    fn empty() -> PgCluster {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's binaries under /usr/lib/postgresql")
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("pg_basebackup").exists())
            .expect("pg_basebackup");
        let dir = tempfile::Builder::new()
            .prefix("mj-pg-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        chown(dir.path(), "postgres:postgres");
        PgCluster {
            dir,
            port: free_port(),
            bin,
            netns: None,
            host: "127.0.0.1".to_owned(),
        }
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Writes the cluster's own configuration: trust on loopback, the socket in its directory.
    fn configure(&self, extra: &str) {
        for (file, text) in [
            (
                "postgresql.conf",
                format!(
                    "listen_addresses = '{}'\nmax_connections = 100\n{extra}",
                    self.host
                ),
            ),
            (
                "pg_hba.conf",
                format!(
                    "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all {}/24 trust\n",
                    self.host
                ),
            ),
            ("pg_ident.conf", String::new()),
        ] {
            let path = self.dir.path().join("data").join(file);
            std::fs::write(&path, text).expect("config");
            chown(&path, "postgres:postgres");
        }
    }

    /// A fresh cluster (`initdb`), started.
    pub fn init() -> PgCluster {
        PgCluster::init_in(None, "127.0.0.1")
    }

    /// A fresh cluster started inside network namespace `netns`, listening on `host`.
    pub fn init_in(netns: Option<&str>, host: &str) -> PgCluster {
        let mut cluster = PgCluster::empty();
        cluster.netns = netns.map(str::to_owned);
        cluster.host = host.to_owned();
        let cluster = cluster;
        as_postgres(
            &cluster.bin.join("initdb"),
            &[
                "-D",
                &cluster.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        cluster.configure("fsync = off\n");
        cluster.start();
        cluster
    }

    /// A base backup of the server at 127.0.0.1:`primary_port`, started as a hot standby.
    pub fn replica_of(primary_port: u16) -> PgCluster {
        let cluster = PgCluster::empty();
        as_postgres(
            &cluster.bin.join("pg_basebackup"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary_port.to_string(),
                "-U",
                "postgres",
                "-D",
                &cluster.data(),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        );
        cluster.configure("hot_standby = on\n");
        cluster.start();
        cluster
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        let opts = format!("-p {} -k {}", self.port, self.dir.path().display());
        let log = self.dir.path().join("log").display().to_string();
        as_postgres_in(
            self.netns.as_deref(),
            &self.bin.join("pg_ctl"),
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        );
    }

    /// Stops the server (fast: open sessions are ended) and waits until it is down.
    pub fn stop(&self) {
        as_postgres_in(
            self.netns.as_deref(),
            &self.bin.join("pg_ctl"),
            &["-D", &self.data(), "-m", "fast", "-w", "stop"],
        );
    }

    /// The URL of `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@{}:{}/{database}", self.host, self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = postgres_command(self.netns.as_deref(), &self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// A MariaDB server of the test's own (no grants: `--skip-grant-tables`).
pub struct MariaServer {
    dir: tempfile::TempDir,
    pub port: u16,
    args: Vec<String>,
    child: Mutex<Option<Child>>,
}

impl MariaServer {
    /// Installs a data directory and starts the server with `extra` arguments (its
    /// `server-id` is `id`); `binlog` turns the binary log on (for a primary).
    pub async fn start(id: u32, binlog: bool, extra: &[&str]) -> MariaServer {
        let dir = tempfile::Builder::new()
            .prefix("mj-mariadb-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        chown(dir.path(), "mysql:mysql");
        let d = dir.path().display().to_string();
        let out = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=mysql",
                &format!("--datadir={d}/data"),
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
        let port = free_port();
        let mut args: Vec<String> = vec![
            "--no-defaults".into(),
            "--user=mysql".into(),
            format!("--datadir={d}/data"),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".into(),
            format!("--socket={d}/mysqld.sock"),
            format!("--pid-file={d}/mysqld.pid"),
            format!("--log-error={d}/mysqld.err"),
            format!("--server-id={id}"),
            "--skip-grant-tables".into(),
        ];
        if binlog {
            args.push(format!("--log-bin={d}/data/bin"));
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let server = MariaServer {
            dir,
            port,
            args,
            child: Mutex::default(),
        };
        server.restart().await;
        server
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub async fn restart(&self) {
        let child = Command::new("/usr/sbin/mariadbd")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd");
        *self.child.lock().unwrap() = Some(child);
        let url = self.url("mysql");
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

    /// Kills the server (SIGKILL: a crash) and waits until it has exited.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server (SIGTERM: a clean shutdown) and waits until it has exited.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
        let pid = self.dir.path().join("mysqld.pid");
        let started = Instant::now();
        while pid.exists() && started.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for MariaServer {
    fn drop(&mut self) {
        self.stop();
    }
}
