//! Grouped statistics against an in-memory model, on the backend under test: generated rows
//! (NULLs, seconds and milliseconds, equal times, bucket edges, the days Europe/Berlin and
//! New York change their clocks) and generated groupings (keys, bucket unit, time zone,
//! range), through GraphQL `groups` on both logs; each answer equals the model's, the
//! too-many-groups refusal included. `GROUPS_CASES` (default 40) cases; the count is printed.
//! Fixed cases check the daylight-saving day lengths and the admin-only groupings.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, env_cases, runtime, spawn_app};
use crate::task_log::{Row, insert};

/// 2026-10-23 00:00 UTC: ten days around Europe/Berlin's autumn change (10-25) and New
/// York's (11-01).
const BASE_MS: i64 = 1_792_713_600_000;
const DAY: i64 = 86_400_000;
const STATUSES: [Option<&str>; 5] = [
    Some("SUCCESS"),
    Some("FAILURE"),
    Some("IN_PROGRESS"),
    Some("success"),
    None,
];
const ACTIONS: [Option<&str>; 3] = [Some("IMAGINE"), Some("UPSCALE"), None];
const ZONES: [&str; 4] = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"];
const UNITS: [Option<&str>; 5] = [None, Some("HOUR"), Some("DAY"), Some("WEEK"), Some("MONTH")];
const KEYS: [&str; 4] = ["STATUS", "ACTION", "CHANNEL", "USER"];

#[derive(Clone, Debug)]
struct Gen {
    user: i64,
    status: Option<&'static str>,
    action: Option<&'static str>,
    channel: Option<i64>,
    quota: Option<i64>,
    /// Milliseconds; `None`: NULL.
    submit_ms: Option<i64>,
    /// Stored as seconds (a Midjourney row may be either; the task log always is).
    in_seconds: bool,
    /// Milliseconds after submit (may be negative); `None`: unfinished (NULL or 0).
    took_ms: Option<i64>,
}

fn gen_row() -> impl Strategy<Value = Gen> {
    // Times: anywhere in the ten days, or exactly on / next to a local midnight.
    let edge = (0i64..10, -1i64..=1, 0usize..3).prop_map(|(d, nudge, zone)| {
        let offset = [0, -3_600_000, 4 * 3_600_000][zone];
        BASE_MS + d * DAY + offset + nudge * 1000
    });
    let time = prop_oneof![0i64..10 * DAY / 1000].prop_map(|s| BASE_MS + s * 1000);
    (
        0usize..2,
        0usize..5,
        0usize..3,
        prop::option::of(0i64..3),
        prop::option::of(0i64..50),
        prop::option::weighted(0.9, prop_oneof![time, edge]),
        any::<bool>(),
        prop::option::of(prop_oneof![Just(0i64), -5_000i64..600_000]),
    )
        .prop_map(
            |(u, s, a, channel, quota, submit_ms, in_seconds, took)| Gen {
                user: u as i64,
                status: STATUSES[s],
                action: ACTIONS[a],
                channel,
                quota,
                submit_ms,
                in_seconds,
                took_ms: took.map(|t| t / 1000 * 1000),
            },
        )
}

#[derive(Clone, Debug)]
struct Ask {
    keys: Vec<usize>,
    unit: Option<&'static str>,
    zone: &'static str,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
}

fn gen_ask() -> impl Strategy<Value = Ask> {
    (
        prop::collection::btree_set(0usize..4, 0..=3),
        0usize..5,
        0usize..4,
        prop::option::of(-DAY..12 * DAY),
        prop::option::of(-DAY..12 * DAY),
    )
        .prop_map(|(keys, unit, zone, from, to)| {
            let (from, to) = match (from, to) {
                (Some(a), Some(b)) if a > b => (Some(b), Some(a)),
                other => other,
            };
            Ask {
                keys: keys.into_iter().collect(),
                unit: UNITS[unit],
                zone: ZONES[zone],
                from_ms: from.map(|f| BASE_MS + f),
                to_ms: to.map(|t| BASE_MS + t).or(Some(BASE_MS + 11 * DAY)),
            }
        })
}

/// The stored value of a time in milliseconds.
fn stored(ms: i64, in_seconds: bool) -> i64 {
    if in_seconds { ms / 1000 } else { ms }
}

