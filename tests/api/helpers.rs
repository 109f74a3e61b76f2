//! Test helpers: a fresh database per test (SQLite always; PostgreSQL or MySQL when
//! `TEST_DATABASE_URL` names a server), the real server on a random port, and request
//! helpers.

use std::net::SocketAddr;

use entity::midjourney;
use mj_tasks::app::App;
use mj_tasks::config::{DbConfig, ServeArgs};
use mj_tasks::service::live::Live;
use mj_tasks::service::{Role, Service};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait};

pub use crate::testdb::{Backend, TestDb, unique_name};
use serde_json::Value;
use tokio::sync::oneshot;

/// A user with credentials.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: i64,
    pub token: String,
}

/// A running server on its own database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub db: TestDb,
    pub service: Service,
    pub live: Live,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the real server on a fresh database with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestDb::new().await, |_| {}).await
}

/// Starts the real server on `db`, after `tweak` adjusts the settings.
pub async fn spawn_app_with(db: TestDb, tweak: impl FnOnce(&mut ServeArgs)) -> TestApp {
    let mut cfg = ServeArgs::new(
        DbConfig::for_url(db.url.clone()),
        "127.0.0.1:0".parse().expect("addr"),
    );
    // Tests check that a ban or a new token takes effect on the very next request; the
    // token cache has tests of its own.
    cfg.auth_cache_ms = 0;
    tweak(&mut cfg);
    if let Some(pooled) = through_pgbouncer(&cfg.db.database_url, cfg.no_migrate).await {
        cfg.db.database_url = pooled;
        cfg.no_migrate = true;
    }
    let app = App::build(&cfg).await.expect("build app");
    let addr = app.local_addr().expect("local addr");
    let service = app.service().clone();
    let live = app.live().clone();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        db,
        service,
        live,
        client: reqwest::Client::new(),
        stop: Some(tx),
    }
}

/// With `TEST_PGBOUNCER_URL` (a transaction-pooling PgBouncer in front of the PostgreSQL
/// server `TEST_DATABASE_URL` names), the URL a server on PostgreSQL `url` is started with:
/// the same database through PgBouncer, `pgbouncer=true`, after the migrations ran on
/// PostgreSQL directly (unless the test serves with `--no-migrate`): they cannot run
/// through a transaction pooler. Other backends, and other database users than
/// PgBouncer's, connect directly.
async fn through_pgbouncer(url: &str, no_migrate: bool) -> Option<String> {
    let pgbouncer = std::env::var("TEST_PGBOUNCER_URL")
        .ok()
        .filter(|u| !u.is_empty())?;
    let user = |u: &str| u.split("://").nth(1)?.split('@').next().map(str::to_owned);
    if !url.starts_with("postgres") || user(url) != user(&pgbouncer) {
        return None;
    }
    if !no_migrate {
        mj_tasks::app::migrate_only(&DbConfig::for_url(url.to_owned()))
            .await
            .expect("migrations, straight to PostgreSQL");
    }
    let name = url.split('?').next()?.rsplit('/').next()?;
    Some(format!(
        "{}?pgbouncer=true",
        crate::testdb::with_database(&pgbouncer, name)
    ))
}

/// An answer: status, raw body and parsed JSON (Null when not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub text: String,
    pub json: Value,
    pub content_type: String,
}

impl Answer {
    pub fn items(&self) -> &Vec<Value> {
        self.json["data"]["items"].as_array().expect("items array")
    }
    pub fn ids(&self) -> Vec<i64> {
        self.items()
            .iter()
            .map(|i| i["id"].as_i64().expect("id"))
            .collect()
    }
    pub fn total(&self) -> i64 {
        self.json["data"]["total"].as_i64().expect("total")
    }
    pub fn message(&self) -> &str {
        self.json["message"].as_str().expect("message")
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Creates a user through the service.
    pub async fn user(&self, name: &str, role: Role) -> TestUser {
        let u = self
            .service
            .create_user(name, role)
            .await
            .expect("create user");
        TestUser {
            id: u.id,
            token: u.access_token,
        }
    }

    /// Stores a task and returns its id.
    pub async fn task(&self, t: Task) -> i64 {
        let conn = self.db.connect().await;
        let id = t.into_active().insert(&conn).await.expect("insert task").id;
        conn.close().await.ok();
        id
    }

    /// Runs raw SQL against the test database.
    pub async fn sql(&self, sql: &str) {
        let conn = self.db.connect().await;
        conn.execute_unprepared(sql).await.expect("sql");
        conn.close().await.ok();
    }

    /// GET `path` with the given headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.client.get(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        into_answer(req.send().await.expect("request")).await
    }

