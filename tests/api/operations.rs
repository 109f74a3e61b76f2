//! What an operator sees: JSON log lines carrying a request id that is also returned to the
//! client.

use std::time::Duration;

use crate::helpers::TestDb;
use crate::process::ServerProcess;

#[tokio::test]
async fn json_logs_carry_the_request_id_the_response_returns() {
    let db = TestDb::new().await;
    let server = ServerProcess::start_logging(&db.url, &["--log-format", "json"], "info").await;
    let client = reqwest::Client::new();
    // The client's own id is kept; without one, the service makes one.
    let given = client
        .get(server.url("/api/mj/self"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .expect("request");
    assert_eq!(given.status(), 401);
    assert_eq!(given.headers()["x-request-id"], "trace-abc-123");
    let made = client
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("request");
    let made_id = made.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(made_id.len(), 36, "a UUID: {made_id}");

    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let finished = |id: &str| {
        lines.iter().find(|l| {
            l["span"]["request_id"] == id && l["fields"]["message"] == "finished processing request"
        })
    };
    let line = finished("trace-abc-123").unwrap_or_else(|| panic!("no line for the id:\n{log}"));
    println!("{line}");
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["span"]["path"], "/api/mj/self");
    assert_eq!(line["fields"]["status"], 401);
    assert!(finished(&made_id).is_some(), "the made id is logged too");
    // Tokens never reach the log.
    assert!(!log.contains("Authorization") && !log.contains("authorization"));
}
