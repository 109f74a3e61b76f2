//! Read load on a server over HTTP, as a frontend makes it: REST pages and GraphQL queries in
//! turn, each user asking for their own tasks. Closed loop (a fixed number of clients, each
//! sending its next request when the last is answered) or open loop (a fixed rate).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use mj_tasks::service::{NewUser, Service};

use crate::helpers::{TestDb, TestUser};
use crate::process::percentile;

/// Seeds `tasks` tasks for `users` light users (and an admin, and a heavy user) on a
/// migrated database; returns the admin and the light users.
pub async fn seed_readers(db: &TestDb, tasks: usize, users: usize) -> (TestUser, Vec<TestUser>) {
    let service = Service::new(db.connect().await, None);
    let seeded = service.seed_bench(tasks, users).await.expect("seed");
    let user = |u: &NewUser| TestUser {
        id: u.id,
        token: u.access_token.clone(),
    };
    (user(&seeded.admin), seeded.light.iter().map(user).collect())
}

/// Latencies of the answered requests and what went wrong with the others.
#[derive(Debug, Default)]
pub struct Tally {
    pub latencies: Vec<Duration>,
    pub errors: Vec<String>,
}

impl Tally {
    pub fn requests(&self) -> usize {
        self.latencies.len() + self.errors.len()
    }

    /// The `p` quantile of the latencies, in milliseconds.
    pub fn ms(&mut self, p: f64) -> f64 {
        self.latencies.sort();
        percentile(&self.latencies, p).as_secs_f64() * 1000.0
    }
}

/// Request `i` (REST and GraphQL in turn) of `user`; `Err` unless it is a 200 with the
/// expected shape.
pub async fn read_once(
    client: &reqwest::Client,
    base: &str,
    user: &TestUser,
    i: usize,
) -> Result<(), String> {
    let rest = i.is_multiple_of(2);
    let request = if rest {
        client.get(format!("{base}/api/mj/self?p={}&page_size=10", 1 + i % 3))
    } else {
        client.post(format!("{base}/graphql")).json(&json!({
            "query": "{ midjourneyTasks(page: {offset: {pageSize: 10}}) { totalCount nodes { mjId status progress } } }"
        }))
    };
    let response = request
        .header("Authorization", &user.token)
        .header("New-Api-User", user.id.to_string())
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| format!("body: {e}"))?;
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let fine = status == 200
        && if rest {
            body["success"] == json!(true)
        } else {
            body["errors"].is_null() && body["data"]["midjourneyTasks"].is_object()
        };
    if fine {
        Ok(())
    } else {
        Err(format!("{status} {text}"))
    }
}

/// `concurrency` clients reading for `duration`.
pub async fn closed_loop(
    base: &str,
    users: &[TestUser],
    concurrency: usize,
    duration: Duration,
) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let until = Instant::now() + duration;
    let client = reqwest::Client::new();
    let mut clients = Vec::new();
    for c in 0..concurrency {
        let (tally, client, base, users) = (
            tally.clone(),
            client.clone(),
            base.to_owned(),
            users.to_vec(),
        );
        clients.push(tokio::spawn(async move {
            let mut i = c;
            while Instant::now() < until {
                let started = Instant::now();
                let outcome = read_once(&client, &base, &users[i % users.len()], i).await;
                let mut t = tally.lock().unwrap();
                match outcome {
                    Ok(()) => t.latencies.push(started.elapsed()),
                    Err(e) => t.errors.push(e),
                }
                i += concurrency;
            }
        }));
    }
    for c in clients {
        c.await.expect("client");
    }
    std::mem::take(&mut *tally.lock().unwrap())
}

/// `rate` requests a second for `duration`, each sent on time whatever the others do.
pub async fn open_loop(base: &str, users: &[TestUser], rate: u32, duration: Duration) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let client = reqwest::Client::new();
    let every = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let until = Instant::now() + duration;
    let mut sent = Vec::new();
    let mut i = 0usize;
    while Instant::now() < until {
        ticks.tick().await;
        let (tally, client, base, user) = (
            tally.clone(),
            client.clone(),
            base.to_owned(),
            users[i % users.len()].clone(),
        );
        sent.push(tokio::spawn(async move {
            let started = Instant::now();
            let outcome = read_once(&client, &base, &user, i).await;
            let mut t = tally.lock().unwrap();
            match outcome {
                Ok(()) => t.latencies.push(started.elapsed()),
                Err(e) => t.errors.push(e),
            }
        }));
        i += 1;
        if sent.len() >= 4096 {
            sent.retain(|h| !h.is_finished());
        }
    }
    for h in sent {
        h.await.expect("request");
    }
    std::mem::take(&mut *tally.lock().unwrap())
}

/// The `i`-th request of a frontend's mix, as `user` on the server at `base`: a REST page
/// (even `i`) or a GraphQL page with its total (odd): its status and body.
pub async fn mixed_request(
    client: &reqwest::Client,
    base: &str,
    user: &TestUser,
    i: usize,
) -> reqwest::Result<(u16, String)> {
    let request = if i.is_multiple_of(2) {
        client.get(format!("{base}/api/mj/self?p=1&page_size=10"))
    } else {
        client
            .post(format!("{base}/graphql"))
            .json(&json!({"query": "{ midjourneyTasks { totalCount nodes { mjId } } }"}))
    };
    let answer = request
        .header("Authorization", format!("Bearer {}", user.token))
        .header("New-Api-User", user.id.to_string())
        .send()
        .await?;
    let status = answer.status().as_u16();
    Ok((status, answer.text().await.unwrap_or_default()))
}

/// What an answer was: its status, with the first GraphQL error's code (GraphQL answers
/// 200 with `errors`), e.g. `200`, `503`, `200 UNAVAILABLE`.
pub fn answer_kind(status: u16, body: &str) -> String {
    let code = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        v["errors"][0]["extensions"]["code"]
            .as_str()
            .map(str::to_owned)
    });
    match code {
        Some(code) => format!("{status} {code}"),
        None => status.to_string(),
    }
}