/// Stores `rows` in the log `tasks` (the generic one) or `midjourneys`, replacing what was
/// there; owners are `users`.
async fn store(app: &TestApp, tasks: bool, rows: &[Gen], users: &[TestUser; 2]) {
    app.sql(if tasks {
        "DELETE FROM tasks"
    } else {
        "DELETE FROM midjourneys"
    })
    .await;
    let opt = |v: Option<i64>| v.map_or("NULL".to_owned(), |v| v.to_string());
    let text = |v: Option<&str>| v.map_or("NULL".to_owned(), |v| format!("'{v}'"));
    if tasks {
        let stored_rows: Vec<Row> = rows
            .iter()
            .enumerate()
            .map(|(i, g)| Row {
                status: g.status,
                action: g.action,
                channel_id: g.channel,
                quota: g.quota,
                submit_time: g.submit_ms.map(|s| s / 1000),
                finish_time: finish(g).map(|f| f / 1000),
                ..Row::of(i as i64 + 1, users[g.user as usize].id)
            })
            .collect();
        insert(app, &stored_rows).await;
        return;
    }
    for (i, g) in rows.iter().enumerate() {
        let submit = g.submit_ms.map(|s| stored(s, g.in_seconds));
        let finish = finish(g).map(|f| stored(f, g.in_seconds));
        app.sql(&format!(
            "INSERT INTO midjourneys (id, user_id, mj_id, status, action, channel_id, quota, submit_time, finish_time) VALUES ({}, {}, 'm{i}', {}, {}, {}, {}, {}, {})",
            i + 1,
            users[g.user as usize].id,
            text(g.status),
            text(g.action),
            opt(g.channel),
            opt(g.quota),
            opt(submit),
            opt(finish),
        ))
        .await;
    }
}

/// The stored finish time of a row in milliseconds (`Some(0)`: finished unset as 0).
fn finish(g: &Gen) -> Option<i64> {
    match (g.took_ms, g.submit_ms) {
        (Some(0), _) => Some(0),
        (Some(t), Some(s)) => Some(s + t),
        (Some(t), None) => Some(BASE_MS + t),
        (None, _) => None,
    }
}

/// A local midnight as an instant (the first one, should the zone repeat it).
fn midnight(tz: Tz, date: NaiveDate) -> i64 {
    tz.from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap())
        .earliest()
        .expect("midnight exists in these zones")
        .timestamp_millis()
}

/// The model's bucket boundaries for `[from, to)`.
fn model_bounds(tz: Tz, unit: &str, from: i64, to: i64) -> Vec<i64> {
    let local = |ms: i64| {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .unwrap()
            .with_timezone(&tz)
    };
    let start_of = |ms: i64| -> i64 {
        let l = local(ms);
        match unit {
            "HOUR" => ms - i64::from(l.minute()) * 60_000 - ms.rem_euclid(60_000),
            "DAY" => midnight(tz, l.date_naive()),
            "WEEK" => midnight(
                tz,
                l.date_naive() - Duration::days(i64::from(l.weekday().num_days_from_monday())),
            ),
            _ => midnight(tz, NaiveDate::from_ymd_opt(l.year(), l.month(), 1).unwrap()),
        }
    };
    let mut bounds = vec![start_of(from)];
    loop {
        let last = *bounds.last().unwrap();
        if last >= to && bounds.len() >= 2 {
            break;
        }
        // The next start: step past the longest such unit and take its start.
        let step = match unit {
            "HOUR" => 3_600_000 + 60_000,
            "DAY" => 25 * 3_600_000 + 60_000,
            "WEEK" => 7 * DAY + 3_600_000 + 60_000,
            _ => 31 * DAY + 3_600_000 + 60_000,
        };
        let mut next = start_of(last + step);
        // A unit shorter than the step (a 23-hour day) was skipped over: step back.
        while start_of(next - 1) > last {
            next = start_of(next - 1);
        }
        bounds.push(next);
    }
    bounds
}

fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100);
    Some(sorted[rank - 1])
}

