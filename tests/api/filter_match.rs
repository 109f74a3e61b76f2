//! The filter evaluated in memory (what decides which changed rows a subscriber gets) equals
//! the SQL filter: generated data sets (NULLs, case, trailing-space and non-ASCII variants)
//! and generated filters (every operator, `and`/`or`/`not` nesting, empty lists and
//! sub-filters), answered by the database through the service and by `TaskFilter::matches`
//! on the rows as read back; the same for the generic task log's filter. `FILTER_MATCH_CASES` sets the number of data sets (default 64,
//! eight filters each); shrunk failures are kept in `tests/api/filter_match.regressions`.

use std::cell::Cell;

use entity::midjourney;
use mj_tasks::service::LogFilter;
use mj_tasks::service::{
    NumFilter, OffsetPage, PageRequest, PlatformTaskFilter, PlatformTaskQuery, PlatformTaskRecord,
    Role, StringFilter, TaskFilter, TaskQuery, TaskRecord, Tasks, TextFilter, Viewer,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};

use crate::helpers::{env_cases, runtime, spawn_app};

const STRINGS: &[&str] = &[
    "abc", "ABC", "abc ", "ábc", "", "SUCCESS", "success", "100%",
];
const PROGRESS: &[&str] = &["100%", "50%", "", "100% ", "100%\u{a0}"];
const TEXTS: &[&str] = &[
    "fox",
    "Fox",
    "FOX%",
    "a_b",
    "Ärger",
    "ärger im Büro",
    "ΟΔΟΣ",
    "",
    " fox",
];
const PATTERNS: &[&str] = &[
    "fox", "FO", "%", "_", "ärg", "ÄRG", "büro", "οδ", "Σ", " ", "b",
];
const INTS: &[i64] = &[-1, 0, 1, 2, 5, 1_700_000_000_000];

#[derive(Clone, Debug)]
struct Row {
    user_id: Option<i64>,
    channel_id: Option<i64>,
    quota: Option<i64>,
    submit_time: Option<i64>,
    mj_id: Option<&'static str>,
    status: Option<&'static str>,
    action: Option<&'static str>,
    progress: Option<&'static str>,
    image_url: Option<&'static str>,
    prompt: Option<&'static str>,
    fail_reason: Option<&'static str>,
}

fn opt<T: Clone + std::fmt::Debug + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop_oneof![1 => Just(None), 4 => s.prop_map(Some)].boxed()
}

fn pick(pool: &'static [&'static str]) -> proptest::sample::Select<&'static str> {
    proptest::sample::select(pool)
}

fn int() -> proptest::sample::Select<i64> {
    proptest::sample::select(INTS)
}

fn row() -> impl Strategy<Value = Row> {
    (
        (opt(int()), opt(int()), opt(int()), opt(int())),
        (opt(pick(STRINGS)), opt(pick(STRINGS)), opt(pick(STRINGS))),
        (
            opt(pick(PROGRESS)),
            opt(pick(&["", "https://i/1.png", " "])),
            opt(pick(TEXTS)),
            opt(pick(TEXTS)),
        ),
    )
        .prop_map(
            |((user_id, channel_id, quota, submit_time), (mj_id, status, action), rest)| Row {
                user_id,
                channel_id,
                quota,
                submit_time,
                mj_id,
                status,
                action,
                progress: rest.0,
                image_url: rest.1,
                prompt: rest.2,
                fail_reason: rest.3,
            },
        )
}

fn num_filter() -> BoxedStrategy<NumFilter> {
    let list = || opt(proptest::collection::vec(int(), 0..3));
    (
        opt(int()),
        opt(int()),
        opt(int()),
        opt(int()),
        opt(int()),
        opt(int()),
        list(),
        list(),
    )
        .prop_map(|(eq, ne, gt, gte, lt, lte, in_list, not_in)| NumFilter {
            eq,
            ne,
            gt,
            gte,
            lt,
            lte,
            in_list,
            not_in,
        })
        .boxed()
}

fn string_filter() -> BoxedStrategy<StringFilter> {
    let value = || opt(pick(STRINGS).prop_map(str::to_owned));
    let list = || {
        opt(proptest::collection::vec(
            pick(STRINGS).prop_map(str::to_owned),
            0..3,
        ))
    };
    (value(), value(), list(), list())
        .prop_map(|(eq, ne, in_list, not_in)| StringFilter {
            eq,
            ne,
            in_list,
            not_in,
        })
        .boxed()
}

