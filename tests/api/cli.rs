//! The command line: `user create`, `import`, `--help`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use mj_tasks::service::Role;

use crate::helpers::{TestDb, TestUser, spawn_app_with};

pub fn mj_tasks(db: &TestDb, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mj-tasks"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mj-tasks");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn field<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{name} in {stdout}"))
}

#[tokio::test]
async fn user_create_prints_an_id_and_a_working_32_character_token() {
    let db = TestDb::new().await;
    let out = mj_tasks(
        &db,
        &["user", "create", "--username", "ops", "--role", "admin"],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = field(&stdout, "token:").to_owned();
    let id: i64 = field(&stdout, "id:").parse().unwrap();
    assert_eq!(token.len(), 32);
    assert!(token.chars().all(|c| c.is_ascii_alphanumeric()));

    let again = mj_tasks(&db, &["user", "create", "--username", "ops"], None);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let app = spawn_app_with(db, |_| {}).await;
    let a = app.get_as(&TestUser { id, token }, "/api/mj/").await;
    assert_eq!(a.json["success"], true, "{}", a.text);
}

const GOOD: &str = r#"{"id":501,"user_id":7,"mj_id":"imp-1","action":"IMAGINE","status":"SUCCESS","progress":"100%","submit_time":1700000000000,"channel_id":3,"quota":250,"video_urls":"[]"}
{"user_id":7,"mj_id":"imp-2","action":"UPSCALE","prompt":"a dog"}
"#;

#[tokio::test]
async fn import_stores_every_line_or_none_and_names_the_bad_line() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, format!("{GOOD}\n{{\"user_id\":\"seven\"}}\n")).unwrap();
    let out = mj_tasks(&db, &["import", bad.to_str().unwrap()], None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 4"), "{stderr}");

    let unknown = dir.path().join("unknown.jsonl");
    std::fs::write(&unknown, "{\"user_id\":1,\"colour\":\"red\"}\n").unwrap();
    let out = mj_tasks(&db, &["import", unknown.to_str().unwrap()], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));

    let app = spawn_app_with(db, |_| {}).await;
    let admin = app.user("admin", Role::Admin).await;
    assert_eq!(
        app.get_as(&admin, "/api/mj/").await.total(),
        0,
        "nothing stored"
    );
    let db = app.into_db();

    let good = dir.path().join("good.jsonl");
    std::fs::write(&good, GOOD).unwrap();
    let out = mj_tasks(&db, &["import", good.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Imported 2 tasks"));

    let app = spawn_app_with(db, |_| {}).await;
    let a = app.get_as(&admin, "/api/mj/").await;
    assert_eq!(a.total(), 2);
    let ids = a.ids();
    assert!(
        ids[0] > 501,
        "a new row gets an id after the imported one: {ids:?}"
    );
    assert_eq!(ids[1], 501);
    let kept = &a.items()[1];
    assert_eq!(kept["mj_id"], "imp-1");
    assert_eq!(kept["channel_id"], 3);
    assert_eq!(kept["submit_time"], 1_700_000_000_000i64);
    assert_eq!(a.items()[0]["prompt"], "a dog");
}

#[tokio::test]
async fn import_reads_standard_input() {
    let db = TestDb::new().await;
    let out = mj_tasks(&db, &["import", "-"], Some(GOOD));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Imported 2 tasks"));
}

#[tokio::test]
async fn help_documents_every_setting() {
    let db = TestDb::sqlite();
    let out = mj_tasks(&db, &["--help"], None);
    let help = String::from_utf8_lossy(&out.stdout);
    for s in [
        "DATABASE_URL",
        "LISTEN",
        "NO_MIGRATE",
        "IMAGE_FORWARD_BASE",
        "DB_MAX_CONNECTIONS",
        "DB_ACQUIRE_TIMEOUT_MS",
        "DB_STATEMENT_TIMEOUT_MS",
        "EXPORT_MAX_ROWS",
        "EXPORT_MAX_PER_USER",
        "EXPORT_MAX_RUNNING",
        "EXPORT_LINK_SECRET",
        "EXPORT_LINK_TTL_SECS",
        "serve",
        "user",
        "import",
        "demo",
        "migrate",
    ] {
        assert!(help.contains(s), "{s} in --help:\n{help}");
    }
}

#[tokio::test]
async fn bench_seeds_and_reports_every_case() {
    let db = TestDb::new().await;
    let url = db.url.clone();
    let bench = ["bench", "--database-url", url.as_str(), "--tasks", "1000"];
    let out = mj_tasks(&db, &[bench.as_slice(), &["--runs", "2"]].concat(), None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("seeded 1000 tasks"), "{stdout}");
    for case in [
        "admin first page (20)",
        "offset last page (legacy REST)",
        "cursor last page (keyset)",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(case))
            .unwrap_or_else(|| panic!("{case} in {stdout}"));
        let median: f64 = line
            .split_whitespace()
            .rev()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert!(median > 0.0, "{line}");
    }
    // Seeding refuses a database that already has users.
    let again = mj_tasks(&db, &bench, None);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("must hold no users"));
}