/// The model's answer: the `groups` JSON, or the refusal's code.
fn model(
    rows: &[Gen],
    ask: &Ask,
    users: &[TestUser; 2],
    now_ms: i64,
) -> Result<Vec<Value>, String> {
    let tz: Tz = ask.zone.parse().unwrap();
    if ask.unit.is_some()
        && let (Some(from), Some(to)) = (ask.from_ms, ask.to_ms)
        && from > to
    {
        return Err("BAD_FILTER".into());
    }
    let bounds = ask.unit.map(|unit| {
        let to = ask.to_ms.unwrap_or(now_ms);
        let from = ask.from_ms.unwrap_or_else(|| {
            let b = model_bounds(tz, unit, to, to);
            let mut start = b[0];
            for _ in 1..30 {
                start = model_bounds(tz, unit, start - 1, start - 1)[0];
            }
            start
        });
        model_bounds(tz, unit, from, to)
    });
    if let Some(b) = &bounds
        && b.len() - 1 > 1000
    {
        return Err("BAD_FILTER".into());
    }
    let range = match &bounds {
        Some(b) => Some((b[0], b[b.len() - 1])),
        None => match (ask.from_ms, ask.to_ms) {
            (None, None) => None,
            (f, t) => Some((f.unwrap_or(i64::MIN), t.unwrap_or(i64::MAX))),
        },
    };
    type Key = (Option<String>, Option<String>, Option<i64>, Option<i64>);
    let mut groups: BTreeMap<(Key, usize), Vec<&Gen>> = BTreeMap::new();
    for g in rows {
        // Read back as the service reads it: seconds scaled, NULL as 0.
        let submit = g
            .submit_ms
            .map_or(0, |s| if g.in_seconds { s / 1000 * 1000 } else { s });
        if let Some((from, to)) = range
            && !(submit >= from && submit < to)
        {
            continue;
        }
        let index = match &bounds {
            Some(b) => b.iter().rposition(|start| *start <= submit).unwrap(),
            None => 0,
        };
        let key: Key = (
            ask.keys
                .contains(&0)
                .then(|| g.status.unwrap_or("").to_owned()),
            ask.keys
                .contains(&1)
                .then(|| g.action.unwrap_or("").to_owned()),
            ask.keys.contains(&2).then(|| g.channel.unwrap_or(0)),
            ask.keys.contains(&3).then(|| users[g.user as usize].id),
        );
        groups.entry((key, index)).or_default().push(g);
    }
    let mut series: BTreeSet<Key> = groups.keys().map(|(k, _)| k.clone()).collect();
    if ask.keys.is_empty() {
        series.insert((None, None, None, None));
    }
    let indexes: Vec<usize> = match &bounds {
        Some(b) => (0..b.len() - 1).collect(),
        None => vec![0],
    };
    let mut keys_in_order: Vec<(Key, usize)> = Vec::new();
    if bounds.is_some() {
        for k in &series {
            for i in &indexes {
                keys_in_order.push((k.clone(), *i));
            }
        }
    } else {
        keys_in_order = groups.keys().cloned().collect();
        if keys_in_order.is_empty() && ask.keys.is_empty() {
            keys_in_order.push(((None, None, None, None), 0));
        }
    }
    if keys_in_order.len() > 1000 {
        return Err("BAD_FILTER".into());
    }
    let iso = |ms: i64| {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
    };
    Ok(keys_in_order
        .into_iter()
        .map(|(key, i)| {
            let members = groups.get(&(key.clone(), i)).cloned().unwrap_or_default();
            let count = members.len() as i64;
            let ok = members
                .iter()
                .filter(|g| g.status == Some("SUCCESS"))
                .count() as i64;
            let ko = members
                .iter()
                .filter(|g| g.status == Some("FAILURE"))
                .count() as i64;
            let quota: i64 = members.iter().map(|g| g.quota.unwrap_or(0)).sum();
            let mut durations: Vec<i64> = members
                .iter()
                .filter_map(|g| {
                    let s = g
                        .submit_ms
                        .map(|s| if g.in_seconds { s / 1000 * 1000 } else { s })?;
                    let f = finish(g)?;
                    let f = if g.in_seconds { f / 1000 * 1000 } else { f };
                    (s > 0 && f > 0).then_some(f - s)
                })
                .collect();
            durations.sort();
            let n = durations.len() as i64;
            let sum: i64 = durations.iter().sum();
            json!({
                "status": key.0, "action": key.1, "channelId": key.2, "userId": key.3,
                "bucketStart": bounds.as_ref().map(|b| iso(b[i])),
                "bucketEnd": bounds.as_ref().map(|b| iso(b[i + 1])),
                "count": count, "successCount": ok, "failureCount": ko,
                "successRate": (count > 0).then(|| ok as f64 / count as f64),
                "quotaSum": quota, "durationCount": n,
                "durationAvgMs": (n > 0).then(|| sum as f64 / n as f64),
                "durationP50Ms": percentile(&durations, 50),
                "durationP95Ms": percentile(&durations, 95),
                "durationMaxMs": durations.last(),
            })
        })
        .collect())
}