fn text_filter() -> BoxedStrategy<TextFilter> {
    let pattern = || opt(pick(PATTERNS).prop_map(str::to_owned));
    (pattern(), pattern(), opt(any::<bool>()))
        .prop_map(|(contains, starts_with, is_empty)| TextFilter {
            contains,
            starts_with,
            is_empty,
        })
        .boxed()
}

/// A filter with one or two leaves (sparse, so that rows match and fail alike).
fn leaves() -> BoxedStrategy<TaskFilter> {
    let leaf = prop_oneof![
        num_filter().prop_map(|f| TaskFilter {
            id: Some(f),
            ..Default::default()
        }),
        num_filter().prop_map(|f| TaskFilter {
            user_id: Some(f),
            ..Default::default()
        }),
        num_filter().prop_map(|f| TaskFilter {
            channel_id: Some(f),
            ..Default::default()
        }),
        num_filter().prop_map(|f| TaskFilter {
            quota: Some(f),
            ..Default::default()
        }),
        num_filter().prop_map(|f| TaskFilter {
            submit_time: Some(f),
            ..Default::default()
        }),
        string_filter().prop_map(|f| TaskFilter {
            mj_id: Some(f),
            ..Default::default()
        }),
        string_filter().prop_map(|f| TaskFilter {
            status: Some(f),
            ..Default::default()
        }),
        string_filter().prop_map(|f| TaskFilter {
            action: Some(f),
            ..Default::default()
        }),
        text_filter().prop_map(|f| TaskFilter {
            prompt: Some(f),
            ..Default::default()
        }),
        text_filter().prop_map(|f| TaskFilter {
            fail_reason: Some(f),
            ..Default::default()
        }),
        any::<bool>().prop_map(|b| TaskFilter {
            finished: Some(b),
            ..Default::default()
        }),
        any::<bool>().prop_map(|b| TaskFilter {
            has_image: Some(b),
            ..Default::default()
        }),
        Just(TaskFilter::default()),
    ];
    proptest::collection::vec(leaf, 1..3)
        .prop_map(|parts| parts.into_iter().fold(TaskFilter::default(), merge))
        .boxed()
}

/// `a` with the leaves `b` sets (one filter, no nesting).
fn merge(a: TaskFilter, b: TaskFilter) -> TaskFilter {
    TaskFilter {
        id: b.id.or(a.id),
        mj_id: b.mj_id.or(a.mj_id),
        action: b.action.or(a.action),
        status: b.status.or(a.status),
        user_id: b.user_id.or(a.user_id),
        channel_id: b.channel_id.or(a.channel_id),
        submit_time: b.submit_time.or(a.submit_time),
        start_time: b.start_time.or(a.start_time),
        finish_time: b.finish_time.or(a.finish_time),
        quota: b.quota.or(a.quota),
        finished: b.finished.or(a.finished),
        has_image: b.has_image.or(a.has_image),
        prompt: b.prompt.or(a.prompt),
        fail_reason: b.fail_reason.or(a.fail_reason),
        and: Vec::new(),
        or: Vec::new(),
        not: None,
    }
}

/// A filter nested up to three levels, as the validation allows.
fn filter() -> BoxedStrategy<TaskFilter> {
    leaves()
        .prop_recursive(2, 12, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(|and| TaskFilter {
                    and,
                    ..Default::default()
                }),
                proptest::collection::vec(inner.clone(), 0..3).prop_map(|or| TaskFilter {
                    or,
                    ..Default::default()
                }),
                inner.prop_map(|f| TaskFilter {
                    not: Some(Box::new(f)),
                    ..Default::default()
                }),
            ]
        })
        .boxed()
}

fn active(r: &Row) -> midjourney::ActiveModel {
    let s = |v: Option<&str>| v.map(str::to_owned);
    midjourney::ActiveModel {
        user_id: Set(r.user_id),
        channel_id: Set(r.channel_id),
        quota: Set(r.quota),
        submit_time: Set(r.submit_time),
        mj_id: Set(s(r.mj_id)),
        status: Set(s(r.status)),
        action: Set(s(r.action)),
        progress: Set(s(r.progress)),
        image_url: Set(s(r.image_url)),
        prompt: Set(s(r.prompt)),
        fail_reason: Set(s(r.fail_reason)),
        ..Default::default()
    }
}