    /// GET `path` as `user` (Authorization: Bearer token, New-Api-User: id).
    pub async fn get_as(&self, user: &TestUser, path: &str) -> Answer {
        self.get_as_with(user, path, &[]).await
    }

    /// GET `path` as `user`, with `extra` headers (e.g. `Accept-Language`).
    pub async fn get_as_with(&self, user: &TestUser, path: &str, extra: &[(&str, &str)]) -> Answer {
        let auth = format!("Bearer {}", user.token);
        let id = user.id.to_string();
        let mut headers = vec![
            ("Authorization", auth.as_str()),
            ("New-Api-User", id.as_str()),
        ];
        headers.extend_from_slice(extra);
        self.get_with(path, &headers).await
    }
}

pub async fn into_answer(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        text,
        json,
        content_type,
    }
}

/// A task to store; unset fields get plausible values.
#[derive(Clone, Debug, Default)]
pub struct Task {
    pub user_id: i64,
    pub mj_id: Option<String>,
    pub action: Option<String>,
    pub status: Option<String>,
    pub progress: Option<String>,
    pub channel_id: i64,
    pub submit_time: i64,
    pub quota: i64,
    pub image_url: Option<String>,
    pub prompt: Option<String>,
    pub fail_reason: Option<String>,
    pub finish_time: Option<i64>,
}

impl Task {
    pub fn of(user_id: i64) -> Task {
        Task {
            user_id,
            ..Default::default()
        }
    }
    pub fn mj(mut self, mj_id: &str) -> Task {
        self.mj_id = Some(mj_id.to_owned());
        self
    }
    pub fn channel(mut self, c: i64) -> Task {
        self.channel_id = c;
        self
    }
    pub fn submitted(mut self, t: i64) -> Task {
        self.submit_time = t;
        self
    }
    pub fn image(mut self, url: &str) -> Task {
        self.image_url = Some(url.to_owned());
        self
    }
    pub fn action(mut self, a: &str) -> Task {
        self.action = Some(a.to_owned());
        self
    }
    pub fn status(mut self, s: &str) -> Task {
        self.status = Some(s.to_owned());
        self
    }
    pub fn progress(mut self, p: &str) -> Task {
        self.progress = Some(p.to_owned());
        self
    }
    pub fn quota(mut self, q: i64) -> Task {
        self.quota = q;
        self
    }
    pub fn prompt(mut self, p: &str) -> Task {
        self.prompt = Some(p.to_owned());
        self
    }
    pub fn fail(mut self, reason: &str) -> Task {
        self.fail_reason = Some(reason.to_owned());
        self
    }
    pub fn finished_at(mut self, t: i64) -> Task {
        self.finish_time = Some(t);
        self
    }