const FIELDS: &str = "status action channelId userId bucketStart bucketEnd count successCount failureCount successRate quotaSum durationCount durationAvgMs durationP50Ms durationP95Ms durationMaxMs";

fn document(tasks: bool, ask: &Ask) -> String {
    let keys: Vec<&str> = ask.keys.iter().map(|k| KEYS[*k]).collect();
    let mut args = vec![
        format!("by: [{}]", keys.join(", ")),
        format!("timeZone: \"{}\"", ask.zone),
    ];
    if let Some(u) = ask.unit {
        args.push(format!("bucket: {u}"));
    }
    let at = |ms: i64| {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339()
    };
    if let Some(f) = ask.from_ms {
        args.push(format!("from: \"{}\"", at(f)));
    }
    if let Some(t) = ask.to_ms {
        args.push(format!("to: \"{}\"", at(t)));
    }
    let root = if tasks {
        "taskStats"
    } else {
        "midjourneyTaskStats"
    };
    format!(
        "{{ {root} {{ groups({}) {{ {FIELDS} }} }} }}",
        args.join(", ")
    )
}

/// Floats compared to a relative 1e-9 (the mean is divided on different machines alike,
/// but JSON may round the last digit).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-9 * x.abs().max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// How long one generated case (its rows stored, its groupings asked) may take; one takes
/// well under a second.
const CASE_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

#[test]
fn grouped_statistics_equal_the_model_on_generated_rows() {
    let cases = env_cases("GROUPS_CASES", 40);
    let rt = runtime();
    let (app, users) = rt.block_on(async {
        let app = spawn_app().await;
        let admin = app.user("boss", mj_tasks::service::Role::Admin).await;
        let alice = app.user("alice", mj_tasks::service::Role::Common).await;
        (app, [admin, alice])
    });
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/api/groups_model.regressions",
        ))),
        // Shrinking a failure runs the database again for every step: bounded, so a failing
        // case is printed within minutes.
        max_shrink_time: 120_000,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec(gen_row(), 0..40),
        prop::collection::vec(gen_ask(), 1..4),
        any::<bool>(),
    );
    let ran = std::cell::Cell::new(0u32);
    runner
        .run(&strategy, |(rows, asks, tasks)| {
            ran.set(ran.get() + 1);
            let case = async {
                store(&app, tasks, &rows, &users).await;
                for ask in &asks {
                    let answer = app.gql(&users[0], &document(tasks, ask)).await;
                    let root = if tasks {
                        "taskStats"
                    } else {
                        "midjourneyTaskStats"
                    };
                    let expected = model(&rows, ask, &users, Utc::now().timestamp_millis());
                    match expected {
                        Err(code) => prop_assert_eq!(
                            answer.codes(),
                            vec![code],
                            "{:?}: {}",
                            ask,
                            answer.text
                        ),
                        Ok(groups) => {
                            let got = &answer.json["data"][root]["groups"];
                            prop_assert!(
                                same(got, &Value::Array(groups.clone())),
                                "{:?}\n got {}\nwant {}",
                                ask,
                                got,
                                Value::Array(groups)
                            );
                        }
                    }
                }
                Ok(())
            };
            // A case that never answers fails (and is printed) instead of hanging the run.
            rt.block_on(async { tokio::time::timeout(CASE_WITHIN, case).await })
                .unwrap_or_else(|_| {
                    Err(TestCaseError::fail(format!(
                        "no answer within {CASE_WITHIN:?}: {asks:?}"
                    )))
                })
        })
        .unwrap();
    println!(
        "grouped statistics: {} generated cases (rows and groupings) matched the model on {:?}",
        ran.get(),
        app.db.backend
    );
}