fn page(filter: TaskFilter) -> TaskQuery {
    TaskQuery {
        filter,
        page: PageRequest::Offset(OffsetPage {
            page: 1,
            page_size: 100,
        }),
        ..Default::default()
    }
}

#[test]
fn the_in_memory_filter_equals_the_sql_filter() {
    let cases = env_cases("FILTER_MATCH_CASES", 64);
    let rt = runtime();
    let (app, admin) = rt.block_on(async {
        let app = spawn_app().await;
        let admin = app.user("admin", Role::Admin).await;
        (app, admin)
    });
    let viewer = Viewer {
        id: admin.id,
        username: "admin".into(),
        role: Role::Admin,
    };
    let conn = rt.block_on(app.db.connect());
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/api/filter_match.regressions",
        ))),
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(row(), 1..25),
        proptest::collection::vec(filter(), 8),
    );
    let (checked, matched) = (Cell::new(0u64), Cell::new(0u64));
    let result = runner.run(&strategy, |(rows, filters)| {
        rt.block_on(async {
            conn.execute_unprepared("DELETE FROM midjourneys")
                .await
                .expect("clear");
            midjourney::Entity::insert_many(rows.iter().map(active))
                .exec(&conn)
                .await
                .expect("insert");
            // The rows as the service reads them (NULLs as 0 and "").
            let stored: Vec<TaskRecord> = app
                .service
                .list_tasks(&viewer, &page(TaskFilter::default()))
                .await
                .expect("all rows")
                .rows;
            prop_assert_eq!(stored.len(), rows.len());
            for f in filters {
                f.validate(&viewer).expect("a valid filter");
                let sql: Vec<i64> = app
                    .service
                    .list_tasks(&viewer, &page(f.clone()))
                    .await
                    .expect("page")
                    .rows
                    .iter()
                    .map(|r| r.id)
                    .collect();
                let memory: Vec<i64> = stored
                    .iter()
                    .filter(|r| f.matches(r))
                    .map(|r| r.id)
                    .collect();
                checked.set(checked.get() + stored.len() as u64);
                matched.set(matched.get() + memory.len() as u64);
                prop_assert_eq!(sql, memory, "filter {:?}", f);
            }
            Ok(())
        })
    });
    println!(
        "in-memory filter vs SQL on {:?}: {cases} data sets × 8 filters, {} row checks, {} matches",
        app.db.backend,
        checked.get(),
        matched.get()
    );
    drop(conn);
    drop(app);
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// `properties` as new-api writes them (lowercase keys, once each), and the odd values it
/// can hold: a non-string model (the whole column then reads as empty), null, not an object.
const PROPERTIES: &[&str] = &[
    r#"{"origin_model_name":"abc"}"#,
    r#"{"input":"x","origin_model_name":"ABC ","upstream_model_name":"abc"}"#,
    r#"{"upstream_model_name":"SUCCESS"}"#,
    r#"{"origin_model_name":5,"upstream_model_name":"abc"}"#,
    r#"{"origin_model_name":null,"upstream_model_name":"ábc"}"#,
    r#"{"input":["x"],"upstream_model_name":"abc"}"#,
    "{}",
    "[1]",
    r#""abc""#,
];

/// A task-log row with the filtered columns generated (NULLs included).
fn task_row() -> impl Strategy<Value = crate::task_log::Row> {
    (
        (opt(int()), opt(int()), opt(int()), opt(int()), opt(int())),
        (
            opt(pick(STRINGS)),
            opt(pick(STRINGS)),
            opt(pick(STRINGS)),
            opt(pick(STRINGS)),
        ),
        (opt(pick(PROGRESS)), opt(pick(TEXTS)), opt(pick(PROPERTIES))),
    )
        .prop_map(
            |(
                (user_id, channel_id, quota, submit_time, updated_at),
                strings,
                (progress, fail, properties),
            )| {
                crate::task_log::Row {
                    user_id,
                    channel_id,
                    quota,
                    submit_time,
                    updated_at,
                    task_id: strings.0,
                    platform: strings.1,
                    status: strings.2,
                    action: strings.3,
                    progress,
                    fail_reason: fail,
                    properties,
                    ..Default::default()
                }
            },
        )
}

