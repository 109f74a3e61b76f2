//! A newcomer's first start: every start-up failure is one line that names what to fix, the
//! natural forms of URLs and addresses are understood, and a start that cannot listen
//! changes nothing.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::Duration;

use crate::process::free_port;

fn mj_tasks(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mj-tasks"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run mj-tasks")
}

/// The one line a failed start printed (it must be exactly one, starting `error:`).
fn one_error_line(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line, not a chain: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_owned()
}

/// A server on a free port that answers every connection with bytes no database sends.
fn not_a_database() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 64];
                let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            });
        }
    });
    port
}

#[test]
fn a_refused_or_foreign_port_is_named_in_one_line() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/newapi");
    let line = one_error_line(&mj_tasks(
        &["serve", "--database-url", &url],
        &[],
        dir.path(),
    ));
    assert!(
        line.contains(&format!("127.0.0.1:{port}")) && line.contains("connection refused"),
        "{line}"
    );

    let port = not_a_database();
    let url = format!("postgres://postgres@127.0.0.1:{port}/newapi");
    let line = one_error_line(&mj_tasks(
        &["migrate", "--database-url", &url],
        &[],
        dir.path(),
    ));
    assert!(
        line.contains(&format!("127.0.0.1:{port}"))
            && line.contains("does not speak the PostgreSQL protocol"),
        "{line}"
    );
    assert!(!line.contains("sqlx"), "no driver internals: {line}");
    println!("{line}");
}

