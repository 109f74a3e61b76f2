//! `mj-tasks bench`: seeds a database and times the service's representative queries
//! (first pages, filters, counts, deep offset pages against keyset cursors), printing the
//! median and 95th percentile of repeated runs. Performance is measured here, not asserted
//! in tests.

pub mod http;

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::app;
use crate::config::DbConfig;
use crate::service::{
    CursorPage, NumFilter, OffsetPage, PageRequest, Service, TaskFilter, TaskQuery, Viewer,
};

/// One measured case.
struct Case {
    name: &'static str,
    viewer: Viewer,
    query: TaskQuery,
    count: bool,
}

fn eq(v: i64) -> Option<NumFilter> {
    Some(NumFilter {
        eq: Some(v),
        ..Default::default()
    })
}

fn offset(page: u64, page_size: u64) -> PageRequest {
    PageRequest::Offset(OffsetPage { page, page_size })
}

/// Runs the benchmark: `tasks` rows seeded into `db` (which must hold no users yet), each
/// case run `runs` times.
pub async fn run(db: &DbConfig, tasks: usize, runs: usize) -> anyhow::Result<()> {
    let service = app::open_service(db).await?;
    let seeding = Instant::now();
    let users = service
        .seed_demo(tasks)
        .await
        .map_err(|e| anyhow::anyhow!("seeding (the database must hold no users yet): {e}"))?;
    println!(
        "seeded {tasks} tasks in {:.1} s on {}",
        seeding.elapsed().as_secs_f64(),
        db.database_url.split(':').next().unwrap_or("?")
    );
    service
        .refresh_statistics()
        .await
        .map_err(|e| anyhow::anyhow!("analyzing the table: {e}"))?;
    let admin = Viewer {
        id: users.admin.id,
        username: users.admin.username.clone(),
        role: users.admin.role,
    };
    let alice = users.users.first().context("a demo user")?;
    let user = Viewer {
        id: alice.id,
        username: alice.username.clone(),
        role: alice.role,
    };
    // A cursor near the end of the admin's newest-first list, for the deepest keyset page.
    let deep_cursor = deep_cursor(&service, &admin, tasks).await?;
    let window = TaskFilter {
        submit_time: Some(NumFilter {
            gte: Some(0),
            lte: Some(i64::MAX / 2),
            ..Default::default()
        }),
        ..Default::default()
    };
    let cases = vec![
        Case {
            name: "admin first page (20)",
            viewer: admin.clone(),
            query: TaskQuery::default(),
            count: false,
        },
        Case {
            name: "admin first page + total",
            viewer: admin.clone(),
            query: TaskQuery::default(),
            count: true,
        },
        Case {
            name: "user first page + total",
            viewer: user.clone(),
            query: TaskQuery::default(),
            count: true,
        },
        Case {
            name: "channel filter page + total",
            viewer: admin.clone(),
            query: TaskQuery {
                filter: TaskFilter {
                    channel_id: eq(3),
                    ..Default::default()
                },
                ..Default::default()
            },
            count: true,
        },
        Case {
            name: "time window page (order by id)",
            viewer: admin.clone(),
            query: TaskQuery {
                filter: window,
                ..Default::default()
            },
            count: false,
        },
        Case {
            name: "offset page 500 x 20 (GraphQL max)",
            viewer: admin.clone(),
            query: TaskQuery {
                page: offset(500, 20),
                ..Default::default()
            },
            count: false,
        },
        Case {
            name: "offset last page (legacy REST)",
            viewer: admin.clone(),
            query: TaskQuery {
                page: offset((tasks as u64 / 20).max(1), 20),
                ..Default::default()
            },
            count: false,
        },
        Case {
            name: "cursor first page",
            viewer: admin.clone(),
            query: TaskQuery {
                page: PageRequest::Cursor(CursorPage {
                    first: Some(20),
                    ..Default::default()
                }),
                ..Default::default()
            },
            count: false,
        },
        Case {
            name: "cursor last page (keyset)",
            viewer: admin.clone(),
            query: TaskQuery {
                page: PageRequest::Cursor(CursorPage {
                    first: Some(20),
                    after: Some(deep_cursor),
                    ..Default::default()
                }),
                ..Default::default()
            },
            count: false,
        },
    ];
    println!("{:<38} {:>10} {:>10}", "case", "median ms", "p95 ms");
    for case in cases {
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Instant::now();
            service.list_tasks(&case.viewer, &case.query).await?;
            if case.count {
                service.count_tasks(&case.viewer, &case.query).await?;
            }
            samples.push(started.elapsed());
        }
        samples.sort_unstable();
        let median = samples[samples.len() / 2];
        let p95 = samples[(samples.len() * 95 / 100).min(samples.len() - 1)];
        println!("{:<38} {:>10.3} {:>10.3}", case.name, ms(median), ms(p95));
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The cursor of the row 20 rows before the end of the admin's list.
async fn deep_cursor(service: &Service, admin: &Viewer, tasks: usize) -> anyhow::Result<String> {
    let page = (tasks as u64).saturating_sub(20).max(1);
    let query = TaskQuery {
        page: offset(page, 1),
        ..Default::default()
    };
    let found = service.list_tasks(admin, &query).await?;
    found
        .cursor(0)
        .context("the seeded table is too small for a deep cursor")
}