    fn into_active(self) -> midjourney::ActiveModel {
        let mj_id = self
            .mj_id
            .unwrap_or_else(|| format!("mj-{}-{}", self.user_id, unique_name()));
        midjourney::ActiveModel {
            code: Set(Some(1)),
            user_id: Set(Some(self.user_id)),
            action: Set(Some(self.action.unwrap_or_else(|| "IMAGINE".into()))),
            mj_id: Set(Some(mj_id)),
            prompt: Set(Some(self.prompt.clone().unwrap_or_else(|| "a cat".into()))),
            prompt_en: Set(Some(self.prompt.unwrap_or_else(|| "a cat".into()))),
            description: Set(Some("Submit success".into())),
            state: Set(Some(String::new())),
            submit_time: Set(Some(self.submit_time)),
            start_time: Set(Some(self.submit_time + 10)),
            finish_time: Set(Some(self.finish_time.unwrap_or(self.submit_time + 20))),
            image_url: Set(Some(self.image_url.unwrap_or_default())),
            video_url: Set(Some(String::new())),
            video_urls: Set(Some("[]".into())),
            status: Set(Some(self.status.unwrap_or_else(|| "SUCCESS".into()))),
            progress: Set(Some(self.progress.unwrap_or_else(|| "100%".into()))),
            fail_reason: Set(Some(self.fail_reason.unwrap_or_default())),
            channel_id: Set(Some(self.channel_id)),
            quota: Set(Some(self.quota)),
            buttons: Set(Some("[]".into())),
            properties: Set(Some("{}".into())),
            ..Default::default()
        }
    }
}

impl TestApp {
    /// `users` common users named `{prefix}{u}`, each owning `per_user` unfinished tasks
    /// (`0%`, `IN_PROGRESS`) with mj ids `{prefix}-{u}-{t}`; each user with its mj ids.
    pub async fn users_with_unfinished_tasks(
        &self,
        prefix: &str,
        users: usize,
        per_user: usize,
    ) -> Vec<(TestUser, Vec<String>)> {
        let mut out = Vec::with_capacity(users);
        for u in 0..users {
            let user = self.user(&format!("{prefix}{u}"), Role::Common).await;
            let mut mjs = Vec::with_capacity(per_user);
            for t in 0..per_user {
                let mj = format!("{prefix}-{u}-{t}");
                self.task(
                    Task::of(user.id)
                        .mj(&mj)
                        .progress("0%")
                        .status("IN_PROGRESS"),
                )
                .await;
                mjs.push(mj);
            }
            out.push((user, mjs));
        }
        out
    }

    /// Tells the server to shut down (as SIGTERM does).
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Stops the server and hands back its database (for a second start on it).
    pub fn into_db(mut self) -> TestDb {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let placeholder = TestDb::borrowed("", self.db.backend);
        std::mem::replace(&mut self.db, placeholder)
    }
}

impl TestApp {
    /// POSTs a GraphQL query with `variables`, as `user` (or without credentials).
    pub async fn gql_vars(&self, user: Option<&TestUser>, query: &str, variables: Value) -> Answer {
        let mut req = self
            .client
            .post(self.url("/graphql"))
            .json(&serde_json::json!({ "query": query, "variables": variables }));
        if let Some(u) = user {
            req = req
                .header("Authorization", format!("Bearer {}", u.token))
                .header("New-Api-User", u.id.to_string());
        }
        into_answer(req.send().await.expect("request")).await
    }

    /// POSTs a GraphQL query as `user`.
    pub async fn gql(&self, user: &TestUser, query: &str) -> Answer {
        self.gql_vars(Some(user), query, Value::Null).await
    }
}

impl Answer {
    /// The `extensions.code` of every GraphQL error.
    pub fn codes(&self) -> Vec<String> {
        error_codes(&self.json)
    }

    /// The ids of `data.midjourneyTasks.nodes`.
    pub fn node_ids(&self) -> Vec<i64> {
        self.json["data"]["midjourneyTasks"]["nodes"]
            .as_array()
            .unwrap_or_else(|| panic!("nodes in {}", self.text))
            .iter()
            .map(|n| n["id"].as_i64().expect("id"))
            .collect()
    }
}

/// A whole-number setting of a generated test from the environment (`default` when unset).
pub fn env_cases(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A runtime for the generated tests, which drive their async checks from proptest's
/// synchronous runner.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The `extensions.code` of every GraphQL error in a response (`<none>` for an error without
/// one).
pub fn error_codes(json: &Value) -> Vec<String> {
    json["errors"]
        .as_array()
        .map(|errs| {
            errs.iter()
                .map(|e| {
                    e["extensions"]["code"]
                        .as_str()
                        .unwrap_or("<none>")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}