/// A task-log filter with one or two leaves.
fn task_leaves() -> BoxedStrategy<PlatformTaskFilter> {
    let num = |set: fn(&mut PlatformTaskFilter, NumFilter)| {
        num_filter().prop_map(move |f| {
            let mut out = PlatformTaskFilter::default();
            set(&mut out, f);
            out
        })
    };
    let string = |set: fn(&mut PlatformTaskFilter, StringFilter)| {
        string_filter().prop_map(move |f| {
            let mut out = PlatformTaskFilter::default();
            set(&mut out, f);
            out
        })
    };
    let leaf = prop_oneof![
        num(|o, f| o.id = Some(f)),
        num(|o, f| o.user_id = Some(f)),
        num(|o, f| o.channel_id = Some(f)),
        num(|o, f| o.quota = Some(f)),
        num(|o, f| o.submit_time = Some(f)),
        num(|o, f| o.updated_at = Some(f)),
        string(|o, f| o.task_id = Some(f)),
        string(|o, f| o.platform = Some(f)),
        string(|o, f| o.status = Some(f)),
        string(|o, f| o.action = Some(f)),
        string(|o, f| o.origin_model_name = Some(f)),
        string(|o, f| o.upstream_model_name = Some(f)),
        text_filter().prop_map(|f| PlatformTaskFilter {
            fail_reason: Some(f),
            ..Default::default()
        }),
        any::<bool>().prop_map(|b| PlatformTaskFilter {
            finished: Some(b),
            ..Default::default()
        }),
        Just(PlatformTaskFilter::default()),
    ];
    proptest::collection::vec(leaf, 1..3)
        .prop_map(|parts| PlatformTaskFilter {
            and: parts,
            ..Default::default()
        })
        .boxed()
}

fn task_filter() -> BoxedStrategy<PlatformTaskFilter> {
    task_leaves()
        .prop_recursive(1, 8, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(|or| {
                    PlatformTaskFilter {
                        or,
                        ..Default::default()
                    }
                }),
                inner.prop_map(|f| PlatformTaskFilter {
                    not: Some(Box::new(f)),
                    ..Default::default()
                }),
            ]
        })
        .boxed()
}

#[test]
fn the_task_logs_in_memory_filter_equals_its_sql_filter() {
    let cases = env_cases("FILTER_MATCH_CASES", 64);
    let rt = runtime();
    let (app, admin) = rt.block_on(async {
        let app = spawn_app().await;
        let admin = app.user("admin", Role::Admin).await;
        (app, admin)
    });
    let viewer = Viewer {
        id: admin.id,
        username: "admin".into(),
        role: Role::Admin,
    };
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/api/filter_match_tasks.regressions",
        ))),
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(task_row(), 1..25),
        proptest::collection::vec(task_filter(), 8),
    );
    let checked = Cell::new(0u64);
    let query = |filter| PlatformTaskQuery {
        filter,
        page: PageRequest::Offset(OffsetPage {
            page: 1,
            page_size: 100,
        }),
        ..Default::default()
    };
    let result = runner.run(&strategy, |(mut rows, filters)| {
        rt.block_on(async {
            app.sql("DELETE FROM tasks").await;
            for (i, r) in rows.iter_mut().enumerate() {
                r.id = i as i64 + 1;
            }
            crate::task_log::insert(&app, &rows).await;
            let stored: Vec<PlatformTaskRecord> = app
                .service
                .list::<Tasks>(&viewer, &query(PlatformTaskFilter::default()))
                .await
                .expect("all rows")
                .rows;
            prop_assert_eq!(stored.len(), rows.len());
            for f in filters {
                f.validate(&viewer).expect("a valid filter");
                let sql: Vec<i64> = app
                    .service
                    .list::<Tasks>(&viewer, &query(f.clone()))
                    .await
                    .expect("page")
                    .rows
                    .iter()
                    .map(|r| r.id)
                    .collect();
                let memory: Vec<i64> = stored
                    .iter()
                    .filter(|r| f.matches(r))
                    .map(|r| r.id)
                    .collect();
                checked.set(checked.get() + stored.len() as u64);
                prop_assert_eq!(sql, memory, "filter {:?}", f);
            }
            Ok(())
        })
    });
    println!(
        "task log: in-memory filter vs SQL on {:?}: {cases} data sets × 8 filters, {} row checks",
        app.db.backend,
        checked.get()
    );
    drop(app);
    if let Err(e) = result {
        panic!("{e}");
    }
}