#[test]
fn urls_that_name_no_database_or_a_missing_directory_are_refused_with_the_fix() {
    let dir = tempfile::tempdir().expect("dir");
    for (url, says) in [
        ("postgres://postgres@127.0.0.1:5432", "names no database"),
        ("mysql://root@127.0.0.1:3306/", "names no database"),
        ("sqlite://no/such/dir/x.db", "no/such/dir does not exist"),
    ] {
        let out = mj_tasks(&["serve", "--database-url", url], &[], dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        let first = stderr.lines().next().unwrap_or_default();
        assert!(first.contains(says), "{url}: {stderr}");
    }
}

#[test]
fn the_natural_sqlite_form_creates_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    let out = mj_tasks(
        &["migrate", "--database-url", "sqlite://fresh.db"],
        &[],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("fresh.db").exists());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("Applied: "), "{stdout}");
    let again = mj_tasks(
        &["migrate", "--database-url", "sqlite://fresh.db"],
        &[],
        dir.path(),
    );
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "Nothing to do: the database is up to date."
    );
    assert!(
        again.stderr.is_empty(),
        "a one-off command logs no INFO lines: {}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn a_start_that_cannot_listen_changes_nothing_and_tokens_can_be_reissued() {
    let dir = tempfile::tempdir().expect("dir");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = mj_tasks(
        &[
            "serve",
            "--listen",
            &addr,
            "--database-url",
            "sqlite://fresh.db",
        ],
        &[],
        dir.path(),
    );
    let line = one_error_line(&out);
    assert!(line.contains(&addr) && line.contains("taken"), "{line}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("token"),
        "no token printed (and lost)"
    );
    assert!(!dir.path().join("fresh.db").exists(), "nothing created");

    let created = mj_tasks(
        &[
            "user",
            "create",
            "--username",
            "ops",
            "--database-url",
            "sqlite://u.db",
        ],
        &[],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&created.stdout).to_string();
    assert!(
        stdout.contains("role:     user"),
        "the CLI's own role name: {stdout}"
    );
    let reissued = mj_tasks(
        &[
            "user",
            "token",
            "--username",
            "ops",
            "--database-url",
            "sqlite://u.db",
        ],
        &[],
        dir.path(),
    );
    let new = String::from_utf8_lossy(&reissued.stdout).to_string();
    let token = |s: &str| {
        s.lines()
            .find_map(|l| l.trim().strip_prefix("token:"))
            .map(|t| t.trim().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(token(&new).len(), 32, "{new}");
    assert_ne!(token(&new), token(&stdout));
    let unknown = mj_tasks(
        &[
            "user",
            "token",
            "--username",
            "nobody",
            "--database-url",
            "sqlite://u.db",
        ],
        &[],
        dir.path(),
    );
    assert!(one_error_line(&unknown).contains("no user named \"nobody\""));
}

#[test]
fn listen_addresses_booleans_and_numbers_as_people_write_them() {
    use mj_tasks::config::parse_listen;
    assert_eq!(parse_listen("3000"), Ok("127.0.0.1:3000".parse().unwrap()));
    assert_eq!(parse_listen(":3000"), Ok("0.0.0.0:3000".parse().unwrap()));
    assert_eq!(
        parse_listen("localhost:3000"),
        Ok("127.0.0.1:3000".parse().unwrap())
    );
    assert_eq!(
        parse_listen("[::1]:3000"),
        Ok("[::1]:3000".parse().unwrap())
    );
    let e = parse_listen("localhost").err().unwrap_or_default();
    assert!(e.contains("e.g. 127.0.0.1:3000"), "{e}");

    let dir = tempfile::tempdir().expect("dir");
    for (var, value) in [("DB_MAX_CONNECTIONS", "0"), ("DB_ACQUIRE_TIMEOUT_MS", "0")] {
        let out = mj_tasks(&["migrate"], &[(var, value)], dir.path());
        let first = String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(!out.status.success());
        assert!(first.contains("is not in 1.."), "{var}={value}: {first}");
    }
    let port = free_port().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mj-tasks"))
        .args([
            "serve",
            "--listen",
            &port,
            "--database-url",
            "sqlite://b.db",
        ])
        .current_dir(dir.path())
        // Boolean variables take 1/0, yes/no, true/false, on/off.
        .env("NO_MIGRATE", "1")
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut stderr = child.stderr.take().expect("stderr");
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while !seen.contains("playground: ") && std::time::Instant::now() < deadline {
        match stderr.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    let index = http_get::blocking_get(&format!("http://127.0.0.1:{port}/"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.contains(&format!("playground: http://127.0.0.1:{port}/graphql")),
        "{seen}"
    );
    assert!(index.contains("\"graphql\":\"/graphql\""), "{index}");
}

/// One GET over a plain socket (the tests' HTTP client is async).
mod http_get {
    use std::io::{Read, Write};

    pub fn blocking_get(url: &str) -> String {
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut stream = std::net::TcpStream::connect(host).expect("connect");
        write!(
            stream,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        answer
    }
}

/// The demo's printed `curl -N` line (its URL, headers and body, sent as printed) yields a
/// first event within 5 s: the stream opens with a comment at once, and the simulated
/// gateway's first task is alice's.
#[tokio::test]
async fn the_demos_printed_subscription_line_shows_an_event_within_5_s() {
    use std::io::BufRead;
    let port = free_port();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_mj-tasks"))
        .args(["demo", "--listen", &port.to_string(), "--tasks", "50"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("demo");
    let stdout = demo.stdout.take().expect("stdout");
    let (found, line) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok);
        while let Some(l) = lines.next() {
            if l.starts_with("curl -N ") {
                // The command continues on the next line (its body).
                let body = lines.next().unwrap_or_default();
                let _ = found.send(format!("{l}\n{body}"));
            }
        }
    });
    let printed = tokio::task::spawn_blocking(move || line.recv_timeout(Duration::from_secs(60)))
        .await
        .expect("reader")
        .expect("a curl -N line in the demo's output");
    // The quoted parts of the printed command: the headers, then the body.
    let quoted: Vec<&str> = printed.split('\'').skip(1).step_by(2).collect();
    let url = printed
        .split_whitespace()
        .nth(2)
        .expect("the URL after curl -N");
    let mut request = ::reqwest::Client::new().post(url);
    let (body, headers) = quoted.split_last().expect("a body");
    for h in headers {
        let (name, value) = h.split_once(": ").expect("a header");
        request = request.header(name, value);
    }
    let started = std::time::Instant::now();
    let resp = request.body(body.to_string()).send().await.expect("send");
    let mut sse = crate::live_client::Sse::from_response(resp);
    let first = sse.recv(Duration::from_secs(5)).await;
    let _ = demo.kill();
    let _ = demo.wait();
    let (name, data) = first.expect("an event, not the end");
    assert_eq!(name, "next", "{data}");
    assert!(data.contains("midjourneyTaskEvents"), "{data}");
    println!(
        "first event {:?} after the request: {data}",
        started.elapsed()
    );
}

#[test]
fn a_value_refused_from_the_environment_names_its_variable() {
    let dir = tempfile::tempdir().expect("dir");
    for (var, value, flag) in [
        ("NO_MIGRATE", "maybe", "--no-migrate"),
        ("DB_MAX_CONNECTIONS", "0", "--db-max-connections"),
        ("EXPORT_LINK_TTL_SECS", "5", "--export-link-ttl-secs"),
    ] {
        let out = mj_tasks(&["serve"], &[(var, value)], dir.path());
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(flag), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "the value came from the environment variable {var}"
            )),
            "{var}: {stderr}"
        );
    }
    // Typed on the command line, the flag is what is named (no note about the environment).
    let out = mj_tasks(
        &["serve", "--db-max-connections", "0"],
        &[("DB_MAX_CONNECTIONS", "0")],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--db-max-connections") && !stderr.contains("environment variable"),
        "{stderr}"
    );
}
