//! A failing network between the service and PostgreSQL: a PostgreSQL cluster of the
//! test's own runs in a network namespace of its own, reached over a veth pair; the
//! service (this process) is on the other side. Loss and the partition are real packet
//! drops (iptables `statistic` and `DROP` inside the namespace); the latency is added by a
//! relay that holds each chunk 100 ms in each direction, because this machine's kernel has
//! no `sch_netem` (`tc qdisc add … netem` answers "Specified qdisc kind is unknown").
//!
//! Every request must answer within the request timeout (a 503 or 504 envelope when the
//! database cannot), never hang; the service must serve again within 2 s of the network's
//! return, holding no more connections than its pool. Ignored: it needs root, `ip`,
//! `iptables-legacy` and PostgreSQL's binaries; `.ci/run` runs it.

use std::process::Command;
use std::time::{Duration, Instant};

use mj_tasks::service::Role;
use sea_orm::{ConnectionTrait, Database, Statement};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::db_servers::PgCluster;
use crate::helpers::{Backend, Task, TestApp, TestDb, TestUser, spawn_app_with};
use crate::load::{answer_kind, mixed_request};

/// The longest a request may take in these tests (`--request-timeout-ms`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace joined to this one by a veth pair; deleted on drop.
struct Netns {
    name: String,
    host_if: String,
    inner_if: String,
    /// The namespace's address.
    addr: String,
}

impl Netns {
    fn new() -> Netns {
        let tag = std::process::id() % 100_000;
        let net = (std::process::id() % 200) + 20;
        let ns = Netns {
            name: format!("mjt{tag}"),
            host_if: format!("mjh{tag}"),
            inner_if: format!("mjd{tag}"),
            addr: format!("10.231.{net}.2"),
        };
        // A namespace left by an earlier run of the same pid is replaced.
        let _ = Command::new("ip").args(["netns", "del", &ns.name]).output();
        let _ = Command::new("ip")
            .args(["link", "del", &ns.host_if])
            .output();
        run("ip", &["netns", "add", &ns.name]);
        run(
            "ip",
            &[
                "link",
                "add",
                &ns.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &ns.inner_if,
            ],
        );
        run("ip", &["link", "set", &ns.inner_if, "netns", &ns.name]);
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("10.231.{net}.1/24"),
                "dev",
                &ns.host_if,
            ],
        );
        run("ip", &["link", "set", &ns.host_if, "up"]);
        ns.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", ns.addr),
            "dev",
            &ns.inner_if,
        ]);
        ns.exec(&["ip", "link", "set", &ns.inner_if, "up"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn exec(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", self.name.as_str()];
        all.extend_from_slice(args);
        run("ip", &all);
    }

    /// Drops packets crossing the veth both ways: all of them (`None`), or at random
    /// with probability `p`.
    fn drop_packets(&self, p: Option<f64>) {
        let probability = p.map(|p| p.to_string());
        for (chain, dir) in [("INPUT", "-i"), ("OUTPUT", "-o")] {
            let mut rule = vec!["iptables-legacy", "-A", chain, dir, self.inner_if.as_str()];
            if let Some(p) = &probability {
                rule.extend_from_slice(&[
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    p,
                ]);
            }
            rule.extend_from_slice(&["-j", "DROP"]);
            self.exec(&rule);
        }
    }

    /// The network as it was.
    fn heal(&self) {
        self.exec(&["iptables-legacy", "-F", "INPUT"]);
        self.exec(&["iptables-legacy", "-F", "OUTPUT"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A TCP relay on loopback to `target` that holds every chunk `delay` before passing it
/// on, each way (latency without netem).
async fn latency_relay(target: String, delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay");
    let port = listener.local_addr().expect("relay addr").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&target).await else {
                    return;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::join!(pump(cr, sw, delay), pump(sr, cw, delay));
            });
        }
    });
    port
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due.into()).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0
            || tx
                .send((Instant::now() + delay, buf[..n].to_vec()))
                .is_err()
        {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// A service instance on `url` with the timeouts these tests hold it to.
async fn instance(url: &str, migrate: bool) -> TestApp {
    spawn_app_with(TestDb::borrowed(url, Backend::Postgres), |c| {
        c.no_migrate = !migrate;
        c.server.request_timeout_ms = REQUEST_TIMEOUT.as_millis() as u64;
        c.db.db_acquire_timeout_ms = 2_000;
        c.db.db_statement_timeout_ms = 3_000;
        c.db.db_max_connections = 5;
    })
    .await
}

/// What one case saw.
#[derive(Default)]
struct Seen {
    /// Answers by status (and GraphQL error code: GraphQL answers 200 with `errors`).
    statuses: std::collections::BTreeMap<String, usize>,
    /// Requests with no answer within the request timeout and 2 s more.
    hung: usize,
    took: Vec<Duration>,
}

impl Seen {
    fn line(&mut self, case: &str) -> String {
        self.took.sort();
        let pct = |p: f64| {
            self.took
                .get(((self.took.len().max(1) - 1) as f64 * p) as usize)
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        format!(
            "| {case} | {} | {:?} | {} | {:.0} | {:.0} | {:.0} |",
            self.took.len() + self.hung,
            self.statuses,
            self.hung,
            pct(0.5),
            pct(0.99),
            pct(1.0),
        )
    }
}

/// `clients` clients sending REST pages and GraphQL pages for `for_how_long`.
async fn load(app: &TestApp, user: &TestUser, clients: usize, for_how_long: Duration) -> Seen {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT + Duration::from_secs(2))
        .build()
        .expect("client");
    let until = Instant::now() + for_how_long;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, user, base) = (client.clone(), user.clone(), app.url(""));
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut i = c;
            while Instant::now() < until {
                let started = Instant::now();
                let status = match mixed_request(&client, &base, &user, i).await {
                    Ok((status, body)) => {
                        // A refusal is a documented envelope, never driver text.
                        assert!(
                            status == 200
                                || body.contains("\"success\":false")
                                || body.contains("\"code\""),
                            "{status}: {body}"
                        );
                        assert!(
                            !body.contains("sqlx") && !body.contains("Connection Error"),
                            "{body}"
                        );
                        Some(answer_kind(status, &body))
                    }
                    Err(e) if e.is_timeout() => None,
                    Err(e) => panic!("request failed: {e}"),
                };
                seen.push((status, started.elapsed()));
                i += 1;
            }
            seen
        }));
    }
    let mut seen = Seen::default();
    for t in tasks {
        for (status, took) in t.await.expect("client") {
            match status {
                Some(s) => {
                    *seen.statuses.entry(s).or_insert(0) += 1;
                    seen.took.push(took);
                }
                None => seen.hung += 1,
            }
        }
    }
    seen
}