#[tokio::test]
async fn daylight_saving_days_last_23_and_25_hours_and_empty_days_are_zeros() {
    let app = spawn_app().await;
    let admin = app.user("boss", mj_tasks::service::Role::Admin).await;
    // One task at 12:00 local on 2026-03-28 (Berlin, +01:00) and one at 23:30 local on
    // 2026-10-25 (+01:00 again after the change).
    app.sql(&format!(
        "INSERT INTO midjourneys (id, user_id, mj_id, status, submit_time, finish_time) VALUES (1, {id}, 'a', 'SUCCESS', 1774695600000, 1774695660000), (2, {id}, 'b', 'FAILURE', 1792967400000, NULL)",
        id = admin.id
    ))
    .await;
    let doc = |from: &str, to: &str| {
        format!(
            "{{ midjourneyTaskStats {{ groups(bucket: DAY, timeZone: \"Europe/Berlin\", from: \"{from}\", to: \"{to}\") {{ bucketStart bucketEnd count durationMaxMs }} }} }}"
        )
    };
    let a = app
        .gql(&admin, &doc("2026-03-28T00:00:00Z", "2026-03-30T12:00:00Z"))
        .await;
    assert_eq!(
        a.json["data"]["midjourneyTaskStats"]["groups"],
        json!([
            {"bucketStart": "2026-03-27T23:00:00+00:00", "bucketEnd": "2026-03-28T23:00:00+00:00", "count": 1, "durationMaxMs": 60000},
            {"bucketStart": "2026-03-28T23:00:00+00:00", "bucketEnd": "2026-03-29T22:00:00+00:00", "count": 0, "durationMaxMs": null},
            {"bucketStart": "2026-03-29T22:00:00+00:00", "bucketEnd": "2026-03-30T22:00:00+00:00", "count": 0, "durationMaxMs": null},
        ]),
        "the spring day lasts 23 hours: {}",
        a.text
    );
    let a = app
        .gql(&admin, &doc("2026-10-25T12:00:00Z", "2026-10-25T23:00:00Z"))
        .await;
    assert_eq!(
        a.json["data"]["midjourneyTaskStats"]["groups"],
        json!([
            {"bucketStart": "2026-10-24T22:00:00+00:00", "bucketEnd": "2026-10-25T23:00:00+00:00", "count": 1, "durationMaxMs": null},
        ]),
        "the autumn day lasts 25 hours: {}",
        a.text
    );
}

#[tokio::test]
async fn channel_and_user_groupings_are_for_admins_and_limits_are_clear() {
    let app = spawn_app().await;
    let alice = app.user("alice", mj_tasks::service::Role::Common).await;
    for by in ["CHANNEL", "USER"] {
        for root in ["midjourneyTaskStats", "taskStats"] {
            let a = app
                .gql(
                    &alice,
                    &format!("{{ {root} {{ groups(by: [{by}]) {{ count }} }} }}"),
                )
                .await;
            assert_eq!(a.codes(), ["FORBIDDEN"], "{root} by {by}: {}", a.text);
        }
    }
    let a = app
        .gql(&alice, "{ midjourneyTaskStats { groups(bucket: HOUR, from: \"2020-01-01T00:00:00Z\", to: \"2021-01-01T00:00:00Z\") { count } } }")
        .await;
    assert_eq!(a.codes(), ["BAD_FILTER"]);
    assert!(a.text.contains("1000 buckets"), "{}", a.text);
    let a = app
        .gql(
            &alice,
            "{ midjourneyTaskStats { groups(timeZone: \"Nowhere/Land\") { count } } }",
        )
        .await;
    assert_eq!(a.codes(), ["BAD_FILTER"]);
    let a = app
        .gql(&alice, "{ midjourneyTaskStats { groups(by: [STATUS], bucket: DAY) { status bucketStart count } } }")
        .await;
    assert_eq!(
        a.json["data"]["midjourneyTaskStats"]["groups"]
            .as_array()
            .map(Vec::len),
        Some(0),
        "no tasks, keys asked for: no series"
    );
    let a = app
        .gql(
            &alice,
            "{ midjourneyTaskStats { groups(bucket: DAY) { count } } }",
        )
        .await;
    assert_eq!(
        a.json["data"]["midjourneyTaskStats"]["groups"]
            .as_array()
            .map(Vec::len),
        Some(30),
        "30 empty days by default"
    );
}