/// An answer the service documents for a database it cannot reach (or a success).
fn documented(status: &str) -> bool {
    [
        "200",
        "503",
        "504",
        "200 UNAVAILABLE",
        "200 TIMEOUT",
        "503 UNAVAILABLE",
        "504 TIMEOUT",
    ]
    .contains(&status)
}

/// Connections PostgreSQL holds for `database` as user `postgres` (the main instance's),
/// asked directly once the network is back.
async fn server_connections(admin_url: &str, database: &str) -> i64 {
    let admin = Database::connect(admin_url)
        .await
        .expect("admin connection");
    let row = admin
        .query_one_raw(Statement::from_string(
            admin.get_database_backend(),
            format!(
                "SELECT COUNT(*)::int8 AS n FROM pg_stat_activity WHERE datname = '{database}' AND usename = 'postgres'"
            ),
        ))
        .await
        .expect("pg_stat_activity")
        .expect("a row");
    let n = row.try_get::<i64>("", "n").expect("n");
    admin.close().await.ok();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, ip, iptables-legacy and PostgreSQL's binaries (run with --ignored network::)"]
async fn a_failing_network_never_hangs_a_request_and_the_service_recovers() {
    let ns = Netns::new();
    let cluster = PgCluster::init_in(Some(&ns.name), &ns.addr);
    let admin_url = cluster.url("postgres");
    let admin = Database::connect(&admin_url)
        .await
        .expect("the cluster over the veth");
    admin
        .execute_unprepared("CREATE DATABASE net")
        .await
        .expect("create database");
    // The instance behind the latency relay signs in as another user, so its connections
    // are told apart from the main instance's.
    admin
        .execute_unprepared("CREATE ROLE slow LOGIN SUPERUSER")
        .await
        .expect("create role");
    admin.close().await.ok();
    let url = cluster.url("net");
    let app = instance(&url, true).await;
    let alice = app.user("alice", Role::Common).await;
    for i in 0..50 {
        app.task(Task::of(alice.id).mj(&format!("net-{i}"))).await;
    }
    let mut table = vec![
        "| case | requests | statuses | hung | p50 ms | p99 ms | max ms |".to_owned(),
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |".to_owned(),
    ];

    let mut clean = load(&app, &alice, 4, Duration::from_secs(2)).await;
    table.push(clean.line("healthy network"));
    assert_eq!(clean.hung, 0);
    assert_eq!(clean.statuses.keys().collect::<Vec<_>>(), ["200"]);

    // 200 ms more per round trip: slower, all answered.
    let relay = latency_relay(
        format!("{}:{}", ns.addr, cluster.port),
        Duration::from_millis(100),
    )
    .await;
    let slow = instance(&format!("postgres://postgres@127.0.0.1:{relay}/net"), false).await;
    let mut latency = load(&slow, &alice, 4, Duration::from_secs(4)).await;
    table.push(latency.line("200 ms latency (relay)"));
    assert_eq!(latency.hung, 0);
    assert!(
        latency.statuses.keys().all(|s| documented(s)),
        "{:?}",
        latency.statuses
    );
    drop(slow);

    // 5 % of packets lost each way: TCP retransmits; every request answers in time.
    ns.drop_packets(Some(0.05));
    let mut lossy = load(&app, &alice, 4, Duration::from_secs(5)).await;
    ns.heal();
    table.push(lossy.line("5 % loss"));
    assert_eq!(lossy.hung, 0);
    assert!(
        lossy.statuses.keys().all(|s| documented(s)),
        "{:?}",
        lossy.statuses
    );

    // A 10 s partition: 503/504 envelopes within the request timeout, none hangs.
    ns.drop_packets(None);
    let mut cut = load(&app, &alice, 4, Duration::from_secs(10)).await;
    ns.heal();
    let healed = Instant::now();
    table.push(cut.line("10 s partition"));
    assert_eq!(cut.hung, 0, "a request hung during the partition");
    assert!(
        cut.statuses.keys().all(|s| documented(s)),
        "{:?}",
        cut.statuses
    );
    assert!(
        cut.took
            .iter()
            .all(|t| *t <= REQUEST_TIMEOUT + Duration::from_millis(500)),
        "an answer came later than the request timeout"
    );

    // Back within 2 s of the network's return.
    let recovered = loop {
        let answer = app.get_as(&alice, "/api/mj/self?p=1&page_size=10").await;
        if answer.status == 200 {
            break healed.elapsed();
        }
        assert!(
            healed.elapsed() < Duration::from_secs(30),
            "never recovered: {} {}",
            answer.status,
            answer.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut after = load(&app, &alice, 4, Duration::from_secs(2)).await;
    table.push(after.line("after the partition"));
    // Connections the pool gave up on during the partition end on the server once their
    // close crosses the network again (the kernel retransmits it): no more than the pool's
    // own are left.
    let mut held = server_connections(&admin_url, "net").await;
    let closing = Instant::now();
    while held > 5 && closing.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        held = server_connections(&admin_url, "net").await;
    }
    let pool = app.service.pool_status();
    for line in &table {
        println!("{line}");
    }
    println!(
        "recovered {} ms after the network returned; {held} server connections of the instance {} ms later (the pool: {pool:?})",
        recovered.as_millis(),
        closing.elapsed().as_millis(),
    );
    assert!(
        recovered <= Duration::from_secs(2),
        "recovered only after {recovered:?}"
    );
    assert_eq!(after.hung, 0);
    assert_eq!(after.statuses.keys().collect::<Vec<_>>(), ["200"]);
    assert!(held <= 5, "{held} connections: the pool holds at most 5");
    drop(cluster);
}
